import Foundation

/// Progress of a long loop on stderr: a redrawn bar with loss, samples/s and ETA on a terminal,
/// plain periodic lines otherwise (CI logs, pipes).
public final class ProgressReporter {
  public let title: String
  public let total: Int
  let interactive: Bool
  let plainEvery: TimeInterval
  let start = Date()
  var lastPlain = Date.distantPast
  var startStep: Int
  var lastLength = 0
  public var quiet = false

  public init(title: String, total: Int, startStep: Int = 0, plainEvery: TimeInterval = 10) {
    self.title = title
    self.total = total
    self.startStep = startStep
    self.plainEvery = plainEvery
    interactive = isatty(STDERR_FILENO) == 1 && ProcessInfo.processInfo.environment["CI"] == nil
  }

  /// Updates after `step` of `total`; `samples` processed since the reporter started.
  public func update(step: Int, samples: Int, fields: [(String, String)]) {
    guard !quiet else { return }
    let elapsed = Date().timeIntervalSince(start)
    let rate = elapsed > 0 ? Double(samples) / elapsed : 0
    let done = step - startStep
    let eta = done > 0 ? elapsed / Double(done) * Double(total - step) : 0
    let info = fields.map { "\($0.0) \($0.1)" }.joined(separator: "  ")
    let tail = String(format: "%.0f samples/s  ETA %@", rate, Self.clock(eta))
    if interactive {
      let width = 24
      let filled = total > 0 ? min(width, width * step / total) : width
      let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
      let line = "\(title) \(bar) \(step)/\(total)  \(info)  \(tail)"
      let pad = max(0, lastLength - line.count)
      lastLength = line.count
      FileHandle.standardError.write(Data(("\r" + line + String(repeating: " ", count: pad)).utf8))
      if step >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    } else if Date().timeIntervalSince(lastPlain) >= plainEvery || step >= total {
      lastPlain = Date()
      FileHandle.standardError.write(Data("\(title) step \(step)/\(total)  \(info)  \(tail)\n".utf8))
    }
  }

  /// A message on its own line (the bar is redrawn after it).
  public func note(_ message: String) {
    guard !quiet else { return }
    if interactive && lastLength > 0 { FileHandle.standardError.write(Data("\n".utf8)) }
    lastLength = 0
    FileHandle.standardError.write(Data("\(message)\n".utf8))
  }

  static func clock(_ seconds: Double) -> String {
    guard seconds.isFinite else { return "?" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
  }
}
