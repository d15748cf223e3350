import Foundation
import Models
import Torch
import TorchNN

/// Settings of `dsmd`, DSMD as its authors coded it (github chrisx599/DSMD; see docs/baselines.md).
public struct DSMDConfig: Codable, Equatable, Sendable {
  /// How the four loss weights are set each step.
  public enum BalancerForm: String, Codable, Sendable, CaseIterable {
    /// The official `AdaptiveLossWeighting` as coded: aᵢ = L_max/Lᵢ, L̃ᵢ = Lᵢ·aᵢ,
    /// rᵢ = L̃ᵢ(t)/L̃ᵢ(t−1), wᵢ = k·softmax(r/T)ᵢ·aᵢ. As L̃ᵢ = L_max for every term, the ratios are
    /// all equal and wᵢ = (k/4)·L_max/Lᵢ: every weighted term equals (k/4)·L_max each step.
    case coded
    /// The paper's description (dynamic weight averaging): rᵢ = Lᵢ(t)/Lᵢ(t−1) on the raw losses,
    /// then the same wᵢ = k·softmax(r/T)ᵢ·aᵢ, so a term that falls more slowly gains weight.
    case dwa
    /// wᵢ = 1 (75eba34's fixed λ, without its epoch schedule).
    case off
  }

  /// λ of each term, multiplied by the balancer's weight (the official code uses 1).
  public var contrastiveWeight = 1.0
  public var l1Weight = 1.0
  public var cosineWeight = 1.0
  public var hingeWeight = 1.0
  /// λ of the student's own CLIP loss: 0, as in the official code (no task loss).
  public var taskWeight = 0.0
  /// τ of the queue contrastive terms.
  public var temperature = 0.05
  /// K: teacher vectors per modality in the FIFO queue (started with random unit vectors).
  public var queueSize = 8192
  /// VSE++ margin of the hinge term.
  public var margin = 0.2
  /// VSE++'s hardest negative (`max_violation`): only each query's worst negative counts.
  public var hardestNegative = false
  public var balancer = BalancerForm.coded
  /// k and T of the balancer.
  public var balancerScale = 10.0
  public var balancerTemperature = 1.0

  enum CodingKeys: String, CodingKey {
    case temperature, margin, balancer
    case contrastiveWeight = "contrastive_weight", l1Weight = "l1_weight", cosineWeight = "cosine_weight"
    case hingeWeight = "hinge_weight", taskWeight = "task_weight", queueSize = "queue_size"
    case hardestNegative = "hardest_negative", balancerScale = "balancer_scale", balancerTemperature = "balancer_temperature"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = DSMDConfig()
    contrastiveWeight = try c.decode(.contrastiveWeight, default: d.contrastiveWeight)
    l1Weight = try c.decode(.l1Weight, default: d.l1Weight)
    cosineWeight = try c.decode(.cosineWeight, default: d.cosineWeight)
    hingeWeight = try c.decode(.hingeWeight, default: d.hingeWeight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
    temperature = try c.decode(.temperature, default: d.temperature)
    queueSize = try c.decode(.queueSize, default: d.queueSize)
    margin = try c.decode(.margin, default: d.margin)
    hardestNegative = try c.decode(.hardestNegative, default: d.hardestNegative)
    balancer = try c.decode(.balancer, default: d.balancer)
    balancerScale = try c.decode(.balancerScale, default: d.balancerScale)
    balancerTemperature = try c.decode(.balancerTemperature, default: d.balancerTemperature)
  }
}

/// The official balancer (`module/balancer.py`, `AdaptiveLossWeighting`) in its coded and its
/// DWA form. It reads the current step's loss values (detached) and returns their weights for
/// this same step; the first step's weights are all 1.
public final class DSMDLossWeighting {
  public let form: DSMDConfig.BalancerForm
  public let scale: Double
  public let temperature: Double
  /// The previous step's L̃ (coded) or L (dwa); nil before the first step.
  public private(set) var previous: [Double]?
  static let epsilon = 1e-8

