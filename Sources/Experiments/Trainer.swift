import Data
import Distillation
import Foundation
import Models
import Pyramid
import SafeFiles
import Tokenizers
import Torch
import TorchNN
import TorchOptim

/// What a training run trains.
public enum RunKind: String, Codable, Sendable {
  /// The teacher, on the CLIP loss alone.
  case teacher
  /// A student, with the configured distillation method.
  case student
}

public struct TrainingError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// How a run ended.
public struct RunOutcome {
  public var directory: String
  public var steps: Int
  public var resumedFrom: Int?
  public var seconds: Double
  /// The final test-split evaluation (flattened metric names → values).
  public var results: [String: Double]
}

/// One training run, read top to bottom: set-up, optional resume, the step loop (loss,
/// backward, clip, AdamW, method hooks), periodic logs, evaluations and checkpoints, a final
/// evaluation. Teacher training is the same loop with the `none` method on the teacher.
///
/// Reproducibility: data order and augmentation depend only on (seed, epoch, position), and
/// LibTorch's generator is reseeded from (seed, step) before every step, so a run resumed from
/// a checkpoint takes exactly the steps an uninterrupted run takes.
public final class Trainer {
  public let config: ExperimentConfig
  public let kind: RunKind
  public let directory: String
  /// The ablation variant this run stands for (reports group by it).
  public let variant: String?
  public var quiet = false
  /// Data-parallel membership (`cmapkd launch` or torchrun's environment); nil for one process.
  public let group: ProcessGroup?
  /// Rank 0 (or the only process): the one that writes logs, checkpoints and results.
  var isMain: Bool { (group?.rank ?? 0) == 0 }
  let modelConfig: CLIPConfig
  let budget: TrainSection
  let optimizerConfig: OptimizerSection

  public init(
    config: ExperimentConfig, kind: RunKind, directory: String? = nil, variant: String? = nil, group: ProcessGroup? = nil
  ) throws {
    self.config = config
    self.group = group
    self.kind = kind
    self.variant = variant
    self.directory = directory ?? config.resolvedRunDirectory
    modelConfig = try RunSetup.modelConfig(
      kind == .teacher ? config.teacher : config.student, key: kind == .teacher ? "teacher" : "student")
    budget = kind == .teacher ? config.teacherTraining : config.train
    optimizerConfig = kind == .teacher ? config.teacherOptimizer : config.optimizer
    guard budget.steps > 0 else { throw ConfigError("\(kind == .teacher ? "teacher_training" : "train").steps must be positive") }
    if kind == .student, !Methods.names.contains(config.method.name) {
      throw ConfigError(
        "method.name: unknown method '\(config.method.name)'; choose one of: \(Methods.names.joined(separator: ", "))")
    }
    if kind == .student, budget.hardNegatives {
      throw ConfigError(
        "train.hard_negatives: only teacher training takes hard-negative captions (students share one task loss across methods)")
    }
    guard budget.batchSize > 1 else {
      throw ConfigError("train.batch_size must be at least 2 (contrastive losses need negatives)")
    }
    let section = kind == .teacher ? "teacher_training" : "train"
    guard budget.accumulationSteps >= 1, budget.batchSize % budget.accumulationSteps == 0,
      budget.batchSize / budget.accumulationSteps >= 2
    else {
      throw ConfigError(
        "\(section).accumulation_steps: \(budget.accumulationSteps) must divide \(section).batch_size (\(budget.batchSize)) into micro-batches of at least 2 samples"
      )
    }
    guard budget.samples >= 0 else { throw ConfigError("\(section).samples: \(budget.samples) must be 0 (all) or positive") }
    if let group, (budget.batchSize / budget.accumulationSteps) % group.worldSize != 0 {
      throw ConfigError(
        "\(section).batch_size: each micro-batch of \(budget.batchSize / budget.accumulationSteps) samples must split evenly over \(group.worldSize) processes (batch_size is the batch over all processes)"
      )
    }
  }

