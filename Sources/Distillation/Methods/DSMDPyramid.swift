import Models
import Pyramid
import Torch
import TorchNN

/// Settings of `dsmd`.
public struct DSMDPyramidConfig: Codable, Equatable, Sendable {
  /// Where the terms apply: pyramid scales `P2`…`P5` (the teacher's shared-space level vectors,
  /// P(k+2) paired with L(k+1)) and `embedding` (the final embeddings).
  public var scales = ["P2", "P3", "P4", "P5", "embedding"]
  /// λ of each distillation term; the balancer's weight multiplies it.
  public var contrastiveWeight = 1.0
  public var featureWeight = 1.0
  public var similarityWeight = 1.0
  public var hardNegativeWeight = 1.0
  /// λ of the student's CLIP loss (not balanced).
  public var taskWeight = 1.0
  /// τ of the contrastive term.
  public var temperature = 0.07
  /// Past teacher vectors kept per scale and modality as extra negatives; 0 = this batch only.
  public var queueSize = 1024
  /// m of the hard-negative triplet.
  public var margin = 0.2
  /// k hardest negatives (ranked by the teacher) per anchor.
  public var hardNegatives = 1
  public var balancer = DSMDBalancerConfig()

  enum CodingKeys: String, CodingKey {
    case scales, temperature, margin, balancer
    case contrastiveWeight = "contrastive_weight", featureWeight = "feature_weight", similarityWeight = "similarity_weight"
    case hardNegativeWeight = "hard_negative_weight", taskWeight = "task_weight", queueSize = "queue_size", hardNegatives =
      "hard_negatives"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = DSMDPyramidConfig()
    scales = try c.decode(.scales, default: d.scales)
    contrastiveWeight = try c.decode(.contrastiveWeight, default: d.contrastiveWeight)
    featureWeight = try c.decode(.featureWeight, default: d.featureWeight)
    similarityWeight = try c.decode(.similarityWeight, default: d.similarityWeight)
    hardNegativeWeight = try c.decode(.hardNegativeWeight, default: d.hardNegativeWeight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
    temperature = try c.decode(.temperature, default: d.temperature)
    queueSize = try c.decode(.queueSize, default: d.queueSize)
    margin = try c.decode(.margin, default: d.margin)
    hardNegatives = try c.decode(.hardNegatives, default: d.hardNegatives)
    balancer = try c.decode(.balancer, default: d.balancer)
  }

  /// λ of each distillation term by name.
  var termWeights: [(term: String, weight: Double)] {
    [
      ("contrastive", contrastiveWeight), ("feature", featureWeight), ("similarity", similarityWeight),
      ("hard_negative", hardNegativeWeight),
    ]
  }
}

/// DSMD's student-side modules: per pyramid scale, a projector of the student's pooled tap into
/// the teacher's shared space (LayerNorm + Linear, keys `vision.P4`, `language.P4`, …), and for
/// the `embedding` scale a Linear from the student's embedding width to the teacher's when they
/// differ. Dropped at inference.
public final class DSMDPyramidHead: Module {
  public let vision: [String: BridgeProjector]
  public let language: [String: BridgeProjector]
  public let imageEmbedding: Linear?
  public let textEmbedding: Linear?

