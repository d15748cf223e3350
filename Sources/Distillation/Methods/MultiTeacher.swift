import Foundation
import Models
import Pyramid
import Torch
import TorchNN
import TorchOptim

/// How each teacher's embeddings are put into the unified space before the student matches them.
public enum TeacherStandardization: String, Codable, Sendable {
  /// PHI-S (RADIO): a rotation and one isotropic scale fitted on the teacher's embeddings of a
  /// sample of training pairs, so every dimension has unit variance (`PHISStandardizer`).
  case phis
  /// Per-dimension (x − μ)/σ with μ, σ² exponential moving averages of the training batches.
  case ema
  /// The teachers' L2-normalised embeddings as they are.
  case none
}

/// The student's per-teacher projector (dropped at inference, never exported).
public enum ProjectorKind: String, Codable, Sendable {
  /// Linear → GELU → Linear (RADIO's and UNIC's default).
  case mlp
  /// Linear to the teacher's width, then one pre-norm transformer block on the vector (one token).
  case block
}

/// Settings of `multiteacher` (and the distillation side of `router`).
public struct MultiTeacherConfig: Codable, Equatable, Sendable {
  public var standardize = TeacherStandardization.phis
  public var projector = ProjectorKind.mlp
  /// Hidden width of the MLP projector (the block's MLP is 4× the teacher's width).
  public var projectorHidden = 256
  /// λ of the per-teacher losses (summed over teachers, as UNIC and RADIO do). Chosen on the
  /// validation split (seed 0, 1500 steps, two teachers): λ = 1, 10, 50, 200 gave final
  /// validation mean recall 55.2, 63.0, 64.7, 65.0 (docs/baselines.md); the comparison ran at 50.
  public var weight = 50.0
  /// λ of the student's CLIP loss.
  public var taskWeight = 1.0
  /// UNIC's teacher dropping: per sample, every teacher's loss except the largest is dropped
  /// with this probability; 0 keeps every teacher.
  public var dropProbability = 0.5
  /// Momentum of the `ema` standardisation's moving averages.
  public var emaMomentum = 0.99
  /// Training pairs the PHI-S fit (and the router's bank) is computed on, before training.
  public var sampleSize = 1024
  /// `none`: the per-teacher losses on the embeddings plus the task loss. `cmapkd`: CMAPKD's
  /// whole loss against the first teacher (`method.cmapkd`), plus the per-teacher losses on the
  /// embeddings and on every computed pyramid level's shared-space vector, each level weighted
  /// per sample by CMAPKD's level weights.
  public var base = "none"

  enum CodingKeys: String, CodingKey {
    case standardize, projector, weight, base
    case projectorHidden = "projector_hidden", taskWeight = "task_weight", dropProbability = "drop_probability"
    case emaMomentum = "ema_momentum", sampleSize = "sample_size"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = MultiTeacherConfig()
    standardize = try c.decode(.standardize, default: d.standardize)
    projector = try c.decode(.projector, default: d.projector)
    projectorHidden = try c.decode(.projectorHidden, default: d.projectorHidden)
    weight = try c.decode(.weight, default: d.weight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
    dropProbability = try c.decode(.dropProbability, default: d.dropProbability)
    emaMomentum = try c.decode(.emaMomentum, default: d.emaMomentum)
    sampleSize = try c.decode(.sampleSize, default: d.sampleSize)
    base = try c.decode(.base, default: d.base)
  }

  func validate(_ method: String) throws {
    let section = "method.multiteacher"
    guard weight >= 0, weight.isFinite else { throw MethodError("\(section).weight must be ≥ 0, got \(weight)") }
    guard taskWeight >= 0, taskWeight.isFinite else { throw MethodError("\(section).task_weight must be ≥ 0, got \(taskWeight)") }
    guard (0..<1).contains(dropProbability) else {
      throw MethodError("\(section).drop_probability must be in [0, 1), got \(dropProbability)")
    }
    guard (0..<1).contains(emaMomentum) else { throw MethodError("\(section).ema_momentum must be in [0, 1), got \(emaMomentum)") }
    guard projectorHidden >= 1 else { throw MethodError("\(section).projector_hidden must be positive") }
    guard sampleSize >= 2 else { throw MethodError("\(section).sample_size must be at least 2 (\(method) fits statistics on it)") }
    guard ["none", "cmapkd"].contains(base) else { throw MethodError("\(section).base must be none or cmapkd, got '\(base)'") }
  }
}

/// How `router` picks each sample's teacher.
public enum RouterKind: String, Codable, Sendable {
  /// The teacher whose quality is highest on the sample's nearest neighbours (`SimilarityRouter`).
  case similarity
  /// A softmax policy over teachers, trained by REINFORCE on the student's held-out progress.
  case rl
}

/// Settings of `router` (knowledge purification); the distillation itself uses `method.multiteacher`.
public struct RouterConfig: Codable, Equatable, Sendable {
  public var kind = RouterKind.similarity
  /// Neighbours in the bank whose teacher qualities decide (similarity router).
  public var neighbours = 16
  /// Learning rate of the RL router's policy.
  public var policyLearningRate = 0.01
  /// Momentum of the RL router's reward baseline.
  public var baselineMomentum = 0.9

