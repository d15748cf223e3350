import Models

/// Floating-point operations of one forward pass, by operator, in fvcore's convention.
///
/// fvcore (`FlopCountAnalysis`, the counter behind most published ViT and CLIP GFLOP figures)
/// counts **one fused multiply-add as one flop**, so `conv + linear + matmul` are MACs; biases
/// are not counted. It also charges an affine LayerNorm 5 per element, and nothing for softmax,
/// GELU, residual additions, scaling or embedding lookups. We follow it exactly, so the totals
/// are comparable with published tables; `macs` leaves the LayerNorm estimate out, and `2 ×
/// macs` is the other convention's count.
public struct FlopBreakdown: Codable, Equatable, Sendable {
  /// The patch embedding (a convolution).
  public var conv: Int
  /// Every `Linear`: q/k/v/out projections, the MLPs, the joint-space projection.
  public var linear: Int
  /// The two attention matmuls, q·kᵀ and weights·v, over every head.
  public var matmul: Int
  /// fvcore's estimate of 5 operations per element for each affine LayerNorm.
  public var layerNorm: Int

  enum CodingKeys: String, CodingKey {
    case conv, linear, matmul, layerNorm = "layer_norm", total, macs
  }

  public init(conv: Int = 0, linear: Int, matmul: Int, layerNorm: Int) {
    self.conv = conv
    self.linear = linear
    self.matmul = matmul
    self.layerNorm = layerNorm
  }

  /// fvcore's total.
  public var total: Int { conv + linear + matmul + layerNorm }
  /// Multiply-adds only (convolution, linear layers, attention matmuls).
  public var macs: Int { conv + linear + matmul }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(
      conv: try c.decode(Int.self, forKey: .conv), linear: try c.decode(Int.self, forKey: .linear),
      matmul: try c.decode(Int.self, forKey: .matmul), layerNorm: try c.decode(Int.self, forKey: .layerNorm))
  }

  /// Writes `total` and `macs` as well, for readers of the JSON.
  public func encode(to encoder: any Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(conv, forKey: .conv)
    try c.encode(linear, forKey: .linear)
    try c.encode(matmul, forKey: .matmul)
    try c.encode(layerNorm, forKey: .layerNorm)
    try c.encode(total, forKey: .total)
    try c.encode(macs, forKey: .macs)
  }
}

/// FLOPs of our CLIP towers from their configs, counting every operator the forward runs.
///
/// Checked against fvcore on Hugging Face's models of the same configs
/// (`scripts/fixtures/flops.py`): equal for every preset.
///
/// ```swift
/// FlopCounter.image(Presets.vitB16).total      // 17_582_369_280 (fvcore's 17.6 G)
/// FlopCounter.caption(Presets.vitB16).total    //  2_984_698_368 at 77 tokens
/// ```
public enum FlopCounter {
  /// One image through the vision tower and the projection to the joint space.
  ///
  /// - Parameter imageSize: the side of the square input (nil: the config's).
  public static func image(_ config: CLIPVisionConfig, imageSize: Int? = nil) -> FlopBreakdown {
    let d = config.hiddenSize
    let grid = (imageSize ?? config.imageSize) / config.patchSize
    let patches = grid * grid
    let tokens = patches + 1  // with the class token
    let blocks = encoder(tokens: tokens, width: d, intermediate: config.intermediateSize, layers: config.numHiddenLayers)
    return FlopBreakdown(
      conv: patches * d * config.numChannels * config.patchSize * config.patchSize,
      linear: blocks.linear + d * config.projectionDim,  // the projection sees the pooled class token only
      matmul: blocks.matmul,
      // pre-norm over every token, the blocks' two norms, the post-norm over the class token
      layerNorm: 5 * tokens * d + blocks.layerNorm + 5 * d)
  }

  /// One caption of `sequenceLength` tokens through the text tower and the projection.
  ///
  /// - Parameter sequenceLength: nil means the full context, the fixed input shape a deployed
  ///   text encoder runs at (the evaluation driver trims padding; see `Embedder.embedTexts`).
  public static func caption(_ config: CLIPTextConfig, sequenceLength: Int? = nil) -> FlopBreakdown {
    let d = config.hiddenSize
    let tokens = sequenceLength ?? config.maxPositionEmbeddings
    let blocks = encoder(tokens: tokens, width: d, intermediate: config.intermediateSize, layers: config.numHiddenLayers)
    return FlopBreakdown(
      linear: blocks.linear + d * config.projectionDim,  // the projection sees the pooled token only
      matmul: blocks.matmul,
      layerNorm: blocks.layerNorm + 5 * tokens * d)  // the final norm runs over every token
  }

  public static func image(_ config: CLIPConfig, imageSize: Int? = nil) -> FlopBreakdown {
    image(config.visionConfig, imageSize: imageSize)
  }

  public static func caption(_ config: CLIPConfig, sequenceLength: Int? = nil) -> FlopBreakdown {
    caption(config.textConfig, sequenceLength: sequenceLength)
  }

  /// Pre-norm transformer blocks over `tokens` tokens: per block, q/k/v/out (4·T·D²) and the
  /// MLP (2·T·D·I) as linears; q·kᵀ and weights·v (T²·D each, summed over heads) as matmuls;
  /// two LayerNorms.
  static func encoder(tokens t: Int, width d: Int, intermediate i: Int, layers: Int) -> FlopBreakdown {
    FlopBreakdown(
      linear: layers * t * (4 * d * d + 2 * d * i), matmul: layers * 2 * t * t * d, layerNorm: layers * 2 * 5 * t * d)
  }
}
