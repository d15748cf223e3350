import Torch
import TorchNN

/// Class token, patch projection and learned positions of CLIP's ViT.
public final class CLIPVisionEmbeddings: Module {
  public let classEmbedding: Tensor  // [D]
  public let patchEmbedding: Conv2d  // [D, C, p, p], no bias
  public let positionEmbedding: Embedding  // [gridSize² + 1, D]
  public let patchSize: Int
  public let gridSize: Int

  public init(_ config: CLIPVisionConfig) throws {
    let d = config.hiddenSize
    classEmbedding = try parameter(Tensor.randn([d]))
    patchEmbedding = try Conv2d(
      config.numChannels, d, kernel: (config.patchSize, config.patchSize), stride: (config.patchSize, config.patchSize),
      bias: false)
    positionEmbedding = try Embedding(config.gridSize * config.gridSize + 1, d)
    patchSize = config.patchSize
    gridSize = config.gridSize
    super.init()
  }

  /// pixels [B, C, H, W] → tokens [B, 1 + (H/p)(W/p), D], class token first.
  public func callAsFunction(_ pixels: Tensor) throws -> (tokens: Tensor, grid: (height: Int, width: Int)) {
    guard pixels.rank == 4 else { throw TorchError("CLIPVision", "expected pixels [B, C, H, W], got shape \(pixels.shape)") }
    let (b, h, w) = (pixels.size(0), pixels.size(2), pixels.size(3))
    guard h % patchSize == 0, w % patchSize == 0 else {
      throw TorchError("CLIPVision", "image size \(h)×\(w) is not divisible by the patch size \(patchSize)")
    }
    let grid = (height: h / patchSize, width: w / patchSize)
    let patches = try patchEmbedding(pixels).flatten(start: 2).transpose(1, 2)  // [B, N, D]
    let d = patches.size(2)
    let cls = try classEmbedding.view([1, 1, d]).expand([b, 1, d])
    let tokens = try Tensor.cat([cls, patches], dim: 1)
    return (try tokens + positions(grid), grid)
  }

  /// Position embeddings for a grid, resampled bicubically (as Hugging Face's
  /// `interpolate_pos_encoding`) when it differs from the trained grid.
  func positions(_ grid: (height: Int, width: Int)) throws -> Tensor {
    let table = positionEmbedding.weight  // [1 + g², D]
    if grid.height == gridSize && grid.width == gridSize { return table }
    let d = table.size(1)
    let cls = try table.narrow(dim: 0, start: 0, length: 1)
    let patch = try table.narrow(dim: 0, start: 1, length: gridSize * gridSize)
      .reshape([1, gridSize, gridSize, d]).permute([0, 3, 1, 2])  // [1, D, g, g]
    let resized = try Functional.interpolate(patch, size: (grid.height, grid.width), mode: .bicubic)
      .permute([0, 2, 3, 1]).reshape([grid.height * grid.width, d])
    return try Tensor.cat([cls, resized], dim: 0)
  }
}

/// What a vision tower returns: every layer, for pyramid distillation, and the pooled feature.
public struct VisionOutput {
  /// The embeddings (after the pre-norm) and each layer's output: `layers + 1` tensors
  /// [B, 1 + N, D], gathered on read in data-parallel training.
  public var states: LayerStates
  /// The class token after the post-norm [B, D] (before the projection).
  public var pooled: Tensor
  /// Patch grid of this input (height, width).
  public var grid: (height: Int, width: Int)

  public init(hiddenStates: [Tensor], pooled: Tensor, grid: (height: Int, width: Int)) {
    self.init(states: LayerStates(hiddenStates), pooled: pooled, grid: grid)
  }

  public init(states: LayerStates, pooled: Tensor, grid: (height: Int, width: Int)) {
    self.states = states
    self.pooled = pooled
    self.grid = grid
  }

  /// Every layer's output over the whole batch.
  public var hiddenStates: [Tensor] { get throws { try states.all() } }
  public var lastHiddenState: Tensor { get throws { try states.layer(states.count - 1) } }
}

/// CLIP's Vision Transformer (Hugging Face `CLIPVisionTransformer` keys).
///
/// ```swift
/// let vit = try CLIPVisionTransformer(Presets.vitB16.visionConfig)
/// let out = try vit(pixels)          // pixels [B, 3, 224, 224]
/// out.hiddenStates.count             // 13
/// ```
public final class CLIPVisionTransformer: Module {
  public let embeddings: CLIPVisionEmbeddings
  public let preLayrnorm: LayerNorm  // sic: Hugging Face's key
  public let encoder: CLIPEncoder
  public let postLayernorm: LayerNorm
  public let config: CLIPVisionConfig
  /// Data-parallel training: when set, the tower encodes this rank's images (pixels hold only
  /// this rank's rows: images are never sent between ranks) and returns every output gathered
  /// from all ranks, so losses see the global batch; gradients flow back to the local rows.
  public var dataParallel: ProcessGroup?

  public init(_ config: CLIPVisionConfig) throws {
    guard config.hiddenSize % config.numAttentionHeads == 0 else {
      throw TorchError("CLIPVision", "hidden size \(config.hiddenSize) is not divisible by \(config.numAttentionHeads) heads")
    }
    self.config = config
    embeddings = try CLIPVisionEmbeddings(config)
    preLayrnorm = try LayerNorm(config.hiddenSize, eps: config.layerNormEps)
    encoder = try CLIPEncoder(
      numLayers: config.numHiddenLayers, hiddenSize: config.hiddenSize, intermediateSize: config.intermediateSize,
      numHeads: config.numAttentionHeads, activation: config.hiddenAct, layerNormEps: config.layerNormEps)
    postLayernorm = try LayerNorm(config.hiddenSize, eps: config.layerNormEps)
    super.init()
  }

  /// pixels [B, C, H, W] with H and W multiples of the patch size.
  public func callAsFunction(_ pixels: Tensor) throws -> VisionOutput {
    let (tokens, grid) = try embeddings(pixels)
    let states = try encoder(preLayrnorm(tokens))
    let pooled = try postLayernorm(states[states.count - 1].select(dim: 1, index: 0))
    guard let group = dataParallel else { return VisionOutput(hiddenStates: states, pooled: pooled, grid: grid) }
    return VisionOutput(states: LayerStates(local: states, group: group), pooled: try group.allGather(pooled), grid: grid)
  }
}
