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

  /// Σ of all parts (zero-dimensional); nil when empty.
  public func sum() throws -> Tensor? {
    try parts.dropFirst().reduce(parts.first?.value) { total, part in try total.map { try $0 + part.value } }
  }

  /// The parts as numbers, for metrics.
  public func values() throws -> [String: Double] {
    Dictionary(uniqueKeysWithValues: try parts.map { ($0.name, try $0.value.detach().item()) })
  }
}
