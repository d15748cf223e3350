import Foundation

/// The names of the metrics the report tables read from `RunSummary.metrics`. Accuracies and
/// recalls are fractions in [0, 1]; the tables show them as percentages.
public enum MetricKey {
  public static let i2tR1 = "i2t_r1"
  public static let i2tR5 = "i2t_r5"
  public static let i2tR10 = "i2t_r10"
  public static let t2iR1 = "t2i_r1"
  public static let t2iR5 = "t2i_r5"
  public static let t2iR10 = "t2i_r10"
  /// The mean of the six recalls; computed from them when a run does not give it.
  public static let meanRecall = "mean_recall"
  public static let zeroShotTop1 = "zeroshot_top1"
  public static let hardNegativeAccuracy = "hard_negative_acc"
  /// Text→image split on contrast-set splits: top image in the caption's set / the right member.
  public static let t2iSetR1 = "t2i_set_r1"
  public static let t2iWithinSetR1 = "t2i_within_set_r1"

  public static let recalls = [i2tR1, i2tR5, i2tR10, t2iR1, t2iR5, t2iR10]
}

/// What one finished run (one model, one seed) contributes to a report. The runner fills it
/// from its JSON outputs; runs with the same `name` are seeds of one table row.
public struct RunSummary: Codable, Equatable, Sendable {
  /// The table row, e.g. `"CMAPKD"`, `"KD"`, `"Teacher (ViT-B/16)"`.
  public var name: String
  /// The distillation method (`"cmapkd"`, `"kd"`, …; `"teacher"` for the teacher).
  public var method: String
  public var seed: Int
  public var isTeacher: Bool
  /// The config file the run was started from.
  public var config: String?
  /// The ablation variant (`AblationVariant` raw value) for ablation runs.
  public var variant: String?
  /// Evaluation results by `MetricKey`, fractions in [0, 1].
  public var metrics: [String: Double]
  public var parameters: Int?
  public var flopsPerImage: Double?
  /// Image-encoder throughput; the speed-up over the teacher is the ratio of these.
  public var imagesPerSecond: Double?
  public var steps: Int?
  public var wallTimeSeconds: Double?

  public init(
    name: String, method: String, seed: Int = 0, isTeacher: Bool = false, config: String? = nil, variant: String? = nil,
    metrics: [String: Double] = [:], parameters: Int? = nil, flopsPerImage: Double? = nil, imagesPerSecond: Double? = nil,
    steps: Int? = nil, wallTimeSeconds: Double? = nil
  ) {
    self.name = name
    self.method = method
    self.seed = seed
    self.isTeacher = isTeacher
    self.config = config
    self.variant = variant
    self.metrics = metrics
    self.parameters = parameters
    self.flopsPerImage = flopsPerImage
    self.imagesPerSecond = imagesPerSecond
    self.steps = steps
    self.wallTimeSeconds = wallTimeSeconds
  }

  enum CodingKeys: String, CodingKey {
    case name, method, seed, isTeacher, config, variant, metrics, parameters, flopsPerImage, imagesPerSecond, steps
    case wallTimeSeconds
  }

  /// Only `name` is required in JSON; `method` defaults to the name, `seed` to 0, `isTeacher`
  /// to `method == "teacher"`.
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    name = try c.decode(String.self, forKey: .name)
    method = try c.decodeIfPresent(String.self, forKey: .method) ?? name
    seed = try c.decodeIfPresent(Int.self, forKey: .seed) ?? 0
    isTeacher = try c.decodeIfPresent(Bool.self, forKey: .isTeacher) ?? (method == "teacher")
    config = try c.decodeIfPresent(String.self, forKey: .config)
    variant = try c.decodeIfPresent(String.self, forKey: .variant)
    metrics = try c.decodeIfPresent([String: Double].self, forKey: .metrics) ?? [:]
    parameters = try c.decodeIfPresent(Int.self, forKey: .parameters)
    flopsPerImage = try c.decodeIfPresent(Double.self, forKey: .flopsPerImage)
    imagesPerSecond = try c.decodeIfPresent(Double.self, forKey: .imagesPerSecond)
    steps = try c.decodeIfPresent(Int.self, forKey: .steps)
    wallTimeSeconds = try c.decodeIfPresent(Double.self, forKey: .wallTimeSeconds)
  }

  /// `metrics[key]`, with the mean recall computed from the six recalls when absent.
  public func metric(_ key: String) -> Double? {
    if let value = metrics[key] { return value }
    if key == MetricKey.meanRecall {
      let recalls = MetricKey.recalls.compactMap { metrics[$0] }
      if recalls.count == MetricKey.recalls.count { return recalls.reduce(0, +) / Double(recalls.count) }
    }
    return nil
  }
}

