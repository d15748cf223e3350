import Data
import Experiments
import Foundation
import Models
import Reports
import TestSupport
import Testing
import Tokenizers
import Torch

/// Runs go through the `cmapkd` executable, as a user runs them. Serialized: they share the
/// machine's cores and one trained tiny teacher.
@Suite(.serialized) final class RunTests {
  /// The folders this test made. Swift Testing makes one instance per test, so `deinit` runs
  /// when the test ends: each test's runs (up to 0.5 GB of checkpoints) go before the next.
  private var folders: [String] = []
  deinit { folders.forEach(Scratch.remove) }

  func temporaryFolder(_ name: String) throws -> String {
    let path = try Scratch.folder(name)
    folders.append(path)
    return path
  }

  /// A tiny teacher trained once per test that needs it.
  func prepared(_ name: String) throws -> (root: String, configPath: String) {
    let root = try temporaryFolder(name)
    let config = tinyExperiment(root: root)
    try write(try ConfigLoader.yaml(config), to: "\(root)/config.yaml")
    let teacher = try runCLI(["train-teacher", "--config", "\(root)/config.yaml", "--set", "run_dir=\(root)/teacher"])
    #expect(teacher.status == 0, "\(teacher.stderr)")
    return (root, "\(root)/config.yaml")
  }

  /// Metrics records without wall-clock fields: what must match between runs.
  /// The cache's hit rate is left out: the uninterrupted run fills the teacher cache that the
  /// other one then reads, which changes where features come from but not their values.
  func records(_ run: String) throws -> [MetricRecord] {
    try MetricsLog.read("\(run)/metrics.jsonl").map {
      MetricRecord(step: $0.step, epoch: $0.epoch, values: $0.values.filter { !$0.key.hasPrefix("cache/") })
    }
  }

  @Test func killedAndResumedRunEndsExactlyLikeAnUninterruptedOne() throws {
    let (root, config) = try prepared("resume")
    // DSMD carries optimizer state, a queue and a balancer across steps: all must survive the kill.
    let straight = try runCLI(["distill", "--config", config, "--method", "dsmd", "--set", "run_dir=\(root)/straight"])
    #expect(straight.status == 0, "\(straight.stderr)")

    // Killed mid-epoch (8 batches per epoch; checkpoints every 5 steps) once step 10 is saved
    // and step 12 logged: the steps after the checkpoint are logged again by the resumed run.
    let killedRun = "\(root)/killed"
    func lastLoggedStep() -> Int {
      let text = (try? String(contentsOfFile: "\(killedRun)/metrics.jsonl", encoding: .utf8)) ?? ""
      return text.split(separator: "\n").compactMap {
        (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["step"] as? Int
      }.max() ?? 0
    }
    let killed = try runCLI(["distill", "--config", config, "--method", "dsmd", "--set", "run_dir=\(killedRun)"]) {
      FileManager.default.fileExists(atPath: "\(killedRun)/checkpoints/step-0000010/meta.json") && lastLoggedStep() >= 12
    }
    #expect(
      !FileManager.default.fileExists(atPath: "\(killedRun)/checkpoints/step-0000015"),
      "killed after the step-15 checkpoint: the test no longer covers a logged tail past the checkpoint")
    #expect(killed.reason == .uncaughtSignal && killed.status == SIGKILL, "the run finished before it could be killed")
    #expect(!FileManager.default.fileExists(atPath: "\(killedRun)/results.json"))

    let resumed = try runCLI([
      "distill", "--config", config, "--method", "dsmd", "--set", "run_dir=\(killedRun)", "--resume", "latest",
    ])
    #expect(resumed.status == 0, "\(resumed.stderr)")
    #expect(resumed.stderr.contains("resumed dsmd from"), "\(resumed.stderr)")

    let a = try JSONCoding.decode(RunResults.self, file: "\(root)/straight/results.json")
    let b = try JSONCoding.decode(RunResults.self, file: "\(killedRun)/results.json")
    #expect(!a.metrics.isEmpty)
    // Quality metrics are identical; timings (images/s) are measurements, not results.
    #expect(a.metrics.filter { !$0.key.contains("per_second") } == b.metrics.filter { !$0.key.contains("per_second") })
    #expect(a.steps == b.steps)
    let ra = try records("\(root)/straight"), rb = try records(killedRun)
    #expect(ra.count == rb.count)
    #expect(ra == rb, "every logged loss and evaluation identical, step by step")

    // The report is built from these runs.
    let text = try ReportBuilder.write(runs: ["\(root)/teacher", "\(root)/straight"], to: "\(root)/report")
    #expect(text.contains("Teacher") && text.contains("DSMD"), "\(text)")
    let report = try String(contentsOfFile: "\(root)/report/report.md", encoding: .utf8)
    #expect(report.contains("| Teacher") && report.contains("DSMD"))
    #expect(FileManager.default.fileExists(atPath: "\(root)/report/loss.svg"))
    let events = try FileManager.default.contentsOfDirectory(atPath: "\(root)/straight/tensorboard")
    #expect(events.contains { $0.hasPrefix("events.out.tfevents.") })
    // TensorBoard: the resumed run's event files hold each (step, tag) once, as the straight run's do.
    func scalarSteps(_ run: String) throws -> [String] {
      let folder = "\(run)/tensorboard"
      return try FileManager.default.contentsOfDirectory(atPath: folder).sorted().flatMap { name in
        try TFRecord.read("\(folder)/\(name)").map(TensorBoardEvent.decode).flatMap { event in
          event.scalars.filter { !$0.tag.hasPrefix("cache/") }.map { "\(event.step) \($0.tag)" }
        }
      }
    }
    let (straightEvents, resumedEvents) = (try scalarSteps("\(root)/straight"), try scalarSteps(killedRun))
    #expect(Set(resumedEvents).count == resumedEvents.count, "a step logged twice to TensorBoard after the resume")
    #expect(Set(resumedEvents) == Set(straightEvents))
  }

