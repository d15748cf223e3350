import Torch
import TorchNN

/// Word, position and token-type embeddings, summed and normalized (post-norm BERT).
public final class BertEmbeddings: Module {
  public let wordEmbeddings: Embedding
  public let positionEmbeddings: Embedding
  public let tokenTypeEmbeddings: Embedding
  @Key public var layerNorm: LayerNorm  // key "LayerNorm", set in init
  public let dropout: Dropout

  public init(_ config: BertConfig) throws {
    wordEmbeddings = try Embedding(config.vocabSize, config.hiddenSize)
    positionEmbeddings = try Embedding(config.maxPositionEmbeddings, config.hiddenSize)
    tokenTypeEmbeddings = try Embedding(config.typeVocabSize, config.hiddenSize)
    _layerNorm = Key(wrappedValue: try LayerNorm(config.hiddenSize, eps: config.layerNormEps), "LayerNorm")
    dropout = try Dropout(config.hiddenDropoutProb)
    super.init()
  }

  /// ids, tokenTypes [B, L] → [B, L, D]
  public func callAsFunction(_ ids: Tensor, tokenTypes: Tensor) throws -> Tensor {
    let length = ids.size(1)
    let maxLength = positionEmbeddings.weight.size(0)
    guard length <= maxLength else {
      throw TorchError("BERT", "text of \(length) tokens is longer than the \(maxLength) positions; truncate it when tokenizing")
    }
    let positions = try positionEmbeddings.weight.narrow(dim: 0, start: 0, length: length)
    return try dropout(layerNorm(wordEmbeddings(ids) + positions + tokenTypeEmbeddings(tokenTypes)))
  }
}

/// Bidirectional self-attention with BERT's key names (query/key/value).
public final class BertSelfAttention: Module {
  public let query: Linear
  public let key: Linear
  public let value: Linear
  public let numHeads: Int
  public let dropout: Double

  public init(_ config: BertConfig) throws {
    let d = config.hiddenSize
    query = try Linear(d, d)
    key = try Linear(d, d)
    value = try Linear(d, d)
    numHeads = config.numAttentionHeads
    dropout = config.attentionProbsDropoutProb
    super.init()
  }

  /// x [B, L, D], mask boolean [B, 1, 1, L] → [B, L, D]
  public func callAsFunction(_ x: Tensor, mask: Tensor?) throws -> Tensor {
    let (b, l, d) = (x.size(0), x.size(1), x.size(2))
    func heads(_ t: Tensor) throws -> Tensor { try t.view([b, l, numHeads, d / numHeads]).transpose(1, 2) }  // [B, H, L, E]
    let attended = try Functional.scaledDotProductAttention(
      query: heads(query(x)), key: heads(key(x)), value: heads(value(x)), mask: mask, dropout: isTraining ? dropout : 0)
    return try attended.transpose(1, 2).reshape([b, l, d])
  }
}

/// A dense layer, dropout, and a residual layer norm (BERT's `*.output` blocks).
public final class BertResidualOutput: Module {
  public let dense: Linear
  @Key public var layerNorm: LayerNorm  // key "LayerNorm", set in init
  public let dropout: Dropout

  public init(inFeatures: Int, _ config: BertConfig) throws {
    dense = try Linear(inFeatures, config.hiddenSize)
    _layerNorm = Key(wrappedValue: try LayerNorm(config.hiddenSize, eps: config.layerNormEps), "LayerNorm")
    dropout = try Dropout(config.hiddenDropoutProb)
    super.init()
  }

  public func callAsFunction(_ x: Tensor, residual: Tensor) throws -> Tensor {
    try layerNorm(dropout(dense(x)) + residual)
  }
}

public final class BertAttention: Module {
  @Key public var selfAttention: BertSelfAttention  // key "self", set in init
  public let output: BertResidualOutput

  public init(_ config: BertConfig) throws {
    _selfAttention = Key(wrappedValue: try BertSelfAttention(config), "self")
    output = try BertResidualOutput(inFeatures: config.hiddenSize, config)
    super.init()
  }
}

public final class BertIntermediate: Module {
  public let dense: Linear
  public let activation: Activation

  public init(_ config: BertConfig) throws {
    dense = try Linear(config.hiddenSize, config.intermediateSize)
    activation = config.hiddenAct
    super.init()
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor { try activation(dense(x)) }
}

/// One post-norm BERT layer.
public final class BertLayer: Module {
  public let attention: BertAttention
  public let intermediate: BertIntermediate
  public let output: BertResidualOutput

