import ArgumentParser
import Distillation
import Experiments
import Foundation

/// The `cmapkd` command: every subcommand reads YAML configs (`--config`, repeatable, later
/// files win) with `--set key.path=value` overrides.
///
/// Exit codes: 0 success, 1 failure while running, 2 bad usage (unknown option, bad config).
@main
struct CMAPKDCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cmapkd",
    abstract: "Cross-Modal Adaptive Pyramid Knowledge Distillation for CLIP-style models.",
    discussion: """
      Examples:
        cmapkd demo                                   # the whole comparison on the embedded benchmark
        cmapkd demo --quick                           # a 3-minute smoke test
        cmapkd train-teacher --config configs/demo.yaml
        cmapkd distill --config configs/demo.yaml --method kd --set teacher.checkpoint=runs/demo/teacher
        cmapkd eval runs/demo/cmapkd
        cmapkd report runs/demo/teacher runs/demo/cmapkd runs/demo/kd --out runs/demo
        cmapkd launch --nproc 2 distill --config configs/demo.yaml --method cmapkd   # data-parallel
      """,
    subcommands: [
      DataCommand.self, ShowConfig.self, TrainTeacher.self, Distill.self, Eval.self, ExportCommand.self, Ablate.self,
      Compare.self, Report.self, Demo.self, Bench.self, Launch.self,
    ])

  static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      let code = exitCode(for: error)
      if code == .success { exit(withError: error) }  // --help, --version
      if code == .validationFailure {  // unknown option, missing argument, failed validate()
        FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
        Foundation.exit(2)
      }
      if let exit = error as? ExitCode { Foundation.exit(exit.rawValue) }
      if let failure = error as? Launcher.Failure {
        FileHandle.standardError.write(Data("error: \(failure)\n".utf8))
        Foundation.exit(failure.status)
      }
      // A data-parallel worker names itself: the launcher's output interleaves every worker's.
      let rank = ProcessInfo.processInfo.environment["WORLD_SIZE"].flatMap(Int.init).map { $0 > 1 } == true
        ? ProcessInfo.processInfo.environment["RANK"].map { " (rank \($0))" } ?? "" : ""
      FileHandle.standardError.write(Data("error\(rank): \(error)\n".utf8))
      // A bad config (missing file, unknown key, wrong type, unknown method) is bad usage.
      Foundation.exit(error is ConfigError ? 2 : 1)
    }
  }
}

/// `--config` and `--set`, shared by every command that reads a config.
struct ConfigOptions: ParsableArguments {
  @Option(name: .long, help: "A YAML config; repeat to layer several (later files win).")
  var config: [String] = []

  @Option(name: .customLong("set"), help: "Override one key, e.g. --set train.steps=100 (repeatable).")
  var overrides: [String] = []

  func load(defaults: [String] = []) throws -> ExperimentConfig {
    try ConfigLoader.load(ExperimentConfig.self, files: config.isEmpty ? defaults : config, overrides: overrides)
  }
}

struct DataCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "data", abstract: "Generate or inspect datasets.",
    discussion: """
      Examples:
        cmapkd data inspect --config configs/demo.yaml
        cmapkd data generate --config configs/demo.yaml --split test --out data/scenes-test
      """,
    subcommands: [Inspect.self, Generate.self])

  struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print split sizes, sample captions and the bag-of-words retrieval baseline.")
    @OptionGroup var options: ConfigOptions
    func run() throws { try DataTools.inspect(try options.load(defaults: ["configs/demo.yaml"])) }
  }

  struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Write a split of the embedded benchmark to disk (PNG images + Karpathy-style JSON).")
    @OptionGroup var options: ConfigOptions
    @Option(help: "train, val or test.") var split = "test"
    @Option(help: "Output folder.") var out: String
    func run() throws { try DataTools.export(try options.load(defaults: ["configs/demo.yaml"]), split: split, to: out) }
  }
}

struct ShowConfig: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "config", abstract: "Print the resolved config (every key, defaults filled in) as YAML.",
    discussion: """
      Examples:
        cmapkd config                                   # the defaults
        cmapkd config --config configs/demo.yaml --config configs/methods/kd.yaml --set train.steps=100
      """)
  @OptionGroup var options: ConfigOptions
  func run() throws { print(try ConfigLoader.yaml(try options.load()), terminator: "") }
}

