import Pyramid
import Torch
import TorchNN

/// The three levels of CMAPKD's losses (SPEC §5), each a small function returning named
/// parts. Shapes: B = batch, D = feature width, P = shared-space width. Per-sample weights
/// come from the ALSN ([B, 4] per modality, [B, 4, 4] coupling); levels outside `active`
/// contribute nothing (the progressive schedule).
public enum Losses {
  // MARK: 1. Intra-modal pyramid distillation

  /// Σᵢ mean_b wᵦᵢ · ‖Sᵢ − Tᵢ‖² over the vision levels, the squared error averaged over each
  /// sample's elements so that levels of different sizes are comparable.
  public static func intraVision(student: VisionLevels, teacher: VisionLevels, weights: Tensor, active: Set<Level>) throws
    -> LossParts
  {
    var parts = LossParts()
    for level in Level.allCases where active.contains(level) {
      let squared = try Functional.mseLoss(student[level], teacher[level], reduction: .none)  // [B, …]
      let (b, n) = (squared.size(0), squared.count / max(squared.size(0), 1))
      // mean_b w_b · mean_elements = Σ (squared · w_b / (B · n)): one weighting and one sum,
      // where a per-sample mean, a product and a batch mean were three operators each way.
      let scale = try (weights.select(dim: 1, index: level.rawValue) / Double(b * n))
        .view([b] + Array(repeating: 1, count: squared.rank - 1))
      parts.add(level.visionName, try (squared * scale).sum())
    }
    return parts
  }

  /// The same over L1–L4; token and phrase levels average over real positions only.
  public static func intraLanguage(student: LanguageLevels, teacher: LanguageLevels, weights: Tensor, active: Set<Level>) throws
    -> LossParts
  {
    var parts = LossParts()
    for level in Level.allCases where active.contains(level) {
      let (s, mask) = student[level]
      let (t, _) = teacher[level]
      let squared = try Functional.mseLoss(s, t, reduction: .none)  // [B, T, D] or [B, D]
      let (b, d) = (squared.size(0), squared.size(squared.rank - 1))
      let w = try weights.select(dim: 1, index: level.rawValue)  // [B]
      let scale: Tensor
      if let mask {  // [B, T]: position t of sample b weighs w_b · m_bt / (B · D · Σ_t m_bt)
        let perPosition = try w.unsqueeze(1) * mask / (mask.sum(dim: 1, keepDim: true).clamp(min: 1) * Double(b * d))
        scale = try perPosition.unsqueeze(2)
      } else {
        scale = try (w / Double(b * d)).unsqueeze(1)
      }
      parts.add(level.languageName, try (squared * scale).sum())
    }
    return parts
  }

  // MARK: 2. Cross-modal alignment

  /// ½ [CE(a·bᵀ/τ, diag) + CE(b·aᵀ/τ, diag)] with a, b L2-normalized [B, P].
  public static func symmetricInfoNCE(_ a: Tensor, _ b: Tensor, temperature: Double) throws -> Tensor {
    try symmetricInfoNCE(units: Functional.normalize(a), Functional.normalize(b), temperature: temperature)
  }

  /// `symmetricInfoNCE` of rows already L2-normalized.
  static func symmetricInfoNCE(units a: Tensor, _ b: Tensor, temperature: Double) throws -> Tensor {
    let logits = try a.matmul(b.transpose(0, 1)) / temperature
    let labels = try Tensor.arange(a.size(0), device: a.device)
    return try (Functional.crossEntropy(logits, labels) + Functional.crossEntropy(logits.transpose(0, 1), labels)) * 0.5
  }

  /// Cross-modal alignment in the shared space between student and teacher: the student's
  /// image against the teacher's text and the teacher's image against the student's text
  /// (each a symmetric InfoNCE), averaged.
  public static func alignment(
    studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor, temperature: Double = 0.07
  ) throws -> LossParts {
    try alignment(Units(studentImage: studentImage, studentText: studentText, teacherImage: teacherImage, teacherText: teacherText), temperature: temperature)
  }

