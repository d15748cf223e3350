import Foundation
import Models
import Pyramid
import Torch
import TorchNN

/// λ for each term of the total loss (SPEC §5); 0 switches a term off.
public struct LossWeights: Codable, Equatable, Sendable {
  public var intraVision = 1.0
  public var intraLanguage = 1.0
  public var align = 0.5
  /// The shared-space terms, pyramid alignment (0.5 until session 11) and layer relation (0.3),
  /// are off by default: together they cost most of CMAPKD's extra step time (the bridges, their
  /// losses and backward) and moved test recall by ≤ 0.1 in the 3-seed ablations; on the
  /// validation split at seed 0 switching them off changed final mean recall by −0.1 (FD) and
  /// they are an ablation (`bridge_terms`) now. The bridges are not computed while both are 0.
  public var pyramid = 0.0
  public var relation = 0.3
  public var layerRelation = 0.0
  public var task = 1.0
  /// The embedding term's weight (`CMAPKDConfig.embeddingLoss` says which loss): 200 for the
  /// `unified` loss, chosen on the validation split at seed 0 from 50, 200 and 800 (final
  /// validation mean recall 65.2, 65.6, 64.2; docs/method.md); CLIP-KD's FD takes 2000.
  public var embedding = 200.0
  /// Pyramid alignment's global pair (P5, L4) on the deployed embeddings, at the models' own
  /// logit scales: KL(P_T ‖ P_S) of the image→text and text→image distributions over the batch
  /// (TinyCLIP's affinity mimicking; `Losses.deployedAffinity`). 1 since session 16, chosen on
  /// the validation split at seeds 0 and 1 from 0, 0.5, 1, 2 and 3 (final validation mean recall
  /// 65.38, 65.43, 65.64, 65.64, 65.29; docs/method.md); the ablation `no_affinity` sets it to 0.
  public var affinity = 1.0

  enum CodingKeys: String, CodingKey {
    case intraVision = "intra_vision", intraLanguage = "intra_language", align, pyramid, relation
    case layerRelation = "layer_relation", task, embedding, affinity
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = LossWeights()
    intraVision = try c.decode(.intraVision, default: d.intraVision)
    intraLanguage = try c.decode(.intraLanguage, default: d.intraLanguage)
    align = try c.decode(.align, default: d.align)
    pyramid = try c.decode(.pyramid, default: d.pyramid)
    relation = try c.decode(.relation, default: d.relation)
    layerRelation = try c.decode(.layerRelation, default: d.layerRelation)
    task = try c.decode(.task, default: d.task)
    embedding = try c.decode(.embedding, default: d.embedding)
    affinity = try c.decode(.affinity, default: d.affinity)
  }
}

/// How the `embedding` term compares the student's deployed embeddings with the teacher's.
public enum EmbeddingLoss: String, Codable, Sendable, CaseIterable {
  /// CLIP-KD's feature distillation: MSE of the L2-normalised embeddings (a linear map to the
  /// teacher's width when they differ). Its λ is of the order of 2000.
  case fd
  /// The unified-space loss of `multiteacher` on the one teacher: the teacher's normalised
  /// embeddings standardised by PHI-S (fitted on `method.multiteacher.sample_size` training
  /// pairs before training), the student's through an MLP projector, and per sample
  /// 0.5 · (1 − cos) + 0.5 · smooth-L1. Its λ is of the order of 50.
  case unified
}

/// How a `gating` or `policy` update computes the look-ahead credits c_bk = ⟨∇L_h, ∇ℓ_bk⟩
/// (`SelectorTrainer.credits`).
public enum CreditEstimator: String, Codable, Sendable, CaseIterable {
  /// Central differences along d = ∇L_h: c ≈ [ℓ(θ + h·d) − ℓ(θ − h·d)] / 2h, h = r / ‖d‖ (r:
  /// `selector_fd_radius`), every ℓ_bk from two forward passes without gradients, the student in
  /// eval mode (no dropout, so both passes see the same network). Error O(h²) plus float round-off.
  case finiteDifference = "finite_difference"
  /// Exact: ∇_θ Σ ε_bk ℓ_bk with the graph kept, then ∂⟨·, ∇L_h⟩/∂ε by a second backward, with
  /// attention on its twice-differentiable (math) kernel.
  case doubleBackward = "double_backward"
}