  @Test func cmapkdWithGatingAndAFloat16CacheResumesExactly() throws {
    let (root, config) = try prepared("resume-cmapkd")
    // The ALSN's selector (its own optimizer, learning every K steps) and a float16 cache that
    // the uninterrupted run fills and the killed one reads back must give the same numbers.
    let common = [
      "--config", config, "--method", "cmapkd", "--set", "method.cmapkd.selection=gating", "--set", "cache.float16=true",
      "--set", "method.cmapkd.selector_interval=3",
    ]
    let straight = try runCLI(["distill"] + common + ["--set", "run_dir=\(root)/straight"])
    #expect(straight.status == 0, "\(straight.stderr)")
    let killedRun = "\(root)/killed"
    let killed = try runCLI(["distill"] + common + ["--set", "run_dir=\(killedRun)"]) {
      FileManager.default.fileExists(atPath: "\(killedRun)/checkpoints/step-0000010/meta.json")
    }
    #expect(killed.reason == .uncaughtSignal && killed.status == SIGKILL, "the run finished before it could be killed")
    let resumed = try runCLI(["distill"] + common + ["--set", "run_dir=\(killedRun)", "--resume", "latest"])
    #expect(resumed.status == 0, "\(resumed.stderr)")
    let a = try JSONCoding.decode(RunResults.self, file: "\(root)/straight/results.json")
    let b = try JSONCoding.decode(RunResults.self, file: "\(killedRun)/results.json")
    #expect(a.metrics.filter { !$0.key.contains("per_second") } == b.metrics.filter { !$0.key.contains("per_second") })
    #expect(try records("\(root)/straight") == records(killedRun), "every logged loss and evaluation identical, step by step")
  }

  @Test func aTeacherFromTrainTeacherIsReusedByCompareAndDemo() throws {
    // `cmapkd compare` and `cmapkd demo` reuse output_dir/teacher only when its recorded
    // settings match; without the record they trained it again, over the user's teacher.
    let (root, configPath) = try prepared("teacher-key")
    #expect(FileManager.default.fileExists(atPath: "\(root)/teacher/teacher-key.json"))
    let before = try String(contentsOfFile: "\(root)/teacher/results.json", encoding: .utf8)
    let config = try ConfigLoader.load(ExperimentConfig.self, files: [configPath])
    #expect(try DemoRunner.ensureTeacher(config) == "\(root)/teacher")
    let after = try String(contentsOfFile: "\(root)/teacher/results.json", encoding: .utf8)
    #expect(before == after, "the teacher was trained again")
  }

  @Test func multiTeacherRunsResumeExactlyAndExportWithoutProjectors() throws {
    let (root, config) = try prepared("multiteacher")
    // A second tiny teacher (another seed), listed under extra_teachers in an overlay.
    let second = try runCLI(["train-teacher", "--config", config, "--set", "run_dir=\(root)/teacher-b", "--set", "seed=1"])
    #expect(second.status == 0, "\(second.stderr)")
    try write("extra_teachers:\n  - preset: tiny\n    checkpoint: \(root)/teacher-b\n", to: "\(root)/extra.yaml")
    // Without extra_teachers the router says what to set; multiteacher runs as its own
    // single-teacher control (PHI-S fitted on the one teacher's sample).
    let alone = try runCLI(["distill", "--config", config, "--method", "router", "--set", "run_dir=\(root)/alone"])
    #expect(alone.status != 0 && alone.stderr.contains("extra_teachers"), "\(alone.stderr)")
    let control = try runCLI([
      "distill", "--config", config, "--method", "multiteacher", "--set", "run_dir=\(root)/control", "--set", "train.steps=4",
    ])
    #expect(control.status == 0 && control.stderr.contains("multiteacher: 1 teacher,"), "\(control.stdout)\n\(control.stderr)")
    // Reports name it from its saved config, so the control does not read as a two-teacher run.
    #expect(ReportBuilder.label(method: "multiteacher", config: "\(root)/control/config.yaml") == "Multi-teacher (1 teacher)")

    // The RL router: its policy, optimizer, baseline and last held-out loss survive a SIGKILL.
    let common = [
      "--config", config, "--config", "\(root)/extra.yaml", "--method", "router", "--set", "method.router.kind=rl",
      "--set", "method.multiteacher.standardize=ema",
    ]
    let straight = try runCLI(["distill"] + common + ["--set", "run_dir=\(root)/straight"])
    #expect(straight.status == 0, "\(straight.stderr)")
    #expect(straight.stderr.contains("router: 2 teachers"), "\(straight.stderr)")
    #expect(ReportBuilder.label(method: "router", config: "\(root)/straight/config.yaml") == "Router (2 teachers, RL)")
    let killedRun = "\(root)/killed"
    let killed = try runCLI(["distill"] + common + ["--set", "run_dir=\(killedRun)"]) {
      FileManager.default.fileExists(atPath: "\(killedRun)/checkpoints/step-0000010/meta.json")
    }
    #expect(killed.reason == .uncaughtSignal && killed.status == SIGKILL, "the run finished before it could be killed")
    let resumed = try runCLI(["distill"] + common + ["--set", "run_dir=\(killedRun)", "--resume", "latest"])
    #expect(resumed.status == 0, "\(resumed.stderr)")
    #expect(try records("\(root)/straight") == records(killedRun), "every logged loss and evaluation identical, step by step")
    #expect(try maxDifference("\(root)/straight", killedRun, groups: ["model", "head"]) == 0)
    let logged = try MetricsLog.read("\(root)/straight/metrics.jsonl").last { $0.values["router/reward"] != nil }
    #expect(logged != nil, "the RL router's reward is never logged")

    // multiteacher (PHI-S, teacher dropping): the projectors train but are not exported.
    let run = "\(root)/multiteacher"
    let trained = try runCLI([
      "distill", "--config", config, "--config", "\(root)/extra.yaml", "--method", "multiteacher", "--set", "run_dir=\(run)",
      "--set", "train.steps=3",
    ])
    #expect(trained.status == 0, "\(trained.stderr)")
    let checkpoint = try #require(RunCheckpoint.latest(in: "\(run)/checkpoints"))
    #expect(try checkpoint.tensors("head").keys.contains { $0.hasPrefix("projectors.1.") })
    let exported = try runCLI(["export", run, "--out", "\(root)/hf"])
    #expect(exported.status == 0, "\(exported.stderr)")
    let keys = try SafeTensors.load("\(root)/hf/model.safetensors").keys
    #expect(!keys.isEmpty && !keys.contains { $0.contains("projector") || $0.hasPrefix("head.") })
  }

