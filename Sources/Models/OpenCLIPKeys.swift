import Torch
import TorchNN

/// open_clip's state-dict naming, converted to and from ours (Hugging Face's).
///
/// open_clip fuses q/k/v into `attn.in_proj_weight` [3D, D] and stores projections as
/// `x @ proj` matrices ([D, P]), where Hugging Face stores `Linear` weights ([P, D]).
public enum OpenCLIPKeys {
  /// Renames that need no reshaping, open_clip prefix → ours (longest prefixes first).
  static let renames: [(String, String)] = [
    ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
    ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
    ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
    ("visual.ln_pre.", "vision_model.pre_layrnorm."),
    ("visual.ln_post.", "vision_model.post_layernorm."),
    ("visual.transformer.resblocks.", "vision_model.encoder.layers."),
    ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
    ("positional_embedding", "text_model.embeddings.position_embedding.weight"),
    ("ln_final.", "text_model.final_layer_norm."),
    ("transformer.resblocks.", "text_model.encoder.layers."),
    ("logit_scale", "logit_scale"),
  ]
  /// Inside a residual block.
  static let blockRenames: [(String, String)] = [
    ("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2."),
    ("attn.out_proj.", "self_attn.out_proj."),
  ]
  /// Buffers open_clip may save that carry no weights.
  static let ignored: Set<String> = ["attn_mask", "visual.attn_mask"]

  /// Converts an open_clip state dict to our keys.
  public static func toOurs(_ state: [String: Tensor]) throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (key, tensor) in state where !ignored.contains(key) {
      if key == "visual.proj" || key == "text_projection" {
        let ours = key == "visual.proj" ? "visual_projection.weight" : "text_projection.weight"
        out[ours] = try tensor.transpose(0, 1).contiguous()
        continue
      }
      guard let (prefix, replacement) = renames.first(where: { key.hasPrefix($0.0) }) else {
        out[key] = tensor  // left for strict loading to report as unexpected
        continue
      }
      var rest = String(key.dropFirst(prefix.count))
      if prefix.hasSuffix("resblocks.") {
        // rest = "<i>.<inner>"
        guard let dot = rest.firstIndex(of: ".") else { out[key] = tensor; continue }
        let layer = rest[..<dot]
        let inner = String(rest[rest.index(after: dot)...])
        let base = "\(replacement)\(layer).self_attn."
        if inner == "attn.in_proj_weight" || inner == "attn.in_proj_bias" {
          let suffix = inner.hasSuffix("weight") ? "weight" : "bias"
          let parts = try tensor.chunk(3, dim: 0)
          guard parts.count == 3 else {
            throw TorchError("openCLIP", "\(key) of shape \(tensor.shape) does not split into q, k, v")
          }
          for (name, part) in zip(["q_proj", "k_proj", "v_proj"], parts) { out["\(base)\(name).\(suffix)"] = part }
          continue
        }
        if let (from, to) = blockRenames.first(where: { inner.hasPrefix($0.0) }) {
          rest = "\(layer).\(to)\(inner.dropFirst(from.count))"
        }
      }
      out[replacement + rest] = tensor
    }
    return out
  }

  /// Converts our state dict to open_clip's keys (the inverse of `toOurs`).
  public static func fromOurs(_ state: [String: Tensor]) throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    var fused: [String: [String: Tensor]] = [:]  // "<prefix><i>.attn.in_proj_<suffix>" → q/k/v parts
    for (key, tensor) in state {
      if key == "visual_projection.weight" || key == "text_projection.weight" {
        out[key == "visual_projection.weight" ? "visual.proj" : "text_projection"] = try tensor.transpose(0, 1).contiguous()
        continue
      }
      guard let (theirs, ours) = renames.first(where: { key.hasPrefix($0.1) }) else {
        throw TorchError("openCLIP", "no open_clip name for '\(key)'")
      }
      var rest = String(key.dropFirst(ours.count))
      if ours.hasSuffix("layers."), let dot = rest.firstIndex(of: ".") {
        let layer = rest[..<dot]
        let inner = String(rest[rest.index(after: dot)...])
        for part in ["q_proj", "k_proj", "v_proj"] where inner.hasPrefix("self_attn.\(part).") {
          let suffix = inner.hasSuffix("weight") ? "weight" : "bias"
          fused["\(theirs)\(layer).attn.in_proj_\(suffix)", default: [:]][part] = tensor
        }
        if inner.hasPrefix("self_attn.") && !inner.hasPrefix("self_attn.out_proj.") { continue }
        if let (from, to) = blockRenames.first(where: { inner.hasPrefix($0.1) }) {
          rest = "\(layer).\(from)\(inner.dropFirst(to.count))"
        }
      }
      out[theirs + rest] = tensor
    }
    for (key, parts) in fused {
      guard let q = parts["q_proj"], let k = parts["k_proj"], let v = parts["v_proj"] else {
        throw TorchError("openCLIP", "\(key): q, k and v projections must all be present")
      }
      out[key] = try Tensor.cat([q, k, v], dim: 0)
    }
    return out
  }
}

