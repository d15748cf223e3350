import Models
import Torch
import TorchNN

/// The language hierarchy L1–L4 of one batch.
public struct LanguageLevels {
  /// L1, token level [B, T, D], and which tokens are real [B, T] (float 0/1).
  public var tokens: Tensor
  public var tokenMask: Tensor
  /// L2, phrase level [B, T − n + 1, D]: means over windows of n tokens, real tokens only,
  /// and which windows hold at least one real token [B, T − n + 1].
  public var phrases: Tensor
  public var phraseMask: Tensor
  /// L3, sentence level [B, D]: masked mean of the deep tap.
  public var sentence: Tensor
  /// L4, global [B, D]: the last tap at the tower's pooling position (CLIP: the end-of-text
  /// token; BERT: [CLS]), or its masked mean for mean-pooling towers. Before any final norm,
  /// so the tower's own norm + projection turn it into exactly the tower's embedding.
  public var global: Tensor

  public init(tokens: Tensor, tokenMask: Tensor, phrases: Tensor, phraseMask: Tensor, sentence: Tensor, global: Tensor) {
    self.tokens = tokens
    self.tokenMask = tokenMask
    self.phrases = phrases
    self.phraseMask = phraseMask
    self.sentence = sentence
    self.global = global
  }

  /// Sequence levels with their masks, or the vector levels with no mask.
  public subscript(_ level: Level) -> (features: Tensor, mask: Tensor?) {
    switch level {
    case .fine: (tokens, tokenMask)
    case .middle: (phrases, phraseMask)
    case .deep: (sentence, nil)
    case .global: (global, nil)
    }
  }
}

/// The cacheable summary of a text batch from which L1–L4 are built.
public struct CompactLanguage {
  /// First and second taps [B, T, D], padded positions zeroed.
  public var tokens: Tensor
  public var phraseSource: Tensor
  /// L3 and L4 [B, D].
  public var sentence: Tensor
  public var global: Tensor
  /// [B, T], 1 for real tokens (floating point).
  public var mask: Tensor

  public init(tokens: Tensor, phraseSource: Tensor, sentence: Tensor, global: Tensor, mask: Tensor) {
    self.tokens = tokens
    self.phraseSource = phraseSource
    self.sentence = sentence
    self.global = global
    self.mask = mask
  }
}

/// Parameter-free extraction of L1–L4 from a text tower's hidden states. Padding never
/// contributes to any level: sums and counts are masked, and fully padded windows are masked out.
public enum LanguageHierarchy {
  /// Hidden states at the taps: 4 tensors [B, T, D].
  public static func taps(_ output: TextOutput, config: PyramidConfig) throws -> [Tensor] {
    let depth = output.states.count - 1
    return try config.taps(config.languageTaps, depth: depth, tower: "language").map { try output.states.layer($0) }
  }

  /// The parameter-free summary the levels are built from (and what a cache stores): the first
  /// two taps [B, T, D] with padded positions zeroed, L3 and L4 [B, D], and the mask [B, T].
  public static func compact(taps: [Tensor], attentionMask: Tensor, pooledPositions: Tensor?) throws -> CompactLanguage {
    guard taps.count == 4 else { throw PyramidError("language hierarchy needs 4 taps, got \(taps.count)") }
    let mask = try attentionMask.to(taps[0].dtype)  // [B, T]
    let m = try mask.unsqueeze(2)
    return CompactLanguage(
      tokens: try taps[0] * m, phraseSource: try taps[1] * m, sentence: try maskedMean(taps[2], mask: mask),
      global: try pooled(taps[3], at: pooledPositions, mask: mask), mask: mask)
  }

  /// Expands a compact summary into L1–L4 (phrase windows are computed here).
  public static func expand(_ c: CompactLanguage, config: PyramidConfig) throws -> LanguageLevels {
    let n = config.phraseWindow
    guard n >= 1, n <= c.mask.size(1) else {
      throw PyramidError("phrase window \(n) does not fit sequences of \(c.mask.size(1)) tokens")
    }
    let (phrases, phraseMask) = try windowMeans(c.phraseSource, mask: c.mask, window: n)
    return LanguageLevels(
      tokens: c.tokens, tokenMask: c.mask, phrases: phrases, phraseMask: phraseMask, sentence: c.sentence, global: c.global)
  }

  /// - Parameters:
  ///   - taps: 4 tensors [B, T, D].
  ///   - attentionMask: [B, T], 1 for real tokens.
  ///   - pooledPositions: where the tower pools each text [B] (int64); nil = masked mean.
  public static func levels(taps: [Tensor], attentionMask: Tensor, pooledPositions: Tensor?, config: PyramidConfig) throws
    -> LanguageLevels
  {
    try expand(compact(taps: taps, attentionMask: attentionMask, pooledPositions: pooledPositions), config: config)
  }

  /// x [B, T, D] at one position per row, or the masked mean when `positions` is nil.
  static func pooled(_ x: Tensor, at positions: Tensor?, mask: Tensor) throws -> Tensor {
    guard let positions else { return try maskedMean(x, mask: mask) }
    let index = try positions.view([-1, 1, 1]).expand([x.size(0), 1, x.size(2)])
    return try x.gather(dim: 1, index: index).squeeze(1)
  }

  /// Mean over real tokens: x [B, T, D], mask [B, T] → [B, D].
  public static func maskedMean(_ x: Tensor, mask: Tensor) throws -> Tensor {
    let m = try mask.unsqueeze(2)
    return try (x * m).sum(dim: 1) / m.sum(dim: 1).clamp(min: 1)
  }

  /// Means of real tokens in each window of `window` consecutive positions (stride 1).
  /// x's padded positions must be 0 already (as `CompactLanguage.phraseSource` is): only the
  /// counts are masked here.
  static func windowMeans(_ x: Tensor, mask: Tensor, window: Int) throws -> (Tensor, Tensor) {
    let w = x.size(1) - window + 1
    // The windowed sums as `window` shifted slices of [B, T, D] added up: avg_pool1d wanted
    // [B, D, T] (a strided view of these rows) and a rescale, and cost 2–3× as much forward and
    // backward at the scene sizes (the window is a few tokens).
    var sums = try x.narrow(dim: 1, start: 0, length: w)  // [B, W, D]
    var counts = try mask.narrow(dim: 1, start: 0, length: w)  // [B, W]
    for k in 1..<max(window, 1) {
      sums = try sums + x.narrow(dim: 1, start: k, length: w)
      counts = try counts + mask.narrow(dim: 1, start: k, length: w)
    }
    let means = try sums / counts.clamp(min: 1).unsqueeze(2)  // [B, W, D]
    return (means, try counts.gt(0.5).to(x.dtype))
  }
}