  enum CodingKeys: String, CodingKey {
    case kind, neighbours
    case policyLearningRate = "policy_lr", baselineMomentum = "baseline_momentum"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = RouterConfig()
    kind = try c.decode(.kind, default: d.kind)
    neighbours = try c.decode(.neighbours, default: d.neighbours)
    policyLearningRate = try c.decode(.policyLearningRate, default: d.policyLearningRate)
    baselineMomentum = try c.decode(.baselineMomentum, default: d.baselineMomentum)
  }
}

/// Every teacher's L2-normalised embeddings of the same training pairs (teacher 0 is
/// `teacher`, then `extra_teachers` in order), computed once before training: PHI-S is fitted
/// on them and the similarity router's bank and qualities come from them.
public struct TeacherSample {
  /// Per teacher, [N, D_t].
  public var images: [Tensor]
  public var texts: [Tensor]
  /// Per teacher, exp of its logit scale (its own retrieval temperature).
  public var logitScales: [Double]

  public init(images: [Tensor], texts: [Tensor], logitScales: [Double]) {
    self.images = images
    self.texts = texts
    self.logitScales = logitScales
  }

  /// Each teacher's quality on each pair [T, N]: the mean of the image→text and text→image
  /// log-probabilities of the true partner among the sample's pairs, at the teacher's own scale.
  public func pairQualities() throws -> Tensor {
    try Torch.noGrad {
      let rows = try zip(zip(images, texts), logitScales).map { pair, scale -> Tensor in
        let logits = try pair.0.matmul(pair.1.transpose(0, 1)) * scale  // [N, N]
        let i2t = try logits.logSoftmax(dim: 1).diagonal()
        let t2i = try logits.logSoftmax(dim: 0).diagonal()
        return try (i2t + t2i) * 0.5
      }
      return try Tensor.stack(rows)
    }
  }
}

/// Per-dimension standardisation by exponential moving averages of the batches' mean and
/// variance (the first batch sets them). State: μ, σ² and whether they are set.
public final class EMAStandardizer {
  public let momentum: Double
  public private(set) var mean: Tensor?
  public private(set) var variance: Tensor?

  public init(momentum: Double) { self.momentum = momentum }

  /// Moves the averages towards the statistics of `x` [N, D] (no gradient).
  public func update(_ x: Tensor) throws {
    try Torch.noGrad {
      let x64 = try x.detach().to(.float64)
      let batchMean = try x64.mean(dim: 0)
      let batchVariance = try x64.variance(dims: [0], correction: 0)
      if let mean, let variance {
        // A resumed run's averages come from the checkpoint on the CPU; x may be on a GPU.
        let mean = try mean.to(batchMean.device), variance = try variance.to(batchMean.device)
        self.mean = try mean * momentum + batchMean * (1 - momentum)
        self.variance = try variance * momentum + batchVariance * (1 - momentum)
      } else {
        mean = batchMean
        variance = batchVariance
      }
    }
  }

  /// (x − μ)/√(σ² + 1e-8), in x's dtype.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    guard let mean, let variance else { throw MethodError("multiteacher: EMA standardisation used before its first update") }
    return try ((x.to(.float64) - mean.to(x.device)) * (variance.to(x.device) + 1e-8).rsqrt()).to(x.dtype)
  }

  func state(prefix: String) -> [String: Tensor] {
    guard let mean, let variance else { return [:] }
    return ["\(prefix).mean": mean, "\(prefix).variance": variance]
  }

  func load(_ tensors: [String: Tensor], prefix: String) throws {
    mean = try tensors["\(prefix).mean"]?.to(.float64)
    variance = try tensors["\(prefix).variance"]?.to(.float64)
  }
}