/// Mean and sample standard deviation (n − 1) of a value over seeds.
public struct MeanStd: Codable, Equatable, Sendable {
  public var mean: Double
  /// nil for a single sample.
  public var std: Double?
  public var count: Int

  /// nil when `samples` is empty.
  public init?(_ samples: [Double]) {
    guard !samples.isEmpty else { return nil }
    count = samples.count
    mean = samples.reduce(0, +) / Double(count)
    if count > 1 {
      let m = mean
      std = (samples.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(count - 1)).squareRoot()
    } else {
      std = nil
    }
  }

  /// `"55.0 ± 7.1"` (or `"55.0"` for one sample), after multiplying by `scale`.
  public func formatted(scale: Double = 1, decimals: Int = 1) -> String {
    let m = decimal(mean * scale, decimals: decimals)
    guard let std else { return m }
    return "\(m) ± \(decimal(std * scale, decimals: decimals))"
  }
}

/// The ablations of SPEC §9, in table order.
public enum AblationVariant: String, Codable, CaseIterable, Sendable {
  case full
  case noVisualPyramid = "no_visual_pyramid"
  case noLanguageHierarchy = "no_language_hierarchy"
  case noAdaptiveSelection = "no_adaptive_selection"
  case noCrossModalAlignment = "no_cross_modal_alignment"
  case oneStage = "one_stage"
  case seedLadder = "seed_ladder"

  public var label: String {
    switch self {
    case .full: "Full CMAPKD (progressive)"
    case .noVisualPyramid: "w/o visual pyramid"
    case .noLanguageHierarchy: "w/o language hierarchy"
    case .noAdaptiveSelection: "w/o adaptive selection"
    case .noCrossModalAlignment: "w/o cross-modal alignment"
    case .oneStage: "One-stage (not progressive)"
    case .seedLadder: "Seed ladder (P2, P3 upsampled 4×, 2×)"
    }
  }
}

// MARK: - Number formats shared by the tables

enum Format {
  /// A fraction as a percentage with one decimal: 0.5512 → "55.1".
  static func percent(_ value: MeanStd?) -> String { value?.formatted(scale: 100) ?? missing }

  /// 86_192_640 → "86.2M"; 950_000 → "0.95M".
  static func parameters(_ count: Double?) -> String {
    guard let count else { return missing }
    return count >= 1e6 ? decimal(count / 1e6, decimals: 1) + "M" : decimal(count / 1e6, decimals: 2) + "M"
  }

  /// 4.4e9 → "4.40G"; 3.5e8 → "350.0M".
  static func flops(_ value: Double?) -> String {
    guard let value else { return missing }
    return value >= 1e9 ? decimal(value / 1e9, decimals: 2) + "G" : decimal(value / 1e6, decimals: 1) + "M"
  }

  /// 3.21 → "3.2×".
  static func speedup(_ value: Double?) -> String {
    guard let value else { return missing }
    return decimal(value, decimals: 1) + "×"
  }

  /// A difference of fractions in percentage points with its sign: −0.023 → "-2.3".
  static func delta(_ value: Double?) -> String {
    guard let value else { return missing }
    let text = decimal(value * 100, decimals: 1)
    return text.hasPrefix("-") || text == "0.0" ? text : "+" + text
  }

  /// 3723 s → "1h 02m 03s"; 245 s → "4m 05s"; 12.34 s → "12.3s".
  static func duration(_ seconds: Double?) -> String {
    guard let seconds else { return missing }
    if seconds < 60 { return decimal(seconds, decimals: 1) + "s" }
    let total = Int(seconds.rounded())
    let h = total / 3600, m = total % 3600 / 60, s = total % 60
    return h > 0 ? String(format: "%dh %02dm %02ds", h, m, s) : String(format: "%dm %02ds", m, s)
  }

  static let missing = "–"
}