/// CMAPKD's settings.
public struct CMAPKDConfig: Codable, Equatable, Sendable {
  public var pyramid = PyramidConfig()
  public var lambdas = LossWeights()
  public var temperature = 0.07
  public var selection: SelectionMode = .gating
  /// For `manual` selection: 4 vision, 4 language and optionally 16 coupling weights.
  public var manualVision: [Double]?
  public var manualLanguage: [Double]?
  public var manualCoupling: [Double]?
  /// The ALSN's own optimizer (`gating`, `policy`): AdamW at this learning rate, no weight decay.
  public var selectorLearningRate = 1e-3
  /// The selector learns every K optimizer steps (K ≥ 1): each update costs extra passes
  /// over the student (see `SelectorTrainer`). 40 since session 14, chosen on the validation
  /// split over 20 (final mean recall, seeds 0–2: 65.38 ± 0.04 at K = 40, the same within noise
  /// as K = 20; docs/method.md) at half the selector's cost per step.
  public var selectorInterval = 40
  /// S: the `gating` update takes its look-ahead credits on the first S samples of the step's
  /// batch (0: all of them). Its cost grows with S and H (`make bench-distill`): at the demo's
  /// sizes 215 ms at S = H = 64, 109 ms at S = H = 32.
  public var selectorSamples = 32
  /// H: the held-out pairs of L_h in a `gating` update (the first H of the runner's held-out
  /// batch; 0: all of them). Data-parallel runs use both batches whole.
  public var selectorHeldOut = 32
  /// How the credits are computed (`CreditEstimator`).
  public var selectorCredit = CreditEstimator.finiteDifference
  /// r, the norm of the parameter perturbation of the `finite_difference` credits.
  public var selectorFDRadius = 1e-2
  /// β, the weight of the entropy bonus in the `gating` selector's loss. With credits
  /// normalized to Σ|ĉ| = 1 the selector's optimum is w ∝ exp(ĉ / β), so β bounds how far
  /// the weights can collapse (`SelectorTrainer.entropyFloor`).
  public var selectorEntropyWeight = 0.5
  /// σ of the `policy` mode's logit-normal policy (exploration in logit space).
  public var policySigma = 0.5
  /// λ of the `policy` reward: the sample's look-ahead credit − λ · its expected level cost.
  public var policyCostWeight = 0.01
  /// A level (adapter forward and loss) is skipped for a batch when no sample gives it at
  /// least this weight (its intra-modal weight or its row of the coupling): what makes the
  /// `policy` cost buy time. 0 computes every active level.
  public var skipThreshold = 0.02
  /// The ablations "w/o visual pyramid" / "w/o language hierarchy": false keeps only P5 / L4
  /// of that modality in every term (intra, pyramid alignment, layer relation).
  public var visionPyramid = true
  public var languageHierarchy = true
  /// The `embedding` term's loss (`EmbeddingLoss`): `unified` since session 11, chosen on the
  /// validation split over `fd` (docs/method.md).
  public var embeddingLoss = EmbeddingLoss.unified
  /// Momentum of the `policy` reward baseline (an exponential moving average).
  public var policyBaselineMomentum = 0.9

  enum CodingKeys: String, CodingKey {
    case pyramid, lambdas, temperature, selection
    case manualVision = "manual_vision", manualLanguage = "manual_language", manualCoupling = "manual_coupling"
    case selectorLearningRate = "selector_learning_rate", selectorInterval = "selector_interval"
    case selectorSamples = "selector_samples", selectorHeldOut = "selector_heldout"
    case selectorCredit = "selector_credit", selectorFDRadius = "selector_fd_radius"
    case selectorEntropyWeight = "selector_entropy_weight", policySigma = "policy_sigma", policyCostWeight = "policy_cost_weight"
    case policyBaselineMomentum = "policy_baseline_momentum", skipThreshold = "skip_threshold"
    case visionPyramid = "vision_pyramid", languageHierarchy = "language_hierarchy", embeddingLoss = "embedding_loss"
  }