struct ResumeOption: ParsableArguments {
  @Option(help: "Resume from a checkpoint: 'latest' (the newest valid one in the run folder).")
  var resume: String?
  @Flag(help: "Start over in a run folder that holds a finished run (its checkpoints are deleted).")
  var overwrite = false

  func validate() throws {
    if let resume, resume != "latest" { throw ValidationError("--resume takes 'latest'") }
    if resume != nil, overwrite { throw ValidationError("--resume and --overwrite exclude each other") }
  }

  /// A fresh run deletes the folder's checkpoints as it starts: a finished run (its results.json)
  /// is not thrown away unless asked, since a trained teacher takes minutes to hours to rebuild.
  func checkFresh(runDir: String) throws {
    guard resume == nil, !overwrite, FileManager.default.fileExists(atPath: "\(runDir)/results.json") else { return }
    throw ValidationError(
      "\(runDir) holds a finished run (results.json): pass --overwrite to train over it (its checkpoints are deleted), "
        + "--resume latest to continue it, or choose another folder (--set run_dir=… or --set name=…)")
  }
}

struct TrainTeacher: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train-teacher", abstract: "Train the teacher on the CLIP loss.",
    discussion: """
      The run folder is output_dir/name (override with --set run_dir=…).
      Example:
        cmapkd train-teacher --config configs/demo.yaml --set teacher_training.steps=2000
      """)
  @OptionGroup var options: ConfigOptions
  @OptionGroup var resume: ResumeOption
  func run() throws {
    var config = try options.load(defaults: ["configs/demo.yaml"])
    if config.runDir == nil { config.runDir = "\(config.outputDir)/teacher" }
    try resume.checkFresh(runDir: config.runDir!)
    let group = try Launcher.groupFromEnvironment()
    let outcome = try Trainer(config: config, kind: .teacher, group: group).run(resume: resume.resume != nil)
    if (group?.rank ?? 0) == 0 {
      // The settings it was trained with: `cmapkd demo` and `cmapkd compare` reuse a teacher in
      // output_dir/teacher only when they match, and would otherwise train it again over it.
      try DemoRunner.recordTeacherKey(config, in: outcome.directory)
      Console.printOutcome(outcome)
    }
  }
}

struct Distill: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Distill a student from a trained teacher with one method.",
    discussion: """
      Methods: \(Methods.names.joined(separator: ", ")) (configs/methods/<name>.yaml holds each one's
      settings; \(Methods.multiTeacherNames.sorted().joined(separator: " and ")) also need `extra_teachers`, see configs/multiteacher.yaml).
      The run goes to <output_dir>/<name> (<output_dir>/<method> when `name` is not set), or `run_dir`.
      Example:
        cmapkd distill --config configs/demo.yaml --method cmapkd --set teacher.checkpoint=runs/demo/teacher
      """)
  @OptionGroup var options: ConfigOptions
  @OptionGroup var resume: ResumeOption
  @Option(help: "The method (overrides method.name; its configs/methods/<name>.yaml is layered in when it exists).")
  var method: String?

  func run() throws {
    var files = options.config.isEmpty ? ["configs/demo.yaml"] : options.config
    if let method, ConfigLoader.exists("configs/methods/\(method).yaml") {
      files.append("configs/methods/\(method).yaml")
    }
    var config = try ConfigLoader.load(
      ExperimentConfig.self, files: files, overrides: options.overrides + (method.map { ["method.name=\($0)"] } ?? []))
    // `name` names the run folder; left at its default, the method does.
    if config.name == ExperimentConfig().name { config.name = config.method.name }
    if config.runDir == nil { config.runDir = "\(config.outputDir)/\(config.name)" }
    try resume.checkFresh(runDir: config.runDir!)
    let group = try Launcher.groupFromEnvironment()
    let outcome = try Trainer(config: config, kind: .student, group: group).run(resume: resume.resume != nil)
    if (group?.rank ?? 0) == 0 { Console.printOutcome(outcome) }
  }
}

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate a run's (or a Hugging Face folder's) weights on the test split.",
    discussion: """
      Example:
        cmapkd eval runs/demo/cmapkd            # the run's best checkpoint, with its saved config
        cmapkd eval path/to/hf-clip --config configs/demo.yaml --set student.preset=vit-b-32
      """)
  @Argument(help: "A run folder, a checkpoint folder or a Hugging Face model folder.") var checkpoint: String
  @OptionGroup var options: ConfigOptions
  @Flag(help: "Evaluate it as the teacher (uses the teacher section of the config).") var teacher = false
  func run() throws {
    let savedConfig = "\(checkpoint)/config.yaml"
    let config = try options.load(
      defaults: FileManager.default.fileExists(atPath: savedConfig) ? [savedConfig] : ["configs/demo.yaml"])
    let results = try Evaluate.checkpoint(checkpoint, config: config, asTeacher: teacher)
    Console.printMetrics(results)
  }
}

struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Write a run's student as a Hugging Face or open_clip model, with its tokenizer.",
    discussion: """
      The run's best checkpoint (else its latest); the method's training-time modules (adapters,
      bridge, ALSN, projectors) are left out.
      Examples:
        cmapkd export runs/demo/cmapkd                       # runs/demo/cmapkd/export-hf
        cmapkd export runs/demo/cmapkd --format open_clip --out exported/student
      Then in Python: transformers.CLIPModel.from_pretrained(DIR), CLIPTokenizer.from_pretrained(DIR).
      """)
  @Argument(help: "A finished (or checkpointed) run folder.") var runFolder: String
  @Option(help: "hf or open_clip.") var format = "hf"
  @Option(help: "The folder to write (default: RUN/export-FORMAT).") var out: String?
  func run() throws {
    guard let chosen = Export.Format(rawValue: format) else {
      throw ValidationError("--format must be hf or open_clip, not '\(format)'")
    }
    let folder = try Export.run(runFolder, format: chosen, out: out)
    print("exported \(runFolder) as \(chosen.rawValue) to \(folder)")
  }
}

struct Ablate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run the CMAPKD ablations (configs/ablations/*.yaml) over seeds and write the ablation report.",
    discussion: """
      Example:
        cmapkd ablate --config configs/demo.yaml --seeds 0,1,2 --set teacher.checkpoint=runs/demo/teacher
      """)
  @OptionGroup var options: ConfigOptions
  @Option(help: "Comma-separated seeds.") var seeds = "0"
  @Option(help: "Comma-separated ablation names (default: every file in configs/ablations).") var only: String?
  func run() throws {
    let seedList = try seeds.split(separator: ",").map { s -> Int in
      guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else {
        throw ValidationError("--seeds: '\(s)' is not an integer")
      }
      return v
    }
    try Ablations.run(
      files: options.config.isEmpty ? ["configs/demo.yaml"] : options.config, overrides: options.overrides, seeds: seedList,
      only: only.map { $0.split(separator: ",").map(String.init) })
  }
}

struct Compare: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Every method and every ablation over seeds from one teacher and one cache; writes docs/results.md.",
    discussion: """
      Finished runs are reused and killed ones resume, so the command can be stopped and run again.
      Examples:
        cmapkd compare --config configs/demo.yaml --config configs/compare.yaml --seeds 0,1,2 --part methods
        cmapkd compare --config configs/demo.yaml --config configs/compare.yaml --part ablations
        cmapkd compare --config configs/demo.yaml --config configs/compare.yaml --report-only
      """)
  @OptionGroup var options: ConfigOptions
  @Option(help: "Comma-separated seeds.") var seeds = "0,1,2"
  @Option(help: "methods, ablations or all.") var part = "all"
  @Option(help: "Comma-separated methods (default: all).") var methods: String?
  @Option(help: "Comma-separated ablations (default: every file in configs/ablations).") var ablations: String?
  @Option(help: "Folder for the runs (default: <output_dir>/compare).") var root: String?
  @Option(help: "The report to write.") var out = "docs/results.md"
  @Flag(help: "Only rewrite the report from finished runs.") var reportOnly = false

  func validate() throws {
    guard ["methods", "ablations", "all"].contains(part) else {
      throw ValidationError("--part must be methods, ablations or all, not '\(part)'")
    }
  }

  func run() throws {
    let seedList = try seeds.split(separator: ",").map { s -> Int in
      guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--seeds: '\(s)' is not an integer") }
      return v
    }
    func list(_ s: String?) -> [String]? { s.map { $0.split(separator: ",").map(String.init) } }
    let files = options.config.isEmpty ? ["configs/demo.yaml", "configs/compare.yaml"] : options.config
    var plan = Comparison.Plan(
      files: files, overrides: options.overrides, seeds: seedList,
      methods: part == "ablations" ? (methods == nil ? ["cmapkd"] : list(methods)!) : list(methods) ?? Comparison.allMethods,
      ablations: part == "methods" ? [] : list(ablations) ?? Ablations.variants, root: root, report: out,
      command: (["cmapkd"] + CommandLine.arguments.dropFirst().map { $0.contains(" ") ? "'\($0)'" : $0 }).joined(separator: " "))
    plan.reportOnly = reportOnly
    try Comparison.run(plan)
  }
}

struct Report: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write report.md (main table, ablation table, plots) from finished runs.",
    discussion: """
      Example:
        cmapkd report runs/demo/teacher runs/demo/none runs/demo/cmapkd --out runs/demo
      """)
  @Argument(help: "Run folders (each with results.json); the teacher's is found by its kind.") var runs: [String]
  @Option(help: "Where report.md and the plots go.") var out = "."
  func run() throws {
    let text = try ReportBuilder.write(runs: runs, to: out)
    print(text)
  }
}

struct Demo: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Generate the benchmark, train the teacher, distill with every method, evaluate and report.",
    discussion: """
      Writes runs/demo (or runs/demo-quick): one folder per run and report.md. The teacher is
      reused on a re-run when its config is unchanged.
      Examples:
        cmapkd demo
        cmapkd demo --quick
        cmapkd demo --methods none,cmapkd --set train.steps=300
      """)
  @Flag(help: "Tiny sizes and budgets: a smoke test in about 3 minutes.") var quick = false
  @Option(help: "Comma-separated methods (default: all).") var methods: String?
  @Option(name: .customLong("set"), help: "Override one key of every run's config (repeatable).") var overrides: [String] = []
  func run() throws {
    try DemoRunner.run(quick: quick, methods: methods.map { $0.split(separator: ",").map(String.init) }, overrides: overrides)
  }
}

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Time the configured teacher and student: latency at batch 1, throughput at batch 64, speed-up.",
    discussion: """
      Step-time benchmarks against PyTorch eager live in bench/ (make bench, make bench-distill).
      Example:
        cmapkd bench --config configs/demo.yaml
      """)
  @OptionGroup var options: ConfigOptions
  func run() throws { try Evaluate.bench(try options.load(defaults: ["configs/demo.yaml"])) }
}

struct Launch: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run a training subcommand data-parallel in N local processes (c10d, Gloo).",
    discussion: """
      Each worker gets torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
      MASTER_PORT) and loads its rows of every batch; train.batch_size is the batch over all
      workers. Rank 0 alone writes logs, checkpoints and results. If a worker fails, the others
      are stopped and launch exits with the failed worker's status.
      Examples:
        cmapkd launch --nproc 2 distill --config configs/demo.yaml --method cmapkd
        cmapkd launch --nproc 4 train-teacher --config configs/demo.yaml --set device=cuda
      """)
  @Option(help: "Worker processes to start on this machine.")
  var nproc: Int = 2
  @Option(help: "Rank 0's rendezvous port (default: a free one).")
  var masterPort: Int?
  @Argument(parsing: .captureForPassthrough, help: "The subcommand and its options (train-teacher or distill).")
  var command: [String] = []

  func validate() throws {
    guard nproc >= 1 else { throw ValidationError("--nproc must be at least 1") }
    guard let first = command.first else { throw ValidationError("name the subcommand to run, e.g. distill --config …") }
    guard ["distill", "train-teacher"].contains(first) else {
      throw ValidationError("launch runs distill or train-teacher, not '\(first)'")
    }
  }

  func run() throws {
    try Launcher.run(
      processes: nproc, arguments: command, port: masterPort,
      log: { FileHandle.standardError.write(Data("\($0)\n".utf8)) })
  }
}
