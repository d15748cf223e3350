import Distillation
import Foundation
import Reports
import SafeFiles

/// `cmapkd compare`: every method × seeds and every ablation × seeds from one shared teacher
/// and one shared teacher-feature cache, then `docs/results.md`: mean ± std over seeds, a
/// Welch t-test of CMAPKD against the best baseline, whether validation recall was flat over
/// the last fifth of training, and the curves.
///
/// A finished run (its `results.json` exists) is reused and a killed one resumes from its
/// latest checkpoint, so the command can be stopped and started again, and the report
/// rewritten from finished runs alone (`reportOnly`).
public enum Comparison {
  /// Every single-teacher method, in table order (`--methods` may name the multi-teacher ones).
  public static var allMethods: [String] { Methods.singleTeacherNames }

  public struct Plan {
    public var files: [String]
    public var overrides: [String]
    public var seeds: [Int]
    public var methods: [String]
    public var ablations: [String]
    /// Where the runs go; nil = `<output_dir>/compare`.
    public var root: String?
    /// The report; its plots go to `<name>/` beside it (docs/results.md → docs/results/).
    public var report: String
    public var reportOnly = false
    /// The command line to print in the report.
    public var command: String

    public init(
      files: [String], overrides: [String], seeds: [Int], methods: [String], ablations: [String], root: String?,
      report: String, command: String
    ) {
      (self.files, self.overrides, self.seeds, self.methods, self.ablations) = (files, overrides, seeds, methods, ablations)
      (self.root, self.report, self.command) = (root, report, command)
    }
  }

  /// One finished run and its validation curve.
  struct Finished {
    var results: RunResults
    var directory: String
    var validation: [(step: Int, recall: Double)]
  }

  public static func run(_ plan: Plan) throws {
    for name in plan.methods where !Methods.names.contains(name) {
      throw ConfigError("--methods: unknown method '\(name)'; choose from \(Methods.names.joined(separator: ", "))")
    }
    for variant in plan.ablations where !ConfigLoader.exists("configs/ablations/\(variant).yaml") {
      throw ConfigError("--ablations: '\(variant)': configs/ablations/\(variant).yaml not found")
    }
    let base = try ConfigLoader.load(ExperimentConfig.self, files: plan.files, overrides: plan.overrides)
    let root = plan.root ?? "\(base.outputDir)/compare"
    let teacher = plan.reportOnly ? "\(base.outputDir)/teacher" : try DemoRunner.ensureTeacher(base)
    let shared = ["teacher.checkpoint=\(teacher)"]
    func methodFiles(_ name: String) -> [String] {
      ConfigLoader.exists("configs/methods/\(name).yaml") ? ["configs/methods/\(name).yaml"] : []
    }
    var methodRuns: [String: [String]] = [:]
    var ablationRuns: [String: [String]] = [:]
    let total = plan.methods.count * plan.seeds.count + plan.ablations.filter { $0 != "full" }.count * plan.seeds.count
    var index = 0
    func train(_ config: ExperimentConfig, variant: String?) throws {
      index += 1
      let dir = config.resolvedRunDirectory
      if FileManager.default.fileExists(atPath: "\(dir)/results.json") {
        try requireSameSettings(config, savedIn: dir)
        say("== [\(index)/\(total)] \(config.name): finished earlier, reusing \(dir)")
        return
      }
      guard !plan.reportOnly else { return }
      let resume = FileManager.default.fileExists(atPath: "\(dir)/checkpoints")
      say("== [\(index)/\(total)] \(config.name)\(resume ? " (resuming)" : "")")
      let outcome = try Trainer(config: config, kind: .student, variant: variant).run(resume: resume)
      say(String(format: "   %@: %.0f s, test mean recall %.3f", config.name, outcome.seconds, outcome.results["mean_recall"] ?? .nan))
    }
    for seed in plan.seeds {
      for name in plan.methods {
        var config = try ConfigLoader.load(
          ExperimentConfig.self, files: plan.files + methodFiles(name),
          overrides: plan.overrides + shared + ["method.name=\(name)", "seed=\(seed)"])
        config.name = "\(name)-seed\(seed)"
        config.runDir = "\(root)/methods/\(name)-seed\(seed)"
        try train(config, variant: nil)
        methodRuns[name, default: []].append(config.runDir!)
      }
    }
    for seed in plan.seeds {
      for variant in plan.ablations {
        // The full method is the cmapkd run of the same seed: the same config, not trained twice.
        if variant == "full", plan.methods.contains("cmapkd") {
          ablationRuns[variant, default: []].append("\(root)/methods/cmapkd-seed\(seed)")
          continue
        }
        var config = try ConfigLoader.load(
          ExperimentConfig.self,
          files: plan.files + methodFiles("cmapkd") + ["configs/ablations/\(variant).yaml"],
          overrides: plan.overrides + shared + ["method.name=cmapkd", "seed=\(seed)"])
        config.name = "\(variant)-seed\(seed)"
        config.runDir = "\(root)/ablations/\(variant)-seed\(seed)"
        if variant == "full" { index -= 1 }  // not counted in `total`
        try train(config, variant: variant)
        ablationRuns[variant, default: []].append(config.runDir!)
      }
    }
    let teacherResults = try JSONCoding.decode(RunResults.self, file: "\(teacher)/results.json")
    let text = try ComparisonReport(
      plan: plan, base: base, root: root, teacher: teacherResults,
      methods: plan.methods.map { ($0, try finished(methodRuns[$0] ?? [])) },
      ablations: plan.ablations.map { ($0, try finished(ablationRuns[$0] ?? [])) }
    ).write()
    print(text)
  }

