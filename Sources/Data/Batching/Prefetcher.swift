import Foundation

/// Runs `work(k)` for k in a range on worker threads, at most `depth` items ahead of the
/// consumer, and hands results back strictly in order.
///
/// Each item is built whole by one worker (as a PyTorch DataLoader worker builds a batch),
/// so results do not depend on the number of workers. `Output` need not be `Sendable` (a
/// batch holds tensors): each result is made by one worker and then owned by the consumer
/// alone, handed over under the lock.
final class Prefetcher<Output>: @unchecked Sendable {
  // Everything below is guarded by `condition`.
  private let condition = NSCondition()
  private var nextToClaim: Int
  private var nextToDeliver: Int
  private var ready: [Int: Result<Output, any Error>] = [:]
  private var stopped = false
  private var running = 0

  private let end: Int
  private let depth: Int
  private let work: @Sendable (Int) throws -> Output

  init(_ range: Range<Int>, workers: Int, depth: Int, work: @escaping @Sendable (Int) throws -> Output) {
    nextToClaim = range.lowerBound
    nextToDeliver = range.lowerBound
    end = range.upperBound
    self.depth = max(depth, workers)
    self.work = work
    running = workers
    for number in 0..<workers {
      let thread = Thread { [self] in workerLoop() }
      thread.name = "cmapkd.data.\(number)"
      thread.start()
    }
  }

  deinit { stop() }

  /// The next result in order, nil after the last; rethrows the error `work` threw for it.
  func next() throws -> Output? {
    condition.lock()
    defer { condition.unlock() }
    guard nextToDeliver < end, !stopped else { return nil }
    while ready[nextToDeliver] == nil { condition.wait() }
    let result = ready.removeValue(forKey: nextToDeliver)!
    nextToDeliver += 1
    condition.broadcast()
    return try result.get()
  }

  /// Stops claiming work and waits for the workers to finish what they hold.
  func stop() {
    condition.lock()
    stopped = true
    condition.broadcast()
    while running > 0 { condition.wait() }
    ready.removeAll()
    condition.unlock()
  }

  private func workerLoop() {
    while true {
      condition.lock()
      while !stopped && nextToClaim < end && nextToClaim >= nextToDeliver + depth { condition.wait() }
      if stopped || nextToClaim >= end {
        running -= 1
        condition.broadcast()
        condition.unlock()
        return
      }
      let k = nextToClaim
      nextToClaim += 1
      condition.unlock()

      let result = Result { try work(k) }

      condition.lock()
      if !stopped { ready[k] = result }
      condition.broadcast()
      condition.unlock()
    }
  }
}