  @Test func exportRoundTripGivesTheSameEmbeddingsAndTokens() throws {
    let (root, config) = try prepared("export")
    let run = "\(root)/cmapkd"
    let trained = try runCLI([
      "distill", "--config", config, "--method", "cmapkd", "--set", "run_dir=\(run)", "--set", "train.steps=3",
    ])
    #expect(trained.status == 0, "\(trained.stderr)")
    let hf = try runCLI(["export", run, "--out", "\(root)/hf"])
    #expect(hf.status == 0, "\(hf.stderr)")
    let oc = try runCLI(["export", run, "--format", "open_clip", "--out", "\(root)/oc"])
    #expect(oc.status == 0, "\(oc.stderr)")
    #expect(try runCLI(["export", run, "--format", "onnx"]).status == 2)

    let saved = try ConfigLoader.load(ExperimentConfig.self, files: ["\(run)/config.yaml"])
    let modelConfig = try RunSetup.modelConfig(saved.student, key: "student")
    let original = try RunSetup.loadModel(modelConfig, from: run, key: "run")
    let fromHF = try CLIPModel.load(huggingFace: "\(root)/hf")
    let fromOpenCLIP = try CLIPModel.load(
      openCLIP: "\(root)/oc/open_clip_model.safetensors", config: "\(root)/oc/open_clip_config.json")
    // Only the student: none of CMAPKD's training-time modules are in the exported weights.
    let keys = try SafeTensors.load("\(root)/hf/model.safetensors").keys
    #expect(!keys.contains { $0.contains("pyramid") || $0.contains("bridge") || $0.contains("alsn") || $0.hasPrefix("head.") })

    let tokenizer = try RunSetup.tokenizer(saved.data, model: modelConfig)
    let hfTokenizer = try CLIPTokenizer(
      vocabJSON: "\(root)/hf/vocab.json", merges: "\(root)/hf/merges.txt",
      contextLength: modelConfig.textConfig.maxPositionEmbeddings, padding: .zero)
    for caption in ["a red circle left of a blue square", "Two TINY triangles, above; café"] {
      #expect(try hfTokenizer.encode(caption) == tokenizer.encode(caption), "\(caption)")
    }
    try Torch.manualSeed(3)
    let image = modelConfig.visionConfig.imageSize
    let pixels = try Tensor.randn([2, 3, image, image])
    let context = modelConfig.textConfig.maxPositionEmbeddings
    var row = try tokenizer.encode("a red circle left of a blue square")
    row += [Int](repeating: 0, count: context - row.count)
    let ids = try Tensor(row.map(Int64.init), shape: [1, context])
    let mask = try ids.ne(0).to(.int64)
    for model in [original, fromHF, fromOpenCLIP] { model.eval() }
    for other in [fromHF, fromOpenCLIP] {
      #expect(try (other.encodeImage(pixels) - original.encodeImage(pixels)).abs().sum().item() == 0)
      #expect(try (other.encodeText(ids, attentionMask: mask) - original.encodeText(ids, attentionMask: mask)).abs().sum().item() == 0)
    }
    // Live (make check-live, or wherever the reference stack is installed): transformers and
    // open_clip load the exports and give our embeddings and token ids.
    guard referenceStackAvailable else { return }
    try SafeTensors.save(
      [
        "pixels": pixels, "ids": ids, "image": try original.encodeImage(pixels), "text": try original.encodeText(ids, attentionMask: mask),
      ], to: "\(root)/expected.safetensors")
    let report = try runPython(
      """
      import sys, json, torch, open_clip
      from transformers import CLIPModel, CLIPTokenizer
      from safetensors.torch import load_file
      hf, oc, expected = sys.argv[1:4]
      e = load_file(expected)
      m = CLIPModel.from_pretrained(hf).eval()
      o = open_clip.CLIP(**json.load(open(oc + "/open_clip_config.json"))).eval()
      o.load_state_dict(load_file(oc + "/open_clip_model.safetensors"))
      ids = e["ids"]
      hf_ids = CLIPTokenizer.from_pretrained(hf)("a red circle left of a blue square")["input_ids"]
      assert hf_ids == ids[0, :len(hf_ids)].tolist(), (hf_ids, ids)
      with torch.no_grad():
          for name, image, text in [
              ("transformers", m.get_image_features(pixel_values=e["pixels"]), m.get_text_features(input_ids=ids, attention_mask=(ids != 0).long())),
              ("open_clip", o.encode_image(e["pixels"]), o.encode_text(ids))]:
              image, text = getattr(image, "pooler_output", image), getattr(text, "pooler_output", text)
              print(name, (image - e["image"]).abs().max().item(), (text - e["text"]).abs().max().item())
      """, arguments: ["\(root)/hf", "\(root)/oc", "\(root)/expected.safetensors"])
    for line in report.split(separator: "\n") {
      let fields = line.split(separator: " ")
      #expect(fields.count == 3 && fields.dropFirst().allSatisfy { (Double($0) ?? 1) < 1e-4 }, "\(line)")
    }
    #expect(report.contains("transformers") && report.contains("open_clip"), "\(report)")
  }

