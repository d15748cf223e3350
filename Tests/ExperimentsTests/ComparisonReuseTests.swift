import Evaluation
import Experiments
import Foundation
import TestSupport
import Testing
import Torch

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

  @Test("the demo teacher is reused when only config keys added since it was trained are missing from its key")
  func teacherKeyTolerance() throws {
    let config = ExperimentConfig()
    let key = try DemoRunner.teacherKey(config)
    #expect(try DemoRunner.sameTeacherKey(key, key))
    // A key written before `accumulation_steps` existed: the field is simply absent.
    var object = try #require(try JSONSerialization.jsonObject(with: Data(key.utf8)) as? [String: Any])
    var training = try #require(object["training"] as? [String: Any])
    #expect(training.removeValue(forKey: "accumulation_steps") != nil, "the key no longer has accumulation_steps")
    object["training"] = training
    let older = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    #expect(try DemoRunner.sameTeacherKey(older, key))
    // A real change is still a different teacher.
    var changed = config
    changed.teacherTraining.steps += 1
    #expect(try !DemoRunner.sameTeacherKey(key, DemoRunner.teacherKey(changed)))
  }

  @Test("a run saved with other settings is refused, naming the key; name and folder may differ")
  func reuse() throws {
    let dir = try temporaryFolder("reuse")
    defer { Scratch.remove(dir) }
    var config = tinyExperiment(root: dir)
    config.name = "old-name"
    config.runDir = "\(dir)/somewhere"
    try ConfigLoader.yaml(config).write(toFile: "\(dir)/config.yaml", atomically: true, encoding: .utf8)

    var same = config
    (same.name, same.runDir) = ("new-name", "\(dir)/elsewhere")
    try Comparison.requireSameSettings(same, savedIn: dir)

    // A run saved before `deterministic` and `samples` existed trains as their defaults do.
    let saved = try String(contentsOfFile: "\(dir)/config.yaml", encoding: .utf8)
    let older = saved.split(separator: "\n", omittingEmptySubsequences: false)
      .filter { !$0.hasPrefix("deterministic:") && !$0.hasPrefix("  samples:") }.joined(separator: "\n")
    #expect(older != saved)
    try older.write(toFile: "\(dir)/config.yaml", atomically: true, encoding: .utf8)
    try Comparison.requireSameSettings(same, savedIn: dir)

    var other = config
    other.seed = config.seed + 1
    let error = #expect(throws: ConfigError.self) { try Comparison.requireSameSettings(other, savedIn: dir) }
    let message = error?.description ?? ""
    #expect(message.contains("seed: \(config.seed) → \(config.seed + 1)"), "\(message)")
  }
}

@Suite("results.json")
struct ResultsFileTests {
  @Test("the evaluation is a nested object; files that hold it as a JSON string still read")
  func nestedEvaluation() throws {
    let inner =
      #"{"retrieval":{"image_to_text":{"r1":0.5,"r5":0.75,"r10":1},"text_to_image":{"r1":0.25,"r5":0.5,"r10":0.75},"#
      + #""mean_recall":0.625,"images":4,"captions":8}}"#
    func results(_ evaluation: String) throws -> RunResults {
      let text = #"{"kind":"student","method":"kd","seed":0,"steps":3,"wall_time_seconds":1.5,"metrics":{"mean_recall":0.5},"evaluation":"#
        + evaluation + "}"
      return try JSONDecoder().decode(RunResults.self, from: Data(text.utf8))
    }
    let nested = try results(inner)
    let old = try results(String(decoding: try JSONEncoder().encode(inner), as: UTF8.self))  // a JSON string
    #expect(nested.evaluation?.retrieval?.meanRecall == 0.625 && nested == old)
    let written = String(decoding: try JSONCoding.encode(nested), as: UTF8.self)
    #expect(written.contains(#""evaluation" : {"#), "\(written)")
    #expect(try JSONDecoder().decode(RunResults.self, from: Data(written.utf8)) == nested)
  }
}

@Suite("non-finite weights and gradients are named")
struct NonFiniteTests {
  @Test("the names of tensors holding an inf or NaN, in values or in gradients")
  func names() throws {
    let fine = try Tensor([1, 2] as [Float]).requiresGrad(true)
    let infinite = try Tensor([1, Float.infinity] as [Float]).requiresGrad(true)
    let nan = try Tensor([Float.nan] as [Float]).requiresGrad(true)
    let named = [("student.a", fine), ("head.b", infinite), ("head.alsn.c", nan)]
    #expect(try Trainer.nonFiniteNames(named, gradients: false) == ["head.b", "head.alsn.c"])
    #expect(try Trainer.nonFiniteNames(named, gradients: true).isEmpty)  // no gradients yet
    try (fine * Double.infinity).sum().backward()
    try (nan * 1.0).sum().backward()
    #expect(try Trainer.nonFiniteNames(named, gradients: true) == ["student.a"])
  }
}