/// One projector: student joint width → one teacher's width.
public final class TeacherProjector: Module, UnaryLayer {
  public let mlp: MLP?
  public let input: Linear?
  public let block: CLIPEncoderLayer?

  public init(kind: ProjectorKind, studentWidth: Int, teacherWidth: Int, hidden: Int) throws {
    switch kind {
    case .mlp:
      mlp = try MLP(studentWidth, hidden: hidden, out: teacherWidth, activation: .gelu)
      (input, block) = (nil, nil)
    case .block:
      mlp = nil
      input = try Linear(studentWidth, teacherWidth)
      let heads = [8, 4, 2, 1].first { teacherWidth % $0 == 0 && teacherWidth / $0 >= 16 } ?? 1
      block = try CLIPEncoderLayer(
        hiddenSize: teacherWidth, intermediateSize: 4 * teacherWidth, numHeads: heads, activation: .gelu, layerNormEps: 1e-5)
    }
    super.init()
  }

  /// [B, P_s] → [B, D_t].
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    if let mlp { return try mlp(x) }
    guard let input, let block else { throw MethodError("multiteacher: projector has no layers") }
    return try block(input(x).unsqueeze(1)).squeeze(1)
  }
}

/// The student-side modules of `multiteacher` / `router`: one projector per teacher.
public final class MultiTeacherHead: Module {
  /// Per teacher: the student's deployed embedding → the teacher's width.
  public let projectors: [TeacherProjector]
  /// Per teacher (`base: cmapkd`): a level's shared-space vector (the first teacher's joint width,
  /// where CMAPKD's bridge puts the student's levels) → the teacher's width.
  public let levelProjectors: [TeacherProjector]
  /// CMAPKD's modules against the first teacher (`base: cmapkd`).
  public let cmapkd: CMAPKDHead?

  public init(projectors: [TeacherProjector], levelProjectors: [TeacherProjector] = [], cmapkd: CMAPKDHead? = nil) {
    self.projectors = projectors
    self.levelProjectors = levelProjectors
    self.cmapkd = cmapkd
    super.init()
  }
}

/// `multiteacher` and `router`: distillation from several teachers through a unified space
/// (SPEC §7; Knowledge Inheritance, DUNE, RADIO's PHI-S, UNIC's teacher dropping) and, for
/// `router`, knowledge purification: one teacher per sample.
///
/// For teacher t: its L2-normalised image and text embeddings are standardised (PHI-S fitted
/// on the teacher's own embeddings of `sample_size` training pairs, both modalities together
/// so that one map keeps the image–text geometry; or EMA; or nothing). The student's
/// normalised deployed embeddings go through the teacher's projector p_t, and each sample's
/// loss against teacher t is, averaged over the two modalities,
///   ℓ_bt = 0.5 · (1 − cos(p_t(s_b), y_bt)) + 0.5 · smoothL1(p_t(s_b), y_bt)  (mean over dims).
/// `multiteacher` sums the teachers (each sample keeps its largest-loss teacher and drops each
/// other with `drop_probability`); `router` keeps exactly the teacher it routes the sample to.
/// Plus the student's CLIP loss.
public final class MultiTeacherMethod: DistillationMethod {
  public let name: String
  public let teacherInputs: Set<TeacherInput>
  public let config: MultiTeacherConfig
  /// CMAPKD against the first teacher (`base: cmapkd`); its head is `multiHead.cmapkd`.
  public let base: CMAPKDMethod?
  public let router: RouterConfig?
  public let multiHead: MultiTeacherHead
  public var head: Module? { multiHead }
  public let teacherCount: Int
  let phis: [PHISStandardizer]
  let ema: [EMAStandardizer]
  /// The similarity router (`router` with `kind: similarity`).
  public let similarity: SimilarityRouter?
  /// The RL router's policy: teacher 0's normalised image embedding → teacher logits.
  public let policy: Linear?
  let policyOptimizer: AdamW?
  var baseline: Double?
  var previousHeldOutLoss: Double?
  /// The sampled choice of the step under way and its log-probabilities (RL router).
  var pending: (step: Int, logProbabilities: Tensor, choice: Tensor)?
  var policyMetrics: [String: Double] = [:]