  @Test func aHuggingFaceTeacherFolderIsEnoughOutsideTheCheckout() throws {
    let (root, config) = try prepared("hf-teacher")
    let exported = try runCLI(["export", "\(root)/teacher", "--out", "\(root)/hf-teacher"])
    #expect(exported.status == 0, "\(exported.stderr)")
    // From a folder with no .venv (so no open_clip vocabulary to fall back on) and a preset that
    // disagrees: the folder's config.json and vocab.json + merges.txt are what the run uses.
    let elsewhere = try temporaryFolder("elsewhere")
    let env = ProcessInfo.processInfo.environment
    try #require(env["CMAPKD_VOCABULARY"] == nil && env["CMAPKD_ROOT"] == nil)
    let run = try runCLI(
      [
        "distill", "--config", config, "--method", "kd", "--set", "teacher.checkpoint=\(root)/hf-teacher",
        "--set", "teacher.preset=vit-b-16", "--set", "run_dir=\(root)/from-hf", "--set", "train.steps=3",
      ], in: elsewhere)
    #expect(run.status == 0, "\(run.stderr)")
    #expect(FileManager.default.fileExists(atPath: "\(root)/from-hf/results.json"))
    // Without the tokenizer files there is nothing to tokenize with: the error says what to set.
    try FileManager.default.removeItem(atPath: "\(root)/hf-teacher/vocab.json")
    let missing = try runCLI(
      [
        "distill", "--config", config, "--method", "kd", "--set", "teacher.checkpoint=\(root)/hf-teacher",
        "--set", "run_dir=\(root)/no-vocab", "--set", "train.steps=3",
      ], in: elsewhere)
    #expect(missing.status != 0 && missing.stderr.contains("data.vocabulary") && missing.stderr.contains("vocab.json"), "\(missing.stderr)")
  }

