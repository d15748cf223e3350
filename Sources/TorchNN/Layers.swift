import Foundation
import Torch

/// y = x·Wᵀ + b. Weight [out, in], initialised as PyTorch does (uniform ±1/√in).
public final class Linear: Module, UnaryLayer {
  public let weight: Tensor
  public let bias: Tensor?

  public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) throws {
    let bound = 1 / Double(inFeatures).squareRoot()
    weight = try parameter(Init.uniform([outFeatures, inFeatures], bound: bound))
    self.bias = bias ? try parameter(Init.uniform([outFeatures], bound: bound)) : nil
    super.init()
  }

  public var inFeatures: Int { weight.size(1) }
  public var outFeatures: Int { weight.size(0) }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    try Functional.linear(x, weight: weight, bias: bias)
  }
}

/// Layer normalization over the trailing dimensions `shape`.
public final class LayerNorm: Module, UnaryLayer {
  public let weight: Tensor?
  public let bias: Tensor?
  public let normalizedShape: [Int]
  public let eps: Double

  public init(_ shape: [Int], eps: Double = 1e-5, affine: Bool = true) throws {
    normalizedShape = shape
    self.eps = eps
    weight = affine ? try parameter(Tensor.ones(shape)) : nil
    bias = affine ? try parameter(Tensor.zeros(shape)) : nil
    super.init()
  }

  public convenience init(_ size: Int, eps: Double = 1e-5, affine: Bool = true) throws {
    try self.init([size], eps: eps, affine: affine)
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    try Functional.layerNorm(x, normalizedShape: normalizedShape, weight: weight, bias: bias, eps: eps)
  }
}

/// Group normalization over channels (dimension 1).
public final class GroupNorm: Module, UnaryLayer {
  public let weight: Tensor
  public let bias: Tensor
  public let groups: Int
  public let eps: Double

  public init(groups: Int, channels: Int, eps: Double = 1e-5) throws {
    guard groups > 0, channels % groups == 0 else {
      throw TorchError("GroupNorm", "\(channels) channels do not split into \(groups) groups")
    }
    self.groups = groups
    self.eps = eps
    weight = try parameter(Tensor.ones([channels]))
    bias = try parameter(Tensor.zeros([channels]))
    super.init()
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    try Functional.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
  }
}

/// A lookup table of `count` vectors of width `dim`, initialised N(0, 1) as PyTorch does.
public final class Embedding: Module {
  public let weight: Tensor

  public init(_ count: Int, _ dim: Int) throws {
    weight = try parameter(Tensor.randn([count, dim]))
    super.init()
  }

  /// `indices`: int64 of any shape → [..., dim].
  public func callAsFunction(_ indices: Tensor) throws -> Tensor {
    try Functional.embedding(indices, weight: weight)
  }
}

/// Randomly zeroes elements in training mode; the identity in evaluation mode.
public final class Dropout: Module, UnaryLayer {
  public let p: Double

  public init(_ p: Double) throws {
    guard (0..<1).contains(p) else { throw TorchError("Dropout", "probability \(p) is not in [0, 1)") }
    self.p = p
    super.init()
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    try Functional.dropout(x, p: p, training: isTraining)
  }
}

/// 2-D convolution, weight [out, in/groups, kH, kW], initialised as PyTorch does.
public final class Conv2d: Module, UnaryLayer {
  public let weight: Tensor
  public let bias: Tensor?
  public let stride: (Int, Int)
  public let padding: (Int, Int)
  public let dilation: (Int, Int)
  public let groups: Int

  public init(
    _ inChannels: Int, _ outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
    padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true
  ) throws {
    guard inChannels % groups == 0, outChannels % groups == 0 else {
      throw TorchError("Conv2d", "channels \(inChannels)→\(outChannels) do not split into \(groups) groups")
    }
    let fanIn = inChannels / groups * kernel.0 * kernel.1
    let bound = 1 / Double(fanIn).squareRoot()
    weight = try parameter(Init.uniform([outChannels, inChannels / groups, kernel.0, kernel.1], bound: bound))
    self.bias = bias ? try parameter(Init.uniform([outChannels], bound: bound)) : nil
    self.stride = stride
    self.padding = padding
    self.dilation = dilation
    self.groups = groups
    super.init()
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    try Functional.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
  }
}

/// Activation functions selectable by configuration.
public enum Activation: String, Codable, Sendable, CaseIterable {
  case gelu
  case geluTanh = "gelu_tanh"
  case quickGelu = "quick_gelu"
  case relu
  case silu