  public init(_ config: BertConfig) throws {
    attention = try BertAttention(config)
    intermediate = try BertIntermediate(config)
    output = try BertResidualOutput(inFeatures: config.intermediateSize, config)
    super.init()
  }

  public func callAsFunction(_ x: Tensor, mask: Tensor?) throws -> Tensor {
    let attended = try attention.output(attention.selfAttention(x, mask: mask), residual: x)
    return try output(intermediate(attended), residual: attended)
  }
}

public final class BertEncoder: Module {
  public let layer: [BertLayer]

  public init(_ config: BertConfig) throws {
    layer = try (0..<config.numHiddenLayers).map { _ in try BertLayer(config) }
    super.init()
  }
}

/// tanh(dense(h[CLS])) — BERT's pooler.
public final class BertPooler: Module {
  public let dense: Linear

  public init(_ config: BertConfig) throws {
    dense = try Linear(config.hiddenSize, config.hiddenSize)
    super.init()
  }

  public func callAsFunction(_ cls: Tensor) throws -> Tensor { try dense(cls).tanh() }
}

/// How a BERT encoder turns its last layer into one vector per text.
public enum BertPooling: String, Codable, Sendable {
  /// The [CLS] token's hidden state.
  case cls
  /// tanh(dense([CLS])), Hugging Face's `pooler_output` (needs the pooler weights).
  case pooler
  /// Mean over real (non-padding) tokens, as sentence-transformers' MiniLM does.
  case mean
}

/// A BERT-style bidirectional text encoder (Hugging Face `BertModel` keys), e.g. MiniLM.
///
/// ```swift
/// let bert = try BertModel(config, pooling: .mean)
/// let out = try bert(ids, attentionMask: mask)   // out.hiddenStates.count == layers + 1
/// ```
public final class BertModel: Module {
  public let embeddings: BertEmbeddings
  public let encoder: BertEncoder
  public let pooler: BertPooler?
  public let config: BertConfig
  public let pooling: BertPooling

  public init(_ config: BertConfig, pooling: BertPooling = .cls, withPooler: Bool = true) throws {
    guard config.hiddenSize % config.numAttentionHeads == 0 else {
      throw TorchError("BERT", "hidden size \(config.hiddenSize) is not divisible by \(config.numAttentionHeads) heads")
    }
    if pooling == .pooler && !withPooler { throw TorchError("BERT", "pooling .pooler needs the pooler layer") }
    self.config = config
    self.pooling = pooling
    embeddings = try BertEmbeddings(config)
    encoder = try BertEncoder(config)
    pooler = withPooler ? try BertPooler(config) : nil
    super.init()
  }

  /// - Parameters:
  ///   - ids: int64 [B, L].
  ///   - attentionMask: [B, L], 1 for real tokens; nil means no padding.
  ///   - tokenTypes: int64 [B, L]; nil means all zeros.
  public func callAsFunction(_ ids: Tensor, attentionMask: Tensor? = nil, tokenTypes: Tensor? = nil) throws -> TextOutput {
    let types = try tokenTypes ?? Tensor.zeros(ids.shape, dtype: .int64, device: ids.device)
    let mask = try attentionMask ?? Tensor.ones(ids.shape, dtype: .int64, device: ids.device)
    let keyMask = try attentionMask.map(Masks.keyPadding)
    var states = [try embeddings(ids, tokenTypes: types)]
    for layer in encoder.layer { states.append(try layer(states[states.count - 1], mask: keyMask)) }
    let last = states[states.count - 1]
    let pooled: Tensor
    switch pooling {
    case .cls: pooled = try last.select(dim: 1, index: 0)
    case .pooler: pooled = try pooler!(last.select(dim: 1, index: 0))
    case .mean:
      let weights = try mask.to(last.dtype).unsqueeze(2)  // [B, L, 1]
      pooled = try (last * weights).sum(dim: 1) / weights.sum(dim: 1).clamp(min: 1e-9)
    }
    let positions = pooling == .mean ? nil : try Tensor.zeros([ids.size(0)], dtype: .int64, device: ids.device)
    return TextOutput(
      hiddenStates: states, lastHiddenState: last, pooled: pooled, attentionMask: mask, pooledPositions: positions)
  }
}
