import Torch

/// A loss made of named parts (`intra_v/P2`, `align`, …) and their weighted total.
///
/// Losses are small functions that return their parts; the method composes them and
/// multiplies each by its λ. Parts are kept as tensors (for backward) and read as numbers
/// for logging.
public struct LossParts {
  public private(set) var parts: [(name: String, value: Tensor)] = []

  public init() {}

  public mutating func add(_ name: String, _ value: Tensor) { parts.append((name, value)) }

  /// Appends `other`'s parts with `prefix/` in front of their names.
  public mutating func merge(_ other: LossParts, prefix: String) {
    for (name, value) in other.parts { parts.append(("\(prefix)/\(name)", value)) }
  }

  public subscript(_ name: String) -> Tensor? { parts.first { $0.name == name }?.value }

  /// Every part multiplied by `factor`.
  public func scaled(by factor: Double) throws -> LossParts {
    var out = LossParts()
    for (name, value) in parts { out.add(name, try value * factor) }
    return out
  }

  /// Σ of all parts (zero-dimensional); nil when empty. One stack and one sum: a chain of
  /// additions is an operator and an autograd node per part (each part's gradient is 1 either way).
  public func sum() throws -> Tensor? {
    guard let first = parts.first?.value else { return nil }
    guard parts.count > 1 else { return first }
    guard parts.allSatisfy({ $0.value.dtype == first.dtype && $0.value.rank == 0 }) else {
      // Mixed dtypes (autocast) or shapes: additions promote and broadcast as before.
      return try parts.dropFirst().reduce(first) { try $0 + $1.value }
    }
    return try Tensor.stack(parts.map(\.value)).sum()
  }

  /// The parts as numbers, for metrics.
  public func values() throws -> [String: Double] {
    Dictionary(uniqueKeysWithValues: try parts.map { ($0.name, try $0.value.detach().item()) })
  }
}
