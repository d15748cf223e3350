import Foundation
import Reports

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
    tensorboard = try TensorBoardWriter(directory: "\(directory)/tensorboard")
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