  /// A finished run is reused only when it was trained with the planned settings (its name
  /// and folder aside): a default changed since it ran must not pass old numbers off as new.
  public static func requireSameSettings(_ planned: ExperimentConfig, savedIn dir: String) throws {
    let file = "\(dir)/config.yaml"
    guard FileManager.default.fileExists(atPath: file) else { return }
    // The saved text, not the saved file decoded: decoding would fill a key added since the
    // run with today's default, which need not be what the run trained with.
    var planned = planned
    (planned.name, planned.runDir) = ("", nil)
    let saved = try String(contentsOfFile: file, encoding: .utf8)
    // Another method's settings section does not change this run.
    let method = planned.method.name
    let differences = settingDifferences(saved, try ConfigLoader.yaml(planned)).filter {
      !$0.hasPrefix("name:") && !$0.hasPrefix("run_dir:")
        && (!$0.hasPrefix("method.") || $0.hasPrefix("method.name:") || $0.hasPrefix("method.inherit:")
          || $0.hasPrefix("method.\(method)."))
        && !addedSince.contains($0)
    }
    guard !differences.isEmpty else { return }
    throw ConfigError(
      "\(dir) finished with other settings than this comparison plans "
        + "(\(differences.prefix(3).joined(separator: "; "))); "
        + "move it aside or delete it to train it again")
  }

  /// Keys added after runs were saved, at the value that trains exactly as before they
  /// existed: a run without the key matches a plan with that value.
  static let addedSince: Set<String> = [
    "device: absent → auto", "precision: absent → fp32", "train.accumulation_steps: absent → 1",
    "teacher_training.accumulation_steps: absent → 1", "method.inherit: absent → false",
    "deterministic: absent → false", "train.samples: absent → 0", "teacher_training.samples: absent → 0",
  ]

  /// The settings two YAML documents disagree on, as `key: was → now` (flattened by indentation).
  public static func settingDifferences(_ saved: String, _ planned: String) -> [String] {
    let a = flattened(saved), b = flattened(planned)
    return (Set(a.keys).union(b.keys)).sorted().compactMap { key in
      a[key] == b[key] ? nil : "\(key): \(a[key] ?? "absent") → \(b[key] ?? "absent")"
    }
  }