  static func alignment(_ u: Units, temperature: Double) throws -> LossParts {
    var parts = LossParts()
    parts.add("image_to_teacher_text", try symmetricInfoNCE(units: u.studentImage, u.teacherText, temperature: temperature) * 0.5)
    parts.add("teacher_image_to_text", try symmetricInfoNCE(units: u.teacherImage, u.studentText, temperature: temperature) * 0.5)
    return parts
  }

  /// The deployed image and text embeddings of student and teacher, each L2-normalized once:
  /// the global terms (alignment, affinity, relation, task, the unified embedding term) all
  /// compare directions, and sharing one normalisation per tensor saves its forward and
  /// backward in every term but the first (the same values as normalising in each term).
  public struct Units {
    public var studentImage: Tensor
    public var studentText: Tensor
    public var teacherImage: Tensor
    public var teacherText: Tensor

    public init(studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor) throws {
      try self.init(
        studentUnits: (Functional.normalize(studentImage), Functional.normalize(studentText)), teacherImage: teacherImage,
        teacherText: teacherText)
    }

    /// With the student's rows normalized already (`StudentSide.units`).
    public init(studentUnits: (image: Tensor, text: Tensor), teacherImage: Tensor, teacherText: Tensor) throws {
      (self.studentImage, self.studentText) = studentUnits
      // The teacher's are constants: no graph recorded for them.
      (self.teacherImage, self.teacherText) = try Torch.noGrad {
        (try Functional.normalize(teacherImage.detach()), try Functional.normalize(teacherText.detach()))
      }
    }
  }

  /// Alignment of the student's deployed embeddings with the teacher's. With a common width
  /// it is `alignment` (each student modality contrasted against the other teacher modality);
  /// when the student's joint space is narrower or wider than the teacher's, the two cannot be
  /// compared vector to vector, and the term becomes the KL between the teacher's and the
  /// student's image→text and text→image distributions over the batch (at temperature τ).
  public static func deployedAlignment(
    studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor, temperature: Double = 0.07
  ) throws -> LossParts {
    try deployedAlignment(
      Units(studentImage: studentImage, studentText: studentText, teacherImage: teacherImage, teacherText: teacherText),
      temperature: temperature)
  }

  static func deployedAlignment(_ u: Units, temperature: Double) throws -> LossParts {
    if u.studentImage.size(1) == u.teacherImage.size(1) { return try alignment(u, temperature: temperature) }
    let s = try u.studentImage.matmul(u.studentText.transpose(0, 1)) / temperature  // [B, B]
    let t = try u.teacherImage.matmul(u.teacherText.transpose(0, 1)) / temperature
    var parts = LossParts()
    parts.add("image_to_text_kl", try rowKL(teacher: t, student: s).mean() * 0.5)
    parts.add("text_to_image_kl", try rowKL(teacher: t.transpose(0, 1), student: s.transpose(0, 1)).mean() * 0.5)
    return parts
  }

  /// Pyramid alignment's global pair (P5, L4) taken on the deployed embeddings:
  /// ½ · KL(P_T ‖ P_S) for the image→text and for the text→image distributions over the batch,
  /// P = softmax(scale · cos), each model at its own logit scale (TinyCLIP's affinity mimicking;
  /// its soft cross-entropy differs by the teacher's entropy, a constant). Parts `i2t`, `t2i`.
  public static func deployedAffinity(
    studentImage: Tensor, studentText: Tensor, studentScale: Tensor, teacherImage: Tensor, teacherText: Tensor,
    teacherScale: Double
  ) throws -> LossParts {
    try deployedAffinity(
      Units(studentImage: studentImage, studentText: studentText, teacherImage: teacherImage, teacherText: teacherText),
      studentScale: studentScale, teacherScale: teacherScale)
  }