  public init(form: DSMDConfig.BalancerForm, scale: Double = 10, temperature: Double = 1) throws {
    guard scale > 0, temperature > 0 else {
      throw MethodError("dsmd: balancer_scale and balancer_temperature must be positive (got \(scale), \(temperature))")
    }
    self.form = form
    self.scale = scale
    self.temperature = temperature
  }

  /// The weights of the losses `values` and the state after them (not yet committed).
  public func weights(for values: [Double]) -> (weights: [Double], next: [Double]?) {
    guard form != .off else { return (Array(repeating: 1, count: values.count), nil) }
    let largest = values.max() ?? 0
    let magnitude = values.map { largest / ($0 + Self.epsilon) }  // aᵢ
    let adjusted = zip(values, magnitude).map { $0 * $1 }  // L̃ᵢ
    let tracked = form == .coded ? adjusted : values
    guard let previous, previous.count == values.count else { return (Array(repeating: 1, count: values.count), tracked) }
    let ratios = zip(tracked, previous).map { $0 / ($1 + Self.epsilon) }
    let top = ratios.max() ?? 0  // the softmax is unchanged by a shift; exp stays finite
    let e = ratios.map { exp(($0 - top) / temperature) }
    let total = e.reduce(0, +)
    return (zip(e, magnitude).map { scale * $0 / total * $1 }, tracked)
  }

  /// Makes `next` (from `weights(for:)`) the previous step's values.
  public func commit(_ next: [Double]?) { if let next { previous = next } }

  public func stateTensors(prefix: String) throws -> [String: Tensor] {
    guard let previous else { return [:] }
    return ["\(prefix).previous": try Tensor(previous, shape: [previous.count])]
  }

  public func loadState(_ tensors: [String: Tensor], prefix: String) throws {
    previous = try tensors["\(prefix).previous"].map { try $0.doubles() }
  }
}

/// `dsmd`: DSMD (Liang et al. 2024, arXiv 2404.10838) as its official code trains a student
/// (`module/model.py` and `module/balancer.py` at the repository's head, whose forward/train
/// mismatch keeps it from running; the earlier commit 75eba34 for the parts the head lost). Four
/// losses on the L2-normalised final embeddings, no task loss:
/// - contrastive: InfoNCE of each student vector against its pair's teacher vector and a FIFO
///   queue of K past teacher vectors of the key modality (τ = 0.05), for image→image,
///   text→text, image→text and text→image, summed;
/// - L1: mean |ŝ − t̂| of image and of text, summed;
/// - cosine: 1 − (mean cos(ŝ, t̂) + 1)/2 of image and of text, summed;
/// - hinge (VSE++): Σ over the cross matrices (ŝᵢ, t̂ᵢ), (ŝₜ, t̂ₜ), (ŝᵢ, t̂ₜ), (ŝₜ, t̂ᵢ) of the
///   summed margin violations of every query's negatives (or its hardest);
/// weighted by `DSMDLossWeighting`. A student whose joint width differs from the teacher's
/// reaches it through a linear head (the official students' own output layer has the teacher's
/// width).
public final class DSMDMethod: DistillationMethod {
  public let name = "dsmd"
  public let teacherInputs: Set<TeacherInput> = [.embeddings]
  public let config: DSMDConfig
  public let projection: DSMDProjection?
  public var head: Module? { projection }
  public let weighting: DSMDLossWeighting
  public let imageQueue: FeatureQueue
  public let textQueue: FeatureQueue
  /// The four terms in the official balancer's order.
  public static let terms = ["l1", "cosine", "contrastive", "hinge"]