  /// `dotted.key.path → value` for each scalar line of a block-style YAML document; list items
  /// are numbered under their key.
  static func flattened(_ yaml: String) -> [String: String] {
    var stack: [(indent: Int, key: String)] = []
    var out: [String: String] = [:]
    var items: [String: Int] = [:]
    for raw in yaml.split(separator: "\n") {
      let line = String(raw)
      let indent = line.prefix { $0 == " " }.count
      let body = line.trimmingCharacters(in: .whitespaces)
      guard !body.isEmpty, !body.hasPrefix("#") else { continue }
      if body.hasPrefix("- ") || body == "-" {
        let parent = stack.map(\.key).joined(separator: ".")  // the key the list follows
        let n = items[parent, default: 0]
        items[parent] = n + 1
        out["\(parent)[\(n)]"] = String(body.dropFirst(1)).trimmingCharacters(in: .whitespaces)
        continue
      }
      while let last = stack.last, last.indent >= indent { stack.removeLast() }
      guard let colon = body.firstIndex(of: ":") else { continue }
      let key = String(body[..<colon])
      let value = body[body.index(after: colon)...].trimmingCharacters(in: .whitespaces)
      stack.append((indent, key))
      if !value.isEmpty { out[stack.map(\.key).joined(separator: ".")] = value }
    }
    return out
  }

  /// The finished runs among `directories` (unfinished ones are left out of the report).
  static func finished(_ directories: [String]) throws -> [Finished] {
    try directories.compactMap { dir in
      guard FileManager.default.fileExists(atPath: "\(dir)/results.json") else { return nil }
      let results = try JSONCoding.decode(RunResults.self, file: "\(dir)/results.json")
      let log = FileManager.default.fileExists(atPath: "\(dir)/metrics.jsonl") ? try MetricsLog.read("\(dir)/metrics.jsonl") : []
      let curve = log.compactMap { r in r.values["eval/mean_recall"].map { (step: r.step, recall: $0) } }
      return Finished(results: results, directory: dir, validation: curve)
    }
  }

  static func say(_ message: String) { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
}

/// The text and plots of `docs/results.md`.
struct ComparisonReport {
  var plan: Comparison.Plan
  var base: ExperimentConfig
  var root: String
  var teacher: RunResults
  var methods: [(String, [Comparison.Finished])]
  var ablations: [(String, [Comparison.Finished])]

  var teacherRecall: Double { teacher.metrics[MetricKey.meanRecall] ?? .nan }

  static func values(_ runs: [Comparison.Finished], _ key: String) -> [Double] {
    runs.compactMap { $0.results.metrics[key] }
  }

  static func cell(_ runs: [Comparison.Finished], _ key: String, scale: Double = 100) -> String {
    MeanStd(values(runs, key))?.formatted(scale: scale) ?? "–"
  }

  /// Validation mean recall at the end minus at 80 % of the steps (the eval nearest to it),
  /// averaged over seeds: how much the last fifth of training still moved it.
  static func lastFifthChange(_ runs: [Comparison.Finished]) -> Double? {
    let changes = runs.compactMap { run -> Double? in
      guard let last = run.validation.last, run.validation.count > 1 else { return nil }
      let mark = Double(run.results.steps) * 0.8
      let earlier = run.validation.min { abs(Double($0.step) - mark) < abs(Double($1.step) - mark) }!
      return earlier.step < last.step ? last.recall - earlier.recall : nil
    }
    return changes.isEmpty ? nil : changes.reduce(0, +) / Double(changes.count)
  }

