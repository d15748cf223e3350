import Data
import Distillation
import Foundation
import Reports
import SafeFiles

/// `cmapkd demo`: the whole comparison on the embedded benchmark — train the teacher (reused
/// when an earlier demo trained it with the same settings), distill a student with every method
/// under the same step budget, evaluate, and write the report.
public enum DemoRunner {
  public static func run(quick: Bool, methods: [String]?, overrides: [String]) throws {
    let started = Date()
    let files = quick ? ["configs/demo.yaml", "configs/demo-quick.yaml"] : ["configs/demo.yaml"]
    let base = try ConfigLoader.load(ExperimentConfig.self, files: files, overrides: overrides)
    let root = base.outputDir
    let chosen = methods ?? Methods.singleTeacherNames
    for name in chosen where !Methods.names.contains(name) {
      throw ConfigError("--methods: unknown method '\(name)'; choose from \(Methods.names.joined(separator: ", "))")
    }
    say("== CMAPKD demo\(quick ? " (quick)" : ""): \(chosen.count) methods, \(base.train.steps) steps each, output in \(root)")

    // 1. The benchmark (generated on demand; this prints what a bag-of-words reader achieves).
    let test = try ScenesDataset(base.data.scenes, split: .test)
    let bow = BagOfWordsBaseline.textToImage(test)
    say(
      "== data: \(base.data.scenes.train.count) train / \(base.data.scenes.test.count) test scenes at \(base.data.scenes.imageSize) px; bag-of-words text→image R@1 \(String(format: "%.3f", bow.recallAt1))"
    )

    // 2. The teacher, reused when its settings are unchanged.
    try ensureTeacher(base)

    // 3. One student per method, same budget, same seed, same data order; the teacher cache
    // fills on the first method that needs the teacher and serves the rest.
    var runs = ["\(root)/teacher"]
    for name in chosen {
      var methodFiles = files
      if ConfigLoader.exists("configs/methods/\(name).yaml") {
        methodFiles.append("configs/methods/\(name).yaml")
      }
      var config = try ConfigLoader.load(
        ExperimentConfig.self, files: methodFiles,
        overrides: overrides + ["method.name=\(name)", "teacher.checkpoint=\(root)/teacher"])
      config.name = name
      config.runDir = "\(root)/\(name)"
      say("== student: \(name)")
      let outcome = try Trainer(config: config, kind: .student).run()
      say(String(format: "   %@: %.1f s, test mean recall %.3f", name, outcome.seconds, outcome.results["mean_recall"] ?? .nan))
      runs.append("\(root)/\(name)")
    }

    // 4. The report, with the teacher set against the bag-of-words reader on the metric that
    // reader has (text→image recall on the same test split).
    let teacher = try JSONCoding.decode(RunResults.self, file: "\(root)/teacher/results.json")
    let versus = String(
      format:
        "Text→image R@1 / R@5 / R@10 on the test split: teacher %.1f / %.1f / %.1f; bag-of-words reader %.1f / %.1f / %.1f.",
      100 * (teacher.metrics[MetricKey.t2iR1] ?? .nan), 100 * (teacher.metrics[MetricKey.t2iR5] ?? .nan),
      100 * (teacher.metrics[MetricKey.t2iR10] ?? .nan), 100 * bow.recallAt1, 100 * bow.recallAt5, 100 * bow.recallAt10)
    // Where the teacher's text→image hits come from: finding the caption's contrast set (words)
    // and then the right member of it (binding and relations), which the reader can only guess.
    let binding = String(
      format:
        "Teacher text→image, split: top image in the caption's contrast set %.1f %%, right member of the set %.1f %% (chance %.0f %%).",
      100 * (teacher.metrics[MetricKey.t2iSetR1] ?? .nan), 100 * (teacher.metrics[MetricKey.t2iWithinSetR1] ?? .nan),
      100 / Double(base.data.scenes.test.contrastSetSize))
    let table = try ReportBuilder.write(
      runs: runs, to: root, title: "CMAPKD demo\(quick ? " (quick)" : "")",
      notes: [
        "Embedded captioned-scenes benchmark. \(versus) The bag-of-words reader ranks images by the true words of each scene. \(binding)",
        "Every student: \(base.student.preset ?? "student"), \(base.train.steps) steps of batch \(base.train.batchSize), seed \(base.seed).",
        String(format: "Demo wall time: %.0f s.", Date().timeIntervalSince(started)),
      ])
    print(table)
    print(versus)
    print(binding)
    print(String(format: "demo finished in %.1f min", Date().timeIntervalSince(started) / 60))
  }

