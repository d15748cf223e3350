import Torch
import TorchNN

/// Token and position embeddings of CLIP's text tower.
public final class CLIPTextEmbeddings: Module {
  public let tokenEmbedding: Embedding  // [V, D]
  public let positionEmbedding: Embedding  // [context, D]

  public init(_ config: CLIPTextConfig) throws {
    tokenEmbedding = try Embedding(config.vocabSize, config.hiddenSize)
    positionEmbedding = try Embedding(config.maxPositionEmbeddings, config.hiddenSize)
    super.init()
  }

  /// ids [B, L] → [B, L, D]
  public func callAsFunction(_ ids: Tensor) throws -> Tensor {
    let length = ids.size(1)
    let context = positionEmbedding.weight.size(0)
    guard length <= context else {
      throw TorchError(
        "CLIPText", "text of \(length) tokens is longer than the context length \(context); truncate it when tokenizing")
    }
    return try tokenEmbedding(ids) + positionEmbedding.weight.narrow(dim: 0, start: 0, length: length)
  }
}

/// What a text tower returns: every layer and the pooled sentence feature.
public struct TextOutput {
  /// The embeddings and each layer's output: `layers + 1` tensors [B, L, D], gathered on read
  /// in data-parallel training.
  public var states: LayerStates
  /// The final sequence after the last norm where the tower has one [B, L, D] (layer 0 of its own).
  public var finalStates: LayerStates
  /// One vector per text [B, D] (before any projection).
  public var pooled: Tensor
  /// 1 for real tokens, 0 for padding [B, L] (int64).
  public var attentionMask: Tensor
  /// The position each text was pooled at [B] (int64), or nil when pooling averages tokens.
  public var pooledPositions: Tensor?

  public init(
    hiddenStates: [Tensor], lastHiddenState: Tensor, pooled: Tensor, attentionMask: Tensor, pooledPositions: Tensor?
  ) {
    self.init(
      states: LayerStates(hiddenStates), finalStates: LayerStates([lastHiddenState]), pooled: pooled,
      attentionMask: attentionMask, pooledPositions: pooledPositions)
  }

  public init(states: LayerStates, finalStates: LayerStates, pooled: Tensor, attentionMask: Tensor, pooledPositions: Tensor?) {
    self.states = states
    self.finalStates = finalStates
    self.pooled = pooled
    self.attentionMask = attentionMask
    self.pooledPositions = pooledPositions
  }

  /// Every layer's output over the whole batch.
  public var hiddenStates: [Tensor] { get throws { try states.all() } }
  public var lastHiddenState: Tensor { get throws { try finalStates.layer(0) } }
}

/// CLIP's causal text transformer (Hugging Face `CLIPTextTransformer` keys).
public final class CLIPTextTransformer: Module {
  public let embeddings: CLIPTextEmbeddings
  public let encoder: CLIPEncoder
  public let finalLayerNorm: LayerNorm
  public let config: CLIPTextConfig
  public let pooling: TextPooling
  /// Data-parallel training: when set, the tower takes the whole (global) batch of captions,
  /// encodes this rank's rows and returns every output gathered from all ranks (gradients
  /// flow back to the rows encoded here). Losses then see the global batch.
  public var dataParallel: ProcessGroup?

  public init(_ config: CLIPTextConfig, pooling: TextPooling? = nil) throws {
    guard config.hiddenSize % config.numAttentionHeads == 0 else {
      throw TorchError("CLIPText", "hidden size \(config.hiddenSize) is not divisible by \(config.numAttentionHeads) heads")
    }
    self.config = config
    self.pooling = pooling ?? config.pooling
    embeddings = try CLIPTextEmbeddings(config)
    encoder = try CLIPEncoder(
      numLayers: config.numHiddenLayers, hiddenSize: config.hiddenSize, intermediateSize: config.intermediateSize,
      numHeads: config.numAttentionHeads, activation: config.hiddenAct, layerNormEps: config.layerNormEps)
    finalLayerNorm = try LayerNorm(config.hiddenSize, eps: config.layerNormEps)
    super.init()
  }

  /// - Parameters:
  ///   - ids: int64 [B, L], L ≤ the context length.
  ///   - attentionMask: [B, L], 1 for real tokens; nil means no padding.
  public func callAsFunction(_ ids: Tensor, attentionMask: Tensor? = nil) throws -> TextOutput {
    guard let group = dataParallel else { return try encode(ids, attentionMask: attentionMask) }
    let local = try encode(try group.localRows(ids), attentionMask: try attentionMask.map { try group.localRows($0) })
    return TextOutput(
      states: LayerStates(local: local.states.local, group: group),
      finalStates: LayerStates(local: local.finalStates.local, group: group), pooled: try group.allGather(local.pooled),
      attentionMask: try group.allGather(local.attentionMask), pooledPositions: try local.pooledPositions.map { try group.allGather($0) })
  }

  /// The tower on the rows it is given.
  func encode(_ ids: Tensor, attentionMask: Tensor?) throws -> TextOutput {
    let x = try embeddings(ids)
    // Causal attention; padded keys are masked too when a mask is given.
    let states =
      try attentionMask.map { try encoder(x, mask: Masks.causalWithPadding($0)) } ?? encoder(x, isCausal: true)
    let last = try finalLayerNorm(states[states.count - 1])
    let positions: Tensor
    switch pooling {
    case .argmax: positions = try ids.argmax(dim: 1)
    case .firstToken(let id): positions = try ids.eq(Double(id)).to(.int32).argmax(dim: 1)  // argmax returns the first maximum
    }
    let d = last.size(2)
    let index = try positions.view([-1, 1, 1]).expand([ids.size(0), 1, d])
    let pooled = try last.gather(dim: 1, index: index).squeeze(1)
    let mask = try attentionMask ?? Tensor.ones(ids.shape, dtype: .int64, device: ids.device)
    return TextOutput(
      hiddenStates: states, lastHiddenState: last, pooled: pooled, attentionMask: mask, pooledPositions: positions)
  }
}