  func write() throws -> String {
    let reportDir = (plan.report as NSString).deletingPathExtension
    let plotDir = (reportDir as NSString).lastPathComponent
    try FileManager.default.createDirectory(atPath: reportDir, withIntermediateDirectories: true)
    var md: [String] = []
    let seeds = plan.seeds.map(String.init).joined(separator: ", ")
    // A comparison without CMAPKD (e.g. the multi-teacher runs alone) is titled by what it holds.
    let title =
      methods.contains { $0.0 == "cmapkd" } || !ablations.isEmpty
      ? "CMAPKD against the baselines" : methods.map { label($0.0, $0.1) }.joined(separator: ", ")
    md.append("# \(title): \(plan.seeds.count) seeds")
    md.append("")
    md.append("Generated by `cmapkd compare` on \(ISO8601DateFormatter().string(from: Date())). Regenerate with:")
    md.append("")
    md.append("```sh\n\(plan.command)\n```")
    md.append("")
    // `train.samples`: the students see a prefix of the split the teacher was trained on.
    let scenes = base.data.scenes.train.count
    let trainingScenes =
      base.train.samples > 0
      ? "students on the first \(base.train.samples) of the teacher's \(scenes)" : "\(scenes)"
    md.append(
      "Embedded captioned-scenes benchmark (\(trainingScenes) training scenes, \(base.data.scenes.test.count) test scenes at \(base.data.scenes.imageSize) px). "
        + "Teacher \(base.teacher.preset ?? "?") (test mean recall \(String(format: "%.1f", 100 * teacherRecall))), student \(base.student.preset ?? "?"). "
        + "Every run: \(base.train.steps) steps of batch \(base.train.batchSize), the same data order per seed, one shared teacher and teacher-feature cache "
        + "(features rounded to the cache's dtype whether read or computed). Seeds \(seeds). Numbers are test-split percentages, mean ± sample std over seeds; "
        + "settings were not chosen on the test split.")
    md.append("")
    md += methodSection(plotDir: plotDir)
    if !ablations.isEmpty { md += ablationSection() }
    md += try curves(reportDir: reportDir, plotDir: plotDir)
    md += runTable()
    let text = md.joined(separator: "\n") + "\n"
    try AtomicFile.write(text, to: plan.report)
    return text
  }

  /// A method's display name, from its first run's saved config (how many teachers, which variant).
  func label(_ name: String, _ runs: [Comparison.Finished]) -> String {
    guard let run = runs.first else { return ReportBuilder.labels[name] ?? name }
    return ReportBuilder.label(method: name, config: "\(run.directory)/config.yaml")
  }

