import Foundation

/// What was skipped under `ErrorPolicy.skip`: the count per kind and the first few errors.
public struct SkipReport: Equatable, Sendable, CustomStringConvertible {
  public var count: Int = 0
  public var countByKind: [DataError.Kind: Int] = [:]
  /// The first `SkipLog.keptExamples` errors, in the order they happened.
  public var examples: [DataError] = []

  public init() {}

  public var isEmpty: Bool { count == 0 }

  /// Adds another report's counts (e.g. load-time skips plus decode-time skips).
  public mutating func merge(_ other: SkipReport) {
    count += other.count
    for (kind, n) in other.countByKind { countByKind[kind, default: 0] += n }
    examples += other.examples.prefix(max(0, SkipLog.keptExamples - examples.count))
  }

  /// One line per kind, then the examples: what a run prints at its end.
  public var description: String {
    if count == 0 { return "skipped 0 samples" }
    let kinds = countByKind.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }
    var lines = ["skipped \(count) samples (\(kinds.joined(separator: ", ")))"]
    lines += examples.map { "  \($0)" }
    if count > examples.count { lines.append("  … and \(count - examples.count) more") }
    return lines.joined(separator: "\n")
  }
}

/// A thread-safe tally of skipped samples, shared by loader workers.
public final class SkipLog: @unchecked Sendable {
  /// How many errors a report keeps verbatim.
  public static let keptExamples = 10

  private let lock = NSLock()
  private var report = SkipReport()

  public init() {}

  public func record(_ error: DataError) {
    lock.withLock {
      report.count += 1
      report.countByKind[error.kind, default: 0] += 1
      if report.examples.count < Self.keptExamples { report.examples.append(error) }
    }
  }

  /// A snapshot of everything recorded so far.
  public var snapshot: SkipReport { lock.withLock { report } }
}

extension ErrorPolicy {
  /// Runs `body`; under `.skip` a `DataError` is recorded in `log` and nil returned, under
  /// `.fail` it propagates. Other errors always propagate (they are bugs, not bad data).
  public func handle<T>(_ log: SkipLog, _ body: () throws -> T) throws -> T? {
    do {
      return try body()
    } catch let error as DataError where self == .skip {
      log.record(error)
      return nil
    }
  }
}