  var methodName: String { kind == .teacher ? "teacher" : config.method.name }

  /// Trains (resuming from the newest valid checkpoint when `resume`), then evaluates.
  public func run(resume: Bool = false) throws -> RunOutcome {
    let started = Date()
    let fm = FileManager.default
    try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
    if isMain { try AtomicFile.write(try ConfigLoader.yaml(config), to: "\(directory)/config.yaml") }
    if budget.threads > 0 { Torch.numThreads = budget.threads }
    // Before any CUDA work: cuBLAS reads its workspace setting when its handle is made.
    try Torch.setDeterministic(config.deterministic)

    let device = try config.resolvedDevice(localRank: group?.localRank)
    say(
      "\(methodName): device \(device)\(config.device == "auto" ? " (auto)" : ""), precision \(config.precision.rawValue)"
        + (config.deterministic ? ", deterministic algorithms" : "")
        + (group.map { ", \($0.worldSize) processes (Gloo), batch \(budget.batchSize) = \($0.worldSize) × \(budget.batchSize / $0.worldSize)" } ?? ""))
    let micro = budget.accumulationSteps

    // Data.
    let tokenizer = try RunSetup.tokenizer(config.data, model: modelConfig, teacher: config.teacher)
    let preprocessor = try RunSetup.preprocessor(config.data, model: modelConfig)
    let fullTrainSet = try RunSetup.dataset(config.data, splits: config.data.trainSplits)
    let trainSet: any ImageTextDataset
    if budget.samples > 0 {
      let section = kind == .teacher ? "teacher_training" : "train"
      guard budget.samples <= fullTrainSet.count else {
        throw ConfigError(
          "\(section).samples: \(budget.samples) is more than the training split's \(fullTrainSet.count) samples (\(fullTrainSet.name))")
      }
      trainSet = try DatasetPrefix(fullTrainSet, count: budget.samples)
      say("\(methodName): training on the first \(budget.samples) of \(fullTrainSet.count) training samples (\(section).samples)")
    } else {
      trainSet = fullTrainSet
    }
    var loaderConfig = LoaderConfig(
      batchSize: budget.batchSize / micro, shuffle: true, seed: UInt64(config.seed), numWorkers: config.data.workers, training: true)
    loaderConfig.augmentationVariants = config.data.augmentationVariants
    loaderConfig.shuffleGroup = config.data.shuffleGroup
    loaderConfig.hardNegatives = budget.hardNegatives
    // `data.dataset.error_policy: skip` covers decoding on the loader's workers too.
    loaderConfig.errorPolicy = config.data.dataset?.errorPolicy ?? .fail
    // Every process walks the same global batches and loads only its rows of each.
    loaderConfig.shard = group.map { LoaderShard(rank: $0.rank, count: $0.worldSize) }
    let loader = try BatchLoader(dataset: trainSet, tokenizer: tokenizer, preprocessor: preprocessor, config: loaderConfig)

    // Models and method.
    try Torch.manualSeed(UInt64(config.seed))
    let model = try CLIPModel(modelConfig)
    try model.initializeForTraining()
    try model.to(device)
    // On the device before the method is made: methods keep tensors derived from the teacher.
    let teacher = try loadTeacher()
    try teacher?.to(device)
    let otherTeachers = try loadOtherTeachers(primary: teacher)
    for other in otherTeachers { try other.to(device) }
    let method: any DistillationMethod =
      if let teacher {
        try Methods.make(
          config.method,
          context: MethodContext(
            student: modelConfig, teacher: teacher, pyramid: config.method.cmapkd.pyramid,
            captionProbe: try ivaProbe(trainSet: trainSet, tokenizer: tokenizer, preprocessor: preprocessor, device: device),
            otherTeachers: otherTeachers,
            teacherSample: try teacherSample(
              teachers: [teacher] + otherTeachers, trainSet: trainSet, tokenizer: tokenizer, preprocessor: preprocessor,
              device: device)))
      } else {
        NoDistillation()
      }
    try method.head?.to(device)
    if let iva = method as? IVAMethod, isMain {
      let scores = iva.layerScores.map { ", caption change per tap " + $0.map { String(format: "%.3f", $0) }.joined(separator: " / ") } ?? ""
      say("iva: relevance layer = patch tap \(iva.layer)\(scores)")
    }
    if config.method.inherit {
      // Any method may start from a slice of the teacher (`method.inherit`), so that methods can
      // be compared with the initialisation TinyCLIP brings held equal.
      guard let teacher else { throw ConfigError("method.inherit: true needs teacher.checkpoint") }
      try WeightInheritance.check(student: modelConfig, teacher: teacher.config, setting: "method.inherit")
      try WeightInheritance.inherit(student: model, from: teacher)
    }
    try method.prepare(student: model)  // TinyCLIP's weight inheritance; before any rank's broadcast
    if let group {
      // Every rank starts from rank 0's weights (they are seeded alike; this makes it certain),
      // then the towers gather their outputs so every loss sees the global batch.
      try group.broadcast(model.parameters() + (method.head?.parameters() ?? []))
      model.dataParallel = group
    }
    model.train()
    method.head?.train()
    let named = model.namedParameters(prefix: "student.") + (method.head?.namedParameters(prefix: "head.") ?? [])
    let trainable = named.map(\.1)
    let optimizer = try AdamW(
      ParameterGroup.decayAndNoDecay(model.namedParameters() + (method.head?.namedParameters(prefix: "head.") ?? [])),
      learningRate: optimizerConfig.learningRate, betas: (optimizerConfig.beta1, optimizerConfig.beta2), eps: optimizerConfig.eps,
      weightDecay: optimizerConfig.weightDecay)
    let scaler = config.precision == .fp16 ? try DynamicLossScaler() : nil
    let schedule = WarmupCosineSchedule(
      baseLearningRate: optimizerConfig.learningRate,
      warmupSteps: Int((optimizerConfig.warmupFraction * Double(budget.steps)).rounded()),
      totalSteps: budget.steps, minLearningRate: optimizerConfig.minLearningRate)

    // Teacher features, live or from the cache.
    let features = try teacher.flatMap { teacher -> TeacherFeatureSource? in
      guard method.needsTeacher else { return nil }  // `none` loads one only to inherit from it
      return try TeacherFeatureSource(teacher: teacher, config: config, trainSet: trainSet, preprocessor: preprocessor)
    }
    // Each further teacher has its own cache (its weights are in the cache's fingerprint).
    let otherFeatures = try otherTeachers.map {
      try TeacherFeatureSource(teacher: $0, config: config, trainSet: trainSet, preprocessor: preprocessor)
    }

    // Resume.
    let checkpoints = "\(directory)/checkpoints"
    var step = 0
    var position = LoaderPosition()
    var best: BestCheckpoint? = try? JSONCoding.decode(BestCheckpoint.self, file: "\(checkpoints)/best.json")
    var resumedFrom: Int?
    let log = isMain ? try RunLog(directory: directory) : nil
    if resume {
      if let checkpoint = RunCheckpoint.latest(
        in: checkpoints, skipped: { folder, error in self.say("skipping damaged checkpoint \(folder): \(error)") })
      {
        guard checkpoint.meta.architecture == (try RunSetup.architectureJSON(modelConfig)), checkpoint.meta.method == methodName
        else {
          throw TrainingError(
            "cannot resume: \(checkpoint.directory) is a \(checkpoint.meta.method) checkpoint of another architecture or method")
        }
        _ = try model.loadStateDict(try checkpoint.tensors("model"))
        if let head = method.head { _ = try head.loadStateDict(try checkpoint.tensors("head")) }
        try optimizer.loadStateDict(try checkpoint.tensors("optimizer"))
        try method.loadState(try checkpoint.tensors("method_state"))
        if let scaler { try scaler.loadStateDict(try checkpoint.tensors("loss_scale")) }
        step = checkpoint.meta.step
        position = checkpoint.meta.position
        resumedFrom = step
        try log?.truncate(afterStep: step)
        if let b = best, b.step > step { best = nil }
        say("resumed \(methodName) from \(checkpoint.directory) at step \(step)")
      } else {
        say("no checkpoint to resume in \(checkpoints); starting from step 0")
        try log?.truncate(afterStep: 0)
      }
    } else {
      try log?.truncate(afterStep: -1)
      if isMain { try? fm.removeItem(atPath: checkpoints) }
      // No rank may look for checkpoints before rank 0 has cleared the old ones.
      try group?.barrier()
      best = nil
    }

    let evaluator = try RunEvaluator(config: config, model: modelConfig, tokenizer: tokenizer)
    var heldOut = try features.flatMap {
      try $0.heldOutBatch(config: config, tokenizer: tokenizer, preprocessor: preprocessor, batchSize: budget.batchSize)
    }
    if let group, let h = heldOut {
      // Whole rows per rank: captions and teacher features stay global, images become local.
      let rows = h.ids.size(0) / group.worldSize * group.worldSize
      func keep(_ t: Tensor) throws -> Tensor { try t.narrow(dim: 0, start: 0, length: rows) }
      heldOut = DistillBatch(
        pixels: try group.localRows(keep(h.pixels)), ids: try keep(h.ids), attentionMask: try keep(h.attentionMask),
        teacher: try h.teacher?.map(keep))
    }
    let progress = ProgressReporter(title: methodName, total: budget.steps, startStep: step)
    progress.quiet = quiet || !isMain
    var iterator = loader.batches(from: position)
    var samples = 0
    var lastMetrics: [String: Double] = [:]

    func saveCheckpoint(metrics: [String: Double]) throws {
      guard isMain else { return }
      // Never save weights that went non-finite (student, method modules, the ALSN).
      if try named.contains(where: { try $0.1.detach().isFinite().to(.float32).mean().item() < 1 }) {
        throw try nonFiniteTensors(named, gradients: false, step: step, position: position, learningRate: optimizer.learningRate)
      }
      let meta = CheckpointMeta(
        step: step, position: position, architecture: try RunSetup.architectureJSON(modelConfig), method: methodName,
        seed: config.seed,
        bestValue: best?.value, bestStep: best?.step, metrics: metrics, files: [:],
        savedAt: ISO8601DateFormatter().string(from: Date()))
      var groups: [String: [String: Tensor]] = [
        "model": Dictionary(uniqueKeysWithValues: model.stateDict()),
        "optimizer": try optimizer.stateDict(),
      ]
      if let head = method.head { groups["head"] = Dictionary(uniqueKeysWithValues: head.stateDict()) }
      let state = try method.stateTensors()
      if !state.isEmpty { groups["method_state"] = state }
      if let scaler { groups["loss_scale"] = try scaler.stateDict() }
      _ = try RunCheckpoint.save(in: checkpoints, meta: meta, tensors: groups)
      RunCheckpoint.prune(in: checkpoints, keepLast: budget.keepLast, best: best?.folder)
    }

    /// The next training batch, starting the next epoch when one ends.
    func nextBatch() throws -> Batch {
      while true {
        if let batch = try iterator.next() { return batch }
        position = LoaderPosition(epoch: position.epoch + 1, batch: 0)
        iterator = loader.batches(from: position)
      }
    }

    while step < budget.steps {
      let stage = config.schedule.stage(atProgress: Double(step) / Double(budget.steps))
      let learningRate = schedule.learningRate(at: step) * config.schedule.learningRateScale(stage)
      optimizer.learningRate = learningRate
      // `micro` micro-batches, each's loss ÷ micro, their gradients summed: one optimizer step
      // on batch_size samples (contrastive negatives come from each micro-batch).
      var total = 0.0
      var last: (result: MethodStep, distill: DistillBatch, batch: Batch)?
      for part in 0..<micro {
        let batch = try nextBatch()
        position = LoaderPosition(epoch: batch.position.epoch, batch: batch.position.batch + 1)
        try Torch.manualSeed(part == 0 ? Self.stepSeed(config.seed, step) : Self.stepSeed(config.seed, step) &+ UInt64(part))
        let (pixels, ids, mask) = (try batch.images.to(device), try batch.tokens.to(device), try batch.attentionMask.to(device))
        // Data-parallel: images stay local (the vision tower gathers its outputs); captions,
        // masks and teacher features are gathered, so the method sees the global batch.
        func global(_ t: Tensor) throws -> Tensor { try group?.allGather(t) ?? t }
        if let group, try Self.rowsDiffer(batch.count, group) {
          throw TrainingError(
            "step \(step): the processes loaded batches of different sizes (rank \(group.rank): \(batch.count) rows); with data.dataset.error_policy: skip a skipped sample unbalances data-parallel batches, so run with one process or repair the data"
          )
        }
        var distill = DistillBatch(
          pixels: pixels, ids: try global(ids), attentionMask: try global(mask),
          teacher: method.needsTeacher
            ? try features?.features(for: batch, pixels: pixels, ids: ids, mask: mask, device: device).map(global) : nil,
          stage: stage, step: step)
        distill.otherTeachers = try otherFeatures.map {
          try $0.features(for: batch, pixels: pixels, ids: ids, mask: mask, device: device).map(global)
        }
        distill.negativeIds = try batch.negativeTokens.map { try global($0.to(device)) }
        distill.negativeMask = try batch.negativeMask.map { try global($0.to(device)) }
        let result = try Torch.autocast(device, dtype: config.precision.autocastType) {
          try method.loss(student: model, batch: distill)
        }
        let loss = result.total.dtype == .float32 ? result.total : try result.total.to(.float32)
        let value = try loss.detach().item()
        guard value.isFinite else {
          throw try nonFinite(result: result, step: step, position: batch.position, learningRate: learningRate)
        }
        total += value / Double(micro)
        let share = micro == 1 ? loss : try loss / Double(micro)
        try (scaler.map { try $0.scaled(share) } ?? share).backward()
        samples += batch.count * (group?.worldSize ?? 1)
        last = (result, distill, batch)
      }
      guard let (result, distill, batch) = last else { break }
      if let group {
        // Each rank's gradient is W × its own rows' share (every rank's loss is the global
        // loss, and the gather's backward sums over ranks); their mean is the whole gradient.
        let gradients = try trainable.compactMap { try $0.grad }
        try group.allReduceSum(gradients)
        for g in gradients { try g.mulInPlace(1 / Double(group.worldSize)) }
      }
      // fp16: a step whose gradients overflowed is skipped and the loss scale halves.
      let finite = try scaler.map { try $0.unscale(trainable) } ?? true
      var gradNorm = 0.0
      if finite {
        gradNorm =
          optimizerConfig.clipNorm > 0
          ? try clipGradNorm(trainable, maxNorm: optimizerConfig.clipNorm) : try gradientNorm(trainable)
        guard gradNorm.isFinite else {
          throw try nonFiniteTensors(named, gradients: true, step: step, position: batch.position, learningRate: learningRate)
        }
        try optimizer.step()
      } else {
        say("step \(step + 1): fp16 gradients overflowed at loss scale \(scaler?.scale ?? 0); step skipped, scale halved")
      }
      scaler?.update(finite: finite)
      try optimizer.zeroGrad()
      try method.afterStep(
        student: model, batch: distill, result: result,
        context: StepContext(heldOut: heldOut.map { h in { h } }, learningRate: learningRate))
      step += 1

      if step % max(budget.logEvery, 1) == 0 || step == budget.steps {
        var scalars = try result.loss.values().mapKeys { "loss/\($0)" }
        scalars["loss/total"] = total
        scalars["lr"] = learningRate
        scalars["grad_norm"] = gradNorm
        if let scaler { scalars["amp/loss_scale"] = scaler.scale }
        scalars["stage"] = Double(Stage.allCases.firstIndex(of: stage) ?? 0)
        for (k, v) in result.metrics { scalars[k] = v }
        if let cache = features?.cache {
          scalars["cache/hit_rate"] = Double(cache.hits) / Double(max(cache.hits + cache.misses, 1))
        }
        try log?.scalars(step: step, epoch: batch.position.epoch, scalars)
      }
      progress.update(
        step: step, samples: samples,
        fields: [("loss", String(format: "%.4f", total)), ("lr", String(format: "%.2e", learningRate))])

      let evaluating = (budget.evalEvery > 0 && step % budget.evalEvery == 0) || step == budget.steps
      if evaluating {
        // Rank 0 evaluates the (identical) weights alone; the others wait for it.
        lastMetrics = isMain ? try withoutDataParallel(model) { try evaluator.validation(model) } : [:]
        try group?.barrier()
        try log?.scalars(step: step, epoch: batch.position.epoch, lastMetrics.mapKeys { "eval/\($0)" })
        if let value = lastMetrics[config.eval.bestMetric], best.map({ value > $0.value }) ?? true {
          best = BestCheckpoint(
            folder: String(format: "step-%07d", step), step: step, metric: config.eval.bestMetric, value: value)
        }
      }
      if evaluating || step % max(budget.checkpointEvery, 1) == 0 {
        try saveCheckpoint(metrics: lastMetrics)
        if isMain, let best, best.step == step {
          try AtomicFile.write(try JSONCoding.encode(best), to: "\(checkpoints)/best.json")
        }
      }
    }
    iterator.close()
    for (index, cache) in ([features?.cache] + otherFeatures.map(\.cache)).enumerated() {
      guard let cache else { continue }
      let which = index == 0 ? "teacher" : "extra_teachers[\(index - 1)]"
      say("\(which) cache: \(cache.hits) hits, \(cache.misses) misses, \(cache.bytesOnDisk >> 20) MB on disk")
    }

    let skipped = loader.skipReport
    if !skipped.isEmpty { say("training data: \(skipped)") }

    guard isMain else {
      // Ranks other than 0 leave the evaluation and every file to rank 0.
      model.dataParallel = nil
      try group?.barrier()
      return RunOutcome(
        directory: directory, steps: step, resumedFrom: resumedFrom, seconds: Date().timeIntervalSince(started), results: [:])
    }
    // Final evaluation of the last weights on the test split.
    say("evaluating \(methodName) on the test split")
    model.dataParallel = nil
    let final = try evaluator.final(model)
    let seconds = Date().timeIntervalSince(started)
    var results = RunResults(
      kind: kind.rawValue, method: methodName, seed: config.seed, variant: variant, steps: step, wallTimeSeconds: seconds,
      metrics: final.metrics, parameters: final.parameters, flopsPerImage: final.flopsPerImage,
      flopsPerCaption: final.flopsPerCaption,
      imagesPerSecond: final.imagesPerSecond, evaluation: final.detail)
    results.skippedSamples = skipped.isEmpty ? nil : Dictionary(uniqueKeysWithValues: skipped.countByKind.map { ($0.key.rawValue, $0.value) })
    try AtomicFile.write(try JSONCoding.encode(results), to: "\(directory)/results.json")
    try log?.close()
    try group?.barrier()
    return RunOutcome(directory: directory, steps: step, resumedFrom: resumedFrom, seconds: seconds, results: final.metrics)
  }

