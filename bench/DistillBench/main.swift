// Distillation benchmark: one CMAPKD training step (teacher features, student forward,
// pyramids, adapters, bridge, ALSN weights, the seven λ-weighted losses, backward, AdamW over
// student + head) at the scene benchmark's sizes (Presets.sceneTeacher / sceneStudent, their
// image size and text length, batch 64).
//
//   Every mode takes --adapter linear|mlp (the level adapters; default the config's, linear).
//
//   DistillBench cache [--batch 64] [--rounds 10] [--steps 3] [--warmup 2] [--threads 2] [--quick] [--out bench/out]
//       the teacher computed live (TeacherFeatures.compute) vs read from a warm TeacherCache,
//       rounds alternated; then the cost of one `gating` selector update (per-sample look-ahead
//       credits) and of one held-out evaluation; a no-distillation step against the cached
//       CMAPKD step with the selector amortised (every selector_interval steps); and a step with four unweighted levels
//       computed anyway vs skipped. Prints medians and ratios; writes <out>/distill_cache.json.
//   DistillBench profile [--batch 64] [--rounds 15] [--threads 2]
//       phase times of a no-distillation and a cached CMAPKD step, each term's cost, the selector by S and H.
//   DistillBench operators [--batch 64] [--rounds 10] [--top 30] [--threads 2] [--shapes]
//       the ATen operators of both steps under LibTorch's profiler, by CMAPKD's extra self time
//       (--shapes: each operator's calls told apart by their input shapes).
//   DistillBench credits [--batch 64] [--rounds 5] [--train-steps 30] [--threads 2]
//       the selector's credit estimators: time, and finite differences against the exact credits.
//   DistillBench export --out DIR
//       writes the benchmark's teacher and student (the presets, CLIP's training initialisation,
//       seed 0) as Hugging Face folders DIR/teacher and DIR/student, for bench/distill_step.py.
//   DistillBench worker --weights DIR [--threads N]
//       the Swift side of bench/distill_step.py (Swift vs PyTorch eager). DIR holds student/ and
//       teacher/ (Hugging Face CLIP folders), head.safetensors and batch.safetensors. Protocol on
//       stdin/stdout, one command per line:
//         steps N → runs N timed steps (teacher live); prints "times t1 … tN" (seconds), "loss L" (last step)
//         quit
//
// The ALSN runs in eval mode (no dropout) so that neither side draws random numbers and the
// first-step losses of Swift and PyTorch can be compared.
import Distillation
import Foundation
import Models
import Pyramid
import Torch
import TorchNN
import TorchOptim

/// Prints a protocol line and flushes at once: the driver waits on each line.
func send(_ line: String) {
  FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("DistillBench: \(message)\n".utf8))
  exit(1)
}

func option(_ name: String) -> String? {
  let args = CommandLine.arguments
  guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
  return args[i + 1]
}

