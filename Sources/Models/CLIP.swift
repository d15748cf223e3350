import Foundation
import Torch
import TorchNN

/// A CLIP dual encoder: image and text towers, projections into the joint space and a
/// learnable logit scale (Hugging Face `CLIPModel` keys).
///
/// ```swift
/// let clip = try CLIPModel(Presets.tiny)
/// let img = try clip.encodeImage(pixels, normalize: true)   // [B, P]
/// let txt = try clip.encodeText(ids, normalize: true)       // [B, P]
/// let (perImage, perText) = try clip.logits(images: img, texts: txt)
/// ```
public final class CLIPModel: Module {
  public let textModel: CLIPTextTransformer
  public let visionModel: CLIPVisionTransformer
  public let visualProjection: Linear
  public let textProjection: Linear
  /// log of the logit scale, as CLIP stores it (initialised to log(1/0.07)).
  public let logitScale: Tensor
  public let config: CLIPConfig

  public init(_ config: CLIPConfig) throws {
    self.config = config
    textModel = try CLIPTextTransformer(config.textConfig, pooling: config.resolvedTextPooling)
    visionModel = try CLIPVisionTransformer(config.visionConfig)
    visualProjection = try Linear(config.visionConfig.hiddenSize, config.projectionDim, bias: false)
    textProjection = try Linear(config.textConfig.hiddenSize, config.projectionDim, bias: false)
    logitScale = try parameter(Tensor.scalar(config.logitScaleInitValue))
    super.init()
  }

  /// Image embeddings [B, P] in the joint space.
  public func encodeImage(_ pixels: Tensor, normalize: Bool = false) throws -> Tensor {
    try project(visionModel(pixels).pooled, with: visualProjection, normalize: normalize)
  }

  /// Text embeddings [B, P] in the joint space.
  public func encodeText(_ ids: Tensor, attentionMask: Tensor? = nil, normalize: Bool = false) throws -> Tensor {
    try project(textModel(ids, attentionMask: attentionMask).pooled, with: textProjection, normalize: normalize)
  }

  /// Projects a tower's pooled feature into the joint space.
  public func project(_ pooled: Tensor, with projection: Linear, normalize: Bool) throws -> Tensor {
    let embedded = try projection(pooled)
    return normalize ? try Functional.normalize(embedded, dim: -1) : embedded
  }

  /// Scaled cosine similarities: [images, texts] and its transpose. Inputs need not be normalized.
  public func logits(images: Tensor, texts: Tensor) throws -> (perImage: Tensor, perText: Tensor) {
    let i = try Functional.normalize(images, dim: -1)
    let t = try Functional.normalize(texts, dim: -1)
    let perImage = try logitScale.exp() * i.matmul(t.transpose(0, 1))
    return (perImage, try perImage.transpose(0, 1))
  }
}