  /// `iva`'s layer probe, when `iva` (alone or under `dtokd`) chooses its layer automatically.
  func ivaProbe(trainSet: any ImageTextDataset, tokenizer: any TextTokenizer, preprocessor: ImagePreprocessor, device: Device)
    throws -> CaptionProbe?
  {
    let method = config.method
    guard method.name == "iva" || (method.name == "dtokd" && method.dtokd.base == "iva"), method.iva.layer == nil else {
      return nil
    }
    let probe = try RunSetup.captionProbe(
      trainSet, tokenizer: tokenizer, preprocessor: preprocessor, count: method.iva.probeImages, device: device)
    if probe == nil { say("iva: no training image has two captions; the relevance layer is the deepest patch tap (2)") }
    return probe
  }

  /// The teachers under `extra_teachers`, when the method distils from several; each must read
  /// the same tokens and images as `teacher` (one loader feeds them all).
  func loadOtherTeachers(primary: CLIPModel?) throws -> [CLIPModel] {
    guard kind == .student, Methods.usesOtherTeachers(config.method), let primary else { return [] }
    guard !config.extraTeachers.isEmpty || !Methods.needsSecondTeacher(config.method) else {
      throw ConfigError(
        "method '\(config.method.name)' distils from several teachers: list the others under extra_teachers (configs/multiteacher.yaml does, for the demo's second teacher)"
      )
    }
    return try config.extraTeachers.enumerated().map { index, section in
      let key = "extra_teachers[\(index)]"
      guard let path = section.checkpoint else {
        throw ConfigError(
          "\(key).checkpoint: set the trained teacher's folder (train the demo's second one with `cmapkd train-teacher --config configs/demo.yaml --config configs/teacher-b.yaml`)"
        )
      }
      let architecture = try RunSetup.modelConfig(section, key: key)
      let (text, first) = (architecture.textConfig, primary.config.textConfig)
      guard text.vocabSize == first.vocabSize, text.maxPositionEmbeddings == first.maxPositionEmbeddings else {
        throw ConfigError(
          "\(key): its text tower reads \(text.maxPositionEmbeddings) tokens of a \(text.vocabSize)-token vocabulary, `teacher`'s \(first.maxPositionEmbeddings) of \(first.vocabSize); every teacher must take the same tokens"
        )
      }
      guard architecture.visionConfig.imageSize == primary.config.visionConfig.imageSize else {
        throw ConfigError(
          "\(key): its vision tower takes \(architecture.visionConfig.imageSize) px images, `teacher`'s \(primary.config.visionConfig.imageSize) px; every teacher must take the same images"
        )
      }
      let model = try RunSetup.loadModel(architecture, from: path, key: "\(key).checkpoint")
      model.eval()
      try model.freeze()
      return model
    }
  }

