import Foundation
import Torch
import TorchNN

// Configs decode Hugging Face `config.json` files: CodingKeys are HF's names, and every field
// has HF's default, because `save_pretrained` writes only the values that differ from them.

/// How a text tower picks the token whose hidden state becomes the sentence embedding.
public enum TextPooling: Equatable, Sendable, Codable {
  /// The position of the largest id (the end-of-text token in CLIP's vocabulary): OpenAI CLIP,
  /// open_clip, and Hugging Face configs with the legacy `eos_token_id == 2`.
  case argmax
  /// The first position holding this id (Hugging Face CLIP with a real `eos_token_id`).
  case firstToken(Int)
}

/// The vision tower of CLIP (a ViT).
public struct CLIPVisionConfig: Codable, Equatable, Sendable {
  public var hiddenSize = 768
  public var intermediateSize = 3072
  public var projectionDim = 512
  public var numHiddenLayers = 12
  public var numAttentionHeads = 12
  public var numChannels = 3
  public var imageSize = 224
  public var patchSize = 32
  public var hiddenAct: Activation = .quickGelu
  public var layerNormEps = 1e-5

  enum CodingKeys: String, CodingKey {
    case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", projectionDim = "projection_dim"
    case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
    case numChannels = "num_channels", imageSize = "image_size", patchSize = "patch_size"
    case hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
  }

  public init(
    hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int, imageSize: Int, patchSize: Int,
    projectionDim: Int = 512, hiddenAct: Activation = .quickGelu, layerNormEps: Double = 1e-5
  ) {
    self.hiddenSize = hiddenSize
    self.intermediateSize = intermediateSize
    self.numHiddenLayers = numHiddenLayers
    self.numAttentionHeads = numAttentionHeads
    self.imageSize = imageSize
    self.patchSize = patchSize
    self.projectionDim = projectionDim
    self.hiddenAct = hiddenAct
    self.layerNormEps = layerNormEps
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    hiddenSize = try c.decode(.hiddenSize, default: hiddenSize)
    intermediateSize = try c.decode(.intermediateSize, default: intermediateSize)
    projectionDim = try c.decode(.projectionDim, default: projectionDim)
    numHiddenLayers = try c.decode(.numHiddenLayers, default: numHiddenLayers)
    numAttentionHeads = try c.decode(.numAttentionHeads, default: numAttentionHeads)
    numChannels = try c.decode(.numChannels, default: numChannels)
    imageSize = try c.decode(.imageSize, default: imageSize)
    patchSize = try c.decode(.patchSize, default: patchSize)
    hiddenAct = try c.decode(.hiddenAct, default: hiddenAct)
    layerNormEps = try c.decode(.layerNormEps, default: layerNormEps)
  }

  /// Patches per side at the configured image size.
  public var gridSize: Int { imageSize / patchSize }
}

/// The text tower of CLIP (a causal transformer).
public struct CLIPTextConfig: Codable, Equatable, Sendable {
  public var vocabSize = 49408
  public var hiddenSize = 512
  public var intermediateSize = 2048
  public var projectionDim = 512
  public var numHiddenLayers = 12
  public var numAttentionHeads = 8
  public var maxPositionEmbeddings = 77
  public var hiddenAct: Activation = .quickGelu
  public var layerNormEps = 1e-5
  public var padTokenId = 1
  public var bosTokenId = 49406
  public var eosTokenId = 49407

  enum CodingKeys: String, CodingKey {
    case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
    case projectionDim = "projection_dim", numHiddenLayers = "num_hidden_layers"
    case numAttentionHeads = "num_attention_heads", maxPositionEmbeddings = "max_position_embeddings"
    case hiddenAct = "hidden_act", layerNormEps = "layer_norm_eps"
    case padTokenId = "pad_token_id", bosTokenId = "bos_token_id", eosTokenId = "eos_token_id"
  }

  public init(
    vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
    maxPositionEmbeddings: Int = 77, projectionDim: Int = 512, hiddenAct: Activation = .quickGelu, layerNormEps: Double = 1e-5,
    eosTokenId: Int = 49407
  ) {
    self.vocabSize = vocabSize
    self.hiddenSize = hiddenSize
    self.intermediateSize = intermediateSize
    self.numHiddenLayers = numHiddenLayers
    self.numAttentionHeads = numAttentionHeads
    self.maxPositionEmbeddings = maxPositionEmbeddings
    self.projectionDim = projectionDim
    self.hiddenAct = hiddenAct
    self.layerNormEps = layerNormEps
    self.eosTokenId = eosTokenId
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    vocabSize = try c.decode(.vocabSize, default: vocabSize)
    hiddenSize = try c.decode(.hiddenSize, default: hiddenSize)
    intermediateSize = try c.decode(.intermediateSize, default: intermediateSize)
    projectionDim = try c.decode(.projectionDim, default: projectionDim)
    numHiddenLayers = try c.decode(.numHiddenLayers, default: numHiddenLayers)
    numAttentionHeads = try c.decode(.numAttentionHeads, default: numAttentionHeads)
    maxPositionEmbeddings = try c.decode(.maxPositionEmbeddings, default: maxPositionEmbeddings)
    hiddenAct = try c.decode(.hiddenAct, default: hiddenAct)
    layerNormEps = try c.decode(.layerNormEps, default: layerNormEps)
    padTokenId = try c.decode(.padTokenId, default: padTokenId)
    bosTokenId = try c.decode(.bosTokenId, default: bosTokenId)
    eosTokenId = try c.decode(.eosTokenId, default: eosTokenId)
  }