  public init(
    pyramid: PyramidConfig = PyramidConfig(), lambdas: LossWeights = LossWeights(), temperature: Double = 0.07,
    selection: SelectionMode = .gating
  ) {
    self.pyramid = pyramid
    self.lambdas = lambdas
    self.temperature = temperature
    self.selection = selection
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = CMAPKDConfig()
    pyramid = try c.decode(.pyramid, default: d.pyramid)
    lambdas = try c.decode(.lambdas, default: d.lambdas)
    temperature = try c.decode(.temperature, default: d.temperature)
    selection = try c.decode(.selection, default: d.selection)
    manualVision = try c.decodeIfPresent([Double].self, forKey: .manualVision)
    manualLanguage = try c.decodeIfPresent([Double].self, forKey: .manualLanguage)
    manualCoupling = try c.decodeIfPresent([Double].self, forKey: .manualCoupling)
    selectorLearningRate = try c.decode(.selectorLearningRate, default: d.selectorLearningRate)
    selectorInterval = try c.decode(.selectorInterval, default: d.selectorInterval)
    selectorSamples = try c.decode(.selectorSamples, default: d.selectorSamples)
    selectorHeldOut = try c.decode(.selectorHeldOut, default: d.selectorHeldOut)
    selectorCredit = try c.decode(.selectorCredit, default: d.selectorCredit)
    selectorFDRadius = try c.decode(.selectorFDRadius, default: d.selectorFDRadius)
    selectorEntropyWeight = try c.decode(.selectorEntropyWeight, default: d.selectorEntropyWeight)
    policySigma = try c.decode(.policySigma, default: d.policySigma)
    policyCostWeight = try c.decode(.policyCostWeight, default: d.policyCostWeight)
    policyBaselineMomentum = try c.decode(.policyBaselineMomentum, default: d.policyBaselineMomentum)
    skipThreshold = try c.decode(.skipThreshold, default: d.skipThreshold)
    visionPyramid = try c.decode(.visionPyramid, default: d.visionPyramid)
    languageHierarchy = try c.decode(.languageHierarchy, default: d.languageHierarchy)
    embeddingLoss = try c.decode(.embeddingLoss, default: d.embeddingLoss)
  }

  /// Whether the `embedding` term needs the PHI-S standardisation fitted on a sample of the
  /// teacher's embeddings before training (`MethodContext.teacherSample`).
  public var needsTeacherSample: Bool { embeddingLoss == .unified && lambdas.embedding != 0 }

  /// The levels of each modality a stage trains, after the per-modality ablation switches.
  public func activeLevels(_ stage: Stage) -> (vision: Set<Level>, language: Set<Level>) {
    let levels = stage.activeLevels
    return (visionPyramid ? levels : levels.intersection([.global]), languageHierarchy ? levels : levels.intersection([.global]))
  }

  /// Throws naming the first selector setting that cannot work.
  public func validate() throws {
    func check(_ ok: Bool, _ message: String) throws { if !ok { throw PyramidError("cmapkd: \(message)") } }
    try check(selectorLearningRate >= 0, "selector_learning_rate must be ≥ 0, got \(selectorLearningRate)")
    try check(selectorInterval >= 1, "selector_interval must be ≥ 1 (learn every K steps), got \(selectorInterval)")
    try check(selectorSamples >= 0, "selector_samples must be ≥ 0 (0: the whole batch), got \(selectorSamples)")
    try check(selectorHeldOut >= 0, "selector_heldout must be ≥ 0 (0: the whole held-out batch), got \(selectorHeldOut)")
    try check(
      selectorFDRadius > 0 && selectorFDRadius.isFinite, "selector_fd_radius must be a positive number, got \(selectorFDRadius)")
    try check(selectorEntropyWeight >= 0, "selector_entropy_weight must be ≥ 0, got \(selectorEntropyWeight)")
    try check(policySigma > 0, "policy_sigma must be > 0, got \(policySigma)")
    try check(policyCostWeight >= 0, "policy_cost_weight must be ≥ 0, got \(policyCostWeight)")
    try check((0..<1).contains(skipThreshold), "skip_threshold must be in [0, 1), got \(skipThreshold)")
    try check(
      (0..<1).contains(policyBaselineMomentum), "policy_baseline_momentum must be in [0, 1), got \(policyBaselineMomentum)")
  }
}

