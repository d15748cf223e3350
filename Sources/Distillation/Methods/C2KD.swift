import Models
import Pyramid
import Torch
import TorchNN

/// Settings of `c2kd`.
public struct C2KDConfig: Codable, Equatable, Sendable {
  /// On-the-fly selection: a sample's proxy-to-proxy terms count only when the Kendall rank
  /// correlation of the two proxies' logits exceeds this (`--krc`, default 0).
  public var krc = 0.0
  /// λ of every C2KD term (the official code sums them with weight 1).
  public var weight = 1.0
  /// λ of the student's CLIP loss (C2KD's cross-entropy on the labels, XE_s).
  public var taskWeight = 1.0

  enum CodingKeys: String, CodingKey {
    case krc, weight
    case taskWeight = "task_weight"
  }

  public init(krc: Double = 0, weight: Double = 1, taskWeight: Double = 1) {
    self.krc = krc
    self.weight = weight
    self.taskWeight = taskWeight
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = C2KDConfig()
    krc = try c.decode(.krc, default: d.krc)
    weight = try c.decode(.weight, default: d.weight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
  }
}

/// C2KD's proxy: on an intermediate feature, 1×1 conv + norm + LeakyReLU(0.1) + a classifier
/// (`Tea`/`Stu` in utils/module.py). Ours maps a pooled tap [B, D] into the joint space [B, P]:
/// Linear + LayerNorm + LeakyReLU(0.1) + Linear; its "classes" are the batch's other modality.
public final class C2KDProxy: Module {
  public let layer: Linear
  public let norm: LayerNorm
  public let fc: Linear

  public init(width: Int, out: Int) throws {
    layer = try Linear(width, width, bias: false)
    norm = try LayerNorm(width)
    fc = try Linear(width, out)
    super.init()
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    let h = try norm(layer(x))
    return try fc(h.relu() - h.neg().relu() * 0.1)  // LeakyReLU(0.1)
  }
}

/// `c2kd`'s trainable modules: a student proxy and a teacher proxy per modality (keys
/// `student_image`, `student_text`, `teacher_image`, `teacher_text`), dropped at inference.
public final class C2KDHead: Module {
  public let studentImage: C2KDProxy
  public let studentText: C2KDProxy
  public let teacherImage: C2KDProxy
  public let teacherText: C2KDProxy

  public init(student: CLIPConfig, teacher: CLIPConfig) throws {
    studentImage = try C2KDProxy(width: student.visionConfig.hiddenSize, out: student.projectionDim)
    studentText = try C2KDProxy(width: student.textConfig.hiddenSize, out: student.projectionDim)
    teacherImage = try C2KDProxy(width: teacher.visionConfig.hiddenSize, out: teacher.projectionDim)
    teacherText = try C2KDProxy(width: teacher.textConfig.hiddenSize, out: teacher.projectionDim)
    super.init()
  }
}

/// `c2kd`: C²KD (Huo et al., CVPR 2024; github huofushuo/C2KD, utils/helper.py
/// `train_network_distill`) adapted to a dual encoder with a frozen teacher.
///
/// C2KD bridges the modality gap with learnable proxies on each network's intermediate
/// features, bidirectional KL between each network and its proxy, and a non-target KL between
/// the two proxies (the ground-truth logit zeroed) on the samples selected on the fly, those
/// whose proxies rank the classes alike (Kendall's τ > krc). For retrieval, a sample's logits are
/// its similarities to the batch's other modality (images over captions and captions over
/// images), its own pair the target. Per direction, with z_S the student's logits, z_T the
/// teacher's, z_SP / z_TP the proxies' (each proxy's vector against the detached embeddings of
/// its own network's other modality, at that network's logit scale):
///
///   student:       KL(z_S ‖ z_SP) + KL(z_SP ‖ z_S) + NTKL(z_SP ← z_TP; mask)
///   teacher proxy: KL(z_T ‖ z_TP) + NTKL(z_TP ← z_SP; mask)
///
/// (KL(a ‖ b) trains b toward a; the side written first is detached.) The teacher is frozen and
/// cached here, so C2KD's teacher cross-entropy and the KL that moves the teacher toward its
/// proxy are left out. Plus the student's CLIP loss (C2KD's XE_s).
public final class C2KDMethod: DistillationMethod {
  public let name = "c2kd"
  public let teacherInputs: Set<TeacherInput> = [.embeddings, .visionMaps, .language]
  public let config: C2KDConfig
  public let proxies: C2KDHead
  public var head: Module? { proxies }
  let pyramid: PyramidConfig
  let teacherScale: Double