  /// Every teacher's normalised embeddings of `multiteacher.sample_size` training pairs, for the
  /// methods that standardise or route teachers (`Methods.needsTeacherSample`); nil for the others.
  func teacherSample(
    teachers: [CLIPModel], trainSet: any ImageTextDataset, tokenizer: any TextTokenizer, preprocessor: ImagePreprocessor,
    device: Device
  ) throws -> TeacherSample? {
    guard Methods.needsTeacherSample(config.method) else { return nil }
    let sample = try RunSetup.teacherSample(
      teachers: teachers, dataset: trainSet, tokenizer: tokenizer, preprocessor: preprocessor,
      count: config.method.multiteacher.sampleSize, device: device)
    say("\(config.method.name): \(teachers.count == 1 ? "1 teacher" : "\(teachers.count) teachers"), statistics from \(sample.images[0].size(0)) training pairs")
    return sample
  }

  func loadTeacher() throws -> CLIPModel? {
    // `none` trains without a teacher, unless its student inherits the teacher's weights.
    guard kind == .student, config.method.name != "none" || config.method.inherit else { return nil }
    guard let path = config.teacher.checkpoint else {
      throw ConfigError(
        "method '\(config.method.name)' needs a trained teacher: set teacher.checkpoint (train one with `cmapkd train-teacher`)")
    }
    let teacherConfig = try RunSetup.modelConfig(config.teacher, key: "teacher")
    let teacher = try RunSetup.loadModel(teacherConfig, from: path, key: "teacher.checkpoint")
    teacher.eval()
    try teacher.freeze()
    return teacher
  }