/// The student-side modules CMAPKD adds: level adapters, the cross-modal bridge and the ALSN.
/// Dropped at inference: the distilled student is the plain `CLIPModel`.
public final class CMAPKDHead: Module {
  public let pyramid: StudentPyramid
  /// The student's bridges into the shared space; nil when no term reads the shared space
  /// (pyramid alignment and layer relation off, the default): no parameters that never learn.
  public let bridge: CrossModalBridge?
  public let alsn: ALSN
  /// The student's deployed embeddings [B, P_s] → the teacher's joint width [B, P_t], for the
  /// `fd` embedding term; nil when P_s = P_t (compared directly, as CLIP-KD does) or for `unified`.
  public let imageProjection: Linear?
  public let textProjection: Linear?
  /// The `unified` embedding term's projector (both modalities, as `multiteacher` has it).
  public let embeddingProjector: TeacherProjector?

  /// - Parameters:
  ///   - embeddingLoss: which `embedding` term the head serves (its projections differ).
  ///   - bridges: whether to build the shared-space bridges (`CMAPKD.needsShared`).
  ///   - adapter: the level adapters' kind (`pyramid.adapter`).
  public init(
    student: CLIPConfig, teacher: CLIPModel, embeddingLoss: EmbeddingLoss = CMAPKDConfig().embeddingLoss, bridges: Bool = true,
    adapter: AdapterKind = PyramidConfig().adapter
  ) throws {
    let t = teacher.config
    pyramid = try StudentPyramid(
      studentWidths: (student.visionConfig.hiddenSize, student.textConfig.hiddenSize),
      teacherWidths: (t.visionConfig.hiddenSize, t.textConfig.hiddenSize), kind: adapter)
    bridge = bridges ? try CrossModalBridge(teacher: TeacherBridge(teacher)) : nil
    alsn = try ALSN(featureWidth: student.projectionDim)
    let differ = student.projectionDim != t.projectionDim && embeddingLoss == .fd
    imageProjection = differ ? try Linear(student.projectionDim, t.projectionDim) : nil
    textProjection = differ ? try Linear(student.projectionDim, t.projectionDim) : nil
    embeddingProjector =
      embeddingLoss == .unified
      ? try TeacherProjector(
        kind: .mlp, studentWidth: student.projectionDim, teacherWidth: t.projectionDim,
        hidden: MultiTeacherConfig().projectorHidden) : nil
    super.init()
  }

  /// The student's embeddings in the teacher's joint width: for `fd` the raw embeddings (through
  /// the linear maps when the widths differ), for `unified` the projector's output on the
  /// L2-normalised embeddings (`units`, the same rows normalized, as `StudentSide.units` holds them).
  public func projectToTeacher(image: Tensor, text: Tensor, units: (image: Tensor, text: Tensor)) throws -> (
    image: Tensor, text: Tensor
  ) {
    if let embeddingProjector {
      // Both modalities in one pass of the shared projector (row by row the same map).
      let both = try embeddingProjector(Tensor.cat([units.image, units.text], dim: 0))
      let b = image.size(0)
      return (try both.narrow(dim: 0, start: 0, length: b), try both.narrow(dim: 0, start: b, length: both.size(0) - b))
    }
    return (try imageProjection.map { try $0(image) } ?? image, try textProjection.map { try $0(text) } ?? text)
  }
}

/// One batch's CMAPKD loss: λ-weighted named parts and the level weights used.
public struct CMAPKDStep {
  public var loss: LossParts
  public var weights: LevelWeights
  public var total: Tensor
  /// The levels computed this step (active in the stage and not skipped).
  public var computed: (vision: Set<Level>, language: Set<Level>)
  /// The student's side the losses were computed from (multi-teacher distillation on top of
  /// CMAPKD reads its shared-space levels).
  public var side: StudentSide? = nil
}

/// The student's towers on one batch: what every CMAPKD term starts from, and all the ALSN reads.
public struct StudentTowers {
  public var vision: VisionOutput
  public var text: TextOutput
  /// The student's deployed image and text embeddings [B, P_s] (not normalized).
  public var image: Tensor
  public var caption: Tensor
  public var attentionMask: Tensor
}