  public init(
    name: String, config: MultiTeacherConfig, router: RouterConfig?, cmapkd: CMAPKDConfig = CMAPKDConfig(), context: MethodContext
  ) throws {
    try config.validate(name)
    let teachers = [context.teacher] + context.otherTeachers
    // One teacher is allowed for `multiteacher`: the single-teacher control of the same loss.
    guard teachers.count >= 2 || router == nil else {
      throw MethodError(
        "method '\(name)' chooses among several teachers, but only `teacher` is set: list the others under extra_teachers (e.g. configs/multiteacher.yaml)"
      )
    }
    self.name = name
    self.config = config
    self.router = router
    teacherCount = teachers.count
    let studentWidth = context.student.projectionDim
    base = config.base == "cmapkd" ? try CMAPKDMethod(config: cmapkd, context: context, alwaysShared: true) : nil
    teacherInputs = Set<TeacherInput>([.embeddings]).union(base?.teacherInputs ?? [])
    func projectors(from width: Int) throws -> [TeacherProjector] {
      try teachers.map {
        try TeacherProjector(
          kind: config.projector, studentWidth: width, teacherWidth: $0.config.projectionDim, hidden: config.projectorHidden)
      }
    }
    multiHead = MultiTeacherHead(
      projectors: try projectors(from: studentWidth),
      levelProjectors: base == nil ? [] : try projectors(from: context.teacher.config.projectionDim), cmapkd: base?.cmapkdHead)
    let needsSample = config.standardize == .phis || router?.kind == .similarity
    let sample = context.teacherSample
    if needsSample {
      guard let sample, sample.images.count == teachers.count else {
        throw MethodError("method '\(name)': the runner gave no sample of the teachers' embeddings (MethodContext.teacherSample)")
      }
    }
    phis =
      config.standardize == .phis
      ? try (0..<teachers.count).map { t in
        try PHISStandardizer(fitting: Tensor.cat([sample!.images[t], sample!.texts[t]], dim: 0))
      } : []
    ema = config.standardize == .ema ? teachers.map { _ in EMAStandardizer(momentum: config.emaMomentum) } : []
    switch router?.kind {
    case .similarity:
      similarity = try SimilarityRouter(
        bank: sample!.images[0], quality: sample!.pairQualities(), neighbours: min(router!.neighbours, sample!.images[0].size(0)))
      (policy, policyOptimizer) = (nil, nil)
    case .rl:
      similarity = nil
      let linear = try Linear(context.teacher.config.projectionDim, teachers.count)
      try Torch.noGrad {
        for p in linear.parameters() { try p.zero() }  // a uniform policy to start
      }
      try linear.to(context.teacher.logitScale.device)
      policy = linear
      policyOptimizer = try AdamW(linear.parameters(), learningRate: router!.policyLearningRate, weightDecay: 0)
    case nil:
      (similarity, policy, policyOptimizer) = (nil, nil, nil)
    }
  }

  /// Teacher t's standardised targets for normalised embeddings `x` [B, D_t].
  public func standardized(_ x: Tensor, teacher t: Int) throws -> Tensor {
    switch config.standardize {
    case .phis: return try phis[t](x)
    case .ema: return try ema[t](x)
    case .none: return x
    }
  }

  /// Per-sample loss ℓ_b = 0.5·(1 − cos(p_b, y_b)) + 0.5·mean_d smoothL1(p_b − y_b) (β = 1), [B].
  public static func perSampleLoss(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
    let cosine = try Functional.cosineSimilarity(prediction, target, dim: 1)
    let smooth = try Functional.smoothL1Loss(prediction, target, reduction: .none).mean(dim: 1)
    return try (cosine.neg() + 1) * 0.5 + smooth * 0.5
  }

