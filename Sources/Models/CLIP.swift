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

  /// Data-parallel training (see the towers' `dataParallel`): pixels hold this rank's images,
  /// captions the whole batch, and every output the model returns covers the whole batch.
  public var dataParallel: ProcessGroup? {
    get { visionModel.dataParallel }
    set {
      visionModel.dataParallel = newValue
      textModel.dataParallel = newValue
    }
  }

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

  /// Text embeddings [B, P] like `encodeText`, computed in `chunks` groups of captions of
  /// similar length, each group trimmed to its longest caption.
  ///
  /// Why: captions are padded to the context length, but most are half as long, and the text
  /// tower is most of a training step's cost. The result is the same as `encodeText` (up to
  /// float rounding): the tower is causal and pools at each caption's end token, so nothing
  /// after a caption's last real token can reach its embedding.
  ///
  /// - Parameter attentionMask: [B, L], 1 for real tokens (right-padded).
  public func encodeTextByLength(_ ids: Tensor, attentionMask: Tensor, chunks: Int = 4, normalize: Bool = false) throws -> Tensor
  {
    if let group = textModel.dataParallel {
      // This rank's captions, chunked by length locally, then every rank's embeddings.
      textModel.dataParallel = nil
      defer { textModel.dataParallel = group }
      let local = try encodeTextByLength(
        group.localRows(ids), attentionMask: group.localRows(attentionMask), chunks: chunks, normalize: normalize)
      return try group.allGather(local)
    }
    let lengths = try attentionMask.sum(dim: 1).to(.cpu).to(.int64).toArray(Int64.self)
    let count = lengths.count
    guard chunks > 1, count >= 2 * chunks else { return try encodeText(ids, attentionMask: attentionMask, normalize: normalize) }
    let order = lengths.indices.sorted { (lengths[$0], $0) < (lengths[$1], $1) }
    let device = ids.device
    var pooled: [Tensor] = []
    for chunk in 0..<chunks {
      let rows = order[(chunk * count / chunks)..<((chunk + 1) * count / chunks)]
      let length = max(1, Int(rows.map { lengths[$0] }.max()!))
      let index = try Tensor(rows.map(Int64.init)).to(device)
      let chunkIds = try ids.indexSelect(dim: 0, index: index).narrow(dim: 1, start: 0, length: length)
      let chunkMask = try attentionMask.indexSelect(dim: 0, index: index).narrow(dim: 1, start: 0, length: length)
      pooled.append(try textModel(chunkIds, attentionMask: chunkMask).pooled)
    }
    var inverse = [Int64](repeating: 0, count: count)
    for (position, row) in order.enumerated() { inverse[row] = Int64(position) }
    let restored = try Tensor.cat(pooled, dim: 0).indexSelect(dim: 0, index: Tensor(inverse).to(device))
    return try project(restored, with: textProjection, normalize: normalize)
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

extension CLIPModel {
  /// Re-initialises every weight the way CLIP is initialised for training from scratch
  /// (Hugging Face `CLIPPreTrainedModel._init_weights`, `initializer_factor` 1): embeddings and
  /// positions N(0, 0.02), class token N(0, D^-½), attention and MLP projections scaled by depth,
  /// joint-space projections N(0, D^-½), biases 0, norms 1/0.
  ///
  /// PyTorch's per-layer defaults (N(0, 1) embeddings, uniform ±1/√in linears) make the class
  /// token and positions dwarf the input-dependent part of the residual stream: every image then
  /// starts with nearly the same embedding and contrastive training sits on the ln(B) plateau.
  public func initializeForTraining(generator: Generator? = nil) throws {
    func fill(_ t: Tensor, std: Double) throws {
      try Torch.noGrad { try t.copy(from: Init.normal(t.shape, std: std, generator: generator)) }
    }
    func zero(_ t: Tensor?) throws { if let t { try Torch.noGrad { try t.copy(from: Tensor.zeros(t.shape)) } } }
    func encoder(_ encoder: CLIPEncoder, width: Int) throws {
      let d = Double(width)
      let layers = Double(encoder.layers.count)
      let inStd = pow(d, -0.5) * pow(2 * layers, -0.5)
      for layer in encoder.layers {
        let attention = layer.selfAttn
        for projection in [attention.qProj, attention.kProj, attention.vProj] {
          try fill(projection.weight, std: inStd)
          try zero(projection.bias)
        }
        try fill(attention.outProj.weight, std: pow(d, -0.5))
        try zero(attention.outProj.bias)
        try fill(layer.mlp.fc1.weight, std: pow(2 * d, -0.5))
        try zero(layer.mlp.fc1.bias)
        try fill(layer.mlp.fc2.weight, std: inStd)
        try zero(layer.mlp.fc2.bias)
      }
    }
    let text = textModel.embeddings
    try fill(text.tokenEmbedding.weight, std: 0.02)
    try fill(text.positionEmbedding.weight, std: 0.02)
    let vision = visionModel.embeddings
    let dv = visionModel.config.hiddenSize
    try fill(vision.classEmbedding, std: pow(Double(dv), -0.5))
    try fill(vision.patchEmbedding.weight, std: 0.02)
    try fill(vision.positionEmbedding.weight, std: 0.02)
    try encoder(textModel.encoder, width: textModel.config.hiddenSize)
    try encoder(visionModel.encoder, width: dv)
    try fill(visualProjection.weight, std: pow(Double(dv), -0.5))
    try fill(textProjection.weight, std: pow(Double(textModel.config.hiddenSize), -0.5))
  }
}