  public init(scales: [String], student: CLIPConfig, sharedWidth: Int) throws {
    let pyramid = scales.filter { $0 != "embedding" }
    vision = Dictionary(
      uniqueKeysWithValues: try pyramid.map {
        ($0, try BridgeProjector(width: student.visionConfig.hiddenSize, sharedWidth: sharedWidth))
      })
    language = Dictionary(
      uniqueKeysWithValues: try pyramid.map {
        ($0, try BridgeProjector(width: student.textConfig.hiddenSize, sharedWidth: sharedWidth))
      })
    let project = scales.contains("embedding") && student.projectionDim != sharedWidth
    imageEmbedding = project ? try Linear(student.projectionDim, sharedWidth, bias: false) : nil
    textEmbedding = project ? try Linear(student.projectionDim, sharedWidth, bias: false) : nil
    super.init()
  }
}

/// `dsmd-pyramid`: ours, not DSMD as its authors coded it (that is `dsmd`, DSMD.swift). DSMD's
/// idea of several terms against the teacher (Liang et al. 2024, arXiv 2404.10838) applied at
/// our pyramid's scales, with a progress-ratio balancer of our own. At every configured scale, four terms against the teacher's outputs — contrastive (with a
/// FIFO queue of past teacher vectors as extra negatives), feature, similarity (intra- and
/// cross-modal batch structure) and hard-negative (negatives ranked by the teacher, triplet
/// form) — each weighted by λ and by the `DSMDBalancer`'s weight; plus the task loss.
///
/// Each term is averaged over the scales, so the number of scales does not change its size.
/// The balancer and the queues are method state (`stateTensors()`), updated in `afterStep`.
public final class DSMDPyramidMethod: DistillationMethod {
  public let name = "dsmd-pyramid"
  public let teacherInputs: Set<TeacherInput> = [.embeddings, .shared]
  public let config: DSMDPyramidConfig
  public let dsmdHead: DSMDPyramidHead
  public var head: Module? { dsmdHead }
  public let balancer: DSMDBalancer
  /// Per scale, the image and text queues of past (normalized) teacher vectors.
  public let queues: [String: (image: FeatureQueue, text: FeatureQueue)]
  /// Terms with λ ≠ 0, in the fixed order contrastive, feature, similarity, hard_negative.
  public let activeTerms: [String]
  let pyramid: PyramidConfig
  let sharedWidth: Int

  public static let allScales = ["P2", "P3", "P4", "P5", "embedding"]
  public static let allTerms = ["contrastive", "feature", "similarity", "hard_negative"]

  public init(config: DSMDPyramidConfig, context: MethodContext) throws {
    let unknown = config.scales.filter { !DSMDPyramidMethod.allScales.contains($0) }
    guard !config.scales.isEmpty, Set(config.scales).count == config.scales.count, unknown.isEmpty else {
      throw MethodError("dsmd-pyramid: scales \(config.scales) must be distinct names from \(DSMDPyramidMethod.allScales), at least one")
    }
    for (term, weight) in config.termWeights { try Baselines.checkWeight(weight, name, "\(term)_weight") }
    try Baselines.checkWeight(config.taskWeight, name, "task_weight")
    guard config.temperature > 0, config.margin >= 0, config.queueSize >= 0, config.hardNegatives >= 1 else {
      throw MethodError(
        "dsmd-pyramid: need temperature > 0, margin ≥ 0, queue_size ≥ 0 and hard_negatives ≥ 1 "
          + "(got \(config.temperature), \(config.margin), \(config.queueSize), \(config.hardNegatives))")
    }
    self.config = config
    pyramid = context.pyramid
    sharedWidth = context.teacher.config.projectionDim
    activeTerms = config.termWeights.filter { $0.weight != 0 }.map(\.term)
    balancer = try DSMDBalancer(terms: activeTerms, config: config.balancer)
    dsmdHead = try DSMDPyramidHead(scales: config.scales, student: context.student, sharedWidth: sharedWidth)
    let width = sharedWidth
    queues = Dictionary(
      uniqueKeysWithValues: config.scales.map {
        ($0, (FeatureQueue(capacity: config.queueSize, width: width), FeatureQueue(capacity: config.queueSize, width: width)))
      })
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let pass = try StudentPass(student: student, batch: batch)
    var parts = LossParts()
    var metrics: [String: Double] = [:]
    if !activeTerms.isEmpty {
      let teacher = try batch.requireTeacher(name)
      let weights = balancer.namedWeights()
      let lambdas = Dictionary(uniqueKeysWithValues: config.termWeights)
      let students = try studentVectors(pass, attentionMask: batch.attentionMask)
      let scaleCount = Double(config.scales.count)
      var raw: [String: Tensor] = [:]  // Σ over scales of each term / S, for the balancer
      for scale in config.scales {
        let queue = queues[scale]!
        let terms = try DSMDPyramidMethod.scaleTerms(
          student: students[scale]!, teacher: try teacherVectors(teacher, scale: scale),
          queue: (try queue.image.entries(), try queue.text.entries()), terms: Set(activeTerms), temperature: config.temperature,
          margin: config.margin, hardNegatives: config.hardNegatives)
        for (term, value) in terms.parts {
          parts.add("dsmd/\(term)/\(scale)", try value * (lambdas[term]! * weights[term]! / scaleCount))
          let share = try value.detach() / scaleCount
          raw[term] = try raw[term].map { try $0 + share } ?? share
        }
      }
      for term in activeTerms {
        metrics["dsmd/weight/\(term)"] = weights[term]!
        metrics["dsmd/term/\(term)"] = try raw[term]!.item()
      }
      metrics["dsmd/queue_fill"] = Double(queues[config.scales[0]]!.image.count)
    }
    try parts.addWeighted(config.taskWeight, "task") { try Baselines.task(pass, student: student) }
    var step = try MethodStep(loss: parts, method: name, metrics: metrics)
    step.embeddings = (pass.image, pass.caption)
    return step
  }

