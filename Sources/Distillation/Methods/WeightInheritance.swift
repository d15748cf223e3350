import Foundation
import Models
import Torch

/// TinyCLIP's manual weight inheritance (Wu et al. 2023; `weight_inherit` in microsoft/Cream's
/// TinyCLIP/src/open_clip/weight_inherit.py): the student starts from a slice of the teacher.
///
/// - Depth ("interval_front"): with step = ⌊teacher layers / student layers⌋, student layer i
///   takes teacher layer i·step (a 4-layer teacher gives a 3-layer student its layers 0, 1, 2).
/// - Width ("front"): every tensor takes the teacher's leading entries in each dimension:
///   the first channels, the first MLP units, the first attention heads (q/k/v rows are
///   head-major, so with equal head widths the first rows are whole heads), the first rows of
///   the position table. That is the importance rule as TinyCLIP codes it for manual
///   inheritance: order, not a measured score.
/// - Everything else (embeddings, norms, projections, the logit scale) is sliced the same way.
///
/// Requires the student to be no larger than the teacher in every dimension, the same attention
/// head width, patch size and image size (one position per patch), and the same vocabulary.
public enum WeightInheritance {
  /// Teacher layer of each student layer.
  public static func layerIndices(teacherDepth: Int, studentDepth: Int) -> [Int] {
    let step = teacherDepth / max(studentDepth, 1)
    return (0..<studentDepth).map { $0 * step }
  }

  /// Checks that `student` can inherit from `teacher`; the error names the first obstacle and
  /// the `setting` that turns inheritance off.
  public static func check(student: CLIPConfig, teacher: CLIPConfig, setting: String = "tinyclip.inherit") throws {
    func require(_ ok: Bool, _ message: String) throws {
      if !ok { throw MethodError("\(setting): weight inheritance needs \(message); set \(setting): false to start from scratch") }
    }
    let (sv, tv, st, tt) = (student.visionConfig, teacher.visionConfig, student.textConfig, teacher.textConfig)
    for (name, s, t) in [("vision", sv.hiddenSize / sv.numAttentionHeads, tv.hiddenSize / tv.numAttentionHeads),
                         ("text", st.hiddenSize / st.numAttentionHeads, tt.hiddenSize / tt.numAttentionHeads)] {
      try require(s == t, "the same \(name) attention head width (student \(s), teacher \(t))")
    }
    try require(sv.numHiddenLayers <= tv.numHiddenLayers && st.numHiddenLayers <= tt.numHiddenLayers, "no more layers than the teacher")
    try require(
      sv.hiddenSize <= tv.hiddenSize && st.hiddenSize <= tt.hiddenSize && sv.intermediateSize <= tv.intermediateSize
        && st.intermediateSize <= tt.intermediateSize && student.projectionDim <= teacher.projectionDim,
      "no wider layers than the teacher")
    try require(sv.patchSize == tv.patchSize && sv.imageSize == tv.imageSize, "the teacher's patch and image size")
    try require(st.vocabSize == tt.vocabSize, "the teacher's vocabulary (\(tt.vocabSize) tokens, the student has \(st.vocabSize))")
    try require(st.maxPositionEmbeddings <= tt.maxPositionEmbeddings, "a text context no longer than the teacher's")
  }

  /// The teacher parameter each student parameter inherits from.
  public static func sources(student: CLIPModel, teacher: CLIPModel) throws -> [String: String] {
    let depth = [
      "vision_model.": layerIndices(
        teacherDepth: teacher.config.visionConfig.numHiddenLayers, studentDepth: student.config.visionConfig.numHiddenLayers),
      "text_model.": layerIndices(
        teacherDepth: teacher.config.textConfig.numHiddenLayers, studentDepth: student.config.textConfig.numHiddenLayers),
    ]
    var out: [String: String] = [:]
    for (name, _) in student.namedParameters() {
      var source = name
      if let tower = depth.keys.first(where: { name.hasPrefix($0) }), let range = name.range(of: ".encoder.layers.") {
        let rest = name[range.upperBound...]
        if let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) {
          source = String(name[..<range.upperBound]) + "\(depth[tower]![layer])" + String(rest[dot...])
        }
      }
      out[name] = source
    }
    return out
  }

  /// Overwrites every parameter of `student` with its inherited slice of `teacher`'s; returns
  /// the map student key → teacher key.
  @discardableResult
  public static func inherit(student: CLIPModel, from teacher: CLIPModel) throws -> [String: String] {
    try check(student: student.config, teacher: teacher.config)
    let map = try sources(student: student, teacher: teacher)
    let teacherParameters = Dictionary(uniqueKeysWithValues: teacher.namedParameters())
    try Torch.noGrad {
      for (name, parameter) in student.namedParameters() {
        guard let key = map[name], let source = teacherParameters[key] else {
          throw MethodError("weight inheritance found no teacher parameter for \(name)")
        }
        guard source.rank == parameter.rank, zip(source.shape, parameter.shape).allSatisfy({ $0 >= $1 }) else {
          throw MethodError("weight inheritance: cannot inherit \(name) \(parameter.shape) from \(key) \(source.shape)")
        }
        var slice = try source.detach()
        for (dim, size) in parameter.shape.enumerated() where size < source.size(dim) {
          slice = try slice.narrow(dim: dim, start: 0, length: size)
        }
        try parameter.copy(from: slice.to(parameter.device, parameter.dtype))
      }
    }
    return map
  }
}