/// The student's side of one batch before any level weighting: its embeddings, its adapted
/// pyramid levels (teacher widths and resolutions) and their shared-space vectors.
public struct StudentSide {
  /// The student's own image and text embeddings [B, P_s].
  public var image: Tensor
  public var caption: Tensor
  /// The same L2-normalized (once, for every term that compares directions).
  public var units: (image: Tensor, text: Tensor)
  /// The same in the teacher's joint width (`CMAPKDHead.projectToTeacher`), for the `embedding` term.
  public var inTeacherWidth: (image: Tensor, caption: Tensor)
  /// The student's learnable log logit scale (for the task term).
  public var logitScale: Tensor
  /// Only the levels in `computed` are real; a skipped level holds a placeholder that fails
  /// loudly if a loss reaches it. L1's and L2's padded positions are not zeroed: every term
  /// that reads them masks them (`StudentPyramid.adapt(zeroPadding:)`).
  public var vision: VisionLevels
  public var language: LanguageLevels
  /// Each level in the shared space, 4 × [B, P] per modality.
  public var shared: (vision: [Tensor], language: [Tensor])
  /// The levels whose adapters and bridges ran.
  public var computed: (vision: Set<Level>, language: Set<Level>)
}

/// Cross-Modal Adaptive Pyramid Knowledge Distillation: composes pyramids, bridge, ALSN and
/// the three levels of losses into the student's training loss.
public struct CMAPKD {
  public var config: CMAPKDConfig
  /// The teacher's PHI-S standardisation for the `unified` embedding term (`CMAPKDMethod` fits it
  /// on the runner's sample of the teacher's embeddings).
  public var standardizer: PHISStandardizer?
  /// Computes the levels' shared-space vectors even when no CMAPKD term reads them
  /// (`multiteacher` on CMAPKD distils them).
  public var alwaysShared = false
  /// exp of the teacher's logit scale, for the `affinity` term (`CMAPKDMethod` reads it from the
  /// teacher).
  public var teacherLogitScale: Double?

  public init(_ config: CMAPKDConfig, standardizer: PHISStandardizer? = nil, teacherLogitScale: Double? = nil) {
    self.config = config
    self.standardizer = standardizer
    self.teacherLogitScale = teacherLogitScale
  }

  /// CMAPKD for `teacher`: the `affinity` term reads the teacher's logit scale.
  public init(_ config: CMAPKDConfig, teacher: CLIPModel, standardizer: PHISStandardizer? = nil) throws {
    self.init(config, standardizer: standardizer, teacherLogitScale: try Baselines.logitScale(of: teacher))
  }

  /// Whether a step needs the student's levels in the shared space (the bridges): only the
  /// pyramid-alignment and layer-relation terms read them.
  public var needsShared: Bool { alwaysShared || config.lambdas.pyramid != 0 || config.lambdas.layerRelation != 0 }

  /// The loss of one batch at a stage of the progressive schedule: towers, level weights
  /// from their embeddings, then only the levels some sample weights enough (adapters,
  /// bridges, losses).
  /// - Parameters:
  ///   - student: the student being trained; `head`: its CMAPKD modules.
  ///   - teacher: the teacher's features for the same batch (computed live or from the cache).
  ///   - pixels [B, C, H, W], ids [B, T], attentionMask [B, T].
  public func step(
    student: CLIPModel, head: CMAPKDHead, teacher: TeacherFeatures, pixels: Tensor, ids: Tensor, attentionMask: Tensor,
    stage: Stage
  ) throws -> CMAPKDStep {
    let towers = try self.towers(student: student, pixels: pixels, ids: ids, attentionMask: attentionMask)
    let active = config.activeLevels(stage)
    let weights = try levelWeights(head: head, image: towers.image, text: towers.caption, active: active)
    return try step(student: student, head: head, towers: towers, teacher: teacher, weights: weights, active: active)
  }