  /// Trains the teacher into `<output_dir>/teacher`, or reuses the one an earlier demo or
  /// comparison trained there with the same settings; returns its folder.
  @discardableResult
  public static func ensureTeacher(_ base: ExperimentConfig) throws -> String {
    let root = base.outputDir
    var teacherConfig = base
    teacherConfig.runDir = "\(root)/teacher"
    teacherConfig.name = "teacher"
    let key = try teacherKey(teacherConfig)
    let keyPath = "\(root)/teacher/teacher-key.json"
    if FileManager.default.fileExists(atPath: "\(root)/teacher/results.json"),
      let saved = try? String(contentsOfFile: keyPath, encoding: .utf8), (try? sameTeacherKey(saved, key)) == true
    {
      say("== teacher: reusing \(root)/teacher (trained earlier with the same settings; delete the folder to retrain)")
    } else {
      say("== teacher: training \(base.teacher.preset ?? base.teacher.config ?? "") for \(base.teacherTraining.steps) steps")
      _ = try Trainer(config: teacherConfig, kind: .teacher).run()
      try AtomicFile.write(key, to: keyPath)
    }
    return "\(root)/teacher"
  }

  struct TeacherKey: Codable {
    var seed: Int
    var teacher: ModelSection
    var data: DataSection
    var training: TrainSection
    var optimizer: OptimizerSection
  }

  /// Whether a saved teacher key names the same teacher as `key`. The saved one is decoded and
  /// re-encoded first: a config key added since it was written then takes its default, so a
  /// newer program does not retrain (and overwrite) a teacher whose settings did not change.
  public static func sameTeacherKey(_ saved: String, _ key: String) throws -> Bool {
    let decoded = try JSONDecoder().decode(TeacherKey.self, from: Data(saved.utf8))
    return String(decoding: try JSONCoding.encode(decoded), as: UTF8.self) == key
  }

  /// What the teacher's weights depend on; a re-run with the same key reuses them.
  /// Writes `teacher-key.json` into a trained teacher's folder (what `ensureTeacher` compares).
  public static func recordTeacherKey(_ config: ExperimentConfig, in directory: String) throws {
    try AtomicFile.write(try teacherKey(config), to: "\(directory)/teacher-key.json")
  }

  public static func teacherKey(_ config: ExperimentConfig) throws -> String {
    typealias Key = TeacherKey
    var teacher = config.teacher
    teacher.checkpoint = nil
    return String(
      decoding: try JSONCoding.encode(
        Key(
          seed: config.seed, teacher: teacher, data: config.data, training: config.teacherTraining,
          optimizer: config.teacherOptimizer)),
      as: UTF8.self)
  }

  static func say(_ message: String) { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
}

/// `cmapkd ablate`: CMAPKD with one component removed at a time (configs/ablations/*.yaml),
/// over seeds, then the ablation table.
public enum Ablations {
  public static let variants = [
    "full", "no_visual_pyramid", "no_language_hierarchy", "no_adaptive_selection", "no_cross_modal_alignment", "one_stage",
    "seed_ladder",
  ]

  public static func run(files: [String], overrides: [String], seeds: [Int], only: [String]?) throws {
    let chosen = only ?? variants
    for variant in chosen where !ConfigLoader.exists("configs/ablations/\(variant).yaml") {
      throw ConfigError("ablation '\(variant)': configs/ablations/\(variant).yaml not found")
    }
    let base = try ConfigLoader.load(ExperimentConfig.self, files: files, overrides: overrides)
    let root = "\(base.outputDir)/ablations"
    var runs: [String] = []
    for variant in chosen {
      for seed in seeds {
        var config = try ConfigLoader.load(
          ExperimentConfig.self, files: files + ["configs/methods/cmapkd.yaml", "configs/ablations/\(variant).yaml"],
          overrides: overrides + ["method.name=cmapkd", "seed=\(seed)"])
        config.name = "\(variant)-seed\(seed)"
        config.runDir = "\(root)/\(variant)-seed\(seed)"
        FileHandle.standardError.write(Data("== ablation \(variant), seed \(seed)\n".utf8))
        _ = try Trainer(config: config, kind: .student, variant: variant).run()
        runs.append(config.runDir!)
      }
    }
    print(try ReportBuilder.write(runs: runs, to: root, title: "CMAPKD ablations"))
  }
}
