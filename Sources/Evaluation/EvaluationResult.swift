/// Everything one evaluation measured; the experiment runner writes it as JSON (snake_case
/// keys; a part that was not run is left out).
///
/// ```swift
/// let encoder = JSONEncoder()
/// encoder.outputFormatting = .sortedKeys
/// let line = try encoder.encode(result)   // {"hard_negatives":{…},"retrieval":{…},"zero_shot":{…}}
/// ```
public struct EvaluationResult: Codable, Equatable, Sendable {
  public var retrieval: RetrievalResult?
  public var hardNegatives: HardNegativeResult?
  /// Text→image split into finding the contrast set and picking inside it (scenes splits).
  public var contrastSets: ContrastSetResult?
  public var zeroShot: ZeroShotResult?
  public var efficiency: EfficiencyResult?

  enum CodingKeys: String, CodingKey {
    case retrieval, hardNegatives = "hard_negatives", contrastSets = "contrast_sets", zeroShot = "zero_shot", efficiency
  }

  public init(
    retrieval: RetrievalResult? = nil, hardNegatives: HardNegativeResult? = nil, contrastSets: ContrastSetResult? = nil,
    zeroShot: ZeroShotResult? = nil, efficiency: EfficiencyResult? = nil
  ) {
    self.retrieval = retrieval
    self.hardNegatives = hardNegatives
    self.contrastSets = contrastSets
    self.zeroShot = zeroShot
    self.efficiency = efficiency
  }

  /// Every quality metric (higher is better, in [0, 1]) by its dotted JSON path, e.g.
  /// `retrieval.mean_recall`, `hard_negatives.by_kind.binding`: what efficacy is computed over
  /// and what a metrics log or a report table picks from.
  public var qualityMetrics: [String: Double] {
    var metrics: [String: Double] = [:]
    if let r = retrieval {
      for (direction, recall) in [("image_to_text", r.imageToText), ("text_to_image", r.textToImage)] {
        metrics["retrieval.\(direction).r1"] = recall.r1
        metrics["retrieval.\(direction).r5"] = recall.r5
        metrics["retrieval.\(direction).r10"] = recall.r10
      }
      metrics["retrieval.mean_recall"] = r.meanRecall
    }
    if let h = hardNegatives {
      metrics["hard_negatives.pairwise"] = h.pairwise.accuracy
      metrics["hard_negatives.all_negatives"] = h.allNegatives.accuracy
      for (kind, accuracy) in h.byKind { metrics["hard_negatives.by_kind.\(kind)"] = accuracy.accuracy }
    }
    if let c = contrastSets {
      metrics["contrast_sets.set_r1"] = c.setR1
      metrics["contrast_sets.within_set_r1"] = c.withinSetR1
    }
    if let z = zeroShot {
      metrics["zero_shot.top1"] = z.top1
      metrics["zero_shot.top5"] = z.top5
    }
    return metrics
  }

  /// Efficacy of this (student) result against `teacher`'s, in percent, for every quality
  /// metric both have (and the teacher's is not zero).
  public func efficacy(relativeTo teacher: EvaluationResult) -> [String: Double] {
    let theirs = teacher.qualityMetrics
    var percents: [String: Double] = [:]
    for (key, value) in qualityMetrics {
      if let teacherValue = theirs[key], let percent = Efficacy.percent(student: value, teacher: teacherValue) {
        percents[key] = percent
      }
    }
    return percents
  }
}

/// "Efficacy" as DSMD reports it: the student's metric as a percentage of the teacher's.
public enum Efficacy {
  /// 100 · student / teacher; nil when the teacher scored 0 (or either is not finite), where
  /// the ratio means nothing.
  public static func percent(student: Double, teacher: Double) -> Double? {
    guard teacher != 0, teacher.isFinite, student.isFinite else { return nil }
    return 100 * student / teacher
  }
}