/// open_clip's model configuration JSON (`embed_dim`, `vision_cfg`, `text_cfg`).
public struct OpenCLIPConfig: Codable, Equatable, Sendable {
  public struct Vision: Codable, Equatable, Sendable {
    public var imageSize: Int
    public var layers: Int
    public var width: Int
    public var patchSize: Int
    public var headWidth: Int = 64
    public var mlpRatio: Double = 4
    enum CodingKeys: String, CodingKey {
      case imageSize = "image_size", layers, width, patchSize = "patch_size", headWidth = "head_width", mlpRatio = "mlp_ratio"
    }
    public init(imageSize: Int, layers: Int, width: Int, patchSize: Int, headWidth: Int = 64, mlpRatio: Double = 4) {
      (self.imageSize, self.layers, self.width, self.patchSize, self.headWidth, self.mlpRatio) =
        (imageSize, layers, width, patchSize, headWidth, mlpRatio)
    }
    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      imageSize = try c.decode(Int.self, forKey: .imageSize)
      layers = try c.decode(Int.self, forKey: .layers)
      width = try c.decode(Int.self, forKey: .width)
      patchSize = try c.decode(Int.self, forKey: .patchSize)
      headWidth = try c.decodeIfPresent(Int.self, forKey: .headWidth) ?? 64
      mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? 4
    }
  }
  public struct Text: Codable, Equatable, Sendable {
    public var contextLength: Int = 77
    public var vocabSize: Int = 49408
    public var width: Int
    public var heads: Int
    public var layers: Int
    public var mlpRatio: Double = 4
    enum CodingKeys: String, CodingKey {
      case contextLength = "context_length", vocabSize = "vocab_size", width, heads, layers, mlpRatio = "mlp_ratio"
    }
    public init(contextLength: Int = 77, vocabSize: Int = 49408, width: Int, heads: Int, layers: Int, mlpRatio: Double = 4) {
      (self.contextLength, self.vocabSize, self.width, self.heads, self.layers, self.mlpRatio) =
        (contextLength, vocabSize, width, heads, layers, mlpRatio)
    }
    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      contextLength = try c.decodeIfPresent(Int.self, forKey: .contextLength) ?? 77
      vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? 49408
      width = try c.decode(Int.self, forKey: .width)
      heads = try c.decode(Int.self, forKey: .heads)
      layers = try c.decode(Int.self, forKey: .layers)
      mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? 4
    }
  }

  public var embedDim: Int
  public var quickGelu: Bool = false
  public var visionCfg: Vision
  public var textCfg: Text

  enum CodingKeys: String, CodingKey {
    case embedDim = "embed_dim", quickGelu = "quick_gelu", visionCfg = "vision_cfg", textCfg = "text_cfg"
  }

  public init(embedDim: Int, quickGelu: Bool = false, vision: Vision, text: Text) {
    (self.embedDim, self.quickGelu, visionCfg, textCfg) = (embedDim, quickGelu, vision, text)
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    embedDim = try c.decode(Int.self, forKey: .embedDim)
    quickGelu = try c.decodeIfPresent(Bool.self, forKey: .quickGelu) ?? false
    visionCfg = try c.decode(Vision.self, forKey: .visionCfg)
    textCfg = try c.decode(Text.self, forKey: .textCfg)
  }

  /// The same architecture as our `CLIPConfig` (argmax text pooling, as open_clip pools).
  public var clipConfig: CLIPConfig {
    let act: Activation = quickGelu ? .quickGelu : .gelu
    let vision = CLIPVisionConfig(
      hiddenSize: visionCfg.width, intermediateSize: Int(Double(visionCfg.width) * visionCfg.mlpRatio),
      numHiddenLayers: visionCfg.layers, numAttentionHeads: visionCfg.width / visionCfg.headWidth,
      imageSize: visionCfg.imageSize, patchSize: visionCfg.patchSize, projectionDim: embedDim, hiddenAct: act)
    let text = CLIPTextConfig(
      vocabSize: textCfg.vocabSize, hiddenSize: textCfg.width, intermediateSize: Int(Double(textCfg.width) * textCfg.mlpRatio),
      numHiddenLayers: textCfg.layers, numAttentionHeads: textCfg.heads, maxPositionEmbeddings: textCfg.contextLength,
      projectionDim: embedDim, hiddenAct: act)
    return CLIPConfig(text: text, vision: vision, projectionDim: embedDim, textPooling: .argmax)
  }

  /// open_clip's description of a CLIP config, for saving in its format.
  public init(_ config: CLIPConfig) throws {
    let v = config.visionConfig, t = config.textConfig
    guard v.hiddenAct == t.hiddenAct, [.gelu, .quickGelu].contains(v.hiddenAct) else {
      throw TorchError("openCLIP", "open_clip models use one activation, gelu or quick_gelu, in both towers")
    }
    guard v.hiddenSize % v.numAttentionHeads == 0 else { throw TorchError("openCLIP", "vision width not divisible by heads") }
    self.init(
      embedDim: config.projectionDim, quickGelu: v.hiddenAct == .quickGelu,
      vision: Vision(
        imageSize: v.imageSize, layers: v.numHiddenLayers, width: v.hiddenSize, patchSize: v.patchSize,
        headWidth: v.hiddenSize / v.numAttentionHeads, mlpRatio: Double(v.intermediateSize) / Double(v.hiddenSize)),
      text: Text(
        contextLength: t.maxPositionEmbeddings, vocabSize: t.vocabSize, width: t.hiddenSize, heads: t.numAttentionHeads,
        layers: t.numHiddenLayers, mlpRatio: Double(t.intermediateSize) / Double(t.hiddenSize)))
  }
}