  /// Also reads the names Hugging Face configs use for the same functions.
  public init(from decoder: Decoder) throws {
    let name = try decoder.singleValueContainer().decode(String.self)
    let aliases: [String: Activation] = [
      "gelu_new": .geluTanh, "gelu_pytorch_tanh": .geluTanh, "gelu_fast": .geluTanh, "swish": .silu,
    ]
    guard let activation = Activation(rawValue: name) ?? aliases[name] else {
      throw DecodingError.dataCorrupted(
        .init(
          codingPath: decoder.codingPath,
          debugDescription: "unknown activation '\(name)' (known: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))"
        ))
    }
    self = activation
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    switch self {
    case .gelu: try x.gelu()
    case .geluTanh: try x.gelu(approximate: .tanh)
    case .quickGelu: try x.quickGelu()
    case .relu: try x.relu()
    case .silu: try x.silu()
    }
  }
}

/// Two linear layers with an activation between them (keys `fc1`, `fc2`, as in CLIP).
public final class MLP: Module, UnaryLayer {
  public let fc1: Linear
  public let fc2: Linear
  public let activation: Activation
  public let dropout: Dropout

  public init(_ inFeatures: Int, hidden: Int, out: Int? = nil, activation: Activation = .gelu, dropout: Double = 0) throws {
    fc1 = try Linear(inFeatures, hidden)
    fc2 = try Linear(hidden, out ?? inFeatures)
    self.activation = activation
    self.dropout = try Dropout(dropout)
    super.init()
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    try fc2(dropout(activation(fc1(x))))
  }
}

/// Multi-head attention with separate q/k/v/out projections (Hugging Face key names).
///
/// ```swift
/// let attn = try MultiHeadAttention(embedDim: 256, numHeads: 4)
/// let y = try attn(x, isCausal: true)        // x: [B, L, 256]
/// ```
public final class MultiHeadAttention: Module {
  public let qProj: Linear
  public let kProj: Linear
  public let vProj: Linear
  public let outProj: Linear
  public let numHeads: Int
  public let dropout: Double

  public init(embedDim: Int, numHeads: Int, bias: Bool = true, dropout: Double = 0) throws {
    guard embedDim % numHeads == 0 else {
      throw TorchError("MultiHeadAttention", "embedDim \(embedDim) is not divisible by numHeads \(numHeads)")
    }
    qProj = try Linear(embedDim, embedDim, bias: bias)
    kProj = try Linear(embedDim, embedDim, bias: bias)
    vProj = try Linear(embedDim, embedDim, bias: bias)
    outProj = try Linear(embedDim, embedDim, bias: bias)
    self.numHeads = numHeads
    self.dropout = dropout
    super.init()
  }

  /// - Parameters:
  ///   - query: [B, Lq, D]; `key`/`value` default to `query` (self-attention).
  ///   - mask: boolean (true = attend) or additive, broadcastable to [B, H, Lq, Lk].
  ///   - isCausal: each position attends only to itself and earlier ones.
  /// - Returns: [B, Lq, D].
  public func callAsFunction(
    _ query: Tensor, key: Tensor? = nil, value: Tensor? = nil, mask: Tensor? = nil, isCausal: Bool = false
  ) throws -> Tensor {
    let key = key ?? query
    let value = value ?? key
    let (b, lq, d) = (query.size(0), query.size(1), query.size(2))
    let lk = key.size(1)
    let headDim = d / numHeads
    let q = try qProj(query).view([b, lq, numHeads, headDim]).transpose(1, 2)  // [B, H, Lq, E]
    let k = try kProj(key).view([b, lk, numHeads, headDim]).transpose(1, 2)  // [B, H, Lk, E]
    let v = try vProj(value).view([b, lk, numHeads, headDim]).transpose(1, 2)
    let attended = try Functional.scaledDotProductAttention(
      query: q, key: k, value: v, mask: mask, dropout: isTraining ? dropout : 0, isCausal: isCausal)
    return try outProj(attended.transpose(1, 2).reshape([b, lq, d]))
  }
}

/// Parameter initialisers.
public enum Init {
  /// Uniform in [-bound, bound).
  public static func uniform(_ shape: [Int], bound: Double, generator: Generator? = nil) throws -> Tensor {
    try Tensor.rand(shape, generator: generator) * (2 * bound) - bound
  }

  /// Normal with the given standard deviation.
  public static func normal(_ shape: [Int], std: Double, generator: Generator? = nil) throws -> Tensor {
    try Tensor.randn(shape, generator: generator) * std
  }
}
