import CTorch
import Torch

/// How a loss reduces its per-element values.
public enum Reduction: Int32, Sendable {
  case none = 0, mean = 1, sum = 2
  /// Sum divided by the batch size (first dimension); only for `klDiv`, as in PyTorch.
  case batchMean = 3
}

/// Interpolation modes for `Functional.interpolate`.
public enum InterpolationMode: Int32, Sendable {
  case nearest = 0, bilinear = 1, bicubic = 2
}

/// Stateless neural-network functions, mirroring `torch.nn.functional`.
///
/// ```swift
/// let y = try Functional.linear(x, weight: w, bias: b)      // [B, out]
/// let loss = try Functional.crossEntropy(logits, target)
/// ```
public enum Functional {
  /// x · wᵀ + b. `x`: [..., in], `weight`: [out, in], `bias`: [out].
  public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
    // ATen's linear fuses the bias into one addmm for 2-D and contiguous 3-D inputs only; on a
    // 4-D or deeper input it runs matmul + add, whose backward reduces the bias gradient over
    // three or more strided dimensions (0.12 ms a step at [64, 3, 3, 128], a spatial adapter's
    // map). Such an input goes through as rows [N, in] instead.
    if bias != nil, x.rank > 3 {
      let leading = Array(x.shape.dropLast())
      return try linear(x.reshape([-1, x.size(-1)]), weight: weight, bias: bias).reshape(leading + [weight.size(0)])
    }
    return try withExtendedLifetime((x, weight, bias)) {
      try Tensor.make("linear", ct_linear(x.handle, weight.handle, bias?.handle))
    }
  }

  /// Normalizes over the trailing `normalizedShape` dimensions.
  public static func layerNorm(
    _ x: Tensor, normalizedShape: [Int], weight: Tensor? = nil, bias: Tensor? = nil, eps: Double = 1e-5
  ) throws -> Tensor {
    let shape = normalizedShape.map(Int64.init)
    return try withExtendedLifetime((x, weight, bias)) {
      try shape.withUnsafeBufferPointer {
        try Tensor.make(
          "layerNorm", ct_layer_norm(x.handle, $0.baseAddress, Int32(shape.count), weight?.handle, bias?.handle, eps))
      }
    }
  }

  /// Group normalization over channels (dimension 1) in `groups` groups.
  public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Double = 1e-5) throws
    -> Tensor
  {
    try withExtendedLifetime((x, weight, bias)) {
      try Tensor.make("groupNorm", ct_group_norm(x.handle, Int64(groups), weight?.handle, bias?.handle, eps))
    }
  }

  /// Zeroes elements with probability `p` and scales the rest by 1/(1-p) when `training`.
  public static func dropout(_ x: Tensor, p: Double, training: Bool) throws -> Tensor {
    if !training || p == 0 { return x }
    return try Tensor.make("dropout", ct_dropout(x.handle, p, training))
  }

  /// softmax(q·kᵀ·scale + mask)·v. `q`: [B, H, Lq, E], `k`: [B, H, Lk, E], `v`: [B, H, Lk, Ev].
  /// `mask` is boolean (true = attend) or additive float, broadcastable to [B, H, Lq, Lk].
  public static func scaledDotProductAttention(
    query q: Tensor, key k: Tensor, value v: Tensor, mask: Tensor? = nil, dropout: Double = 0,
    isCausal: Bool = false, scale: Double? = nil
  ) throws -> Tensor {
    try withExtendedLifetime((q, k, v, mask)) {
      try Tensor.make(
        "scaledDotProductAttention",
        ct_sdpa(q.handle, k.handle, v.handle, mask?.handle, dropout, isCausal, scale ?? 0, scale != nil))
    }
  }

  /// 2-D convolution. `x`: [B, Cin, H, W], `weight`: [Cout, Cin/groups, kH, kW].
  public static func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
    dilation: (Int, Int) = (1, 1), groups: Int = 1
  ) throws -> Tensor {
    let s = [Int64(stride.0), Int64(stride.1)]
    let p = [Int64(padding.0), Int64(padding.1)]
    let d = [Int64(dilation.0), Int64(dilation.1)]
    return try withExtendedLifetime((x, weight, bias)) {
      try Tensor.make("conv2d", ct_conv2d(x.handle, weight.handle, bias?.handle, s, p, d, Int64(groups)))
    }
  }

  /// Average pooling over the last dimension of [B, C, L].
  public static func avgPool1d(
    _ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false, countIncludePad: Bool = true
  ) throws -> Tensor {
    try Tensor.make(
      "avgPool1d", ct_avg_pool1d(x.handle, Int64(kernel), Int64(stride ?? kernel), Int64(padding), ceilMode, countIncludePad))
  }

  /// Average pooling over the last two dimensions of [B, C, H, W].
  public static func avgPool2d(
    _ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0), ceilMode: Bool = false,
    countIncludePad: Bool = true
  ) throws -> Tensor {
    let s = stride ?? kernel
    return try Tensor.make(
      "avgPool2d",
      ct_avg_pool2d(
        x.handle, [Int64(kernel.0), Int64(kernel.1)], [Int64(s.0), Int64(s.1)], [Int64(padding.0), Int64(padding.1)], ceilMode,
        countIncludePad))
  }

  public static func maxPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) throws
    -> Tensor
  {
    let s = stride ?? kernel
    return try Tensor.make(
      "maxPool2d",
      ct_max_pool2d(
        x.handle, [Int64(kernel.0), Int64(kernel.1)], [Int64(s.0), Int64(s.1)], [Int64(padding.0), Int64(padding.1)]))
  }

  public static func adaptiveAvgPool1d(_ x: Tensor, outputSize: Int) throws -> Tensor {
    try Tensor.make("adaptiveAvgPool1d", ct_adaptive_avg_pool1d(x.handle, Int64(outputSize)))
  }

  public static func adaptiveAvgPool2d(_ x: Tensor, outputSize: (Int, Int)) throws -> Tensor {
    try Tensor.make("adaptiveAvgPool2d", ct_adaptive_avg_pool2d(x.handle, [Int64(outputSize.0), Int64(outputSize.1)]))
  }

  /// Resizes [B, C, H, W] to `size` (as `torch.nn.functional.interpolate` with a size).
  public static func interpolate(
    _ x: Tensor, size: (Int, Int), mode: InterpolationMode = .bilinear, alignCorners: Bool = false, antialias: Bool = false
  ) throws -> Tensor {
    try Tensor.make(
      "interpolate", ct_interpolate2d(x.handle, [Int64(size.0), Int64(size.1)], mode.rawValue, alignCorners, antialias))
  }

  /// Rows of `weight` ([N, D]) picked by integer `indices` (any shape) → [..., D].
  public static func embedding(_ indices: Tensor, weight: Tensor) throws -> Tensor {
    try withExtendedLifetime((indices, weight)) { try Tensor.make("embedding", ct_embedding(weight.handle, indices.handle)) }
  }

  /// x / max(‖x‖ₚ, eps) along `dim`.
  public static func normalize(_ x: Tensor, p: Double = 2, dim: Int = -1, eps: Double = 1e-12) throws -> Tensor {
    try Tensor.make("normalize", ct_normalize(x.handle, p, Int64(dim), eps))
  }

  public static func cosineSimilarity(_ a: Tensor, _ b: Tensor, dim: Int = 1, eps: Double = 1e-8) throws -> Tensor {
    try withExtendedLifetime((a, b)) {
      try Tensor.make("cosineSimilarity", ct_cosine_similarity(a.handle, b.handle, Int64(dim), eps))
    }
  }

  public static func oneHot(_ indices: Tensor, classes: Int) throws -> Tensor {
    try Tensor.make("oneHot", ct_one_hot(indices.handle, Int64(classes)))
  }

  // MARK: Losses

  /// Cross-entropy of `logits` [B, C] (or [B, C, ...]) against class indices (int64) or
  /// class probabilities of the same shape.
  public static func crossEntropy(
    _ logits: Tensor, _ target: Tensor, reduction: Reduction = .mean, ignoreIndex: Int = -100, labelSmoothing: Double = 0
  ) throws -> Tensor {
    try checkReduction(reduction, "crossEntropy")
    return try withExtendedLifetime((logits, target)) {
      try Tensor.make(
        "crossEntropy", ct_cross_entropy(logits.handle, target.handle, reduction.rawValue, Int64(ignoreIndex), labelSmoothing))
    }
  }

  /// KL(target ‖ input) with `input` given as log-probabilities (PyTorch's argument order).
  public static func klDiv(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean, logTarget: Bool = false) throws
    -> Tensor
  {
    try withExtendedLifetime((input, target)) {
      try Tensor.make("klDiv", ct_kl_div(input.handle, target.handle, reduction.rawValue, logTarget))
    }
  }

  public static func mseLoss(_ a: Tensor, _ b: Tensor, reduction: Reduction = .mean) throws -> Tensor {
    try checkReduction(reduction, "mseLoss")
    return try withExtendedLifetime((a, b)) { try Tensor.make("mseLoss", ct_mse_loss(a.handle, b.handle, reduction.rawValue)) }
  }

  public static func smoothL1Loss(_ a: Tensor, _ b: Tensor, reduction: Reduction = .mean, beta: Double = 1) throws -> Tensor {
    try checkReduction(reduction, "smoothL1Loss")
    return try withExtendedLifetime((a, b)) {
      try Tensor.make("smoothL1Loss", ct_smooth_l1_loss(a.handle, b.handle, reduction.rawValue, beta))
    }
  }

  public static func binaryCrossEntropyWithLogits(_ logits: Tensor, _ target: Tensor, reduction: Reduction = .mean) throws
    -> Tensor
  {
    try checkReduction(reduction, "binaryCrossEntropyWithLogits")
    return try withExtendedLifetime((logits, target)) {
      try Tensor.make("binaryCrossEntropyWithLogits", ct_bce_with_logits(logits.handle, target.handle, reduction.rawValue))
    }
  }

  private static func checkReduction(_ reduction: Reduction, _ operation: String) throws {
    if reduction == .batchMean { throw TorchError(operation, "reduction .batchMean is only defined for klDiv") }
  }
}