  @Test func skipPolicyCoversDecodeErrorsOnTheLoaderWorkersAndIsReported() throws {
    let (root, config) = try prepared("skip")
    // A Karpathy JSON over JPEGs; one training image is truncated (its header reads, its data does not).
    let images = "\(root)/images"
    try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
    var entries: [String] = []
    let colours = ["red", "green", "blue", "yellow"]
    for i in 0..<24 {
      var pixels = [UInt8](repeating: 0, count: 32 * 32 * 3)
      for p in 0..<(32 * 32) { pixels[p * 3 + i % 3] = UInt8(40 + (i * 37 + p) % 200) }
      var bytes = try JPEG.encode(RGBImage(width: 32, height: 32, pixels: pixels))
      if i == 3 { bytes = Array(bytes.prefix(bytes.count / 3)) }
      try Data(bytes).write(to: URL(fileURLWithPath: "\(images)/\(i).jpg"))
      let split = i < 16 ? "train" : i < 20 ? "val" : "test"
      entries.append(#"{"filename": "\#(i).jpg", "split": "\#(split)", "sentences": [{"raw": "a \#(colours[i % 4]) picture number \#(i)"}]}"#)
    }
    try write(#"{"images": [\#(entries.joined(separator: ","))]}"#, to: "\(images)/dataset.json")
    let dataset = "data.dataset={format: karpathy, path: \(images)/dataset.json, error_policy: skip}"
    let common = ["distill", "--config", config, "--method", "none", "--set", dataset, "--set", "train.steps=8"]
    let run = try runCLI(common + ["--set", "run_dir=\(root)/skipping"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("training data: skipped") && run.stderr.contains("undecodableImage"), "\(run.stderr)")
    let results = try JSONCoding.decode(RunResults.self, file: "\(root)/skipping/results.json")
    #expect((results.skippedSamples?["undecodableImage"] ?? 0) >= 1, "\(String(describing: results.skippedSamples))")
    // Under the default policy the same file stops the run, naming it.
    let failing = try runCLI(
      ["distill", "--config", config, "--method", "none", "--set", "data.dataset={format: karpathy, path: \(images)/dataset.json}",
       "--set", "train.steps=8", "--set", "run_dir=\(root)/failing"])
    #expect(failing.status != 0 && failing.stderr.contains("3.jpg"), "\(failing.stderr)")
  }

  @Test func zeroShotOnAnImageFolderInEval() throws {
    let (root, config) = try prepared("zeroshot")
    let trained = try runCLI(["distill", "--config", config, "--method", "none", "--set", "run_dir=\(root)/run", "--set", "train.steps=2"])
    #expect(trained.status == 0, "\(trained.stderr)")
    // Three classes of solid-colour images.
    for (c, colour) in [(0, "red"), (1, "green"), (2, "blue")] {
      let folder = "\(root)/classes/\(colour)_square"
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      for i in 0..<2 {
        var pixels = [UInt8](repeating: 20, count: 32 * 32 * 3)
        for p in 0..<(32 * 32) { pixels[p * 3 + c] = UInt8(200 + i * 20) }
        try Data(try PNG.encode(RGBImage(width: 32, height: 32, pixels: pixels))).write(to: URL(fileURLWithPath: "\(folder)/\(i).png"))
      }
    }
    try write("a photo of a {}.\n{} on a plain background\n", to: "\(root)/templates.txt")
    let eval = try runCLI([
      "eval", "\(root)/run", "--set", "eval.zero_shot_dataset={path: \(root)/classes, templates: \(root)/templates.txt}",
    ])
    #expect(eval.status == 0, "\(eval.stderr)")
    #expect(eval.stdout.contains("zeroshot_top1") && eval.stdout.contains("zeroshot_top5"), "\(eval.stdout)")
    #expect(eval.stdout.contains("zeroshot_classes: 3"), "the folder's 3 classes, not the benchmark's set: \(eval.stdout)")
    try write("no placeholder\n", to: "\(root)/bad.txt")
    let bad = try runCLI(["eval", "\(root)/run", "--set", "eval.zero_shot_dataset={path: \(root)/classes, templates: \(root)/bad.txt}"])
    #expect(bad.status != 0 && bad.stderr.contains("bad.txt:1"), "\(bad.stderr)")
  }

  @Test func mixedPrecisionAndAccumulationRunEndToEnd() throws {
    let (root, config) = try prepared("precision")
    // bf16 autocast with two micro-batches of 4 per step of 8.
    let bf16 = try runCLI([
      "distill", "--config", config, "--method", "kd", "--set", "run_dir=\(root)/bf16", "--set", "precision=bf16",
      "--set", "train.accumulation_steps=2", "--set", "train.steps=6",
    ])
    #expect(bf16.status == 0, "\(bf16.stderr)")
    #expect(bf16.stderr.contains("device cpu (auto), precision bf16"), "\(bf16.stderr)")
    let losses = try records("\(root)/bf16").compactMap { $0.values["loss/total"] }
    #expect(losses.count == 6 && losses.allSatisfy(\.isFinite), "\(losses)")
    #expect(FileManager.default.fileExists(atPath: "\(root)/bf16/results.json"))

    // fp16 keeps a loss scale, logged and checkpointed.
    let fp16 = try runCLI([
      "distill", "--config", config, "--method", "none", "--set", "run_dir=\(root)/fp16", "--set", "precision=fp16",
      "--set", "train.steps=5",
    ])
    #expect(fp16.status == 0, "\(fp16.stderr)")
    #expect(try records("\(root)/fp16").contains { $0.values["amp/loss_scale"] != nil })

    // `name` names the run folder when run_dir is not given.
    let named = try runCLI([
      "distill", "--config", config, "--method", "none", "--set", "name=my-run", "--set", "train.steps=2",
    ])
    #expect(named.status == 0, "\(named.stderr)")
    #expect(FileManager.default.fileExists(atPath: "\(root)/my-run/results.json"))
    // The same command again would delete the finished run's checkpoints: it refuses, naming
    // the way out, and the run is intact; --overwrite trains over it.
    let again = try runCLI([
      "distill", "--config", config, "--method", "none", "--set", "name=my-run", "--set", "train.steps=2",
    ])
    #expect(again.status != 0 && again.stderr.contains("finished run") && again.stderr.contains("--overwrite"), "\(again.stderr)")
    #expect(!RunCheckpoint.stepFolders(in: "\(root)/my-run/checkpoints").isEmpty)
    let over = try runCLI([
      "distill", "--config", config, "--method", "none", "--set", "name=my-run", "--set", "train.steps=2", "--overwrite",
    ])
    #expect(over.status == 0, "\(over.stderr)")

    // Micro-batches must split the batch evenly; a GPU that is not there is named.
    let uneven = try runCLI([
      "distill", "--config", config, "--method", "kd", "--set", "run_dir=\(root)/uneven", "--set", "train.accumulation_steps=3",
    ])
    #expect(uneven.status != 0 && uneven.stderr.contains("train.accumulation_steps: 3 must divide"), "\(uneven.stderr)")
    if !Torch.cudaAvailable {
      let gpu = try runCLI(["distill", "--config", config, "--method", "kd", "--set", "run_dir=\(root)/gpu", "--set", "device=cuda:1"])
      #expect(gpu.status != 0 && gpu.stderr.contains("device: cuda:1"), "\(gpu.stderr)")
    }
  }

  @Test func studentsTrainOnAPrefixOfTheTrainingSplitWithTheFullSetsCache() throws {
    let (root, config) = try prepared("samples")
    let common = ["distill", "--config", config, "--method", "kd", "--set", "train.steps=2", "--set", "train.eval_every=0"]
    let full = try runCLI(common + ["--set", "run_dir=\(root)/full", "--set", "deterministic=true"])
    #expect(full.status == 0, "\(full.stderr)")
    #expect(full.stderr.contains("precision fp32, deterministic algorithms"), "\(full.stderr)")
    func cacheFolders() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: "\(root)/cache").sorted() }
    let before = try cacheFolders()
    #expect(before.count == 1, "\(before)")
    let subset = try runCLI(common + ["--set", "run_dir=\(root)/subset", "--set", "train.samples=16"])
    #expect(subset.status == 0, "\(subset.stderr)")
    #expect(subset.stderr.contains("training on the first 16 of 64 training samples"), "\(subset.stderr)")
    // The prefix is the full set's first samples: the same teacher-feature cache, not a new one.
    #expect(try cacheFolders() == before)
    let tooMany = try runCLI(common + ["--set", "run_dir=\(root)/too-many", "--set", "train.samples=65"])
    #expect(
      tooMany.status != 0 && tooMany.stderr.contains("train.samples: 65 is more than the training split's 64 samples"),
      "\(tooMany.stderr)")
  }