  /// The names of the tensors whose gradients (`gradients`) or values hold an inf or NaN.
  public static func nonFiniteNames(_ named: [(String, Tensor)], gradients: Bool) throws -> [String] {
    try named.compactMap { name, p in
      guard let t = try (gradients ? p.grad : p.detach()) else { return nil }
      return try t.isFinite().to(.float32).mean().item() < 1 ? name : nil
    }
  }

  /// Names the tensors whose gradients (or values) are not finite, saves them in a diagnostic
  /// and returns the error that stops the run before any checkpoint is written.
  func nonFiniteTensors(
    _ named: [(String, Tensor)], gradients: Bool, step: Int, position: LoaderPosition, learningRate: Double
  ) throws -> TrainingError {
    let bad = try Self.nonFiniteNames(named, gradients: gradients)
    let what = gradients ? "gradients" : "parameters"
    let diagnostic: [String: String] = [
      "step": "\(step)", "epoch": "\(position.epoch)", "batch": "\(position.batch)", "learning_rate": "\(learningRate)",
      "non_finite_\(what)": bad.joined(separator: "; "),
    ]
    let path = "\(directory)/diagnostic-step-\(step).json"
    try AtomicFile.write(try JSONCoding.encode(diagnostic), to: path)
    let shown = bad.prefix(5).joined(separator: ", ") + (bad.count > 5 ? ", … (\(bad.count) tensors)" : "")
    return TrainingError(
      "step \(step): non-finite \(what) in \(shown.isEmpty ? "an unnamed tensor" : shown); stopped without saving a checkpoint. Diagnostic: \(path)"
    )
  }

