/// One comparison of a true caption with a near-miss made from it, both scored against the image.
public struct HardNegativeTrial: Equatable, Sendable {
  /// The kind of change that made the negative ("attribute", "binding", "relation").
  public var kind: String
  /// Identifies the true caption, so trials of the same caption can be judged together.
  public var caption: Int
  /// Similarity of the image to its true caption and to the negative.
  public var positive: Float
  public var negative: Float

  public init(kind: String, caption: Int, positive: Float, negative: Float) {
    self.kind = kind
    self.caption = caption
    self.positive = positive
    self.negative = negative
  }

  /// The true caption strictly ahead; a tie or a NaN is a failure (the `Ranking` rule).
  public var passed: Bool { Ranking.key(positive) > Ranking.key(negative) }
}

/// How often a fraction of trials passed, and of how many.
public struct Accuracy: Codable, Equatable, Sendable {
  public var accuracy: Double
  public var count: Int

  public init(passed: Int, of count: Int) {
    accuracy = count == 0 ? 0 : Double(passed) / Double(count)
    self.count = count
  }
}

/// Hard-negative accuracy: the true caption against its near misses, image by image.
public struct HardNegativeResult: Codable, Equatable, Sendable {
  /// Pairs (true caption, negative) where the true caption scored higher (SugarCrepe's measure;
  /// chance is 0.5 for a model whose scores carry no information, 0 for a collapsed one).
  public var pairwise: Accuracy
  /// The same, per kind of change.
  public var byKind: [String: Accuracy]
  /// True captions that beat every one of their negatives (stricter: chance is lower).
  public var allNegatives: Accuracy

  enum CodingKeys: String, CodingKey {
    case pairwise, byKind = "by_kind", allNegatives = "all_negatives"
  }
}

/// Scores hard-negative trials.
///
/// ```swift
/// let result = HardNegativeAccuracy.evaluate([
///   HardNegativeTrial(kind: "binding", caption: 0, positive: 0.8, negative: 0.6),
///   HardNegativeTrial(kind: "relation", caption: 0, positive: 0.8, negative: 0.9),
/// ])
/// result.pairwise.accuracy        // 0.5
/// result.allNegatives.accuracy    // 0.0
/// ```
public enum HardNegativeAccuracy {
  public static func evaluate(_ trials: [HardNegativeTrial]) -> HardNegativeResult {
    var kinds: [String: (passed: Int, count: Int)] = [:]
    var captions: [Int: Bool] = [:]
    for trial in trials {
      let passed = trial.passed
      kinds[trial.kind, default: (0, 0)].passed += passed ? 1 : 0
      kinds[trial.kind, default: (0, 0)].count += 1
      captions[trial.caption] = (captions[trial.caption] ?? true) && passed
    }
    return HardNegativeResult(
      pairwise: Accuracy(passed: trials.count(where: \.passed), of: trials.count),
      byKind: kinds.mapValues { Accuracy(passed: $0.passed, of: $0.count) },
      allNegatives: Accuracy(passed: captions.values.count { $0 }, of: captions.count))
  }
}
