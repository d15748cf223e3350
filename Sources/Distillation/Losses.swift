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
      let perSample = try perSampleMSE(student[level], teacher[level])  // [B]
      parts.add(level.visionName, try (perSample * weights.select(dim: 1, index: level.rawValue)).mean())
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
      let perSample: Tensor
      if let mask {  // [B, T, D] with mask [B, T]
        let squared = try Functional.mseLoss(s, t, reduction: .none).mean(dim: 2) * mask  // [B, T]
        perSample = try squared.sum(dim: 1) / mask.sum(dim: 1).clamp(min: 1)
      } else {
        perSample = try perSampleMSE(s, t)
      }
      parts.add(level.languageName, try (perSample * weights.select(dim: 1, index: level.rawValue)).mean())
    }
    return parts
  }

  /// Mean squared error of each sample: [B, ...] → [B]. ATen's unreduced `mse_loss` is one
  /// kernel each way where sub and square are two forward and three backward; same values.
  static func perSampleMSE(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    try Functional.mseLoss(a, b, reduction: .none).flatten(start: 1).mean(dim: 1)
  }

  // MARK: 2. Cross-modal alignment

  /// ½ [CE(a·bᵀ/τ, diag) + CE(b·aᵀ/τ, diag)] with a, b L2-normalized [B, P].
  public static func symmetricInfoNCE(_ a: Tensor, _ b: Tensor, temperature: Double) throws -> Tensor {
    let logits = try Functional.normalize(a).matmul(Functional.normalize(b).transpose(0, 1)) / temperature
    let labels = try Tensor.arange(a.size(0), device: a.device)
    return try (Functional.crossEntropy(logits, labels) + Functional.crossEntropy(logits.transpose(0, 1), labels)) * 0.5
  }

  /// Cross-modal alignment in the shared space between student and teacher: the student's
  /// image against the teacher's text and the teacher's image against the student's text
  /// (each a symmetric InfoNCE), averaged.
  public static func alignment(
    studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor, temperature: Double = 0.07
  ) throws -> LossParts {
    var parts = LossParts()
    parts.add("image_to_teacher_text", try symmetricInfoNCE(studentImage, teacherText, temperature: temperature) * 0.5)
    parts.add("teacher_image_to_text", try symmetricInfoNCE(teacherImage, studentText, temperature: temperature) * 0.5)
    return parts
  }

  /// Alignment of the student's deployed embeddings with the teacher's. With a common width
  /// it is `alignment` (each student modality contrasted against the other teacher modality);
  /// when the student's joint space is narrower or wider than the teacher's, the two cannot be
  /// compared vector to vector, and the term becomes the KL between the teacher's and the
  /// student's image→text and text→image distributions over the batch (at temperature τ).
  public static func deployedAlignment(
    studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor, temperature: Double = 0.07
  ) throws -> LossParts {
    if studentImage.size(1) == teacherImage.size(1) {
      return try alignment(
        studentImage: studentImage, studentText: studentText, teacherImage: teacherImage, teacherText: teacherText,
        temperature: temperature)
    }
    let s = try cosine(studentImage, studentText) / temperature  // [B, B]
    let t = try cosine(teacherImage, teacherText) / temperature
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
    // The baselines' soft-target distillation of the batch distributions (KD, TinyCLIP) at T = 1.
    try Baselines.batchDistributions(
      studentImage: studentImage, studentText: studentText, studentScale: studentScale, teacherImage: teacherImage,
      teacherText: teacherText, teacherScale: teacherScale, temperature: 1, form: .kl)
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
    var parts = LossParts()
    for (index, (s, t)) in zip(student, teacher).enumerated() {
      let gs = try cosine(s, s)
      let gt = try cosine(t, t)
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
    let logits = try logitScale.exp() * cosine(images, texts)
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