  /// The rest of a step once the level weights are chosen.
  public func step(
    student: CLIPModel, head: CMAPKDHead, towers: StudentTowers, teacher: TeacherFeatures, weights: LevelWeights,
    active: (vision: Set<Level>, language: Set<Level>)
  ) throws -> CMAPKDStep {
    let computed = try CMAPKD.levelsToCompute(weights: weights, active: active, threshold: config.skipThreshold)
    let side = try levels(student: student, head: head, towers: towers, teacher: teacher, computing: computed)
    var result = try losses(side, teacher: teacher, weights: weights)
    result.side = side
    return result
  }

  /// The student's forward pass on one batch with every level: towers, pyramids at the
  /// teacher's resolutions, adapters and bridges.
  public func forward(
    student: CLIPModel, head: CMAPKDHead, teacher: TeacherFeatures, pixels: Tensor, ids: Tensor, attentionMask: Tensor,
    computing: (vision: Set<Level>, language: Set<Level>) = (Set(Level.allCases), Set(Level.allCases))
  ) throws -> StudentSide {
    let towers = try self.towers(student: student, pixels: pixels, ids: ids, attentionMask: attentionMask)
    return try levels(student: student, head: head, towers: towers, teacher: teacher, computing: computing)
  }

  /// The student's towers and deployed embeddings.
  public func towers(student: CLIPModel, pixels: Tensor, ids: Tensor, attentionMask: Tensor) throws -> StudentTowers {
    let vision = try student.visionModel(pixels)
    let text = try student.textModel(ids, attentionMask: attentionMask)
    return StudentTowers(
      vision: vision, text: text, image: try student.visualProjection(vision.pooled),
      caption: try student.textProjection(text.pooled), attentionMask: attentionMask)
  }

  /// The student's pyramid levels from its towers: parameter-free extraction at the
  /// teacher's resolutions, then the adapters and bridges of the levels in `computing` only.
  public func levels(
    student: CLIPModel, head: CMAPKDHead, towers: StudentTowers, teacher: TeacherFeatures,
    computing: (vision: Set<Level>, language: Set<Level>)
  ) throws -> StudentSide {
    let pyramidConfig = config.pyramid
    let rawVision = try VisionPyramid.levels(
      taps: VisionPyramid.taps(towers.vision, config: pyramidConfig), grid: towers.vision.grid, targetGrid: teacher.grid,
      config: pyramidConfig)
    let rawLanguage = try LanguageHierarchy.levels(
      taps: LanguageHierarchy.taps(towers.text, config: pyramidConfig), attentionMask: towers.attentionMask,
      pooledPositions: towers.text.pooledPositions, config: pyramidConfig)
    let (studentVision, studentLanguage) = try head.pyramid.adapt(
      vision: rawVision, language: rawLanguage, visionLevels: computing.vision, languageLevels: computing.language,
      zeroPadding: false)
    guard (head.embeddingProjector != nil) == (config.embeddingLoss == .unified) else {
      throw PyramidError(
        "cmapkd: the head was built for another embedding loss than embedding_loss '\(config.embeddingLoss.rawValue)' (CMAPKDHead(embeddingLoss:))")
    }
    let units = (image: try Functional.normalize(towers.image), text: try Functional.normalize(towers.caption))
    let projected = try head.projectToTeacher(image: towers.image, text: towers.caption, units: units)
    return StudentSide(
      image: towers.image, caption: towers.caption, units: units, inTeacherWidth: (projected.image, projected.text),
      logitScale: student.logitScale, vision: studentVision,
      language: studentLanguage,
      shared: try shared(head: head, vision: studentVision, language: studentLanguage, computing: computing),
      computed: computing)
  }

  /// The computed levels in the shared space through the head's bridges; without a term that
  /// reads them the bridges do not run and every level holds an empty placeholder.
  func shared(
    head: CMAPKDHead, vision: VisionLevels, language: LanguageLevels, computing: (vision: Set<Level>, language: Set<Level>)
  ) throws -> (vision: [Tensor], language: [Tensor]) {
    guard needsShared else {
      let empty = try Tensor.zeros([0])
      let placeholders = Level.allCases.map { _ in empty }
      return (placeholders, placeholders)
    }
    guard let bridge = head.bridge else {
      throw PyramidError(
        "cmapkd: pyramid alignment or layer relation is on, but the head was built without bridges (CMAPKDHead(bridges: false))")
    }
    return try bridge.shared(vision: vision, language: language, visionLevels: computing.vision, languageLevels: computing.language)
  }

