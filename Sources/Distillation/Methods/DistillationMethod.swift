import Models
import Pyramid
import Torch
import TorchNN

/// What a method reads from the teacher. Every input comes out of `TeacherFeatures`, so the
/// teacher-feature cache can serve all of them; a method that needs none runs without teacher.
public enum TeacherInput: String, Codable, Sendable, CaseIterable {
  /// The teacher's image and text embeddings (joint space, not normalized).
  case embeddings
  /// The vision taps as native-grid maps and the global vector.
  case visionMaps
  /// The compact language summary (token taps, sentence, global, mask).
  case language
  /// Shared-space vectors of every pyramid level.
  case shared
}

/// One training batch as a method sees it.
public struct DistillBatch {
  public var pixels: Tensor
  public var ids: Tensor
  public var attentionMask: Tensor
  /// The teacher's features for this batch (computed live or read from the cache); nil when
  /// the method needs no teacher.
  public var teacher: TeacherFeatures?
  /// The features of the other teachers (`extra_teachers`, in order), for the methods that
  /// distil from several (`multiteacher`, `router`); empty otherwise.
  public var otherTeachers: [TeacherFeatures] = []
  /// Stage of the progressive schedule (methods other than CMAPKD ignore it).
  public var stage: Stage
  /// Global optimizer step (0-based).
  public var step: Int
  /// Hard-negative captions `[M, L]` and their mask, when the loader made them (teacher
  /// training with `hard_negatives`); only the CLIP task loss of `none` reads them.
  public var negativeIds: Tensor? = nil
  public var negativeMask: Tensor? = nil

  public init(pixels: Tensor, ids: Tensor, attentionMask: Tensor, teacher: TeacherFeatures?, stage: Stage = .fine, step: Int = 0)
  {
    self.pixels = pixels
    self.ids = ids
    self.attentionMask = attentionMask
    self.teacher = teacher
    self.stage = stage
    self.step = step
  }

  /// The first `n` rows of every per-sample field (the whole batch when `n` is 0 or at least
  /// its size); hard negatives are dropped.
  public func firstRows(_ n: Int) throws -> DistillBatch {
    let rows = pixels.size(0)
    guard n > 0, n < rows else { return self }
    func keep(_ t: Tensor) throws -> Tensor { try t.narrow(dim: 0, start: 0, length: n) }
    var out = DistillBatch(
      pixels: try keep(pixels), ids: try keep(ids), attentionMask: try keep(attentionMask), teacher: try teacher?.map(keep),
      stage: stage, step: step)
    out.otherTeachers = try otherTeachers.map { try $0.map(keep) }
    return out
  }

  /// The teacher features, or an error naming the method that needed them.
  public func requireTeacher(_ method: String) throws -> TeacherFeatures {
    guard let teacher else { throw MethodError("method '\(method)' needs teacher features but the batch has none") }
    return teacher
  }
}

/// A method's loss on one batch.
public struct MethodStep {
  /// λ-weighted named parts (`task/clip`, `kd/i2t`, …); `total` is their sum.
  public var loss: LossParts
  public var total: Tensor
  /// CMAPKD's per-sample level weights (nil for other methods).
  public var levelWeights: LevelWeights?
  /// Extra numbers worth logging (balancer weights, queue fill, …).
  public var metrics: [String: Double]
  /// The student's deployed embeddings [B, P] the loss was computed from (`dtokd` takes its
  /// gradients there); nil when a method does not say.
  public var embeddings: (image: Tensor, text: Tensor)?

  public init(loss: LossParts, total: Tensor, levelWeights: LevelWeights? = nil, metrics: [String: Double] = [:]) {
    self.loss = loss
    self.total = total
    self.levelWeights = levelWeights
    self.metrics = metrics
  }

  /// Sums `loss`'s parts; throws when every term is switched off.
  public init(loss: LossParts, method: String, levelWeights: LevelWeights? = nil, metrics: [String: Double] = [:]) throws {
    guard let total = try loss.sum() else { throw MethodError("method '\(method)': every loss term is switched off") }
    self.init(loss: loss, total: total, levelWeights: levelWeights, metrics: metrics)
  }
}

