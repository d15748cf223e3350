import Foundation
import Torch

/// Wall-clock statistics of repeated runs, in seconds.
public struct TimingStats: Codable, Equatable, Sendable {
  /// The median run: robust to the odd slow run (a page fault, another process).
  public var median: Double
  public var min: Double
  public var max: Double
  public var runs: Int

  public init(seconds: [Double]) {
    let sorted = seconds.sorted()
    let n = sorted.count
    median = n == 0 ? 0 : n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    min = sorted.first ?? 0
    max = sorted.last ?? 0
    runs = n
  }
}

/// Times a body with a monotonic clock.
///
/// ```swift
/// let stats = try Timing.measure(warmup: 3, runs: 20) { _ = try model.encodeImage(pixels) }
/// print(stats.median)
/// ```
public enum Timing {
  /// Runs `body` `warmup` times untimed (allocator, caches, lazy initialisation), then `runs`
  /// times timed with `ContinuousClock`. On CUDA each timed run waits for the device, since
  /// kernels are queued asynchronously and the call returns before they finish.
  public static func measure(warmup: Int = 3, runs: Int = 10, device: Device = .cpu, _ body: () throws -> Void) throws
    -> TimingStats
  {
    guard warmup >= 0, runs >= 1 else { throw EvaluationError("timing: need warmup ≥ 0 and runs ≥ 1 (got \(warmup), \(runs))") }
    for _ in 0..<warmup { try body() }
    try Torch.synchronize(device)
    let clock = ContinuousClock()
    var seconds: [Double] = []
    for _ in 0..<runs {
      let start = clock.now
      try body()
      try Torch.synchronize(device)
      let elapsed = (clock.now - start).components
      seconds.append(Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18)
    }
    return TimingStats(seconds: seconds)
  }
}

/// The process's peak memory, where it can be measured.
public struct PeakMemory: Codable, Equatable, Sendable {
  /// Bytes, or nil where not measured.
  public var bytes: Int?
  /// What `bytes` is, or why it is missing.
  public var source: String

  /// The process's peak resident set size (`getrusage`), on the CPU. It is the peak of the
  /// whole process so far (data, both models, the test harness), an upper bound on what the
  /// model needs, not the model alone. On CUDA, device memory is what matters and it is not
  /// measured yet: `bytes` is nil and `source` says so.
  public static func current(device: Device) -> PeakMemory {
    if device.isCUDA { return PeakMemory(bytes: nil, source: "n/a: CUDA peak memory is not measured yet") }
    var usage = rusage()
    #if os(Linux)
      let status = getrusage(RUSAGE_SELF.rawValue, &usage)
      let bytes = Int(usage.ru_maxrss) * 1024  // kilobytes on Linux
    #else
      let status = getrusage(RUSAGE_SELF, &usage)
      let bytes = Int(usage.ru_maxrss)  // bytes on Darwin
    #endif
    guard status == 0 else { return PeakMemory(bytes: nil, source: "n/a: getrusage failed") }
    return PeakMemory(bytes: bytes, source: "process peak RSS (getrusage)")
  }
}