  public init(config: C2KDConfig, context: MethodContext) throws {
    try Baselines.checkWeight(config.weight, name, "weight")
    try Baselines.checkWeight(config.taskWeight, name, "task_weight")
    guard config.krc.isFinite, (-1...1).contains(config.krc) else {
      throw MethodError("c2kd: krc is \(config.krc); a Kendall correlation threshold lies in [-1, 1]")
    }
    self.config = config
    proxies = try C2KDHead(student: context.student, teacher: context.teacher.config)
    pyramid = context.pyramid
    teacherScale = try Baselines.logitScale(of: context.teacher)
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let pass = try StudentPass(student: student, batch: batch)
    var parts = LossParts()
    var metrics: [String: Double] = [:]
    if config.weight != 0 {
      let teacher = try batch.requireTeacher(name)
      // The intermediate features the proxies read: the third tap of each tower (C2KD's proxies
      // read ResNet stage 4 of 5), pooled — the patch mean of the vision map, the token mean.
      let maps = try VisionPyramid.compact(taps: VisionPyramid.taps(pass.vision, config: pyramid), grid: pass.vision.grid).maps
      let language = try LanguageHierarchy.compact(
        taps: LanguageHierarchy.taps(pass.text, config: pyramid), attentionMask: batch.attentionMask,
        pooledPositions: pass.text.pooledPositions)
      let studentScale = try student.logitScale.exp()
      let studentProxy = (
        image: try proxies.studentImage(maps[2].mean(dims: [2, 3])), text: try proxies.studentText(language.sentence)
      )
      let teacherProxy = (
        image: try proxies.teacherImage(teacher.visionMaps[2].mean(dims: [2, 3])),
        text: try proxies.teacherText(teacher.language.sentence)
      )
      let logits = C2KDMethod.Logits(
        student: try studentScale * Baselines.cosine(images: pass.image, texts: pass.caption),
        teacher: try Baselines.cosine(images: teacher.imageEmbedding, texts: teacher.textEmbedding) * teacherScale,
        studentProxyImage: try studentScale * Baselines.cosine(images: studentProxy.image, texts: pass.caption.detach()),
        studentProxyText: try studentScale * Baselines.cosine(images: pass.image.detach(), texts: studentProxy.text),
        teacherProxyImage: try Baselines.cosine(images: teacherProxy.image, texts: teacher.textEmbedding) * teacherScale,
        teacherProxyText: try Baselines.cosine(images: teacher.imageEmbedding, texts: teacherProxy.text) * teacherScale)
      let (terms, selected) = try C2KDMethod.terms(logits, krc: config.krc)
      for (part, value) in terms.parts { parts.add("c2kd/\(part)", try value * config.weight) }
      metrics["c2kd/selected"] = selected
    }
    try parts.addWeighted(config.taskWeight, "task") { try Baselines.task(pass, student: student) }
    var step = try MethodStep(loss: parts, method: name, metrics: metrics)
    step.embeddings = (pass.image, pass.caption)
    return step
  }

  /// The six [B, B] logit matrices of one batch (rows images, columns texts). The proxy
  /// matrices put the proxy's vectors on their own side: `studentProxyImage` rows are the
  /// image proxy's vectors against the texts; `studentProxyText` columns the text proxy's.
  public struct Logits {
    public var student, teacher, studentProxyImage, studentProxyText, teacherProxyImage, teacherProxyText: Tensor

    public init(
      student: Tensor, teacher: Tensor, studentProxyImage: Tensor, studentProxyText: Tensor, teacherProxyImage: Tensor,
      teacherProxyText: Tensor
    ) {
      (self.student, self.teacher) = (student, teacher)
      (self.studentProxyImage, self.studentProxyText) = (studentProxyImage, studentProxyText)
      (self.teacherProxyImage, self.teacherProxyText) = (teacherProxyImage, teacherProxyText)
    }
  }

  /// The parts (each direction ½) and the share of selected samples.
  public static func terms(_ z: Logits, krc: Double) throws -> (LossParts, Double) {
    var parts = LossParts()
    var selected = 0.0
    for (direction, s, t, sp, tp) in [
      ("i2t", z.student, z.teacher, z.studentProxyImage, z.teacherProxyImage),
      (
        "t2i", try z.student.transpose(0, 1), try z.teacher.transpose(0, 1), try z.studentProxyText.transpose(0, 1),
        try z.teacherProxyText.transpose(0, 1)
      ),
    ] {
      let mask = try kendallTau(tp.detach(), sp.detach()).gt(krc).to(s.dtype)  // [B]
      selected += try mask.mean().item() / 2
      parts.add("\(direction)/proxy_from_student", try batchMeanKL(target: s.detach(), input: sp) * 0.5)
      parts.add("\(direction)/student_from_proxy", try batchMeanKL(target: sp.detach(), input: s) * 0.5)
      parts.add("\(direction)/proxy_from_teacher_proxy", try nonTargetKL(student: sp, teacher: tp.detach(), mask: mask) * 0.5)
      parts.add("\(direction)/teacher_proxy_from_teacher", try batchMeanKL(target: t.detach(), input: tp) * 0.5)
      parts.add("\(direction)/teacher_proxy_from_proxy", try nonTargetKL(student: tp, teacher: sp.detach(), mask: mask) * 0.5)
    }
    return (parts, selected)
  }

  /// nn.KLDivLoss(reduction='batchmean')(log_softmax(input), softmax(target)): Σ KL / rows.
  static func batchMeanKL(target: Tensor, input: Tensor) throws -> Tensor {
    let logP = try target.logSoftmax(dim: 1)
    let logQ = try input.logSoftmax(dim: 1)
    return try (logP.exp() * (logP - logQ)).sum() / Double(input.size(0))
  }

  /// C2KD's `ntkl` at T = 1: the target logit (the diagonal) set to 0 — zeroed, not removed,
  /// as coded — then mean_b mask_b · KL(softmax(teacher_b) ‖ softmax(student_b)).
  static func nonTargetKL(student: Tensor, teacher: Tensor, mask: Tensor) throws -> Tensor {
    let keep = try Tensor.eye(student.size(0), dtype: student.dtype, device: student.device).neg() + 1
    let logP = try (teacher * keep).logSoftmax(dim: 1)
    let logQ = try (student * keep).logSoftmax(dim: 1)
    return try ((logP.exp() * (logP - logQ)).sum(dim: 1) * mask).mean()
  }

  /// Kendall's τ between each row of `a` and the same row of `b` [B, n] → [B] (τ-a: ties count
  /// 0; scipy's τ-b differs only when a row has ties, which continuous logits do not).
  public static func kendallTau(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    let n = a.size(1)
    let da = try (a.unsqueeze(2) - a.unsqueeze(1)).sign()  // [B, n, n]
    let db = try (b.unsqueeze(2) - b.unsqueeze(1)).sign()
    return try (da * db).sum(dims: [1, 2]) / Double(n * (n - 1))
  }
}
