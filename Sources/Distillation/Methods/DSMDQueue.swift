import Torch

/// A first-in-first-out ring buffer of past teacher vectors, the larger dictionary of DSMD's
/// contrastive term (MoCo-style): negatives from earlier batches at no extra teacher cost.
///
/// Rows are written at `pointer` and wrap around; once full, each new row replaces the oldest.
/// The storage is allocated on the first `enqueue`, in that batch's dtype, on `device` (the
/// batch's device when nil): a queue on the model's device costs no host copy per step.
public final class FeatureQueue {
  public let capacity: Int
  public let width: Int
  /// Where the rows live; nil: wherever the first enqueued rows were.
  public let device: Device?
  /// [capacity, width] once anything was enqueued.
  public private(set) var storage: Tensor?
  /// Where the next row is written.
  public private(set) var pointer = 0
  /// How many rows hold data (≤ capacity).
  public private(set) var count = 0

  public init(capacity: Int, width: Int, device: Device? = nil) {
    self.capacity = capacity
    self.width = width
    self.device = device
  }

  /// The rows holding data, in storage order [count, width] (order does not matter to a loss);
  /// nil while empty.
  public func entries() throws -> Tensor? {
    guard let storage, count > 0 else { return nil }
    return count == capacity ? storage : try storage.narrow(dim: 0, start: 0, length: count)
  }

  /// The rows oldest first [count, width]; nil while empty.
  public func ordered() throws -> Tensor? {
    guard let storage, count > 0 else { return nil }
    guard count == capacity, pointer > 0 else { return try entries() }
    return try Tensor.cat([
      storage.narrow(dim: 0, start: pointer, length: capacity - pointer), storage.narrow(dim: 0, start: 0, length: pointer),
    ])
  }

  /// Appends the rows of `rows` [N, width] (detached), dropping the oldest beyond capacity.
  public func enqueue(_ rows: Tensor) throws {
    guard rows.rank == 2, rows.size(1) == width else {
      throw MethodError("dsmd queue: expected rows [N, \(width)], got \(rows.shape)")
    }
    guard capacity > 0 else { return }
    try Torch.noGrad {
      let storage = try self.storage ?? Tensor.zeros([capacity, width], dtype: rows.dtype, device: self.device ?? rows.device)
      self.storage = storage
      var x = try rows.detach()
      if x.size(0) > capacity { x = try x.narrow(dim: 0, start: x.size(0) - capacity, length: capacity) }
      let n = x.size(0)
      let first = min(n, capacity - pointer)
      try storage.narrow(dim: 0, start: pointer, length: first).copy(from: x.narrow(dim: 0, start: 0, length: first))
      if n > first {
        try storage.narrow(dim: 0, start: 0, length: n - first).copy(from: x.narrow(dim: 0, start: first, length: n - first))
      }
      pointer = (pointer + n) % capacity
      count = min(capacity, count + n)
    }
  }

  /// Storage, pointer and count under `prefix` (nothing while empty).
  public func stateTensors(prefix: String) throws -> [String: Tensor] {
    guard let storage else { return [:] }
    return [
      prefix: storage, "\(prefix).pointer": try Tensor.scalar(Double(pointer), dtype: .int64),
      "\(prefix).count": try Tensor.scalar(Double(count), dtype: .int64),
    ]
  }

  /// The inverse of `stateTensors`; a queue absent from `tensors` is left empty.
  public func loadState(_ tensors: [String: Tensor], prefix: String) throws {
    guard let saved = tensors[prefix] else {
      (storage, pointer, count) = (nil, 0, 0)
      return
    }
    guard saved.shape == [capacity, width], let p = tensors["\(prefix).pointer"], let c = tensors["\(prefix).count"] else {
      throw MethodError(
        "dsmd queue '\(prefix)': the checkpoint holds \(saved.shape) (with pointer and count?) but this run's queue is [\(capacity), \(width)]; "
          + "keep queue_size and the teacher the same when resuming")
    }
    let (pointer, count) = (try p.itemInt(), try c.itemInt())
    guard (0..<capacity).contains(pointer), (0...capacity).contains(count) else {
      throw MethodError("dsmd queue '\(prefix)': pointer \(pointer) / count \(count) out of range for capacity \(capacity)")
    }
    // Checkpoints load on the CPU: the rows go back where this queue keeps them.
    storage = try saved.to(device ?? saved.device).clone()
    (self.pointer, self.count) = (pointer, count)
  }
}