  /// Feeds this step's term values to the balancer and this batch's teacher vectors to the queues.
  public func afterStep(student: CLIPModel, batch: DistillBatch, result: MethodStep, context: StepContext) throws {
    guard !activeTerms.isEmpty else { return }
    let values = try activeTerms.map { term in
      guard let value = result.metrics["dsmd/term/\(term)"] else {
        throw MethodError(
          "dsmd-pyramid: the step result lacks metric 'dsmd/term/\(term)'; pass afterStep the MethodStep that loss(...) returned")
      }
      return value
    }
    try balancer.observe(values)
    guard activeTerms.contains("contrastive"), config.queueSize > 0 else { return }
    let teacher = try batch.requireTeacher(name)
    for scale in config.scales {
      let (image, text) = try teacherVectors(teacher, scale: scale)
      try queues[scale]!.image.enqueue(Functional.normalize(image.detach()))
      try queues[scale]!.text.enqueue(Functional.normalize(text.detach()))
    }
  }

  /// Queues (`queue.<scale>.image` / `.text`, with `.pointer` and `.count`) and the balancer
  /// (`balancer.*`).
  public func stateTensors() throws -> [String: Tensor] {
    var out = try balancer.stateTensors(prefix: "balancer")
    for (scale, queue) in queues {
      out.merge(try queue.image.stateTensors(prefix: "queue.\(scale).image")) { a, _ in a }
      out.merge(try queue.text.stateTensors(prefix: "queue.\(scale).text")) { a, _ in a }
    }
    return out
  }

  public func loadState(_ tensors: [String: Tensor]) throws {
    try balancer.loadState(tensors, prefix: "balancer")
    for (scale, queue) in queues {
      try queue.image.loadState(tensors, prefix: "queue.\(scale).image")
      try queue.text.loadState(tensors, prefix: "queue.\(scale).text")
    }
  }

  // MARK: Per-scale vectors

  /// The student's vector of each scale in the teacher's shared width [B, P]: a pyramid scale
  /// pools the student's tap at the same relative depth (spatial mean of the patch map / P5's
  /// class-and-patch mean; masked token mean / sentence mean / pooled token) and projects it;
  /// `embedding` is the student's own embedding (projected only when widths differ).
  func studentVectors(_ pass: StudentPass, attentionMask: Tensor) throws -> [String: (image: Tensor, text: Tensor)] {
    var out: [String: (image: Tensor, text: Tensor)] = [:]
    let pyramidScales = config.scales.filter { $0 != "embedding" }
    if !pyramidScales.isEmpty {
      let (maps, global) = try VisionPyramid.compact(
        taps: VisionPyramid.taps(pass.vision, config: pyramid), grid: pass.vision.grid)
      let language = try LanguageHierarchy.compact(
        taps: LanguageHierarchy.taps(pass.text, config: pyramid), attentionMask: attentionMask,
        pooledPositions: pass.text.pooledPositions)
      for scale in pyramidScales {
        let level = DSMDPyramidMethod.allScales.firstIndex(of: scale)!
        let image = level < 3 ? try maps[level].mean(dims: [2, 3]) : global  // [B, Dv]
        let text = try [
          { try LanguageHierarchy.maskedMean(language.tokens, mask: language.mask) },
          { try LanguageHierarchy.maskedMean(language.phraseSource, mask: language.mask) }, { language.sentence },
          { language.global },
        ][level]()  // [B, Dt]
        out[scale] = (try dsmdHead.vision[scale]!(image), try dsmdHead.language[scale]!(text))
      }
    }
    if config.scales.contains("embedding") {
      out["embedding"] = (
        try dsmdHead.imageEmbedding.map { try $0(pass.image) } ?? pass.image,
        try dsmdHead.textEmbedding.map { try $0(pass.caption) } ?? pass.caption
      )
    }
    return out
  }