  @Test func twoDataParallelProcessesTrainLikeOneProcessOnTheWholeBatch() throws {
    let (root, config) = try prepared("data-parallel")
    // CMAPKD with its gating selector (per-sample credits by finite differences through the
    // towers' gather) learning every 2 steps: the hardest case for the global-batch rules.
    let common = [
      "--config", config, "--method", "cmapkd", "--set", "method.cmapkd.selection=gating",
      "--set", "method.cmapkd.selector_interval=2", "--set", "train.steps=6", "--set", "train.eval_every=0",
      "--set", "cache.enabled=false",
    ]
    let one = try runCLI(["distill"] + common + ["--set", "run_dir=\(root)/one"])
    #expect(one.status == 0, "\(one.stderr)")
    let two = try runCLI(["launch", "--nproc", "2", "distill"] + common + ["--set", "run_dir=\(root)/two"])
    #expect(two.status == 0, "\(two.stderr)")
    #expect(two.stderr.contains("2 processes (Gloo), batch 8 = 2 × 4"), "\(two.stderr)")
    let (a, b) = (try records("\(root)/one"), try records("\(root)/two"))
    #expect(a.count == b.count && a.count >= 6, "rank 0 alone logs, once per step")
    // The same global batch, loss and gradient: only the order of float sums differs. At step
    // 1 that is 1e-7; the gradient norm (≈ 1400 at step 1, from terms that largely cancel) then
    // drifts by rounding to ≈ 4e-4 relative at step 6 while the loss stays within 1e-6 (measured).
    // A wrong rule would be far off: a missing 1/W doubles the gradient; per-process negatives
    // change the step-1 loss by whole units.
    for (x, y) in zip(a, b) {
      for (key, tolerance) in [
        ("loss/total", 1e-5), ("grad_norm", x.step == 1 ? 1e-6 : 2e-3), ("selector/credit/L1", 2e-3), ("selector/credit/P3", 2e-3),
      ] {
        guard let u = x.values[key] else { continue }
        let v = try #require(y.values[key], "\(key) missing at step \(y.step)")
        #expect(abs(u - v) <= tolerance * max(1, abs(u)), "step \(x.step) \(key): one process \(u), two \(v)")
      }
    }
    #expect(a.contains { $0.values["selector/credit/L1"] != nil }, "the selector never learned: the test lost its point")
    // The student's weights agree to float rounding (measured 1.7e-6). The ALSN's do not to
    // 1e-5: its AdamW's first steps move each weight by ≈ lr·sign(gradient), so credits that
    // differ by rounding can move a near-zero weight either way; hence the uniform run below.
    #expect(try maxDifference("\(root)/one", "\(root)/two", groups: ["model"]) <= 1e-5)

    // Without a learned selector, every tensor of the last checkpoint agrees to 1e-5: student,
    // CMAPKD head and AdamW's moments.
    let uniform = common.map { $0 == "method.cmapkd.selection=gating" ? "method.cmapkd.selection=uniform" : $0 }
    let oneUniform = try runCLI(["distill"] + uniform + ["--set", "run_dir=\(root)/one-uniform"])
    let twoUniform = try runCLI(["launch", "--nproc", "2", "distill"] + uniform + ["--set", "run_dir=\(root)/two-uniform"])
    #expect(oneUniform.status == 0 && twoUniform.status == 0, "\(oneUniform.stderr)\n\(twoUniform.stderr)")
    #expect(
      try maxDifference("\(root)/one-uniform", "\(root)/two-uniform", groups: ["model", "head", "optimizer"]) <= 1e-5)
    // One log and one set of checkpoints: rank 0's.
    let files = try FileManager.default.subpathsOfDirectory(atPath: "\(root)/two")
    #expect(files.filter { $0.hasSuffix("metrics.jsonl") } == ["metrics.jsonl"], "\(files)")
    #expect(files.filter { $0.hasSuffix("model.safetensors") }.count == (try FileManager.default.contentsOfDirectory(
      atPath: "\(root)/one/checkpoints").filter { $0.hasPrefix("step-") }.count))
    // Rank 0 alone writes the results and checkpoints.
    let results = try JSONCoding.decode(RunResults.self, file: "\(root)/two/results.json")
    #expect(results.steps == 6)
    #expect(!two.stdout.isEmpty && two.stdout.components(separatedBy: "run: ").count == 2, "\(two.stdout)")

    // A batch that does not split over the processes is refused before training.
    let odd = try runCLI(["launch", "--nproc", "3", "distill"] + common + ["--set", "run_dir=\(root)/odd"])
    #expect(odd.status != 0 && odd.stderr.contains("must split evenly over 3 processes"), "\(odd.stderr)")
  }

  /// The largest absolute difference between two runs' newest checkpoints, over `groups`.
  func maxDifference(_ a: String, _ b: String, groups: [String], sameStep: Bool = true) throws -> Double {
    let x = try #require(RunCheckpoint.latest(in: "\(a)/checkpoints")), y = try #require(RunCheckpoint.latest(in: "\(b)/checkpoints"))
    if sameStep { #expect(x.meta.step == y.meta.step) }
    var worst = 0.0
    for group in groups {
      let (u, v) = (try x.tensors(group), try y.tensors(group))
      #expect(Set(u.keys) == Set(v.keys), "\(group): different tensors")
      for (name, t) in u where t.count > 0 && t.dtype.isFloatingPoint {
        let other = try #require(v[name])
        let difference = try (t.to(.float64) - other.to(.float64)).abs().amax().item()
        worst = max(worst, difference)
      }
    }
    return worst
  }

  @Test func anyMethodsStudentCanInheritTheTeachersWeights() throws {
    let (root, config) = try prepared("inherit")
    // The tiny student and teacher have one shape, so the inherited student is the teacher; at
    // learning rate 0 the first checkpoint still holds exactly what training started from.
    let frozen = ["--set", "optimizer.lr=0", "--set", "optimizer.min_lr=0", "--set", "train.steps=1", "--set", "train.eval_every=0"]
    for method in ["none", "clipkd"] {
      let run = try runCLI(
        ["distill", "--config", config, "--method", method, "--set", "method.inherit=true", "--set", "run_dir=\(root)/\(method)"]
          + frozen)
      #expect(run.status == 0, "\(method): \(run.stderr)")
      #expect(try maxDifference("\(root)/\(method)", "\(root)/teacher", groups: ["model"], sameStep: false) == 0, "\(method) did not start from the teacher")
    }
    // Without `method.inherit` the student starts from its own initialisation.
    let scratch = try runCLI(["distill", "--config", config, "--method", "none", "--set", "run_dir=\(root)/scratch"] + frozen)
    #expect(scratch.status == 0, "\(scratch.stderr)")
    #expect(try maxDifference("\(root)/scratch", "\(root)/teacher", groups: ["model"], sameStep: false) > 0)
  }

  @Test func aDataParallelJobKilledAndResumedEndsExactlyLikeAnUninterruptedOne() throws {
    let (root, config) = try prepared("data-parallel-resume")
    let common = ["--config", config, "--method", "dsmd", "--set", "cache.enabled=false"]
    let straight = try runCLI(["launch", "--nproc", "2", "distill"] + common + ["--set", "run_dir=\(root)/straight"])
    #expect(straight.status == 0, "\(straight.stderr)")
    // SIGKILL to the launcher itself: its workers must not outlive it (nor hold the port).
    let killedRun = "\(root)/killed"
    let killed = try runCLI(["launch", "--nproc", "2", "distill"] + common + ["--set", "run_dir=\(killedRun)"]) {
      FileManager.default.fileExists(atPath: "\(killedRun)/checkpoints/step-0000010/meta.json")
    }
    #expect(killed.reason == .uncaughtSignal && killed.status == SIGKILL, "the run finished before it could be killed")
    let resumed = try runCLI(
      ["launch", "--nproc", "2", "distill"] + common + ["--set", "run_dir=\(killedRun)", "--resume", "latest"])
    #expect(resumed.status == 0, "\(resumed.stderr)")
    #expect(resumed.stderr.contains("resumed dsmd from"), "\(resumed.stderr)")
    #expect(try records("\(root)/straight") == records(killedRun), "every logged loss and evaluation identical, step by step")
    #expect(try maxDifference("\(root)/straight", killedRun, groups: ["model", "optimizer"]) == 0)
  }

  @Test func aWorkerThatDiesStopsTheWholeDataParallelJob() throws {
    let (root, config) = try prepared("data-parallel-failure")
    let run = "\(root)/killed"
    var killedWorker = false
    // Once rank 0 has logged a step, SIGKILL rank 1 (found by its RANK and run folder).
    let job = try runCLI([
      "launch", "--nproc", "2", "distill", "--config", config, "--method", "kd", "--set", "run_dir=\(run)",
      "--set", "train.steps=400", "--set", "train.eval_every=0",
    ]) {
      guard !killedWorker, FileManager.default.fileExists(atPath: "\(run)/metrics.jsonl") else { return false }
      for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(entry),
          let command = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
          let environment = FileManager.default.contents(atPath: "/proc/\(entry)/environ"),
          String(decoding: command, as: UTF8.self).contains(run),
          String(decoding: environment, as: UTF8.self).split(separator: "\0").contains("RANK=1")
        else { continue }
        kill(pid, SIGKILL)
        killedWorker = true
      }
      return false
    }
    #expect(killedWorker, "rank 1 was never found to be killed: \(job.stderr)")
    #expect(job.status != 0, "the launcher reported success after a worker died")
    #expect(job.stderr.contains("worker 1 was killed by signal 9; stopped the other 1 worker(s)"), "\(job.stderr)")
    #expect(!FileManager.default.fileExists(atPath: "\(run)/results.json"))
  }

  @Test func badInputGivesClearErrorsAndUsageExitCodes() throws {
    let (root, config) = try prepared("errors")
    let missing = try runCLI(["distill", "--config", "\(root)/nope.yaml"])
    #expect(missing.status == 2 && missing.stderr.contains("config file not found: \(root)/nope.yaml"), "\(missing.stderr)")

    let method = try runCLI(["distill", "--config", config, "--method", "nosuch", "--set", "run_dir=\(root)/x"])
    #expect(method.status == 2 && method.stderr.contains("unknown method 'nosuch'"), "\(method.stderr)")

    let negatives = try runCLI(["distill", "--config", config, "--set", "train.hard_negatives=true", "--set", "run_dir=\(root)/z"])
    #expect(
      negatives.status == 2 && negatives.stderr.contains("train.hard_negatives: only teacher training"), "\(negatives.stderr)")

    try write("name: x\ntrain:\n  stepz: 3\n", to: "\(root)/bad.yaml")
    let unknown = try runCLI(["distill", "--config", config, "--config", "\(root)/bad.yaml"])
    #expect(unknown.status == 2 && unknown.stderr.contains("bad.yaml:3: unknown key 'train.stepz'"), "\(unknown.stderr)")

    let option = try runCLI(["distill", "--no-such-option"])
    #expect(option.status == 2)
    let help = try runCLI(["distill", "--help"])
    #expect(help.status == 0 && help.stdout.contains("Example"))

    // A teacher checkpoint of another architecture.
    let arch = try runCLI([
      "distill", "--config", config, "--method", "kd", "--set", "teacher.preset=scene-student", "--set", "run_dir=\(root)/y",
    ])
    #expect(arch.status != 0 && arch.stderr.contains("different architecture"), "\(arch.stderr)")

    // An empty data folder.
    let empty = try temporaryFolder("empty")
    let data = try runCLI([
      "distill", "--config", config, "--method", "none", "--set", "data.dataset={format: folder, path: \(empty)}", "--set",
      "run_dir=\(root)/z",
    ])
    #expect(data.status != 0 && data.stderr.contains(empty), "\(data.stderr)")
  }

  @Test func nonFiniteLossStopsWithADiagnosticAndKeepsCheckpoints() throws {
    let (root, config) = try prepared("nonfinite")
    let run = "\(root)/blowup"
    // A sane first run leaves checkpoints; resuming it with an absurd learning rate must diverge.
    let first = try runCLI([
      "distill", "--config", config, "--method", "none", "--set", "run_dir=\(run)", "--set", "train.steps=10",
    ])
    #expect(first.status == 0, "\(first.stderr)")
    let before = RunCheckpoint.stepFolders(in: "\(run)/checkpoints")
    let digests = try before.map { try RunCheckpoint.open($0).meta.files }
    let diverged = try runCLI([
      "distill", "--config", config, "--method", "none", "--set", "run_dir=\(run)", "--set", "train.steps=20", "--set",
      "optimizer.lr=1e30",
      "--set", "optimizer.clip_norm=0", "--resume", "latest",
    ])
    #expect(diverged.status == 1, "\(diverged.stderr)")
    #expect(diverged.stderr.contains("not finite") && diverged.stderr.contains("task/clip"), "\(diverged.stderr)")
    let diagnostics = try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("diagnostic-step-") }
    #expect(diagnostics.count == 1)
    // Checkpoints written before the divergence verify and are unchanged.
    let after = RunCheckpoint.stepFolders(in: "\(run)/checkpoints")
    for (folder, files) in zip(before, digests) where after.contains(folder) {
      #expect(try RunCheckpoint.open(folder).meta.files == files)
    }
  }
}

