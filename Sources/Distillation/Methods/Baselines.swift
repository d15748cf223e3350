import Models
import Pyramid
import Torch
import TorchNN

// Pieces the baseline methods share (kd, fitnet, clipkd, tinyclip, dsmd): the student's forward
// pass, the batch similarity logits and the soft-target distillation loss. Each method's own
// losses sit in its file as small static functions returning named `LossParts`.

/// How a soft-target loss compares the teacher's distribution P_T with the student's P_S.
public enum SoftTargetForm: String, Codable, Sendable, CaseIterable {
  /// KL(P_T ‖ P_S) (Hinton): zero when the student matches the teacher.
  case kl
  /// −Σ P_T log P_S (open_clip's distillation loss): KL plus the teacher's entropy, so the
  /// same gradient w.r.t. the student but a value that never reaches zero.
  case softCE = "soft_ce"
}

/// One forward pass of the student on a batch: the hidden states (for taps) and its
/// joint-space embeddings.
public struct StudentPass {
  public var vision: VisionOutput
  public var text: TextOutput
  /// [B, P_s], not normalized.
  public var image: Tensor
  public var caption: Tensor

  public init(student: CLIPModel, batch: DistillBatch) throws {
    vision = try student.visionModel(batch.pixels)
    text = try student.textModel(batch.ids, attentionMask: batch.attentionMask)
    image = try student.visualProjection(vision.pooled)
    caption = try student.textProjection(text.pooled)
  }
}

public enum Baselines {
  /// Cosine similarities of every image with every text of the batch, [B, B]: row i is image
  /// i against all texts, column j text j against all images.
  public static func cosine(images: Tensor, texts: Tensor) throws -> Tensor {
    try Functional.normalize(images).matmul(Functional.normalize(texts).transpose(0, 1))
  }

  /// Soft-target distillation of the batch's similarity distributions in both directions:
  /// `i2t` (each image's distribution over the texts) and `t2i` (each text's over the images),
  /// each ½ · `softTargets` so that their sum is the mean of the two directions.
  /// - Parameters:
  ///   - studentImage, studentText: [B, P_s]; studentScale: exp of the student's logit scale (0-d).
  ///   - teacherImage, teacherText: [B, P_t], constants; teacherScale: exp of the teacher's logit scale.
  public static func batchDistributions(
    studentImage: Tensor, studentText: Tensor, studentScale: Tensor, teacherImage: Tensor, teacherText: Tensor,
    teacherScale: Double, temperature: Double, form: SoftTargetForm
  ) throws -> LossParts {
    try batchDistributions(
      studentCosine: cosine(images: studentImage, texts: studentText), studentScale: studentScale,
      teacherCosine: cosine(images: teacherImage.detach(), texts: teacherText.detach()), teacherScale: teacherScale,
      temperature: temperature, form: form)
  }

  /// `batchDistributions` from the two cosine-similarity matrices [B, B] (images × texts).
  static func batchDistributions(
    studentCosine: Tensor, studentScale: Tensor, teacherCosine: Tensor, teacherScale: Double, temperature: Double,
    form: SoftTargetForm
  ) throws -> LossParts {
    let s = try studentScale * studentCosine  // [B, B]
    let t = try teacherCosine * teacherScale
    var parts = LossParts()
    parts.add("i2t", try softTargets(student: s, teacher: t, temperature: temperature, form: form) * 0.5)
    parts.add(
      "t2i", try softTargets(student: s.transpose(0, 1), teacher: t.transpose(0, 1), temperature: temperature, form: form) * 0.5)
    return parts
  }

  /// Soft-target distillation of each row's distribution, averaged over rows and scaled by T²
  /// (Hinton: keeps the gradient's size independent of T).
  ///   kl:      mean_rows Σ_j P_T log(P_T / P_S)
  ///   soft_ce: mean_rows −Σ_j P_T log P_S
  /// with P = softmax(logits / T) along dim 1.
  /// - Parameters: student, teacher: logits [N, C]; the teacher's are constants.
  public static func softTargets(student: Tensor, teacher: Tensor, temperature: Double, form: SoftTargetForm) throws -> Tensor {
    let logQ = try (student / temperature).logSoftmax(dim: 1)  // [N, C]
    let logP = try (teacher / temperature).logSoftmax(dim: 1)
    let p = try logP.exp()
    let perRow: Tensor  // [N]
    switch form {
    case .kl: perRow = try (p * (logP - logQ)).sum(dim: 1)
    case .softCE: perRow = try (p * logQ).sum(dim: 1).neg()
    }
    return try perRow.mean() * (temperature * temperature)
  }

  /// The student's task loss as a part named `clip` (prefix it with `task`).
  public static func task(_ pass: StudentPass, student: CLIPModel) throws -> LossParts {
    var parts = LossParts()
    parts.add("clip", try Losses.clip(images: pass.image, texts: pass.caption, logitScale: student.logitScale))
    return parts
  }

  /// exp of a CLIP model's stored log logit scale, read once (the teacher is frozen).
  static func logitScale(of model: CLIPModel) throws -> Double {
    try Torch.noGrad { try model.logitScale.detach().exp().item() }
  }

  /// A weight that must be finite and ≥ 0, or an error naming the method and field.
  static func checkWeight(_ value: Double, _ method: String, _ field: String) throws {
    guard value.isFinite, value >= 0 else {
      throw MethodError("\(method): \(field) is \(value); weights must be finite and ≥ 0 (0 switches the term off)")
    }
  }

  /// A tensor's width against what the method was built for, or an error saying which side differs.
  static func checkWidth(_ tensor: Tensor, dim: Int = 1, expected: Int, _ method: String, _ what: String) throws {
    guard tensor.size(dim) == expected else {
      throw MethodError(
        "\(method): \(what) has width \(tensor.size(dim)) but the method was built for \(expected); "
          + "were the teacher features computed with a different teacher?")
    }
  }
}

extension LossParts {
  /// Appends `make()`'s parts multiplied by `lambda`, under `prefix/`; nothing (and no
  /// computation) when λ = 0, which is how a term is switched off.
  mutating func addWeighted(_ lambda: Double, _ prefix: String, _ make: () throws -> LossParts) throws {
    guard lambda != 0 else { return }
    var scaled = LossParts()
    for (name, value) in try make().parts { scaled.add(name, try value * lambda) }
    merge(scaled, prefix: prefix)
  }
}