  public init(config: DSMDConfig, context: MethodContext) throws {
    for (term, weight) in [
      ("contrastive", config.contrastiveWeight), ("l1", config.l1Weight), ("cosine", config.cosineWeight),
      ("hinge", config.hingeWeight), ("task", config.taskWeight),
    ] {
      try Baselines.checkWeight(weight, name, "\(term)_weight")
    }
    guard config.temperature > 0, config.margin >= 0, config.queueSize >= 1 else {
      throw MethodError(
        "dsmd: need temperature > 0, margin ≥ 0 and queue_size ≥ 1 (got \(config.temperature), \(config.margin), \(config.queueSize))")
    }
    self.config = config
    let width = context.teacher.config.projectionDim
    projection = context.student.projectionDim == width ? nil : try DSMDProjection(from: context.student.projectionDim, to: width)
    weighting = try DSMDLossWeighting(form: config.balancer, scale: config.balancerScale, temperature: config.balancerTemperature)
    // The official queues start as random unit vectors, not empty (drawn from the run's seed,
    // on the CPU, so every device starts from the same rows). They live on the teacher's
    // device, where the embeddings they are compared with are.
    let device = context.teacher.logitScale.device
    imageQueue = FeatureQueue(capacity: config.queueSize, width: width, device: device)
    textQueue = FeatureQueue(capacity: config.queueSize, width: width, device: device)
    try imageQueue.enqueue(Functional.normalize(Tensor.randn([config.queueSize, width])))
    try textQueue.enqueue(Functional.normalize(Tensor.randn([config.queueSize, width])))
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let teacher = try batch.requireTeacher(name)
    let image = try student.encodeImage(batch.pixels)
    let text = try student.encodeTextByLength(batch.ids, attentionMask: batch.attentionMask)
    let (si, st) = (try projection.map { try $0.image(image) } ?? image, try projection.map { try $0.text(text) } ?? text)
    let raw = try DSMDMethod.losses(
      studentImage: si, studentText: st, teacherImage: teacher.imageEmbedding, teacherText: teacher.textEmbedding,
      queue: (try imageQueue.entries(), try textQueue.entries()), temperature: config.temperature, margin: config.margin,
      hardestNegative: config.hardestNegative)
    let values = try DSMDMethod.terms.map { try raw[$0]!.detach().to(.float64).item() }
    let (weights, _) = weighting.weights(for: values)
    let lambdas = ["l1": config.l1Weight, "cosine": config.cosineWeight, "contrastive": config.contrastiveWeight,
                   "hinge": config.hingeWeight]
    var parts = LossParts()
    var metrics: [String: Double] = [:]
    for (k, term) in DSMDMethod.terms.enumerated() where lambdas[term]! != 0 {
      parts.add("dsmd/\(term)", try raw[term]! * (lambdas[term]! * weights[k]))
      metrics["dsmd/weight/\(term)"] = weights[k]
      metrics["dsmd/term/\(term)"] = values[k]
    }
    if config.taskWeight != 0 {
      parts.add("task/clip", try Losses.clip(images: image, texts: text, logitScale: student.logitScale) * config.taskWeight)
    }
    var step = try MethodStep(loss: parts, method: name, metrics: metrics)
    step.embeddings = (image, text)
    return step
  }

  /// Commits the balancer's step and enqueues this batch's normalised teacher vectors.
  public func afterStep(student: CLIPModel, batch: DistillBatch, result: MethodStep, context: StepContext) throws {
    let values = try DSMDMethod.terms.map { term in
      guard let value = result.metrics["dsmd/term/\(term)"] else {
        throw MethodError("dsmd: the step result lacks 'dsmd/term/\(term)'; pass afterStep the MethodStep that loss(...) returned")
      }
      return value
    }
    weighting.commit(weighting.weights(for: values).next)
    let teacher = try batch.requireTeacher(name)
    try imageQueue.enqueue(Functional.normalize(teacher.imageEmbedding.detach()))
    try textQueue.enqueue(Functional.normalize(teacher.textEmbedding.detach()))
  }

  public func stateTensors() throws -> [String: Tensor] {
    var out = try weighting.stateTensors(prefix: "balancer")
    out.merge(try imageQueue.stateTensors(prefix: "queue.image")) { a, _ in a }
    out.merge(try textQueue.stateTensors(prefix: "queue.text")) { a, _ in a }
    return out
  }

  public func loadState(_ tensors: [String: Tensor]) throws {
    try weighting.loadState(tensors, prefix: "balancer")
    try imageQueue.loadState(tensors, prefix: "queue.image")
    try textQueue.loadState(tensors, prefix: "queue.text")
  }

  // MARK: The four losses (inputs [B, P], normalised inside; queue rows already unit vectors)