  static func deployedAffinity(_ u: Units, studentScale: Tensor, teacherScale: Double) throws -> LossParts {
    // The baselines' soft-target distillation of the batch distributions (KD, TinyCLIP) at T = 1.
    try Baselines.batchDistributions(
      studentCosine: u.studentImage.matmul(u.studentText.transpose(0, 1)), studentScale: studentScale,
      teacherCosine: u.teacherImage.matmul(u.teacherText.transpose(0, 1)), teacherScale: teacherScale, temperature: 1,
      form: .kl)
  }

  /// Σᵢⱼ mean_b αᵦᵢⱼ · KL(P_T(vᵢ, lⱼ) ‖ P_S(vᵢ, lⱼ)), where P is the softmax over the batch of
  /// the cosine similarities / τ between image level i and text level j, taken per image
  /// (over texts) and per text (over images) and averaged.
  /// - Parameters:
  ///   - student, teacher: shared-space level vectors, 4 vision and 4 language tensors [B, P].
  ///   - coupling: α [B, 4, 4] (vision level × language level).
  public static func pyramidAlignment(
    student: (vision: [Tensor], language: [Tensor]), teacher: (vision: [Tensor], language: [Tensor]),
    coupling: Tensor, activeVision: Set<Level>, activeLanguage: Set<Level>, temperature: Double = 0.07
  ) throws -> LossParts {
    var parts = LossParts()
    let visionLevels = Level.allCases.filter { activeVision.contains($0) }
    let languageLevels = Level.allCases.filter { activeLanguage.contains($0) }
    guard !visionLevels.isEmpty, !languageLevels.isEmpty else { return parts }
    // Every pair (i, j) at once: 16 pairs one by one were ~1300 small autograd ops per step,
    // most of CMAPKD's overhead at the demo's sizes; batched they are a few dozen.
    func unit(_ levels: [Tensor], _ chosen: [Level]) throws -> Tensor {
      try Functional.normalize(Tensor.stack(chosen.map { levels[$0.rawValue] }))  // [I, B, P]
    }
    func similarities(_ v: Tensor, _ l: Tensor) throws -> Tensor {
      try v.unsqueeze(1).matmul(l.transpose(1, 2).unsqueeze(0)) / temperature  // [I, J, B, B]
    }
    let s = try similarities(unit(student.vision, visionLevels), unit(student.language, languageLevels))
    let t = try similarities(unit(teacher.vision, visionLevels), unit(teacher.language, languageLevels))
    let perImage = try rowKL(teacher: t, student: s, dim: 3)  // [I, J, B]: image b's row
    let perText = try rowKL(teacher: t, student: s, dim: 2)  // [I, J, B]: text b's column
    let alpha = try coupling
      .indexSelect(dim: 1, index: Tensor(visionLevels.map { Int64($0.rawValue) }).to(coupling.device))
      .indexSelect(dim: 2, index: Tensor(languageLevels.map { Int64($0.rawValue) }).to(coupling.device))
      .permute([1, 2, 0])  // [I, J, B]
    // Sample b weights its own image row and its own text column.
    let perPair = try ((perImage + perText) * 0.5 * alpha).mean(dim: 2)  // [I, J]
    for (a, i) in visionLevels.enumerated() {
      let row = try perPair.select(dim: 0, index: a)
      for (b, j) in languageLevels.enumerated() {
        parts.add("\(i.visionName)-\(j.languageName)", try row.select(dim: 0, index: b))
      }
    }
    return parts
  }

  /// KL(softmax(t) ‖ softmax(s)) along `dim`, which the result drops: [B, B] → [B] by rows
  /// with dim 1 (columns with dim 0).
  static func rowKL(teacher t: Tensor, student s: Tensor, dim: Int = 1) throws -> Tensor {
    let logP = try t.logSoftmax(dim: dim)
    let logQ = try s.logSoftmax(dim: dim)
    return try (logP.exp() * (logP - logQ)).sum(dim: dim)
  }