  /// Saves what the loss looked like and names the terms that went non-finite.
  func nonFinite(result: MethodStep, step: Int, position: LoaderPosition, learningRate: Double) throws -> TrainingError {
    var parts: [String: String] = [:]
    var bad: [String] = []
    for (name, value) in result.loss.parts {
      let v = try value.detach().item()
      parts[name] = "\(v)"
      if !v.isFinite { bad.append("\(name) = \(v)") }
    }
    let diagnostic: [String: String] = [
      "step": "\(step)", "epoch": "\(position.epoch)", "batch": "\(position.batch)", "learning_rate": "\(learningRate)",
      "non_finite_terms": bad.joined(separator: "; "),
    ].merging(parts.mapKeys { "loss/\($0)" }) { a, _ in a }
    let path = "\(directory)/diagnostic-step-\(step).json"
    try AtomicFile.write(try JSONCoding.encode(diagnostic), to: path)
    return TrainingError(
      "step \(step): the loss is not finite (\(bad.isEmpty ? "the total" : bad.joined(separator: ", "))); stopped without saving a checkpoint. Diagnostic: \(path)"
    )
  }

  /// Runs `body` with the model's towers on this process's rows only (evaluation).
  func withoutDataParallel<R>(_ model: CLIPModel, _ body: () throws -> R) rethrows -> R {
    let group = model.dataParallel
    model.dataParallel = nil
    defer { model.dataParallel = group }
    return try body()
  }

  /// Whether the processes' local batch sizes differ (one all-gather of a number).
  static func rowsDiffer(_ rows: Int, _ group: ProcessGroup) throws -> Bool {
    let all = try group.allGather(Tensor([Int64(rows)])).toArray(Int64.self)
    return Set(all).count > 1
  }

  /// The generator seed of a step: a mix of the run seed and the step number.
  static func stepSeed(_ seed: Int, _ step: Int) -> UInt64 {
    var x = UInt64(bitPattern: Int64(seed)) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step)
    x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
    x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
    return (x ^ (x >> 31)) >> 1
  }

  func say(_ message: String) {
    if !quiet, isMain { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
  }
}

extension Dictionary where Key == String {
  func mapKeys(_ transform: (String) -> String) -> [String: Value] {
    Dictionary(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
  }
}