  func methodSection(plotDir: String) -> [String] {
    var md = ["## Methods", ""]
    md.append(
      "| Method | Seeds | Mean R | I→T R@1 | T→I R@1 | ZS top-1 | Hard-neg acc | Efficacy % | Val. Δ last fifth | Time / run |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    for (name, runs) in methods {
      let efficacy = MeanStd(Self.values(runs, MetricKey.meanRecall).map { 100 * $0 / teacherRecall })?.formatted(scale: 1) ?? "–"
      let change = Self.lastFifthChange(runs).map { String(format: "%+.1f", 100 * $0) } ?? "–"
      let time = MeanStd(runs.map(\.results.wallTimeSeconds))?.formatted(scale: 1, decimals: 0) ?? "–"
      md.append(
        "| \(label(name, runs)) | \(runs.count) | \(Self.cell(runs, MetricKey.meanRecall)) | \(Self.cell(runs, MetricKey.i2tR1)) | "
          + "\(Self.cell(runs, MetricKey.t2iR1)) | \(Self.cell(runs, MetricKey.zeroShotTop1)) | \(Self.cell(runs, MetricKey.hardNegativeAccuracy)) | "
          + "\(efficacy) | \(change) | \(time) s |")
    }
    md.append("")
    md.append(
      "Val. Δ last fifth: validation mean recall (during-training evaluation) at the last step minus at 80 % of the steps, in points, mean over seeds; near 0 means the students had converged. Time / run: wall seconds including the final evaluation.")
    md.append("")
    let cmapkd = methods.first { $0.0 == "cmapkd" }?.1 ?? []
    let baselines = methods.filter { $0.0 != "cmapkd" && $0.0 != "none" && !$0.1.isEmpty }
    if cmapkd.count > 1,
      let best = baselines.max(by: {
        (MeanStd(Self.values($0.1, MetricKey.meanRecall))?.mean ?? -1) < (MeanStd(Self.values($1.1, MetricKey.meanRecall))?.mean ?? -1)
      })
    {
      let a = Self.values(cmapkd, MetricKey.meanRecall), b = Self.values(best.1, MetricKey.meanRecall)
      let (ma, mb) = (MeanStd(a)!, MeanStd(b)!)
      let delta = 100 * (ma.mean - mb.mean)
      let sigma = 100 * max(ma.std ?? 0, mb.std ?? 0)
      md.append("### CMAPKD against the best baseline (\(label(best.0, best.1)))")
      md.append("")
      var line = String(format: "Mean recall %.2f vs %.2f: Δ = %+.2f points", 100 * ma.mean, 100 * mb.mean, delta)
      if sigma > 0 { line += String(format: ", %.1fσ (σ = the larger seed std, %.2f)", delta / sigma, sigma) }
      if let test = WelchTest(a, b) {
        line += String(format: "; Welch t = %.2f, df = %.1f, two-sided p = %.3f", test.t, test.degreesOfFreedom, test.p)
      }
      md.append(line + ".")
      let goal = sigma > 0 && delta > 2 * sigma && 100 * ma.mean / teacherRecall >= 90
      md.append("")
      md.append(
        "Goal (ahead of every baseline by more than 2σ, efficacy ≥ 90 %): **\(goal ? "reached" : "not reached")** "
          + String(format: "(efficacy %.1f %%).", 100 * ma.mean / teacherRecall))
      md.append("")
    }
    return md
  }

  func ablationSection() -> [String] {
    var md = ["## Ablations", ""]
    md.append("| Variant | Seeds | Mean R | Δ vs full (same seeds) | T→I R@1 | I→T R@1 | Val. Δ last fifth | Time / run |")
    md.append("|---|---|---|---|---|---|---|---|")
    let fullRuns = ablations.first { $0.0 == "full" }?.1 ?? []
    for (variant, runs) in ablations {
      let mean = MeanStd(Self.values(runs, MetricKey.meanRecall))?.mean
      // Against the full method over the seeds this variant has: a one-seed variant is
      // compared with the full method's run of that seed, not with its 3-seed mean.
      let seeds = Set(runs.map(\.results.seed))
      let full = MeanStd(Self.values(fullRuns.filter { seeds.contains($0.results.seed) }, MetricKey.meanRecall))?.mean
      let delta = zip2(mean, full).map { String(format: "%+.1f", 100 * ($0 - $1)) } ?? "–"
      let change = Self.lastFifthChange(runs).map { String(format: "%+.1f", 100 * $0) } ?? "–"
      let time = MeanStd(runs.map(\.results.wallTimeSeconds))?.formatted(scale: 1, decimals: 0) ?? "–"
      md.append(
        "| \(variant) | \(runs.count) | \(Self.cell(runs, MetricKey.meanRecall)) | \(delta) | \(Self.cell(runs, MetricKey.t2iR1)) | "
          + "\(Self.cell(runs, MetricKey.i2tR1)) | \(change) | \(time) s |")
    }
    md.append("")
    return md
  }

