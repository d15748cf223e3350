import Torch

// Parameter discovery (written down, as the foundation issue asks):
//
// A `Module` finds its parameters and children by reflection (`Mirror`) over its stored
// properties, walking superclasses too, in declaration order:
//   * a `Tensor` property is a trainable parameter;
//   * a `Module`, `[Module]` or `[String: Module]` property is a child (arrays key by index);
//   * optionals are followed when non-nil; anything else is ignored;
//   * `@Buffer` marks a tensor that is state but not trained (PyTorch's buffers);
//     `@Buffer(persistent: false)` keeps it out of the state dict too;
//   * keys are the property names in snake_case (`qProj` → `q_proj`, `layerNorm1` →
//     `layer_norm1`), so checkpoint keys match Python; `@Key("LayerNorm")` overrides one.
// Parameters are never replaced, only updated in place (optimizers, `loadStateDict`,
// `to(_:)` via `setData`), so the tensors an optimizer holds stay the module's tensors.

/// Marks a property's checkpoint key explicitly: `@Key("LayerNorm") var layerNorm = try! LayerNorm(4)`,
/// or, for a value built in `init`, `@Key var layerNorm: LayerNorm` with
/// `_layerNorm = Key(wrappedValue: try LayerNorm(d), "LayerNorm")` in the initializer.
@propertyWrapper
public struct Key<Value> {
  public var wrappedValue: Value
  public let key: String
  public init(wrappedValue: Value, _ key: String) {
    self.wrappedValue = wrappedValue
    self.key = key
  }
}

/// A tensor that belongs to the module's state but is not trained.
@propertyWrapper
public struct Buffer {
  public var wrappedValue: Tensor
  public let persistent: Bool
  public let key: String?
  public init(wrappedValue: Tensor, persistent: Bool = true, key: String? = nil) {
    self.wrappedValue = wrappedValue
    self.persistent = persistent
    self.key = key
  }
}

private protocol KeyedProperty {
  var key: String { get }
  var anyValue: Any { get }
}
extension Key: KeyedProperty {
  var anyValue: Any { wrappedValue }
}

/// The base class of every layer and model.
///
/// ```swift
/// final class Block: Module {
///   let fc1: Linear
///   let fc2: Linear
///   init(_ d: Int) throws {
///     fc1 = try Linear(d, 4 * d); fc2 = try Linear(4 * d, d)
///     super.init()
///   }
///   func callAsFunction(_ x: Tensor) throws -> Tensor { try fc2(fc1(x).gelu()) }
/// }
/// ```
open class Module {
  /// Training mode (dropout active). Set it through `train()` / `eval()` so children follow.
  public private(set) var isTraining = true

  public init() {}

  // MARK: Discovery

  private enum Entry {
    case parameter(String, Tensor)
    case buffer(String, Tensor, persistent: Bool)
    case child(String, Module)
  }

  private func entries() -> [Entry] {
    var mirrors: [Mirror] = []
    var mirror: Mirror? = Mirror(reflecting: self)
    while let m = mirror {
      mirrors.append(m)
      mirror = m.superclassMirror
    }
    var result: [Entry] = []
    // Superclass properties first, as declaration order would have them.
    for m in mirrors.reversed() {
      for child in m.children {
        guard let label = child.label else { continue }
        collect(label: label, value: child.value, into: &result)
      }
    }
    return result
  }

  private func collect(label: String, value: Any, into result: inout [Entry]) {
    if let keyed = value as? KeyedProperty {
      collect(key: keyed.key, value: keyed.anyValue, into: &result)
    } else if let buffer = value as? Buffer {
      let name = buffer.key ?? Module.snakeCase(label.hasPrefix("_") ? String(label.dropFirst()) : label)
      result.append(.buffer(name, buffer.wrappedValue, persistent: buffer.persistent))
    } else if !label.hasPrefix("$") {
      let name = label.hasPrefix("_") ? String(label.dropFirst()) : label
      collect(key: Module.snakeCase(name), value: value, into: &result)
    }
  }

  private func collect(key: String, value: Any, into result: inout [Entry]) {
    switch value {
    case let tensor as Tensor: result.append(.parameter(key, tensor))
    case let module as Module: result.append(.child(key, module))
    case let modules as [Module]:
      for (i, m) in modules.enumerated() { result.append(.child("\(key).\(i)", m)) }
    case let modules as [String: Module]:
      for name in modules.keys.sorted() { result.append(.child("\(key).\(name)", modules[name]!)) }
    default: break
    }
  }

  /// `camelCase` → `snake_case`: an underscore before an upper-case letter that follows a
  /// lower-case letter or digit.
  public static func snakeCase(_ name: String) -> String {
    var out = ""
    var previous: Character?
    for c in name {
      if c.isUppercase, let p = previous, p.isLowercase || p.isNumber { out.append("_") }
      out.append(contentsOf: c.lowercased())
      previous = c
    }
    return out
  }