  /// UNIC's teacher dropping: for losses [B, T], a 0/1 mask that keeps each sample's largest
  /// loss and every other entry where `uniform` [B, T] ≥ p.
  public static func keepMask(losses: Tensor, uniform: Tensor, dropProbability p: Double) throws -> Tensor {
    let largest = try Functional.oneHot(losses.detach().argmax(dim: 1), classes: losses.size(1)).to(losses.dtype)
    let survive = try uniform.ge(p).to(losses.dtype)
    return try largest.maximum(survive)
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let teachers = [try batch.requireTeacher(name)] + batch.otherTeachers
    guard teachers.count == teacherCount else {
      throw MethodError("method '\(name)': the batch has \(teachers.count) teachers' features, the method was built for \(teacherCount)")
    }
    let image: Tensor
    let text: Tensor
    var parts = LossParts()
    var metrics: [String: Double] = policyMetrics
    var levels: CMAPKDStep?
    if let base {
      // CMAPKD against the first teacher, its task term included.
      let (result, step) = try base.lossAndStep(student: student, batch: batch)
      guard let embeddings = result.embeddings else { throw MethodError("\(name): CMAPKD gave no embeddings") }
      (image, text) = embeddings
      parts.merge(result.loss, prefix: "cmapkd")
      metrics.merge(result.metrics) { current, _ in current }
      levels = step
    } else {
      image = try student.encodeImage(batch.pixels)
      text = try student.encodeText(batch.ids, attentionMask: batch.attentionMask)
      parts.add("task/clip", try Losses.clip(images: image, texts: text, logitScale: student.logitScale) * config.taskWeight)
    }
    let (si, st) = (try Functional.normalize(image.to(.float32)), try Functional.normalize(text.to(.float32)))
    var perTeacher: [Tensor] = []
    for (t, features) in teachers.enumerated() {
      let (ti, tt) = (try Functional.normalize(features.imageEmbedding.to(.float32)), try Functional.normalize(features.textEmbedding.to(.float32)))
      if config.standardize == .ema, Torch.isGradEnabled { try ema[t].update(Tensor.cat([ti, tt], dim: 0)) }
      let projector = multiHead.projectors[t]
      let li = try Self.perSampleLoss(projector(si), standardized(ti, teacher: t))
      let lt = try Self.perSampleLoss(projector(st), standardized(tt, teacher: t))
      var loss = try (li + lt) * 0.5
      if let levels { loss = try loss + levelLoss(levels, teacher: features, index: t) }
      perTeacher.append(loss)
    }
    let losses = try Tensor.stack(perTeacher, dim: 1)  // [B, T]
    let mask = try keep(losses: losses, batch: batch, teachers: teachers)
    let kept = try (losses * mask).sum(dim: 1).mean()
    parts.add("distill/\(router == nil ? "teachers" : "routed")", try kept * config.weight)
    let shares = try mask.mean(dim: 0).toArray(Float.self)
    let means = try losses.detach().mean(dim: 0).toArray(Float.self)
    for t in 0..<teacherCount {
      metrics["\(name)/teacher\(t)_kept"] = Double(shares[t])
      metrics["\(name)/teacher\(t)_loss"] = Double(means[t])
    }
    var step = try MethodStep(loss: parts, method: name, metrics: metrics)
    step.embeddings = (image, text)
    return step
  }

  /// Teacher t's loss on the pyramid levels CMAPKD computed, per sample [B]: for each modality,
  /// Σ_level w_b,level · ℓ(p_t(ŝ_level), std_t(t̂_level)) over the shared-space level vectors
  /// (the teacher's own joint space, so the embeddings' projector and standardisation serve),
  /// with CMAPKD's per-sample level weights w (rows sum to 1); then the mean of the modalities.
  public func levelLoss(_ step: CMAPKDStep, teacher features: TeacherFeatures, index t: Int) throws -> Tensor {
    guard let side = step.side else { throw MethodError("\(name): CMAPKD's step carries no student side") }
    var modalities: [Tensor] = []
    for (computed, student, target, weights) in [
      (side.computed.vision, side.shared.vision, features.sharedVision, step.weights.vision),
      (side.computed.language, side.shared.language, features.sharedLanguage, step.weights.language),
    ] {
      var sum: Tensor?
      for level in Level.allCases where computed.contains(level) {
        let s = try Functional.normalize(student[level.rawValue].to(.float32))
        let y = try standardized(Functional.normalize(target[level.rawValue].to(.float32)), teacher: t)
        let term = try Self.perSampleLoss(multiHead.levelProjectors[t](s), y) * weights.detach().to(.float32).select(dim: 1, index: level.rawValue)
        sum = try sum.map { try $0 + term } ?? term
      }
      if let sum { modalities.append(sum) }
    }
    guard let first = modalities.first else { return try Tensor.zeros([side.image.size(0)], device: side.image.device) }
    return try modalities.dropFirst().reduce(first) { try $0 + $1 } / Double(modalities.count)
  }