  /// Validation recall over training (mean over seeds at each evaluated step), and the
  /// first CMAPKD seed's level weights, entropies and per-sample spread.
  func curves(reportDir: String, plotDir: String) throws -> [String] {
    var md = ["## Curves", ""]
    func meanCurve(_ runs: [Comparison.Finished]) -> [(x: Double, y: Double)] {
      var byStep: [Int: [Double]] = [:]
      for run in runs { for p in run.validation { byStep[p.step, default: []].append(p.recall) } }
      return byStep.keys.sorted().map { (x: Double($0), y: 100 * byStep[$0]!.reduce(0, +) / Double(byStep[$0]!.count)) }
    }
    let series = (methods + ablations.filter { $0.0 != "full" }.map { ("ablation: \($0.0)", $0.1) }).compactMap {
      name, runs -> ChartSeries? in
      let points = meanCurve(runs)
      return points.isEmpty ? nil : ChartSeries(name: label(name, runs), points: points, dashed: name.hasPrefix("ablation"))
    }
    if !series.isEmpty {
      try LineChart(title: "Validation mean recall during training (mean over seeds)", yLabel: "mean recall (%)", series: series)
        .write(to: "\(reportDir)/recall.svg")
      md.append("![validation recall](\(plotDir)/recall.svg)")
      md.append("")
    }
    if let run = methods.first(where: { $0.0 == "cmapkd" })?.1.first,
      FileManager.default.fileExists(atPath: "\(run.directory)/metrics.jsonl")
    {
      let log = try MetricsLog.read("\(run.directory)/metrics.jsonl")
      var weights: [ChartSeries] = []
      for (i, level) in ["P2", "P3", "P4", "P5", "L1", "L2", "L3", "L4"].enumerated() {
        var s = ChartSeries.metric("alsn/\(level)", in: log, name: level, dashed: i >= 4)
        s.color = LineChart.palette[i % 4]
        weights.append(s)
      }
      try LineChart(title: "CMAPKD (seed \(run.results.seed)): mean ALSN level weights", yLabel: "mean weight", series: weights)
        .write(to: "\(reportDir)/level_weights.svg")
      let spread = ["spread_vision", "spread_language", "spread_coupling", "entropy_vision", "entropy_language"].map {
        (key: String) in ChartSeries.metric("alsn/\(key)", in: log, name: key)
      }
      try LineChart(
        title: "CMAPKD (seed \(run.results.seed)): weight spread across samples (std) and mean entropy (nats)", yLabel: "",
        series: spread
      ).write(to: "\(reportDir)/selection.svg")
      md.append("![level weights](\(plotDir)/level_weights.svg)")
      md.append("")
      md.append("![spread and entropy](\(plotDir)/selection.svg)")
      md.append("")
      let last = log.last { $0.values["alsn/entropy_vision"] != nil }
      if let v = last?.values {
        md.append(
          String(
            format:
              "At the last logged step: entropy vision %.3f, language %.3f, coupling %.3f nats (uniform: ln 4 = 1.386, ln 16 = 2.773); spread across samples vision %.4f, language %.4f, coupling %.4f; levels computed %.0f of 8.",
            v["alsn/entropy_vision"] ?? .nan, v["alsn/entropy_language"] ?? .nan, v["alsn/entropy_coupling"] ?? .nan,
            v["alsn/spread_vision"] ?? .nan, v["alsn/spread_language"] ?? .nan, v["alsn/spread_coupling"] ?? .nan,
            v["alsn/levels_computed"] ?? .nan))
        md.append("")
      }
    }
    return md
  }

  func runTable() -> [String] {
    var md = ["## Every run", "", "| Run | Seed | Mean R | Wall time (s) | Folder |", "|---|---|---|---|---|"]
    var total = 0.0
    for (name, runs) in methods + ablations.filter({ $0.0 != "full" || !methods.contains { $0.0 == "cmapkd" } }) {
      for run in runs {
        total += run.results.wallTimeSeconds
        md.append(
          String(
            format: "| %@ | %d | %.1f | %.0f | `%@` |", name, run.results.seed, 100 * (run.results.metrics[MetricKey.meanRecall] ?? .nan),
            run.results.wallTimeSeconds, run.directory))
      }
    }
    md.append("")
    md.append(String(format: "Total training and evaluation wall time: %.0f s (%.1f h).", total, total / 3600))
    return md
  }
}

private func zip2(_ a: Double?, _ b: Double?) -> (Double, Double)? {
  guard let a, let b else { return nil }
  return (a, b)
}