  /// The teacher's vectors of a scale: its shared-space level vectors or its embeddings [B, P].
  func teacherVectors(_ teacher: TeacherFeatures, scale: String) throws -> (image: Tensor, text: Tensor) {
    let vectors: (image: Tensor, text: Tensor)
    if scale == "embedding" {
      vectors = (teacher.imageEmbedding, teacher.textEmbedding)
    } else {
      guard teacher.sharedVision.count == 4, teacher.sharedLanguage.count == 4 else {
        throw MethodError(
          "dsmd-pyramid: scale \(scale) needs the teacher's 4 shared-space levels per modality, the features carry \(teacher.sharedVision.count) and \(teacher.sharedLanguage.count)"
        )
      }
      let level = DSMDPyramidMethod.allScales.firstIndex(of: scale)!
      vectors = (teacher.sharedVision[level], teacher.sharedLanguage[level])
    }
    try Baselines.checkWidth(vectors.image, expected: sharedWidth, name, "the teacher's \(scale) image vector")
    try Baselines.checkWidth(vectors.text, expected: sharedWidth, name, "the teacher's \(scale) text vector")
    return vectors
  }

  // MARK: Losses (one scale; every input [B, P], normalized inside)

  /// The terms of one scale, in the order contrastive, feature, similarity, hard_negative (only
  /// those in `terms`).
  /// - Parameter queue: past teacher vectors [n, P] per modality, already normalized (nil: none).
  public static func scaleTerms(
    student: (image: Tensor, text: Tensor), teacher: (image: Tensor, text: Tensor), queue: (image: Tensor?, text: Tensor?),
    terms: Set<String> = Set(allTerms), temperature: Double, margin: Double, hardNegatives: Int
  ) throws -> LossParts {
    let s = (image: try Functional.normalize(student.image), text: try Functional.normalize(student.text))
    let t = (image: try Functional.normalize(teacher.image.detach()), text: try Functional.normalize(teacher.text.detach()))
    var parts = LossParts()
    if terms.contains("contrastive") {
      parts.add("contrastive", try contrastive(student: s, teacher: t, queue: queue, temperature: temperature))
    }
    if terms.contains("feature") { parts.add("feature", try feature(student: s, teacher: t)) }
    if terms.contains("similarity") { parts.add("similarity", try similarity(student: s, teacher: t)) }
    if terms.contains("hard_negative") {
      parts.add("hard_negative", try hardNegative(student: s, teacher: t, margin: margin, count: hardNegatives))
    }
    return parts
  }