  /// The active levels some sample needs: level i of a modality is computed when its largest
  /// weight over the batch, or its largest share of the coupling (Σⱼ αᵢⱼ), reaches
  /// `threshold`. A skipped level costs nothing (no adapter, bridge or loss) and its weight
  /// is below the threshold for every sample.
  public static func levelsToCompute(
    weights: LevelWeights, active: (vision: Set<Level>, language: Set<Level>), threshold: Double
  ) throws -> (vision: Set<Level>, language: Set<Level>) {
    guard threshold > 0 else { return active }
    let coupling = try weights.coupling.detach()
    // [vision, language, each vision level's share of α, each language level's] over samples:
    // one [4, 4] read back (one host sync on a GPU), not four.
    let largest = try Tensor.stack([
      weights.vision.detach(), weights.language.detach(), coupling.sum(dim: 2), coupling.sum(dim: 1),
    ]).amax(dims: [1]).doubles()  // [4 · 4], row-major
    func needed(_ level: Level, own: Int, share: Int) -> Bool {
      largest[own * 4 + level.rawValue] >= threshold || largest[share * 4 + level.rawValue] >= threshold
    }
    return (
      active.vision.filter { needed($0, own: 0, share: 2) }, active.language.filter { needed($0, own: 1, share: 3) }
    )
  }

  /// The λ-weighted loss terms of one batch given the student's side and the level weights,
  /// over the levels the side computed.
  public func losses(_ side: StudentSide, teacher: TeacherFeatures, weights: LevelWeights) throws -> CMAPKDStep {
    let lambdas = config.lambdas
    let (activeVision, activeLanguage) = side.computed
    let (teacherVision, teacherLanguage) = try teacher.levels(config.pyramid)
    let shared = side.shared
    var parts = LossParts()
    func add(_ lambda: Double, _ name: String, _ make: () throws -> LossParts) throws {
      guard lambda != 0 else { return }
      // × 1 is exact both ways: skipping it saves a multiply and its backward node per part.
      parts.merge(lambda == 1 ? try make() : try make().scaled(by: lambda), prefix: name)
    }
    // The deployed embeddings, each normalized once for every global term.
    let units = try Losses.Units(
      studentUnits: side.units, teacherImage: teacher.imageEmbedding, teacherText: teacher.textEmbedding)
    try add(lambdas.intraVision, "intra_v") {
      try Losses.intraVision(student: side.vision, teacher: teacherVision, weights: weights.vision, active: activeVision)
    }
    try add(lambdas.intraLanguage, "intra_l") {
      try Losses.intraLanguage(student: side.language, teacher: teacherLanguage, weights: weights.language, active: activeLanguage)
    }
    // The global terms act on the student's deployed embeddings, what ships (SPEC §5).
    try add(lambdas.align, "align") {
      try Losses.deployedAlignment(units, temperature: config.temperature)
    }
    try add(lambdas.affinity, "affinity") {
      guard let teacherLogitScale else {
        throw PyramidError("cmapkd: the affinity term needs the teacher's logit scale (CMAPKD.teacherLogitScale)")
      }
      return try Losses.deployedAffinity(units, studentScale: side.logitScale.exp(), teacherScale: teacherLogitScale)
    }
    try add(lambdas.embedding, "embedding") {
      switch config.embeddingLoss {
      case .fd:
        return try CLIPKDMethod.featureDistillation(
          studentImage: side.inTeacherWidth.image, studentText: side.inTeacherWidth.caption,
          teacherImage: teacher.imageEmbedding, teacherText: teacher.textEmbedding)
      case .unified:
        return try unifiedEmbedding(side, teacherUnits: (units.teacherImage, units.teacherText))
      }
    }
    try add(lambdas.pyramid, "pyramid") {
      try Losses.pyramidAlignment(
        student: shared, teacher: (teacher.sharedVision, teacher.sharedLanguage), coupling: weights.coupling,
        activeVision: activeVision, activeLanguage: activeLanguage, temperature: config.temperature)
    }
    try add(lambdas.relation, "relation") {
      try Losses.sampleRelation(units: [units.studentImage, units.studentText], teacher: [units.teacherImage, units.teacherText])
    }
    try add(lambdas.layerRelation, "layer_relation") {
      // One level has no relation to another: a modality with one level sits this term out.
      var student: [[Tensor]] = [], target: [[Tensor]] = [], names: [String] = []
      for (name, active, s, t) in [
        ("vision", activeVision, shared.vision, teacher.sharedVision),
        ("language", activeLanguage, shared.language, teacher.sharedLanguage),
      ] {
        let levels = Level.allCases.filter { active.contains($0) }.map(\.rawValue)
        guard levels.count > 1 else { continue }
        student.append(levels.map { s[$0] })
        target.append(levels.map { t[$0] })
        names.append(name)
      }
      return try Losses.layerRelation(student: student, teacher: target, names: names)
    }
    try add(lambdas.task, "task") {
      var task = LossParts()
      task.add("clip", try Losses.clip(units: units.studentImage, units.studentText, logitScale: side.logitScale))
      return task
    }
    guard let total = try parts.sum() else { throw PyramidError("every loss term is switched off (all λ are 0)") }
    return CMAPKDStep(loss: parts, weights: weights, total: total, computed: side.computed)
  }

