import Torch
import TorchNN

/// A pre-norm transformer layer as CLIP builds it (Hugging Face key names):
/// x + attn(ln1(x)), then + mlp(ln2(·)).
public final class CLIPEncoderLayer: Module {
  public let layerNorm1: LayerNorm
  public let selfAttn: MultiHeadAttention
  public let layerNorm2: LayerNorm
  public let mlp: MLP

  public init(hiddenSize: Int, intermediateSize: Int, numHeads: Int, activation: Activation, layerNormEps: Double) throws {
    layerNorm1 = try LayerNorm(hiddenSize, eps: layerNormEps)
    selfAttn = try MultiHeadAttention(embedDim: hiddenSize, numHeads: numHeads)
    layerNorm2 = try LayerNorm(hiddenSize, eps: layerNormEps)
    mlp = try MLP(hiddenSize, hidden: intermediateSize, activation: activation)
    super.init()
  }

  /// x: [B, L, D]; mask: boolean [B, 1, L, L] (true = attend) or nil.
  public func callAsFunction(_ x: Tensor, mask: Tensor? = nil, isCausal: Bool = false) throws -> Tensor {
    let h = try x + selfAttn(layerNorm1(x), mask: mask, isCausal: isCausal)
    return try h + mlp(layerNorm2(h))
  }
}

/// A stack of CLIP encoder layers that returns every hidden state.
public final class CLIPEncoder: Module {
  public let layers: [CLIPEncoderLayer]

  public init(numLayers: Int, hiddenSize: Int, intermediateSize: Int, numHeads: Int, activation: Activation, layerNormEps: Double)
    throws
  {
    layers = try (0..<numLayers).map { _ in
      try CLIPEncoderLayer(
        hiddenSize: hiddenSize, intermediateSize: intermediateSize, numHeads: numHeads, activation: activation,
        layerNormEps: layerNormEps)
    }
    super.init()
  }

  /// - Returns: the input followed by each layer's output (`layers.count + 1` tensors [B, L, D]),
  ///   the convention of Hugging Face's `output_hidden_states`.
  public func callAsFunction(_ x: Tensor, mask: Tensor? = nil, isCausal: Bool = false) throws -> [Tensor] {
    var states = [x]
    states.reserveCapacity(layers.count + 1)
    for layer in layers { states.append(try layer(states[states.count - 1], mask: mask, isCausal: isCausal)) }
    return states
  }
}

/// Attention masks shared by the text towers.
enum Masks {
  /// Boolean [B, 1, 1, L]: which keys each query may attend to (padding excluded).
  static func keyPadding(_ attentionMask: Tensor) throws -> Tensor {
    try attentionMask.ne(0).unsqueeze(1).unsqueeze(1)
  }

  /// Boolean [B, 1, L, L]: causal and no padded keys.
  static func causalWithPadding(_ attentionMask: Tensor) throws -> Tensor {
    let length = attentionMask.size(1)
    let causal = try Tensor.ones([length, length], dtype: .bool, device: attentionMask.device).tril()  // [L, L]
    return try keyPadding(attentionMask).logicalAnd(causal)
  }
}