func intOption(_ name: String, _ fallback: Int) -> Int {
  guard let text = option(name) else { return fallback }
  guard let value = Int(text), value > 0 else { fail("\(name) needs a positive integer, got '\(text)'") }
  return value
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
  let start = DispatchTime.now().uptimeNanoseconds
  try body()
  return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func median(_ values: [Double]) -> Double {
  let s = values.sorted()
  return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// The 1-, 5- and 15-minute load averages: the machine is shared, so say how busy it was.
func loadAverage() -> String {
  (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

/// Student, teacher, CMAPKD head and the optimizer of one benchmark run.
final class DistillStep {
  let student: CLIPModel
  let teacher: CLIPModel
  let head: CMAPKDHead
  var cmapkd: CMAPKD
  let optimizer: AdamW
  /// Autocast dtype of the forward passes (nil: float32) and their device.
  var autocast: DType?
  var device = Device.cpu

  init(student: CLIPModel, teacher: CLIPModel, head: CMAPKDHead) throws {
    self.student = student
    self.teacher = teacher
    self.head = head
    try teacher.freeze()
    teacher.eval()
    student.train()
    head.train()
    head.alsn.eval()
    cmapkd = try CMAPKD(benchConfig(), teacher: teacher)
    optimizer = try AdamW(student.parameters() + head.parameters(), learningRate: 1e-4, weightDecay: 0.01)
  }

  func teacherFeatures(_ batch: DistillBatch) throws -> TeacherFeatures {
    try Torch.autocast(device, dtype: autocast) {
      try TeacherFeatures.compute(
        teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.attentionMask, pyramid: cmapkd.config.pyramid)
    }
  }

  /// Loss, backward and AdamW step given the teacher's features; returns the loss.
  func train(_ batch: DistillBatch, teacher features: TeacherFeatures) throws -> Double {
    let step = try Torch.autocast(device, dtype: autocast) {
      try cmapkd.step(
        student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids,
        attentionMask: batch.attentionMask, stage: .fine)
    }
    try step.total.backward()
    try optimizer.step()
    try optimizer.zeroGrad()
    return try step.total.item()
  }
}

/// The CMAPKD settings benchmarked: the shipped defaults (`CMAPKDConfig()`, which
/// configs/methods/cmapkd.yaml repeats) with `gating` selection, changed by
///   --lambdas name=value,…  (intra_vision, intra_language, align, pyramid, relation, layer_relation, task, embedding)
///   --embedding-loss fd|unified   --selector-interval K   --selector-samples S   --selector-heldout H
///   --selector-credit finite_difference|double_backward
func benchConfig() -> CMAPKDConfig {
  var config = CMAPKDConfig()
  config.selection = .gating
  if let text = option("--embedding-loss") {
    guard let loss = EmbeddingLoss(rawValue: text) else { fail("--embedding-loss: fd or unified, not \(text)") }
    config.embeddingLoss = loss
  }
  if let text = option("--adapter") {
    guard let kind = AdapterKind(rawValue: text) else { fail("--adapter: linear or mlp, not \(text)") }
    config.pyramid.adapter = kind
  }
  if let text = option("--selector-credit") {
    guard let estimator = CreditEstimator(rawValue: text) else { fail("--selector-credit: finite_difference or double_backward, not \(text)") }
    config.selectorCredit = estimator
  }
  if option("--selector-interval") != nil { config.selectorInterval = intOption("--selector-interval", 10) }
  if let text = option("--selector-samples") { config.selectorSamples = Int(text) ?? -1 }
  if let text = option("--selector-heldout") { config.selectorHeldOut = Int(text) ?? -1 }
  do { try config.validate() } catch { fail("\(error)") }
  let keys: [String: WritableKeyPath<LossWeights, Double>] = [
    "intra_vision": \.intraVision, "intra_language": \.intraLanguage, "align": \.align, "pyramid": \.pyramid,
    "relation": \.relation, "layer_relation": \.layerRelation, "task": \.task, "embedding": \.embedding,
  ]
  for pair in (option("--lambdas") ?? "").split(separator: ",") {
    let parts = pair.split(separator: "=")
    guard parts.count == 2, let key = keys[String(parts[0])], let value = Double(parts[1]) else {
      fail("--lambdas: name=value pairs of \(keys.keys.sorted()), not '\(pair)'")
    }
    config.lambdas[keyPath: key] = value
  }
  return config
}

/// The benchmarked settings in one line (every λ, the embedding loss, K).
func settingsLine(_ config: CMAPKDConfig) -> String {
  let l = config.lambdas
  return "λ intra_v \(l.intraVision) intra_l \(l.intraLanguage) align \(l.align) pyramid \(l.pyramid) relation \(l.relation) "
    + "layer_relation \(l.layerRelation) task \(l.task) embedding \(l.embedding) (\(config.embeddingLoss.rawValue)); "
    + "adapters \(config.pyramid.adapter.rawValue); selector_interval \(config.selectorInterval), samples \(config.selectorSamples), held-out \(config.selectorHeldOut) (0: whole batch), credits \(config.selectorCredit.rawValue)"
}

/// The benchmark's CMAPKD head for `config`; for the `unified` embedding term, with PHI-S fitted
/// on the teacher's normalised embeddings of `batch` (the runner fits it on training pairs).
func benchHead(student: CLIPModel, teacher: CLIPModel) throws -> CMAPKDHead {
  let config = benchConfig()
  return try CMAPKDHead(
    student: student.config, teacher: teacher, embeddingLoss: config.embeddingLoss, bridges: CMAPKD(config).needsShared,
    adapter: config.pyramid.adapter)
}

func fitStandardizer(_ bench: DistillStep, teacher: CLIPModel, batch: DistillBatch) throws {
  guard bench.cmapkd.config.embeddingLoss == .unified else { return }
  let (image, text) = try Torch.noGrad {
    (
      try teacher.encodeImage(batch.pixels, normalize: true).to(.float32),
      try teacher.encodeText(batch.ids, attentionMask: batch.attentionMask, normalize: true).to(.float32)
    )
  }
  bench.cmapkd.standardizer = try PHISStandardizer(fitting: Tensor.cat([image, text], dim: 0))
}

/// B random captions: start token, words, end of text, padded with 0 to `length`.
func randomBatch(size: Int, imageSize: Int, length: Int, generator: Generator) throws -> DistillBatch {
  let pixels = try Tensor.randn([size, 3, imageSize, imageSize], generator: generator)
  let lengths = try Tensor.randint(6, length + 1, [size], generator: generator).toArray(Int64.self)
  let words = try Tensor.randint(400, 49000, [size, length], generator: generator).toArray(Int64.self)
  var ids: [Int64] = []
  for (row, n) in lengths.enumerated() {
    for position in 0..<length {
      ids.append(position == 0 ? 49406 : position == Int(n) - 1 ? 49407 : position < n ? words[row * length + position] : 0)
    }
  }
  let t = try Tensor(ids, shape: [size, length])
  return DistillBatch(pixels: pixels, ids: t, attentionMask: try t.ne(0).to(.int64), teacher: nil, stage: .fine)
}

/// The benchmark's teacher and student: the scene presets with CLIP's initialisation for
/// training from scratch (PyTorch's per-layer defaults give a degenerate start).
func sceneModels() throws -> (teacher: CLIPModel, student: CLIPModel) {
  try models(teacher: "scene-teacher", student: "scene-student")
}

/// What the cache, profile and operators modes start from: the scene models, the benchmarked
/// step (PHI-S fitted on its batch), a random batch at the scene sizes, and its generator.
struct SceneSetup {
  let teacher: CLIPModel
  let student: CLIPModel
  let bench: DistillStep
  let batch: DistillBatch
  let generator: Generator
  let imageSize = Presets.sceneStudent.visionConfig.imageSize
  let textLength = Presets.sceneStudent.textConfig.maxPositionEmbeddings

  init(batchSize: Int) throws {
    (teacher, student) = try sceneModels()
    bench = try DistillStep(student: student, teacher: teacher, head: benchHead(student: student, teacher: teacher))
    generator = try Generator(seed: 1)
    batch = try randomBatch(size: batchSize, imageSize: imageSize, length: textLength, generator: generator)
    try fitStandardizer(bench, teacher: teacher, batch: batch)
  }

  /// A second batch from the same generator, with the teacher's features: the selector's held-out batch.
  func heldOut() throws -> DistillBatch {
    var batch = try randomBatch(size: self.batch.pixels.size(0), imageSize: imageSize, length: textLength, generator: generator)
    batch.teacher = try bench.teacherFeatures(batch)
    return batch
  }
}

/// The baseline every method is paid against: a no-distillation step on a batch (the student's
/// CLIP loss, backward, AdamW over the student alone).
final class NoDistillationStep {
  let student: CLIPModel
  let optimizer: AdamW

  init(_ student: CLIPModel) throws {
    self.student = student
    optimizer = try AdamW(student.parameters(), learningRate: 1e-4, weightDecay: 0.01)
  }

  func callAsFunction(_ batch: DistillBatch) throws {
    let image = try student.encodeImage(batch.pixels)
    let text = try student.encodeText(batch.ids, attentionMask: batch.attentionMask)
    try Losses.clip(images: image, texts: text, logitScale: student.logitScale).backward()
    try optimizer.step()
    try optimizer.zeroGrad()
  }
}

/// Two presets by name (Presets.all), with CLIP's training initialisation, seed 0.
func models(teacher: String, student: String) throws -> (teacher: CLIPModel, student: CLIPModel) {
  guard let t = Presets.all[teacher], let s = Presets.all[student] else {
    fail("unknown preset \(Presets.all[teacher] == nil ? teacher : student); choose from \(Presets.all.keys.sorted())")
  }
  try Torch.manualSeed(0)
  let teacherModel = try CLIPModel(t)
  try teacherModel.initializeForTraining()
  let studentModel = try CLIPModel(s)
  try studentModel.initializeForTraining()
  return (teacherModel, studentModel)
}

// MARK: cache: live teacher vs warm cache

func cacheBenchmark() throws {
  let quick = CommandLine.arguments.contains("--quick")
  let batchSize = intOption("--batch", 64)
  let rounds = intOption("--rounds", quick ? 2 : 10)
  let steps = intOption("--steps", quick ? 1 : 3)
  let warmup = intOption("--warmup", quick ? 1 : 2)
  Torch.numThreads = intOption("--threads", 2)
  let out = option("--out") ?? "bench/out"
  let loadBefore = loadAverage()

  let setup = try SceneSetup(batchSize: batchSize)
  let (teacher, student, bench, batch) = (setup.teacher, setup.student, setup.bench, setup.batch)
  let (image, length) = (setup.imageSize, setup.textLength)
  let keys = (0..<batchSize).map { "bench-\($0)" }

  let root = FileManager.default.temporaryDirectory.appendingPathComponent("distillbench-cache-\(getpid())").path
  defer { try? FileManager.default.removeItem(atPath: root) }
  let cache = try TeacherCache(
    root: root,
    fingerprint: TeacherCache.fingerprint(teacher: teacher, preprocessing: "distillbench", pyramid: bench.cmapkd.config.pyramid))
  let fill = try seconds { _ = try cache.store(bench.teacherFeatures(batch), keys: keys) }
  print("cache filled: \(batchSize) samples, \(cache.bytesOnDisk / 1024) KiB in \(String(format: "%.1f", fill * 1e3)) ms")

  var losses: [Double] = []
  func live() throws -> Double { try seconds { losses.append(try bench.train(batch, teacher: bench.teacherFeatures(batch))) } }
  func cached() throws -> Double {
    try seconds {
      guard let features = try cache.features(for: keys) else { fail("the warm cache missed") }
      losses.append(try bench.train(batch, teacher: features))
    }
  }
  for _ in 0..<warmup {
    _ = try live()
    _ = try cached()
  }
  print("losses during warm-up: \(losses.map { String(format: "%.4f", $0) }.joined(separator: ", "))")
  var liveTimes: [Double] = [], cacheTimes: [Double] = []
  for round in 0..<rounds {
    let order: [(() throws -> Double, Bool)] = [(live, true), (cached, false)]
    for (run, isLive) in round % 2 == 0 ? order : order.reversed() {
      for _ in 0..<steps {
        let t = try run()
        if isLive { liveTimes.append(t) } else { cacheTimes.append(t) }
      }
    }
  }

  // The two parts that differ, timed alone (no backward), interleaved.
  var forwardTimes: [Double] = [], readTimes: [Double] = []
  for _ in 0..<(quick ? 3 : 20) {
    forwardTimes.append(try seconds { _ = try bench.teacherFeatures(batch) })
    readTimes.append(try seconds { _ = try cache.features(for: keys) })
  }

  // What the selector adds: a `gating` update (credits + ALSN step) every K steps, and a
  // held-out evaluation per learning step of `policy`.
  let heldOut = try setup.heldOut()
  var trainBatch = batch
  trainBatch.teacher = try cache.features(for: keys)
  let selector = try SelectorTrainer(cmapkd: bench.cmapkd, alsn: bench.head.alsn)
  var selectorTimes: [Double] = [], evalTimes: [Double] = []
  for i in 0..<(quick ? 2 : 6) {
    let t = try seconds { try selector.gatingUpdate(student: student, head: bench.head, batch: trainBatch, heldOut: heldOut) }
    let e = try seconds {
      _ = try Torch.noGrad { try SelectorTrainer.heldOutLoss(student: student, batch: heldOut, temperature: 0.07).item() }
    }
    if i > 0 {  // the first of each is warm-up
      selectorTimes.append(t)
      evalTimes.append(e)
    }
  }

  // The no-distillation step, interleaved with cached CMAPKD steps.
  let noDistillation = try NoDistillationStep(student)
  func plainStep() throws -> Double { try seconds { try noDistillation(batch) } }
  // Level skipping: manual weights with no weight on P2, P3, L1, L2, computed anyway
  // (skip_threshold 0) vs skipped (the default threshold).
  func skippingStep(threshold: Double) throws -> Double {
    var config = bench.cmapkd.config
    config.selection = .manual
    config.manualVision = [0, 0, 1, 1]
    config.manualLanguage = [0, 0, 1, 1]
    config.manualCoupling = (0..<16).map { ($0 / 4 >= 2 && $0 % 4 >= 2) ? 1 : 0 }
    config.skipThreshold = threshold
    let features = try cache.features(for: keys)!
    return try seconds {
      let step = try CMAPKD(config, standardizer: bench.cmapkd.standardizer, teacherLogitScale: bench.cmapkd.teacherLogitScale).step(
        student: student, head: bench.head, teacher: features, pixels: batch.pixels, ids: batch.ids,
        attentionMask: batch.attentionMask, stage: .fine)
      try step.total.backward()
      try bench.optimizer.step()
      try bench.optimizer.zeroGrad()
    }
  }
  var plainTimes: [Double] = [], cachedAgain: [Double] = [], allLevels: [Double] = [], skipped: [Double] = []
  // 40 rounds: this machine's neighbours slow whole stretches of steps down, and the ratio is
  // judged per round (the two steps side by side) as well as on the medians.
  for i in 0..<(quick ? 3 : 41) {
    let p = try plainStep(), c = try cached(), a = try skippingStep(threshold: 0), k = try skippingStep(threshold: 0.02)
    if i > 0 {
      plainTimes.append(p)
      cachedAgain.append(c)
      allLevels.append(a)
      skipped.append(k)
    }
  }

  let l = median(liveTimes), c = median(cacheTimes), g = median(selectorTimes), e = median(evalTimes)
  let interval = bench.cmapkd.config.selectorInterval
  let loadAfter = loadAverage()
  print(
    "CMAPKD step (forward + backward + AdamW, student + head)  batch=\(batchSize) image=\(image) text=\(length) "
      + "threads=\(Torch.numThreads) selection=gating (ALSN in eval mode)")
  print("  settings: \(settingsLine(bench.cmapkd.config))")
  for (name, times) in [("teacher live ", liveTimes), ("teacher cache", cacheTimes)] {
    let line = String(format: "median %9.1f ms  min %9.1f ms  (%d steps)", median(times) * 1e3, times.min()! * 1e3, times.count)
    print("  \(name)  \(line)")
  }
  print(
    String(
      format: "ratio live/cache (median step time): %.3f  (min step time: %.3f)", l / c, liveTimes.min()! / cacheTimes.min()!))
  print(
    String(
      format: "  teacher forward alone: median %.1f ms; cache read alone: median %.1f ms (%d each, interleaved)",
      median(forwardTimes) * 1e3, median(readTimes) * 1e3, forwardTimes.count))
  print(
    String(
      format: "gating selector update: median %.1f ms = %.2f cached steps (every K = %d steps: +%.0f %%)", g * 1e3, g / c,
      interval, 100 * g / c / Double(interval)))
  print(String(format: "held-out evaluation: median %.1f ms = %.2f cached steps", e * 1e3, e / c))
  let none = median(plainTimes), cachedStep = median(cachedAgain)
  let amortised = cachedStep + g / Double(interval)
  print(
    String(
      format:
        "no-distillation step: median %.1f ms; cached CMAPKD step %.1f ms (+ gating update / K=%d: %.1f ms) → ratio cmapkd/none %.3f (without the selector %.3f)",
      none * 1e3, cachedStep * 1e3, interval, amortised * 1e3, amortised / none, cachedStep / none))
  // The same ratio round by round: each CMAPKD step (plus the amortised update) over the
  // no-distillation step timed just before it, so a slow stretch slows both sides of a ratio.
  let pairRatios = zip(cachedAgain, plainTimes).map { ($0 + g / Double(interval)) / $1 }.sorted()
  let quartile = { (q: Double) in pairRatios[min(pairRatios.count - 1, Int((Double(pairRatios.count - 1) * q).rounded()))] }
  print(
    String(
      format: "  per round (%d rounds, selector amortised): median ratio %.3f, quartiles %.3f–%.3f", pairRatios.count,
      median(pairRatios), quartile(0.25), quartile(0.75)))
  print(
    String(
      format: "level skipping (P2, P3, L1, L2 unweighted): computed anyway %.1f ms, skipped %.1f ms → ratio skipped/all %.3f",
      median(allLevels) * 1e3, median(skipped) * 1e3, median(skipped) / median(allLevels)))
  let cores = ProcessInfo.processInfo.activeProcessorCount
  print("load average (1/5/15 min) before: \(loadBefore)  after: \(loadAfter)  cores: \(cores)")

  try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
  let report: [String: Any] = [
    "batch": batchSize, "image_size": image, "text_length": length, "threads": Torch.numThreads, "rounds": rounds,
    "steps_per_round": steps, "live_ms": liveTimes.map { $0 * 1e3 }, "cache_ms": cacheTimes.map { $0 * 1e3 },
    "live_median_ms": l * 1e3, "cache_median_ms": c * 1e3, "ratio_live_over_cache": l / c,
    "gating_update_ms": selectorTimes.map { $0 * 1e3 }, "heldout_eval_ms": evalTimes.map { $0 * 1e3 },
    "teacher_forward_ms": forwardTimes.map { $0 * 1e3 }, "cache_read_ms": readTimes.map { $0 * 1e3 }, "step_losses": losses,
    "cache_bytes": cache.bytesOnDisk, "load_average_before": loadBefore, "load_average_after": loadAfter,
    "cores": cores, "none_step_ms": plainTimes.map { $0 * 1e3 }, "cache_step_again_ms": cachedAgain.map { $0 * 1e3 },
    "ratio_cmapkd_over_none_selector_amortised": amortised / none, "ratio_cmapkd_over_none": cachedStep / none,
    "ratio_per_round_selector_amortised": pairRatios, "ratio_per_round_median": median(pairRatios),
    "skip_all_levels_ms": allLevels.map { $0 * 1e3 }, "skip_skipped_ms": skipped.map { $0 * 1e3 },
    "ratio_skipped_over_all": median(skipped) / median(allLevels), "settings": settingsLine(bench.cmapkd.config),
  ]
  let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
  try data.write(to: URL(fileURLWithPath: "\(out)/distill_cache.json"))
  print("wrote \(out)/distill_cache.json")
}

// MARK: export and worker: the Swift side of bench/distill_step.py

func export() throws {
  guard let directory = option("--out") else { fail("usage: DistillBench export --out DIR [--teacher PRESET --student PRESET]") }
  let (teacher, student) = try models(teacher: option("--teacher") ?? "scene-teacher", student: option("--student") ?? "scene-student")
  try teacher.save(huggingFace: "\(directory)/teacher")
  try student.save(huggingFace: "\(directory)/student")
  print("exported teacher (\(teacher.parameterCount()) parameters) and student (\(student.parameterCount())) to \(directory)")
}

func worker() throws {
  guard let directory = option("--weights") else {
    fail("usage: DistillBench worker --weights DIR [--threads N] [--adapter linear|mlp] [--device cpu|cuda[:N]] [--precision fp32|bf16|fp16]")
  }
  if let threads = option("--threads").flatMap(Int.init) { Torch.numThreads = threads }
  let device = try Device(parsing: option("--device") ?? "cpu")
  if device.isCUDA, let reason = Torch.cudaUnavailableReason { fail("--device \(device): \(reason)") }
  let precision = option("--precision") ?? "fp32"
  let autocast: DType? =
    switch precision {
    case "fp32": nil
    case "bf16": .bfloat16
    case "fp16": .float16
    default: fail("--precision: fp32, bf16 or fp16, not \(precision)")
    }
  let student = try CLIPModel.load(huggingFace: "\(directory)/student")
  let teacher = try CLIPModel.load(huggingFace: "\(directory)/teacher")
  let head = try benchHead(student: student, teacher: teacher)
  let (missing, unexpected) = try head.loadStateDict(SafeTensors.load("\(directory)/head.safetensors"))
  guard missing.isEmpty, unexpected.isEmpty else { fail("head.safetensors: missing \(missing), unexpected \(unexpected)") }
  try student.to(device)
  try teacher.to(device)
  try head.to(device)
  let batchFile = try SafeTensors.load("\(directory)/batch.safetensors")
  guard let pixels = batchFile["pixels"], let ids = batchFile["ids"], let mask = batchFile["mask"] else {
    fail("\(directory)/batch.safetensors: needs pixels, ids and mask")
  }
  let batch = DistillBatch(
    pixels: try pixels.to(device), ids: try ids.to(device), attentionMask: try mask.to(device), teacher: nil, stage: .fine)
  let bench = try DistillStep(student: student, teacher: teacher, head: head)
  (bench.device, bench.autocast) = (device, autocast)
  // The unified embedding term's PHI-S map, fitted once on the batch's teacher embeddings and
  // written for the PyTorch side, which uses the same map (the fit is not part of the step).
  try fitStandardizer(bench, teacher: teacher, batch: batch)
  if let phis = bench.cmapkd.standardizer {
    let d = phis.dimension
    try SafeTensors.save(
      [
        "mean": try Tensor(phis.mean, shape: [d]), "rotation": try Tensor(phis.rotation, shape: [d, d]),
        "scale": try Tensor([phis.scale], shape: []),
      ], to: "\(directory)/phis.safetensors")
  }
  send(
    "ready threads=\(Torch.numThreads) device=\(device) precision=\(precision) student=\(student.parameterCount()) "
      + "head=\(head.parameterCount()) teacher=\(teacher.parameterCount())")
  while let line = readLine() {
    let parts = line.split(separator: " ")
    if parts.first == "quit" { break }
    if parts.first == "profile" {
      // One step under LibTorch's profiler: "op <calls> <self µs> <name>" per operator, then "end"
      // (bench/distill_step.py --operators sets them beside PyTorch's own).
      let ops = try Torch.profileOperators { _ = try bench.train(batch, teacher: bench.teacherFeatures(batch)) }
      for op in ops { send("op \(op.calls) \(Double(op.selfNanoseconds) / 1e3) \(op.name)") }
      send("end")
      continue
    }
    guard parts.count == 2, parts[0] == "steps", let n = Int(parts[1]) else { fail("unknown command '\(line)'") }
    var times: [Double] = []
    var loss = 0.0
    for _ in 0..<n {
      // CUDA runs asynchronously: a step ends when the device is done (loss.item() syncs too).
      try Torch.synchronize(device)
      times.append(try seconds { loss = try bench.train(batch, teacher: bench.teacherFeatures(batch)) })
    }
    send("times " + times.map { String($0) }.joined(separator: " "))
    send("loss \(loss)")
  }
}

// MARK: profile: where a cached CMAPKD step's time goes, phase by phase, against `none`

/// Times each phase of a cached CMAPKD step and of a no-distillation step, interleaved, with
/// the same batch; every phase ends with its tensors computed (CPU ops are synchronous).
func profileSteps() throws {
  let batchSize = intOption("--batch", 64)
  let rounds = intOption("--rounds", 15)
  Torch.numThreads = intOption("--threads", 2)
  let setup = try SceneSetup(batchSize: batchSize)
  let (student, bench, batch, head) = (setup.student, setup.bench, setup.batch, setup.bench.head)
  let features = try bench.teacherFeatures(batch)
  let cmapkd = bench.cmapkd
  let plainOptimizer = try AdamW(student.parameters(), learningRate: 1e-4, weightDecay: 0.01)
  var phases: [String: [Double]] = [:]
  func time<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
    let start = DispatchTime.now().uptimeNanoseconds
    let r = try body()
    phases[name, default: []].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    return r
  }
  for round in 0..<(rounds + 2) {
    if round == 2 { phases = [:] }  // warm-up
    // none. Each step's tensors are dropped in a phase of their own ("release"): freeing the
    // graph's saved tensors is part of what a step costs.
    var (img, txt): (Tensor?, Tensor?) = try time("none: towers") {
      (try student.encodeImage(batch.pixels), try student.encodeText(batch.ids, attentionMask: batch.attentionMask))
    }
    var plainLoss: Tensor? = try time("none: loss") { try Losses.clip(images: img!, texts: txt!, logitScale: student.logitScale) }
    try time("none: backward") { try plainLoss!.backward() }
    try time("none: adamw") {
      try plainOptimizer.step()
      try plainOptimizer.zeroGrad()
    }
    time("none: release") { (img, txt, plainLoss) = (nil, nil, nil) }
    // cmapkd, cached features
    var towers: StudentTowers? = try time("cmapkd: towers") {
      try cmapkd.towers(student: student, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.attentionMask)
    }
    let active = cmapkd.config.activeLevels(.fine)
    var weights: LevelWeights? = try time("cmapkd: alsn weights") {
      try cmapkd.levelWeights(head: head, image: towers!.image, text: towers!.caption, active: active)
    }
    let computed = try CMAPKD.levelsToCompute(weights: weights!, active: active, threshold: cmapkd.config.skipThreshold)
    var side: StudentSide? = try time("cmapkd: levels (pyramid, adapters, bridges)") {
      try cmapkd.levels(student: student, head: head, towers: towers!, teacher: features, computing: computed)
    }
    var step: CMAPKDStep? = try time("cmapkd: losses") { try cmapkd.losses(side!, teacher: features, weights: weights!) }
    try time("cmapkd: backward") { try step!.total.backward() }
    try time("cmapkd: adamw") {
      try bench.optimizer.step()
      try bench.optimizer.zeroGrad()
    }
    let stepWeights = weights!
    time("cmapkd: release") { (towers, weights, side, step) = (nil, nil, nil, nil) }
    // Each term alone: towers, levels, that term (and the task), backward; minus the task-only step.
    let terms: [(String, WritableKeyPath<LossWeights, Double>)] = [
      ("intra_v", \.intraVision), ("intra_l", \.intraLanguage), ("align", \.align), ("pyramid", \.pyramid),
      ("relation", \.relation), ("layer_relation", \.layerRelation), ("embedding", \.embedding), ("affinity", \.affinity),
      ("task only", \.task),
    ]
    // A term the benchmarked settings switch off (λ 0) would time the task alone: left out.
    for (name, key) in terms where name == "task only" || cmapkd.config.lambdas[keyPath: key] != 0 {
      var config = cmapkd.config
      var only = LossWeights()
      for (_, k) in terms { only[keyPath: k] = 0 }
      only.task = 1
      only[keyPath: key] = cmapkd.config.lambdas[keyPath: key]
      config.lambdas = only
      let single = CMAPKD(config, standardizer: cmapkd.standardizer, teacherLogitScale: cmapkd.teacherLogitScale)
      try time("term: \(name)") {
        let t = try single.towers(student: student, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.attentionMask)
        let side = try single.levels(student: student, head: head, towers: t, teacher: features, computing: computed)
        try single.losses(side, teacher: features, weights: stepWeights).total.backward()
        try bench.optimizer.zeroGrad()
      }
    }
    try time("term: teacher.levels expand") { _ = try features.levels(cmapkd.config.pyramid) }
  }
  // The gating update's cost by the sizes of its two batches (credits on the first S samples
  // of the step's batch, held-out loss on H pairs). The selector itself takes whole batches
  // here, so that the sizes timed are these, not `selector_samples` / `selector_heldout`.
  var trainBatch = batch
  trainBatch.teacher = features
  let heldOut = try setup.heldOut()
  var wholeBatches = cmapkd
  (wholeBatches.config.selectorSamples, wholeBatches.config.selectorHeldOut) = (0, 0)
  let selector = try SelectorTrainer(cmapkd: wholeBatches, alsn: head.alsn)
  for (s, h) in [(batchSize, batchSize), (32, 64), (16, 64), (32, 32), (16, 32)] where s <= batchSize {
    let (train, held) = (try trainBatch.firstRows(s), try heldOut.firstRows(h))
    for i in 0..<(rounds / 2 + 1) {
      let start = DispatchTime.now().uptimeNanoseconds
      _ = try selector.gatingUpdate(student: student, head: head, batch: train, heldOut: held)
      if i > 0 {
        phases["selector: gating update S=\(s) H=\(h)", default: []].append(
          Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
      }
    }
  }
  var totals: [String: Double] = [:]
  print("settings: \(settingsLine(cmapkd.config))")
  print("phase medians over \(rounds) interleaved rounds, batch \(batchSize), threads \(Torch.numThreads):")
  for name in phases.keys.sorted() {
    let m = median(phases[name]!)
    if !name.hasPrefix("term"), !name.hasPrefix("selector") { totals[String(name.prefix { $0 != ":" }), default: 0] += m }
    print(String(format: "  %-45@ %8.2f ms", name as NSString, m * 1e3))
  }
  for (name, total) in totals.sorted(by: { $0.key < $1.key }) { print(String(format: "  %-45@ %8.2f ms", "\(name) total" as NSString, total * 1e3)) }
  print("student parameters \(student.parameterCount()), head parameters \(head.parameterCount())")
}

/// The operators a no-distillation step and a cached CMAPKD step run (LibTorch's profiler),
/// per step, ordered by how much more self time CMAPKD spends in each: where its extra cost goes.
func operatorProfile() throws {
  let batchSize = intOption("--batch", 64)
  let rounds = intOption("--rounds", 10)
  let rows = intOption("--top", 30)
  Torch.numThreads = intOption("--threads", 2)
  let setup = try SceneSetup(batchSize: batchSize)
  let (student, bench, batch) = (setup.student, setup.bench, setup.batch)
  let features = try bench.teacherFeatures(batch)
  let noDistillation = try NoDistillationStep(student)
  func none() throws { try noDistillation(batch) }
  func cmapkd() throws { _ = try bench.train(batch, teacher: features) }
  var wall: [String: [Double]] = [:]
  var profiles: [String: [String: OperatorProfile]] = [:]
  for (name, step) in [("none", none), ("cmapkd", cmapkd)] {
    for _ in 0..<3 { try step() }
    for _ in 0..<rounds { wall[name, default: []].append(try seconds { try step() }) }
    let ops = try Torch.profileOperators(shapes: CommandLine.arguments.contains("--shapes")) {
      for _ in 0..<rounds { try step() }
    }
    profiles[name] = Dictionary(uniqueKeysWithValues: ops.map { ($0.name, $0) })
  }
  print("settings: \(settingsLine(bench.cmapkd.config))")
  print(
    String(
      format: "median wall time per step, unprofiled: none %.1f ms, cmapkd (cached) %.1f ms; per step under the profiler, by extra self time:",
      median(wall["none"]!) * 1e3, median(wall["cmapkd"]!) * 1e3))
  let (none, cm) = (profiles["none"]!, profiles["cmapkd"]!)
  func perStep(_ p: OperatorProfile?) -> (ms: Double, calls: Double) {
    (Double(p?.selfNanoseconds ?? 0) / 1e6 / Double(rounds), Double(p?.calls ?? 0) / Double(rounds))
  }
  let names = Set(none.keys).union(cm.keys).sorted {
    perStep(cm[$0]).ms - perStep(none[$0]).ms > perStep(cm[$1]).ms - perStep(none[$1]).ms
  }
  print(String(format: "  %-58@ %9@ %9@ %9@ %13@", "operator" as NSString, "Δ ms" as NSString, "cmapkd" as NSString, "none" as NSString, "calls c/n" as NSString))
  for name in names.prefix(rows) {
    let (c, n) = (perStep(cm[name]), perStep(none[name]))
    print(String(format: "  %-58@ %9.2f %9.2f %9.2f %6.0f/%-6.0f", String(name.prefix(58)) as NSString, c.ms - n.ms, c.ms, n.ms, c.calls, n.calls))
  }
  let total = { (p: [String: OperatorProfile]) in p.values.reduce(0.0) { $0 + Double($1.selfNanoseconds) } / 1e6 / Double(rounds) }
  print(String(format: "  self time in all operators per step: cmapkd %.1f ms, none %.1f ms", total(cm), total(none)))
  // Operator calls: at these sizes each costs microseconds of dispatch whatever its work.
  let calls = { (p: [String: OperatorProfile]) in p.values.reduce(0.0) { $0 + Double($1.calls) } / Double(rounds) }
  print(String(format: "  operator calls per step (autograd nodes included): cmapkd %.0f, none %.0f", calls(cm), calls(none)))
  if CommandLine.arguments.contains("--by-calls") {
    let byCalls = Set(none.keys).union(cm.keys).sorted {
      perStep(cm[$0]).calls - perStep(none[$0]).calls > perStep(cm[$1]).calls - perStep(none[$1]).calls
    }
    print("  by extra calls:")
    for name in byCalls.prefix(rows) {
      let (c, n) = (perStep(cm[name]), perStep(none[name]))
      print(String(format: "  %-58@ %6.0f extra calls %9.2f ms", String(name.prefix(58)) as NSString, c.calls - n.calls, c.ms - n.ms))
    }
  }

  // One `gating` update at the configured S and H (the selector narrows the batches itself).
  var trainBatch = batch
  trainBatch.teacher = features
  let heldOut = try setup.heldOut()
  let selector = try SelectorTrainer(cmapkd: bench.cmapkd, alsn: bench.head.alsn)
  func update() throws { _ = try selector.gatingUpdate(student: student, head: bench.head, batch: trainBatch, heldOut: heldOut) }
  for _ in 0..<2 { try update() }
  let updates = max(2, rounds / 2)
  let updateWall = try (0..<updates).map { _ in try seconds { try update() } }
  let selectorOps = try Torch.profileOperators(shapes: CommandLine.arguments.contains("--shapes")) {
    for _ in 0..<updates { try update() }
  }
  print(
    String(
      format: "gating update (S = %d, H = %d): median wall time %.1f ms, unprofiled; its operators by self time per update:",
      bench.cmapkd.config.selectorSamples, bench.cmapkd.config.selectorHeldOut, median(updateWall) * 1e3))
  for op in selectorOps.prefix(rows) {
    let ms = Double(op.selfNanoseconds) / 1e6 / Double(updates)
    print(String(format: "  %-58@ %9.2f ms %7.0f calls", String(op.name.prefix(58)) as NSString, ms, Double(op.calls) / Double(updates)))
  }
}


/// The selector's credit estimators side by side on the same student state and batches: time
/// per credit computation (S = `selector_samples` samples, H = `selector_heldout` held-out pairs)
/// and how far the `finite_difference` credits are from the exact `double_backward` ones, raw
/// and as the per-sample shares the ALSN learns from. `--train-steps N` first trains the student
/// N cached CMAPKD steps on fresh random batches (default 30), so gradients are not those of
/// the initialisation alone.
func creditComparison() throws {
  let batchSize = intOption("--batch", 64)
  let rounds = intOption("--rounds", 5)
  Torch.numThreads = intOption("--threads", 2)
  let setup = try SceneSetup(batchSize: batchSize)
  let bench = setup.bench
  for _ in 0..<intOption("--train-steps", 30) {
    let batch = try randomBatch(size: batchSize, imageSize: setup.imageSize, length: setup.textLength, generator: setup.generator)
    _ = try bench.train(batch, teacher: bench.teacherFeatures(batch))
  }
  var trainBatch = setup.batch
  trainBatch.teacher = try bench.teacherFeatures(trainBatch)
  let config = bench.cmapkd.config
  let (credited, held) = (try trainBatch.firstRows(config.selectorSamples), try setup.heldOut().firstRows(config.selectorHeldOut))
  func credits(_ estimator: CreditEstimator, radius: Double = 1e-2) throws -> (LevelCredits, Double) {
    var c = bench.cmapkd
    c.config.selectorCredit = estimator
    c.config.selectorFDRadius = radius
    var times: [Double] = [], result: LevelCredits?
    for i in 0..<(rounds + 1) {
      let t = try seconds {
        result = try SelectorTrainer.credits(cmapkd: c, student: setup.student, head: bench.head, batch: credited, heldOut: held).credits
      }
      if i > 0 { times.append(t) }
    }
    return (result!, median(times))
  }
  print("settings: \(settingsLine(config))")
  // The parts: L_h with its gradient, and one forward of the credited samples without gradients.
  let parameters = setup.student.parameters().filter(\.requiresGrad)
  var heldTimes: [Double] = [], forwardTimes: [Double] = []
  for i in 0..<(rounds + 1) {
    let h = try seconds {
      _ = try Torch.enableGrad {
        try Torch.gradients(
          of: [SelectorTrainer.heldOutLoss(student: setup.student, batch: held, temperature: config.temperature)],
          withRespectTo: parameters)
      }
    }
    let f = try seconds {
      _ = try Torch.noGrad {
        try bench.cmapkd.forward(
          student: setup.student, head: bench.head, teacher: credited.teacher!, pixels: credited.pixels, ids: credited.ids,
          attentionMask: credited.attentionMask)
      }
    }
    if i > 0 {
      heldTimes.append(h)
      forwardTimes.append(f)
    }
  }
  var moveTimes: [Double] = []
  for i in 0..<(rounds + 1) {
    let t = try seconds {
      try Torch.noGrad {
        let saved = try parameters.map { try $0.detach().clone() }
        for (p, o) in zip(parameters, saved) {
          try p.copy(from: o)
          try p.addInPlace(o, alpha: 0)
        }
        for (p, o) in zip(parameters, saved) { try p.copy(from: o) }
      }
    }
    if i > 0 { moveTimes.append(t) }
  }
  print(String(format: "parts: save, move once and restore every parameter %.1f ms", median(moveTimes) * 1e3))
  print(
    String(
      format: "parts: L_h and ∇L_h %.1f ms; one forward of the credited samples without gradients %.1f ms", median(heldTimes) * 1e3,
      median(forwardTimes) * 1e3))
  let (exact, exactTime) = try credits(.doubleBackward)
  print(String(format: "double_backward: %.1f ms per credit computation (S = %d, H = %d)", exactTime * 1e3, credited.pixels.size(0), held.pixels.size(0)))
  let reference = try exact.perSample, referenceShares = try exact.normalizedPerSample()
  let referenceNorm = try reference.square().sum().item() as Double
  for radius in [1e-3, 1e-2, 1e-1, 1.0] {
    let (estimate, time) = try credits(.finiteDifference, radius: radius)
    let error = try Foundation.sqrt((estimate.perSample - reference).square().sum().item() / referenceNorm)
    let shares = try (estimate.normalizedPerSample() - referenceShares).abs()
    print(
      String(
        format: "finite_difference r = %-6g %.1f ms (%.2f× double_backward); ‖c − c_exact‖/‖c_exact‖ %.2e; per-sample shares: max |Δ| %.3f, mean |Δ| %.4f",
        radius, time * 1e3, time / exactTime, error, try shares.amax(dims: [0, 1]).item() as Double, try shares.mean().item() as Double))
  }
}

do {
  switch CommandLine.arguments.dropFirst().first {
  case "credits": try creditComparison()
  case "profile": try profileSteps()
  case "operators": try operatorProfile()
  case "cache": try cacheBenchmark()
  case "export": try export()
  case "worker": try worker()
  default:
    fail(
      "usage: DistillBench cache [--batch N] [--rounds N] [--steps N] [--warmup N] [--threads N] [--quick] [--out DIR]\n"
        + "       DistillBench profile|operators [--batch N] [--rounds N] [--threads N]\n"
        + "       DistillBench credits [--batch N] [--rounds N] [--train-steps N] [--threads N]\n"
        + "       DistillBench export --out DIR [--teacher PRESET --student PRESET]\n"
        + "       DistillBench worker --weights DIR [--threads N] [--device cpu|cuda[:N]] [--precision fp32|bf16|fp16]")
  }
} catch {
  fail("\(error)")
}