  /// Direct children with their keys.
  public func namedChildren() -> [(String, Module)] {
    entries().compactMap { if case .child(let k, let m) = $0 { (k, m) } else { nil } }
  }

  /// This module and every descendant, with dotted keys ("" for self).
  public func namedModules(prefix: String = "") -> [(String, Module)] {
    var result: [(String, Module)] = [(prefix, self)]
    for (key, child) in namedChildren() {
      result += child.namedModules(prefix: prefix.isEmpty ? key : "\(prefix).\(key)")
    }
    return result
  }

  /// Every parameter with its dotted key (`encoder.layers.0.self_attn.q_proj.weight`).
  public func namedParameters(prefix: String = "") -> [(String, Tensor)] {
    var result: [(String, Tensor)] = []
    for entry in entries() {
      switch entry {
      case .parameter(let k, let t): result.append((join(prefix, k), t))
      case .child(let k, let m): result += m.namedParameters(prefix: join(prefix, k))
      case .buffer: break
      }
    }
    return result
  }

  public func parameters() -> [Tensor] { namedParameters().map(\.1) }

  /// Buffers with their keys; `persistentOnly` leaves out non-persistent ones.
  public func namedBuffers(prefix: String = "", persistentOnly: Bool = false) -> [(String, Tensor)] {
    var result: [(String, Tensor)] = []
    for entry in entries() {
      switch entry {
      case .buffer(let k, let t, let persistent) where persistent || !persistentOnly: result.append((join(prefix, k), t))
      case .child(let k, let m): result += m.namedBuffers(prefix: join(prefix, k), persistentOnly: persistentOnly)
      default: break
      }
    }
    return result
  }

  /// Parameters and persistent buffers, keyed as in a PyTorch `state_dict()`.
  public func stateDict() -> [(String, Tensor)] {
    namedParameters() + namedBuffers(persistentOnly: true)
  }

  /// Number of parameter elements (all, or only the trainable ones).
  public func parameterCount(trainableOnly: Bool = false) -> Int {
    parameters().filter { !trainableOnly || $0.requiresGrad }.reduce(0) { $0 + $1.count }
  }

  private func join(_ prefix: String, _ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }

  // MARK: Loading

  /// Copies `state` into this module's parameters and buffers, in place.
  ///
  /// - Parameters:
  ///   - state: tensors by key (e.g. from `SafeTensors.load`).
  ///   - strict: when true, a key the module lacks or a key the module has that `state`
  ///     lacks is an error naming the keys; a shape mismatch is always an error.
  /// - Returns: the keys that were missing and unexpected (empty when strict succeeded).
  @discardableResult
  public func loadStateDict(_ state: [String: Tensor], strict: Bool = true) throws -> (missing: [String], unexpected: [String]) {
    let own = stateDict()
    let ownKeys = Set(own.map(\.0))
    let missing = own.map(\.0).filter { state[$0] == nil }
    let unexpected = state.keys.filter { !ownKeys.contains($0) }.sorted()
    if strict && (!missing.isEmpty || !unexpected.isEmpty) {
      var parts: [String] = []
      if !missing.isEmpty {
        parts.append(
          "missing keys: \(missing.prefix(10).joined(separator: ", "))\(missing.count > 10 ? " … (\(missing.count))" : "")")
      }
      if !unexpected.isEmpty {
        parts.append(
          "unexpected keys: \(unexpected.prefix(10).joined(separator: ", "))\(unexpected.count > 10 ? " … (\(unexpected.count))" : "")"
        )
      }
      throw TorchError("loadStateDict", parts.joined(separator: "; "))
    }
    try Torch.noGrad {
      for (key, tensor) in own {
        guard let source = state[key] else { continue }
        guard source.shape == tensor.shape else {
          throw TorchError(
            "loadStateDict", "shape mismatch for '\(key)': checkpoint has \(source.shape), module has \(tensor.shape)")
        }
        try tensor.copy(from: source)
      }
    }
    return (missing, unexpected)
  }

  // MARK: Modes

  /// Switches this module and every descendant to training mode.
  public func train(_ on: Bool = true) {
    for (_, m) in namedModules() { m.isTraining = on }
  }

  /// Switches to evaluation mode (no dropout).
  public func eval() { train(false) }

  /// Stops gradients for every parameter (a frozen teacher).
  public func freeze() throws {
    for p in parameters() { try p.requiresGrad(false) }
  }

  public func unfreeze() throws {
    for p in parameters() { try p.requiresGrad(true) }
  }

  /// Moves (and optionally converts) every parameter and buffer in place.
  public func to(_ device: Device, dtype: DType? = nil) throws {
    try Torch.noGrad {
      for (_, t) in namedParameters() + namedBuffers() {
        try t.setData(t.to(device, dtype ?? t.dtype))
      }
    }
  }
}

/// A module that maps one tensor to one tensor.
public protocol UnaryLayer: Module {
  func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// A fresh trainable parameter.
public func parameter(_ tensor: Tensor) throws -> Tensor {
  try tensor.requiresGrad(true)
}