  /// Cosine similarity matrix [B, B] of the rows of a and b.
  static func cosine(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    try Functional.normalize(a).matmul(Functional.normalize(b).transpose(0, 1))
  }

  // MARK: 3. Relational structure

  /// Sample-relation graphs: ‖G_S − G_T‖²_F / B² for the batch cosine-similarity graph of
  /// each modality's global embedding, averaged over the modalities given.
  public static func sampleRelation(student: [Tensor], teacher: [Tensor]) throws -> LossParts {
    try sampleRelation(units: student.map { try Functional.normalize($0) }, teacher: teacher.map { try Functional.normalize($0) })
  }

  /// `sampleRelation` of rows already L2-normalized.
  static func sampleRelation(units student: [Tensor], teacher: [Tensor]) throws -> LossParts {
    var parts = LossParts()
    for (index, (s, t)) in zip(student, teacher).enumerated() {
      let gs = try s.matmul(s.transpose(0, 1))
      let gt = try t.matmul(t.transpose(0, 1))
      parts.add(["image", "text"][min(index, 1)], try (gs - gt).square().mean() / Double(student.count))
    }
    return parts
  }

  /// Layer relation: for each sample the 4×4 matrix of cosine similarities between its
  /// pyramid levels (in the shared space); mean squared difference teacher vs student,
  /// averaged over the modalities given.
  /// - Parameters:
  ///   - names: the part name of each modality given (a modality with one level is left out by
  ///     the caller, so the second list is not always the language's).
  public static func layerRelation(student: [[Tensor]], teacher: [[Tensor]], names: [String] = ["vision", "language"]) throws
    -> LossParts
  {
    var parts = LossParts()
    for (index, (s, t)) in zip(student, teacher).enumerated() {
      parts.add(
        names[min(index, names.count - 1)],
        try (levelCorrelation(s) - levelCorrelation(t)).square().mean() / Double(student.count))
    }
    return parts
  }

  /// levels: n tensors [B, P] → [B, n, n] cosine similarities between a sample's levels.
  static func levelCorrelation(_ levels: [Tensor]) throws -> Tensor {
    let stacked = try Functional.normalize(Tensor.stack(levels, dim: 1))  // [B, n, P]
    return try stacked.matmul(stacked.transpose(1, 2))
  }

  // MARK: Task

  /// The CLIP loss on the true pairs: symmetric cross-entropy of scale · cos(image, text).
  public static func clip(images: Tensor, texts: Tensor, logitScale: Tensor) throws -> Tensor {
    try clip(units: Functional.normalize(images), Functional.normalize(texts), logitScale: logitScale)
  }

  /// The CLIP loss of rows already L2-normalized.
  static func clip(units images: Tensor, _ texts: Tensor, logitScale: Tensor) throws -> Tensor {
    let logits = try logitScale.exp() * images.matmul(texts.transpose(0, 1))
    let labels = try Tensor.arange(images.size(0), device: images.device)
    return try (Functional.crossEntropy(logits, labels) + Functional.crossEntropy(logits.transpose(0, 1), labels)) * 0.5
  }

  /// NegCLIP's loss: the CLIP loss with extra false captions `negatives` [M, P] as further
  /// candidates for every image query (image→text over B + M texts); text→image is unchanged.
  public static func clip(images: Tensor, texts: Tensor, negatives: Tensor, logitScale: Tensor) throws -> Tensor {
    let scale = try logitScale.exp()
    let labels = try Tensor.arange(images.size(0), device: images.device)
    let imageToText = try scale * cosine(images, Tensor.cat([texts, negatives], dim: 0))  // [B, B + M]
    let textToImage = try scale * cosine(texts, images)  // [B, B]
    return try (Functional.crossEntropy(imageToText, labels) + Functional.crossEntropy(textToImage, labels)) * 0.5
  }
}