  /// Hugging Face's rule: `eos_token_id == 2` is the legacy value meaning "argmax of ids".
  public var pooling: TextPooling { eosTokenId == 2 ? .argmax : .firstToken(eosTokenId) }
}

/// A CLIP dual encoder (Hugging Face `CLIPConfig`).
public struct CLIPConfig: Codable, Equatable, Sendable {
  public var textConfig: CLIPTextConfig
  public var visionConfig: CLIPVisionConfig
  public var projectionDim = 512
  public var logitScaleInitValue = 2.6592
  /// How the text tower pools; defaults to the text config's rule. open_clip models use `.argmax`.
  public var textPooling: TextPooling?

  enum CodingKeys: String, CodingKey {
    case textConfig = "text_config", visionConfig = "vision_config", projectionDim = "projection_dim"
    case logitScaleInitValue = "logit_scale_init_value", modelType = "model_type", textPooling = "cmapkd_text_pooling"
  }

  public init(
    text: CLIPTextConfig, vision: CLIPVisionConfig, projectionDim: Int = 512, logitScaleInitValue: Double = 2.6592,
    textPooling: TextPooling? = nil
  ) {
    textConfig = text
    visionConfig = vision
    self.projectionDim = projectionDim
    // CLIPModel projects with the top-level width; keep the towers' copies in step with it.
    textConfig.projectionDim = projectionDim
    visionConfig.projectionDim = projectionDim
    self.logitScaleInitValue = logitScaleInitValue
    self.textPooling = textPooling
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    textConfig = try c.decodeIfPresent(CLIPTextConfig.self, forKey: .textConfig) ?? defaults(CLIPTextConfig.self)
    visionConfig = try c.decodeIfPresent(CLIPVisionConfig.self, forKey: .visionConfig) ?? defaults(CLIPVisionConfig.self)
    projectionDim = try c.decode(.projectionDim, default: projectionDim)
    logitScaleInitValue = try c.decode(.logitScaleInitValue, default: logitScaleInitValue)
    textPooling = try c.decodeIfPresent(TextPooling.self, forKey: .textPooling)
    textConfig.projectionDim = projectionDim
    visionConfig.projectionDim = projectionDim
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(textConfig, forKey: .textConfig)
    try c.encode(visionConfig, forKey: .visionConfig)
    try c.encode(projectionDim, forKey: .projectionDim)
    try c.encode(logitScaleInitValue, forKey: .logitScaleInitValue)
    try c.encode("clip", forKey: .modelType)
    try c.encodeIfPresent(textPooling, forKey: .textPooling)
  }

  public var resolvedTextPooling: TextPooling { textPooling ?? textConfig.pooling }
}

/// A BERT-style bidirectional encoder (Hugging Face `BertConfig`).
public struct BertConfig: Codable, Equatable, Sendable {
  public var vocabSize = 30522
  public var hiddenSize = 768
  public var numHiddenLayers = 12
  public var numAttentionHeads = 12
  public var intermediateSize = 3072
  public var hiddenAct: Activation = .gelu
  public var hiddenDropoutProb = 0.1
  public var attentionProbsDropoutProb = 0.1
  public var maxPositionEmbeddings = 512
  public var typeVocabSize = 2
  public var layerNormEps = 1e-12
  public var padTokenId = 0

  enum CodingKeys: String, CodingKey {
    case vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
    case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size", hiddenAct = "hidden_act"
    case hiddenDropoutProb = "hidden_dropout_prob", attentionProbsDropoutProb = "attention_probs_dropout_prob"
    case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
    case layerNormEps = "layer_norm_eps", padTokenId = "pad_token_id"
  }

  public init(
    vocabSize: Int, hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int, intermediateSize: Int,
    maxPositionEmbeddings: Int = 512
  ) {
    self.vocabSize = vocabSize
    self.hiddenSize = hiddenSize
    self.numHiddenLayers = numHiddenLayers
    self.numAttentionHeads = numAttentionHeads
    self.intermediateSize = intermediateSize
    self.maxPositionEmbeddings = maxPositionEmbeddings
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    vocabSize = try c.decode(.vocabSize, default: vocabSize)
    hiddenSize = try c.decode(.hiddenSize, default: hiddenSize)
    numHiddenLayers = try c.decode(.numHiddenLayers, default: numHiddenLayers)
    numAttentionHeads = try c.decode(.numAttentionHeads, default: numAttentionHeads)
    intermediateSize = try c.decode(.intermediateSize, default: intermediateSize)
    hiddenAct = try c.decode(.hiddenAct, default: hiddenAct)
    hiddenDropoutProb = try c.decode(.hiddenDropoutProb, default: hiddenDropoutProb)
    attentionProbsDropoutProb = try c.decode(.attentionProbsDropoutProb, default: attentionProbsDropoutProb)
    maxPositionEmbeddings = try c.decode(.maxPositionEmbeddings, default: maxPositionEmbeddings)
    typeVocabSize = try c.decode(.typeVocabSize, default: typeVocabSize)
    layerNormEps = try c.decode(.layerNormEps, default: layerNormEps)
    padTokenId = try c.decode(.padTokenId, default: padTokenId)
  }
}

/// Every default of a config: decoding an empty JSON object.
func defaults<T: Decodable>(_: T.Type) throws -> T {
  try JSONDecoder().decode(T.self, from: Data("{}".utf8))
}