  /// The `unified` embedding term: batch mean of 0.5 · (ℓ_image + ℓ_text), each
  /// ℓ = 0.5 · (1 − cos) + 0.5 · smooth-L1 between the projected student embedding and the
  /// teacher's PHI-S-standardised normalised embedding (`MultiTeacherMethod.perSampleLoss`).
  /// - Parameter teacherUnits: the teacher's embeddings L2-normalized (`Losses.Units`).
  public func unifiedEmbedding(_ side: StudentSide, teacherUnits: (image: Tensor, text: Tensor)) throws -> LossParts {
    guard let standardizer else {
      throw PyramidError(
        "cmapkd: embedding_loss 'unified' needs the teacher's PHI-S standardisation, fitted on a sample of its embeddings the runner provides (MethodContext.teacherSample)")
    }
    // In float32 at least, whatever autocast gave the projector (float64 stays float64).
    let dtype: DType = side.inTeacherWidth.image.dtype == .float64 ? .float64 : .float32
    // Images and captions stacked [2B, D]: the mean over both is 0.5 · (mean ℓ_image + mean ℓ_text).
    let target = try standardizer(Tensor.cat([teacherUnits.image, teacherUnits.text], dim: 0).to(dtype))
    let prediction = try Tensor.cat([side.inTeacherWidth.image, side.inTeacherWidth.caption], dim: 0).to(dtype)
    var parts = LossParts()
    parts.add("unified", try MultiTeacherMethod.perSampleLoss(prediction, target).mean())
    return parts
  }

  /// The level weights of one batch for the configured mode, cut from the autograd graph.
  ///
  /// The weights multiply the losses as constants: the selector is never trained on the loss
  /// it weights (that collapses onto the easiest level). `gating` and `policy` learn from
  /// held-out progress instead, in `SelectorTrainer`; here `policy` acts greedily (the
  /// policy's mean action), and `CMAPKDMethod` samples around it on the steps it learns from.
  public func levelWeights(
    head: CMAPKDHead, image: Tensor, text: Tensor, active: (vision: Set<Level>, language: Set<Level>)
  ) throws -> LevelWeights {
    switch config.selection {
    case .uniform:
      return try FixedWeights.make(
        batch: image.size(0), activeVision: active.vision, activeLanguage: active.language, device: image.device)
    case .manual:
      return try FixedWeights.make(
        batch: image.size(0), vision: config.manualVision, language: config.manualLanguage, coupling: config.manualCoupling,
        activeVision: active.vision, activeLanguage: active.language, device: image.device)
    case .gating:
      // Without gradients: the weights are constants of the step, so no graph is worth recording.
      return try Torch.noGrad {
        try head.alsn(image: image, text: text, activeVision: active.vision, activeLanguage: active.language)
      }
    case .policy:
      let actions = try Torch.noGrad { try head.alsn.logits(image: image, text: text).sigmoid() }
      return try LevelWeights.proportional(actions: actions, activeVision: active.vision, activeLanguage: active.language)
    }
  }
}
