import Experiments
import Foundation
import Testing

@Suite("cmapkd compare reuses a finished run only when its settings are the planned ones")
struct ComparisonReuseTests {
  @Test("setting differences name the dotted key, the old and the new value")
  func differences() {
    let saved = "seed: 0\nmethod:\n  cmapkd:\n    lambdas:\n      embedding: 0e+0\n  splits:\n  - train\n"
    let planned = "seed: 0\nmethod:\n  cmapkd:\n    lambdas:\n      embedding: 2e+3\n  splits:\n  - train\n  - val\n"
    #expect(
      Comparison.settingDifferences(saved, planned) == [
        "method.cmapkd.lambdas.embedding: 0e+0 → 2e+3", "method.splits[1]: absent → val",
      ])
    #expect(Comparison.settingDifferences(saved, saved).isEmpty)
  }

  @Test("a run saved with other settings is refused, naming the key; name and folder may differ")
  func reuse() throws {
    let dir = try temporaryFolder("reuse")
    var config = tinyExperiment(root: dir)
    config.name = "old-name"
    config.runDir = "\(dir)/somewhere"
    try ConfigLoader.yaml(config).write(toFile: "\(dir)/config.yaml", atomically: true, encoding: .utf8)

    var same = config
    (same.name, same.runDir) = ("new-name", "\(dir)/elsewhere")
    try Comparison.requireSameSettings(same, savedIn: dir)

    var other = config
    other.seed = config.seed + 1
    let error = #expect(throws: ConfigError.self) { try Comparison.requireSameSettings(other, savedIn: dir) }
    let message = error?.description ?? ""
    #expect(message.contains("seed: \(config.seed) → \(config.seed + 1)"), "\(message)")
  }
}