  /// The 0/1 mask [B, T] of the teacher losses that count.
  func keep(losses: Tensor, batch: DistillBatch, teachers: [TeacherFeatures]) throws -> Tensor {
    let (b, t) = (losses.size(0), losses.size(1))
    guard let router else {
      guard config.dropProbability > 0 else { return try Tensor.ones([b, t], device: losses.device) }
      let uniform = try Tensor.rand([b, t], device: losses.device)
      return try Self.keepMask(losses: losses, uniform: uniform, dropProbability: config.dropProbability)
    }
    let query = try Functional.normalize(teachers[0].imageEmbedding.detach().to(.float32))
    let choice: Tensor
    switch router.kind {
    case .similarity:
      choice = try similarity!.route(query.to(similarity!.bank.device)).choice.to(losses.device)
    case .rl:
      let logProbabilities = try policy!(query).logSoftmax(dim: 1)  // [B, T]
      if Torch.isGradEnabled {
        // Gumbel-max: a sample from softmax(logits), drawn from the step's seeded generator.
        let u = try Tensor.rand([b, t], device: losses.device).clamp(min: 1e-12, max: 1 - 1e-12)
        choice = try (logProbabilities.detach() - u.log().neg().log()).argmax(dim: 1)
        pending = (batch.step, logProbabilities, choice)
      } else {
        choice = try logProbabilities.argmax(dim: 1)
      }
    }
    return try Functional.oneHot(choice, classes: t).to(losses.dtype)
  }

  public func afterStep(student: CLIPModel, batch: DistillBatch, result: MethodStep, context: StepContext) throws {
    try base?.afterStep(student: student, batch: batch, result: result, context: context)
    guard let router, router.kind == .rl, let policy, let policyOptimizer else { return }
    guard let heldOut = context.heldOut else {
      throw MethodError("method 'router' with kind rl learns from held-out pairs, but the runner gave no held-out batch")
    }
    // Reward of this step's routing: how much the student's held-out CLIP loss fell over it.
    let now = try Torch.noGrad {
      try SelectorTrainer.heldOutLoss(student: student, batch: heldOut(), temperature: 0.07).item()
    }
    defer { previousHeldOutLoss = now }
    guard let action = pending, action.step == batch.step, let before = previousHeldOutLoss else {
      pending = nil
      return
    }
    pending = nil
    let reward = before - now
    let advantage = reward - (baseline ?? reward)
    baseline = baseline.map { router.baselineMomentum * $0 + (1 - router.baselineMomentum) * reward } ?? reward
    let surrogate = try Torch.enableGrad {
      let chosen = try action.logProbabilities.gather(dim: 1, index: action.choice.unsqueeze(1)).squeeze(1)
      return try chosen.mean() * -advantage
    }
    let parameters = policy.parameters()
    for (p, g) in zip(parameters, try Torch.gradients(of: [surrogate], withRespectTo: parameters)) {
      if let g { try p.setGrad(g) }
    }
    try policyOptimizer.step()
    try policyOptimizer.zeroGrad()
    policyMetrics = ["router/reward": reward, "router/baseline": baseline ?? reward]
  }

  public func stateTensors() throws -> [String: Tensor] {
    var out: [String: Tensor] = try base?.stateTensors() ?? [:]
    for (t, standardizer) in ema.enumerated() { out.merge(standardizer.state(prefix: "ema.\(t)")) { a, _ in a } }
    if let policy, let policyOptimizer {
      for (key, t) in policy.stateDict() { out["router.policy.\(key)"] = t }
      for (key, t) in try policyOptimizer.stateDict() { out["router.optimizer.\(key)"] = t }
      if let baseline { out["router.baseline"] = try Tensor([baseline], shape: []) }
      if let previousHeldOutLoss { out["router.heldout_loss"] = try Tensor([previousHeldOutLoss], shape: []) }
      // The latest reward is logged with the next steps' metrics: a resumed run logs what an
      // uninterrupted one does.
      if let reward = policyMetrics["router/reward"] { out["router.reward"] = try Tensor([reward], shape: []) }
    }
    return out
  }

  public func loadState(_ tensors: [String: Tensor]) throws {
    try base?.loadState(tensors.filter { $0.key.hasPrefix("selector.") })
    for (t, standardizer) in ema.enumerated() { try standardizer.load(tensors, prefix: "ema.\(t)") }
    if let policy, let policyOptimizer {
      func group(_ prefix: String) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: tensors.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
      }
      _ = try policy.loadStateDict(group("router.policy."))
      try policyOptimizer.loadStateDict(group("router.optimizer."))
      baseline = try tensors["router.baseline"]?.item()
      previousHeldOutLoss = try tensors["router.heldout_loss"]?.item()
      pending = nil
      policyMetrics = [:]
      if let reward = try tensors["router.reward"]?.item() {
        policyMetrics = ["router/reward": reward, "router/baseline": baseline ?? reward]
      }
    }
  }
}