  /// ¼ Σ InfoNCE over four student anchors against teacher keys: image→teacher image, text→teacher
  /// text (intra-modal), image→teacher text, text→teacher image (cross-modal). For anchor a and
  /// keys of modality m: CE([â·t̂ₘᵀ, â·Qₘᵀ] / τ, diag), the positives the same pair's teacher
  /// vector, the negatives the batch's other teacher vectors and the queue Qₘ.
  static func contrastive(
    student s: (image: Tensor, text: Tensor), teacher t: (image: Tensor, text: Tensor), queue: (image: Tensor?, text: Tensor?),
    temperature: Double
  ) throws -> Tensor {
    let labels = try Tensor.arange(s.image.size(0), device: s.image.device)
    func nce(_ anchor: Tensor, _ keys: Tensor, _ past: Tensor?) throws -> Tensor {
      var logits = try anchor.matmul(keys.transpose(0, 1))  // [B, B]
      if let past {  // [B, B + n]
        logits = try Tensor.cat([logits, anchor.matmul(past.to(anchor.device).transpose(0, 1))], dim: 1)
      }
      return try Functional.crossEntropy(logits / temperature, labels)
    }
    let intra = try nce(s.image, t.image, queue.image) + nce(s.text, t.text, queue.text)
    let cross = try nce(s.image, t.text, queue.text) + nce(s.text, t.image, queue.image)
    return try (intra + cross) * 0.25
  }

  /// ½ [mean_b ‖ŝᵢ − t̂ᵢ‖² + mean_b ‖ŝₜ − t̂ₜ‖²] (image i, text t): 2 − 2 cos per pair.
  static func feature(student s: (image: Tensor, text: Tensor), teacher t: (image: Tensor, text: Tensor)) throws -> Tensor {
    let image = try (s.image - t.image).square().sum(dim: 1).mean()
    let text = try (s.text - t.text).square().sum(dim: 1).mean()
    return try (image + text) * 0.5
  }

  /// ⅓ [MSE(ŜᵢŜᵢᵀ, T̂ᵢT̂ᵢᵀ) + MSE(ŜₜŜₜᵀ, T̂ₜT̂ₜᵀ) + MSE(ŜᵢŜₜᵀ, T̂ᵢT̂ₜᵀ)]: the batch's cosine
  /// structure image–image, text–text and image–text, each a mean over the B² entries.
  static func similarity(student s: (image: Tensor, text: Tensor), teacher t: (image: Tensor, text: Tensor)) throws -> Tensor {
    let pairs = [(s.image, s.image, t.image, t.image), (s.text, s.text, t.text, t.text), (s.image, s.text, t.image, t.text)]
    let total = try pairs.map { try Functional.mseLoss($0.0.matmul($0.1.transpose(0, 1)), $0.2.matmul($0.3.transpose(0, 1))) }
    return try (total[0] + total[1] + total[2]) / 3
  }

  /// Triplets on the student's cross-modal cosines S = ŜᵢŜₜᵀ with the negatives the TEACHER
  /// ranks hardest: for image anchor i, the k texts j ≠ i with the largest teacher cosine;
  ///   ½ [mean_{i,k} relu(m + S[i, jₖ] − S[i, i]) + mean_{j,k} relu(m + S[iₖ, j] − S[j, j])].
  /// Zero for a batch of one pair (no negatives).
  static func hardNegative(
    student s: (image: Tensor, text: Tensor), teacher t: (image: Tensor, text: Tensor), margin: Double, count: Int
  ) throws -> Tensor {
    let b = s.image.size(0)
    guard b > 1 else { return try Tensor.scalar(0, dtype: s.image.dtype, device: s.image.device) }
    let k = min(count, b - 1)
    let diagonal = try Tensor.eye(b, device: s.image.device).gt(0.5)  // [B, B] bool
    let teacherSim = try t.image.matmul(t.text.transpose(0, 1)).maskedFill(diagonal, -.infinity)  // positives never rank
    let studentSim = try s.image.matmul(s.text.transpose(0, 1))  // [B, B]
    let positive = try studentSim.diagonal().unsqueeze(1)  // [B, 1]
    let textNegatives = try teacherSim.topk(k, dim: 1).indices  // [B, k] per image
    let imageNegatives = try teacherSim.transpose(0, 1).topk(k, dim: 1).indices  // [B, k] per text
    let imageAnchors = try (studentSim.gather(dim: 1, index: textNegatives) - positive + margin).relu().mean()
    let textAnchors = try (studentSim.transpose(0, 1).gather(dim: 1, index: imageNegatives) - positive + margin).relu().mean()
    return try (imageAnchors + textAnchors) * 0.5
  }
}
