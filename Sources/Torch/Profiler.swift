import CTorch
import Foundation

/// LibTorch's operator profiler on CPU, for benchmarks: runs `body` under it and returns, per
/// operator name, how many times it ran and its self time (its duration less that of the
/// operators it called).
///
/// ```swift
/// let ops = try Torch.profileOperators { try step() }
/// for op in ops.prefix(10) { print(op.name, op.calls, op.selfNanoseconds) }
/// ```
public struct OperatorProfile: Sendable, Equatable {
  public var name: String
  public var calls: Int
  public var selfNanoseconds: UInt64
  public var totalNanoseconds: UInt64
}

extension Torch {
  /// Operators by self time, largest first. One profiler runs at a time (LibTorch's is global).
  /// - Parameter shapes: tell calls apart by their inputs' shapes (the name then ends with
  ///   them, e.g. "aten::mul [64, 9] []").
  public static func profileOperators(shapes: Bool = false, _ body: () throws -> Void) throws -> [OperatorProfile] {
    let path = NSTemporaryDirectory() + "cmapkd-profile-\(getpid())-\(UUID().uuidString.prefix(8)).tsv"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try checkStatus("profileOperators", ct_profiler_start(shapes))
    var failure: Error?
    do { try body() } catch { failure = error }
    try checkStatus("profileOperators", ct_profiler_stop(path))
    if let failure { throw failure }
    return try aggregate(String(contentsOfFile: path, encoding: .utf8))
  }

  struct ProfiledEvent {
    var name: String
    var thread: UInt64
    var start: UInt64
    var duration: UInt64
    var end: UInt64 { start + duration }
  }

  /// Self time per name from the profiler's events (name, thread, start, duration per line):
  /// on each thread, events nest by time, and an event's children are subtracted from it.
  static func aggregate(_ text: String) throws -> [OperatorProfile] {
    var byThread: [UInt64: [ProfiledEvent]] = [:]
    for line in text.split(separator: "\n") {
      let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
      guard fields.count == 4, let thread = UInt64(fields[1]), let start = UInt64(fields[2]),
        let duration = UInt64(fields[3])
      else { throw TorchError("profileOperators", "unreadable profiler line '\(line)'") }
      byThread[thread, default: []].append(ProfiledEvent(name: String(fields[0]), thread: thread, start: start, duration: duration))
    }
    var profiles: [String: OperatorProfile] = [:]
    for events in byThread.values {
      // Parents first: by start, the longer of two that start together first.
      let sorted = events.sorted { ($0.start, UInt64.max - $0.duration) < ($1.start, UInt64.max - $1.duration) }
      var stack: [(event: ProfiledEvent, children: UInt64)] = []
      func close(_ item: (event: ProfiledEvent, children: UInt64)) {
        var p = profiles[item.event.name] ?? OperatorProfile(name: item.event.name, calls: 0, selfNanoseconds: 0, totalNanoseconds: 0)
        p.calls += 1
        p.totalNanoseconds += item.event.duration
        p.selfNanoseconds += item.event.duration - min(item.children, item.event.duration)
        profiles[item.event.name] = p
      }
      for event in sorted {
        while let top = stack.last, top.event.end <= event.start { close(stack.removeLast()) }
        if !stack.isEmpty { stack[stack.count - 1].children += event.duration }
        stack.append((event, 0))
      }
      while let top = stack.popLast() { close(top) }
    }
    return profiles.values.sorted { ($0.selfNanoseconds, $0.name) > ($1.selfNanoseconds, $1.name) }
  }
}