@Suite struct CheckpointTests {
  func save(_ folder: String, step: Int, value: Float) throws -> RunCheckpoint {
    let meta = CheckpointMeta(
      step: step, position: .init(epoch: 0, batch: step), architecture: "{}", method: "none", seed: 0, bestValue: nil,
      bestStep: nil,
      metrics: [:], files: [:], savedAt: "now")
    return try RunCheckpoint.save(in: folder, meta: meta, tensors: ["model": ["w": try Tensor([value, value], shape: [2])]])
  }

  @Test func roundTripAndCorruptionDetected() throws {
    let folder = try temporaryFolder("ckpt")
    _ = try save(folder, step: 1, value: 1)
    let second = try save(folder, step: 2, value: 2)
    #expect(try RunCheckpoint.open(second.directory).tensors("model")["w"]?.doubles() == [2, 2])
    #expect(RunCheckpoint.latest(in: folder)?.meta.step == 2)

    // Flip one byte of the newest checkpoint's weights: it is refused and the older one is used.
    let weights = "\(second.directory)/model.safetensors"
    var bytes = try Data(contentsOf: URL(fileURLWithPath: weights))
    bytes[bytes.count - 1] ^= 0xFF
    try bytes.write(to: URL(fileURLWithPath: weights))
    #expect(throws: CheckpointError.self) { try RunCheckpoint.open(second.directory) }
    var skipped: [String] = []
    #expect(RunCheckpoint.latest(in: folder) { dir, _ in skipped.append(dir) }?.meta.step == 1)
    #expect(skipped == [second.directory])
    // A folder without meta.json (as a crash mid-write would leave under a temporary name) is not a checkpoint.
    #expect(throws: CheckpointError.self) { try RunCheckpoint.open(folder) }
  }

  @Test func pruneKeepsLastAndBest() throws {
    let folder = try temporaryFolder("prune")
    for step in 1...5 { _ = try save(folder, step: step, value: Float(step)) }
    RunCheckpoint.prune(in: folder, keepLast: 2, best: "step-0000002")
    let names = RunCheckpoint.stepFolders(in: folder).map { ($0 as NSString).lastPathComponent }
    #expect(names == ["step-0000005", "step-0000004", "step-0000002"])
  }
}