  /// The unweighted losses by name (`terms`).
  public static func losses(
    studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor, queue: (image: Tensor?, text: Tensor?),
    temperature: Double, margin: Double, hardestNegative: Bool
  ) throws -> [String: Tensor] {
    let si = try Functional.normalize(studentImage), st = try Functional.normalize(studentText)
    let ti = try Functional.normalize(teacherImage.detach()), tt = try Functional.normalize(teacherText.detach())
    // image→image, text→text, image→text, text→image: positives the pair's teacher vector,
    // negatives the queue of the key's modality.
    let contrastive = try [(si, ti, queue.image), (st, tt, queue.text), (si, tt, queue.text), (st, ti, queue.image)]
      .map { try queueInfoNCE(anchor: $0.0, positive: $0.1, queue: $0.2, temperature: temperature) }
      .reduce(Tensor.scalar(0, device: si.device)) { try $0 + $1 }
    let l1 = try (si - ti).abs().mean() + (st - tt).abs().mean()
    func cosineLoss(_ a: Tensor, _ b: Tensor) throws -> Tensor {
      // nn.CosineSimilarity(eps = 1e-6): a·b / max(‖a‖‖b‖, eps).
      let cos = try (a * b).sum(dim: 1) / (a.norm(dims: [1]) * b.norm(dims: [1])).clamp(min: 1e-6)
      return try (cos.mean() + 1) * -0.5 + 1
    }
    let cosine = try cosineLoss(si, ti) + cosineLoss(st, tt)
    let hinge = try [(si, ti), (st, tt), (si, tt), (st, ti)]
      .map { try vsePlusPlus($0.0, $0.1, margin: margin, hardest: hardestNegative) }
      .reduce(Tensor.scalar(0, device: si.device)) { try $0 + $1 }
    return ["l1": l1, "cosine": cosine, "contrastive": contrastive, "hinge": hinge]
  }

  /// CE([a·p, a·Qᵀ] / τ, 0): the positive first, then every queue vector, mean over the batch.
  static func queueInfoNCE(anchor: Tensor, positive: Tensor, queue: Tensor?, temperature: Double) throws -> Tensor {
    var logits = try (anchor * positive).sum(dim: 1, keepDim: true)  // [B, 1]
    if let queue { logits = try Tensor.cat([logits, anchor.matmul(queue.to(anchor.device, anchor.dtype).transpose(0, 1))], dim: 1) }
    let labels = try Tensor.zeros([anchor.size(0)], dtype: .int64, device: anchor.device)
    return try Functional.crossEntropy(logits / temperature, labels)
  }

  /// VSE++ (`TriptLoss`): S = a·bᵀ; for every query row i, relu(m + S[i, j] − S[i, i]) over
  /// j ≠ i, and for every column j, relu(m + S[i, j] − S[j, j]) over i ≠ j; summed (or each
  /// row's and column's largest, `hardest`).
  static func vsePlusPlus(_ a: Tensor, _ b: Tensor, margin: Double, hardest: Bool) throws -> Tensor {
    let scores = try a.matmul(b.transpose(0, 1))
    let diagonal = try scores.diagonal().unsqueeze(1)  // [B, 1]
    let eye = try Tensor.eye(scores.size(0), device: scores.device).gt(0.5)
    let perRow = try (scores - diagonal + margin).relu().maskedFill(eye, 0)
    let perColumn = try (scores - diagonal.transpose(0, 1) + margin).relu().maskedFill(eye, 0)
    guard hardest else { return try perRow.sum() + perColumn.sum() }
    return try perRow.amax(dims: [1]).sum() + perColumn.amax(dims: [0]).sum()
  }
}

/// `dsmd`'s bridge for a student whose joint width differs from the teacher's: one linear map
/// per modality (keys `image` / `text`), dropped at inference.
public final class DSMDProjection: Module {
  public let image: Linear
  public let text: Linear

  public init(from studentWidth: Int, to teacherWidth: Int) throws {
    image = try Linear(studentWidth, teacherWidth, bias: false)
    text = try Linear(studentWidth, teacherWidth, bias: false)
    super.init()
  }
}
