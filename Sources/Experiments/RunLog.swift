import Foundation
import Reports
import SafeFiles

/// A run's metrics: `metrics.jsonl` (one JSON object per logged step) and TensorBoard scalar
/// event files under `tensorboard/`, written side by side.
final class RunLog {
  let directory: String
  let started = Date()
  private var jsonl: MetricsLog?
  private var tensorboard: TensorBoardWriter?

  init(directory: String) throws { self.directory = directory }

  var metricsPath: String { "\(directory)/metrics.jsonl" }

  /// Opens the logs; records after `step` (from the part of a killed run past its checkpoint)
  /// are dropped; -1 starts a fresh log.
  func truncate(afterStep step: Int) throws {
    if step < 0 {
      try? FileManager.default.removeItem(atPath: metricsPath)
      try? FileManager.default.removeItem(atPath: "\(directory)/tensorboard")
    }
    jsonl = try MetricsLog(path: metricsPath, resumingAfterStep: step < 0 ? nil : step)
    if step >= 0 { try RunLog.truncateEvents(in: "\(directory)/tensorboard", afterStep: step) }
    tensorboard = try TensorBoardWriter(directory: "\(directory)/tensorboard")
  }

  /// Drops the events after `step` from every event file in `directory` (a killed run's tail,
  /// which the resumed run logs again), so TensorBoard shows each step once. A file ending in
  /// a half-written record (the kill) keeps its whole records.
  static func truncateEvents(in directory: String, afterStep step: Int) throws {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for name in files.sorted() where name.hasPrefix("events.out.tfevents.") {
      let path = "\(directory)/\(name)"
      let records = try TFRecord.read(path, allowTruncatedTail: true)
      var kept = Data()
      var dropped = 0
      for record in records {
        if try TensorBoardEvent.decode(record).step > Int64(step) {
          dropped += 1
        } else {
          kept.append(TFRecord.frame(record))
        }
      }
      let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
      if dropped > 0 || size != kept.count { try AtomicFile.write(kept, to: path) }
    }
  }

  func scalars(step: Int, epoch: Int, _ values: [String: Double]) throws {
    guard !values.isEmpty else { return }
    try jsonl?.write(step: step, epoch: epoch, values)
    try tensorboard?.addScalars(values, step: step)
  }

  func close() throws {
    jsonl = nil
    tensorboard = nil
  }
}