/// What the runner offers a method after each optimizer step.
public struct StepContext {
  /// A fixed held-out batch with teacher features (for selectors trained on real progress).
  public var heldOut: (() throws -> DistillBatch)?
  /// The student's current learning rate.
  public var learningRate: Double

  public init(heldOut: (() throws -> DistillBatch)? = nil, learningRate: Double = 0) {
    self.heldOut = heldOut
    self.learningRate = learningRate
  }
}

/// A distillation method: the teacher inputs it needs, the student-side modules it adds, and
/// its loss with named parts. The runner owns the student, the optimizer and the data; a
/// method owns only its extra modules and state (queues, balancers, selectors).
public protocol DistillationMethod: AnyObject {
  /// The name used in configs (`none`, `kd`, `cmapkd`, …).
  var name: String { get }
  /// Teacher inputs the loss reads; empty means no teacher is needed at all.
  var teacherInputs: Set<TeacherInput> { get }
  /// Trainable student-side modules (adapters, regressors, projections) optimised together
  /// with the student and dropped at inference; nil when the method adds none.
  var head: Module? { get }
  /// Called once on the freshly initialised student, before training (and before a resumed
  /// run loads its checkpoint): TinyCLIP's weight inheritance starts the student from the teacher.
  func prepare(student: CLIPModel) throws
  /// The loss of one batch.
  func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep
  /// Called after each optimizer step: queue updates, balancer updates, selector training.
  func afterStep(student: CLIPModel, batch: DistillBatch, result: MethodStep, context: StepContext) throws
  /// Method state beyond `head`'s parameters that a checkpoint must carry (queues, balancer).
  func stateTensors() throws -> [String: Tensor]
  func loadState(_ tensors: [String: Tensor]) throws
}

extension DistillationMethod {
  public var needsTeacher: Bool { !teacherInputs.isEmpty }
  public func prepare(student: CLIPModel) throws {}
  public func afterStep(student: CLIPModel, batch: DistillBatch, result: MethodStep, context: StepContext) throws {}
  public func stateTensors() throws -> [String: Tensor] { [:] }
  public func loadState(_ tensors: [String: Tensor]) throws {}
}

public struct MethodError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// Everything a method may need to build its modules.
public struct MethodContext {
  public var student: CLIPConfig
  /// The frozen teacher (for widths, its logit scale and bridges initialised from it).
  public var teacher: CLIPModel
  public var pyramid: PyramidConfig
  /// Training images with two captions each (`iva` chooses its relevance layer on them); nil
  /// when the method asks for none or the data has one caption per image.
  public var captionProbe: CaptionProbe?
  /// The frozen teachers besides `teacher` (`extra_teachers`), for `multiteacher` and `router`.
  public var otherTeachers: [CLIPModel]
  /// Every teacher's embeddings of a sample of training pairs (PHI-S and the router's bank).
  public var teacherSample: TeacherSample?

  public init(
    student: CLIPConfig, teacher: CLIPModel, pyramid: PyramidConfig = PyramidConfig(), captionProbe: CaptionProbe? = nil,
    otherTeachers: [CLIPModel] = [], teacherSample: TeacherSample? = nil
  ) {
    self.student = student
    self.teacher = teacher
    self.pyramid = pyramid
    self.captionProbe = captionProbe
    self.otherTeachers = otherTeachers
    self.teacherSample = teacherSample
  }
}

/// `none`: the student on its CLIP task loss only.
public final class NoDistillation: DistillationMethod {
  public let name = "none"
  public let teacherInputs: Set<TeacherInput> = []
  public var head: Module? { nil }

  public init() {}

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let image = try student.encodeImage(batch.pixels)
    // Length-sorted chunks: the same embeddings for less text-tower work (see encodeTextByLength).
    let text = try student.encodeTextByLength(batch.ids, attentionMask: batch.attentionMask)
    var parts = LossParts()
    if let ids = batch.negativeIds, let mask = batch.negativeMask {
      let negatives = try student.encodeTextByLength(ids, attentionMask: mask)
      parts.add(
        "task/clip", try Losses.clip(images: image, texts: text, negatives: negatives, logitScale: student.logitScale))
    } else {
      parts.add("task/clip", try Losses.clip(images: image, texts: text, logitScale: student.logitScale))
    }
    var step = try MethodStep(loss: parts, method: name)
    step.embeddings = (image, text)
    return step
  }
}
