import Experiments
import Foundation
import TestSupport
import Testing

@Suite struct ConfigTests {
  func load(_ yaml: String, overrides: [String] = []) throws -> ExperimentConfig {
    let folder = try temporaryFolder("config")
    try write(yaml, to: "\(folder)/c.yaml")
    return try ConfigLoader.load(ExperimentConfig.self, files: ["\(folder)/c.yaml"], overrides: overrides)
  }

  func message(_ body: () throws -> Void) -> String {
    do {
      try body()
      return "no error"
    } catch { return "\(error)" }
  }

  @Test func defaultsAndValues() throws {
    let c = try load("name: x\ntrain:\n  steps: 42\n")
    #expect(c.name == "x")
    #expect(c.train.steps == 42)
    #expect(c.train.batchSize == TrainSection().batchSize)
    #expect(c.method.name == "cmapkd")
  }

  @Test("configs/methods/*.yaml only document the defaults built into the program (runs from any directory get them)")
  func methodFilesMatchTheBuiltInDefaults() throws {
    let folder = "\(packageRoot)/configs/methods"
    let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".yaml") }
    #expect(files.count >= 7)
    for file in files {
      let method = String(file.dropLast(5))
      let fromFile = try ConfigLoader.load(ExperimentConfig.self, files: ["\(folder)/\(file)"])
      let builtIn = try ConfigLoader.load(ExperimentConfig.self, files: [], overrides: ["method.name=\(method)"])
      #expect(fromFile == builtIn, "\(file) differs from the program's defaults")
    }
  }

  @Test("every file under configs/ is built into the program, as it is on disk (else: python3 scripts/embed_configs.py)")
  func builtInConfigsMatchTheFiles() throws {
    let root = URL(fileURLWithPath: packageRoot)
    var onDisk: [String: String] = [:]
    let enumerator = try #require(FileManager.default.enumerator(atPath: "\(packageRoot)/configs"))
    for case let path as String in enumerator where path.hasSuffix(".yaml") {
      onDisk["configs/\(path)"] = try String(contentsOf: root.appendingPathComponent("configs/\(path)"), encoding: .utf8)
    }
    #expect(Set(onDisk.keys) == Set(BuiltInConfigs.files.keys), "run python3 scripts/embed_configs.py")
    for (path, text) in onDisk {
      // The generator drops trailing newlines; everything else must be identical.
      #expect(
        BuiltInConfigs.files[path] == text.replacingOccurrences(of: "\\n+$", with: "", options: .regularExpression),
        "\(path) changed: run python3 scripts/embed_configs.py")
    }
  }

  @Test("outside the checkout, configs/… paths resolve to the built-in copies")
  func configsFromAnyDirectory() throws {
    let elsewhere = try temporaryFolder("elsewhere")
    let shown = try runCLI(["config", "--config", "configs/demo.yaml", "--config", "configs/methods/dsmd.yaml"], in: elsewhere)
    #expect(shown.status == 0, "\(shown.stderr)")
    #expect(shown.stdout.contains("scene-teacher") && shown.stdout.contains("queue_size: 8192"), "\(shown.stdout)")
    let missing = try runCLI(["config", "--config", "configs/nope.yaml"], in: elsewhere)
    #expect(missing.status == 2 && missing.stderr.contains("config file not found: configs/nope.yaml"), "\(missing.stderr)")
  }

  @Test func unknownKeyNamesKeyFileAndLine() {
    let text = message { _ = try load("name: x\ntrain:\n  steps: 4\n  stepz: 5\n") }
    #expect(text.contains("c.yaml:4"), "\(text)")
    #expect(text.contains("unknown key 'train.stepz'"), "\(text)")
    #expect(text.contains("steps"), "lists the known keys: \(text)")
  }

  @Test func unknownTopLevelAndNestedMethodKeys() {
    #expect(message { _ = try load("nmae: x\n") }.contains("unknown key 'nmae'"))
    #expect(message { _ = try load("method:\n  kd:\n    temprature: 2\n") }.contains("unknown key 'method.kd.temprature'"))
  }

  @Test func wrongTypeNamesKey() {
    let text = message { _ = try load("train:\n  steps: many\n") }
    #expect(text.contains("c.yaml:2"), "\(text)")
    #expect(text.contains("'train.steps'"), "\(text)")
    #expect(text.contains("wrong type"), "\(text)")
  }

  @Test func overridesWinAndAreNamedInErrors() throws {
    let c = try load("train:\n  steps: 4\n", overrides: ["train.steps=9", "method.name=kd", "optimizer.lr=0.01"])
    #expect(c.train.steps == 9)
    #expect(c.method.name == "kd")
    #expect(c.optimizer.learningRate == 0.01)
    let text = message { _ = try load("name: x\n", overrides: ["train.stepz=3"]) }
    #expect(text.contains("--set train.stepz"), "\(text)")
    #expect(message { _ = try load("name: x\n", overrides: ["train.steps"]) }.contains("expected key.path=value"))
  }

  @Test func laterFilesWin() throws {
    let folder = try temporaryFolder("layers")
    try write("train:\n  steps: 4\n  batch_size: 16\n", to: "\(folder)/a.yaml")
    try write("train:\n  steps: 8\n", to: "\(folder)/b.yaml")
    let c = try ConfigLoader.load(ExperimentConfig.self, files: ["\(folder)/a.yaml", "\(folder)/b.yaml"])
    #expect(c.train.steps == 8)
    #expect(c.train.batchSize == 16)
  }

  @Test func missingFileAndBadYAML() {
    #expect(
      message { _ = try ConfigLoader.load(ExperimentConfig.self, files: ["/nonexistent/x.yaml"]) }.contains(
        "config file not found: /nonexistent/x.yaml"))
    let text = message { _ = try load("train: [1, 2\n") }
    #expect(text.contains("c.yaml") && text.contains("invalid YAML"), "\(text)")
  }

  @Test func resolvedConfigRoundTrips() throws {
    let c = try load("name: rt\nmethod:\n  name: dsmd\n")
    let folder = try temporaryFolder("rt")
    try write(try ConfigLoader.yaml(c), to: "\(folder)/resolved.yaml")
    var again = try ConfigLoader.load(ExperimentConfig.self, files: ["\(folder)/resolved.yaml"])
    // YAML floats carry 15 significant digits (4/3 comes back as 1.33333333333333): a saved
    // config is a fixed point of save → load, equal to the original up to that rounding.
    #expect(try ConfigLoader.yaml(again) == (try ConfigLoader.yaml(c)))
    #expect(zip(again.data.augmentation.ratio, c.data.augmentation.ratio).allSatisfy { abs($0 - $1) < 1e-12 })
    again.data.augmentation.ratio = c.data.augmentation.ratio
    #expect(again == c)
  }

  @Test func shippedConfigsLoad() throws {
    let root = TestSupportRoot.path
    let methods = try FileManager.default.contentsOfDirectory(atPath: "\(root)/configs/methods").filter { $0.hasSuffix(".yaml") }
    #expect(methods.count >= 7)
    for file in methods {
      let c = try ConfigLoader.load(
        ExperimentConfig.self, files: ["\(root)/configs/demo.yaml", "\(root)/configs/methods/\(file)"])
      #expect(c.method.name == String(file.dropLast(5)))
    }
    for extra in ["demo-quick.yaml"] {
      _ = try ConfigLoader.load(ExperimentConfig.self, files: ["\(root)/configs/demo.yaml", "\(root)/configs/\(extra)"])
    }
    let ablations = (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/configs/ablations")) ?? []
    for file in ablations where file.hasSuffix(".yaml") {
      _ = try ConfigLoader.load(
        ExperimentConfig.self,
        files: ["\(root)/configs/demo.yaml", "\(root)/configs/methods/cmapkd.yaml", "\(root)/configs/ablations/\(file)"])
    }
  }
}

enum TestSupportRoot {
  static var path: String { packageRoot }
}
