import Torch
import TorchNN

/// Prompt templates that turn a class name into captions.
///
/// `{}` stands for the class name and `{a}` for its indefinite article ("a" or "an"), so
/// `"a picture of {a} {}"` gives "a picture of an orange circle".
public struct PromptTemplates: Codable, Equatable, Sendable {
  public var templates: [String]

  public init(_ templates: [String]) { self.templates = templates }

  /// Worded as the captioned-scenes benchmark words single-object captions, so zero-shot
  /// measures recognition rather than robustness to unfamiliar phrasing.
  public static let scenes = PromptTemplates([
    "{a} {}", "a picture of {a} {}", "one shape: {a} {}", "there is one object, {a} {}", "{a} {} in the picture",
  ])

  /// CLIP's seven-template ensemble for ImageNet (from OpenAI's prompt-engineering notebook):
  /// the built-in set for image-folder datasets.
  public static let clip = PromptTemplates([
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.", "a {} in a video game.",
    "art of the {}.", "a photo of the small {}.",
  ])

  /// One template per non-empty line of `path`, each with `{}` for the class name.
  public init(file path: String) throws {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      throw EvaluationError("\(path): cannot read the prompt templates")
    }
    let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    for (i, line) in lines.enumerated() where !line.contains("{}") {
      throw EvaluationError("\(path):\(i + 1): template '\(line)' has no {} for the class name")
    }
    guard !lines.isEmpty else { throw EvaluationError("\(path): no templates") }
    self.init(lines)
  }

  /// One prompt per template for `className`.
  public func prompts(for className: String) -> [String] {
    let article = className.first.map { "aeiou".contains($0.lowercased()) } == true ? "an" : "a"
    return templates.map {
      $0.replacingOccurrences(of: "{a}", with: article).replacingOccurrences(of: "{}", with: className)
    }
  }
}

/// Zero-shot classification accuracy, as fractions in [0, 1].
public struct ZeroShotResult: Codable, Equatable, Sendable {
  public var top1: Double
  public var top5: Double
  public var images: Int
  public var classes: Int

  public init(top1: Double, top5: Double, images: Int, classes: Int) {
    self.top1 = top1
    self.top5 = top5
    self.images = images
    self.classes = classes
  }
}

/// Zero-shot classification: images against one text embedding per class.
///
/// ```swift
/// let classes = try ZeroShot.classEmbeddings(promptEmbeddings)     // [C, T, P] → [C, P]
/// let scores = try SimilarityMatrix(images.matmul(classes.transpose(0, 1)))
/// let result = try ZeroShot.evaluate(scores, labels: labels)
/// ```
public enum ZeroShot {
  /// CLIP's class embedding: each template's embedding normalized, averaged over templates,
  /// and normalized again, so every template counts the same whatever its norm.
  ///
  /// - Parameter promptEmbeddings: [classes, templates, P], normalized or not.
  /// - Returns: [classes, P], unit norm.
  public static func classEmbeddings(_ promptEmbeddings: Tensor) throws -> Tensor {
    guard promptEmbeddings.rank == 3 else {
      throw EvaluationError("zero-shot: expected prompt embeddings [classes, templates, P], got shape \(promptEmbeddings.shape)")
    }
    return try Functional.normalize(Functional.normalize(promptEmbeddings, dim: -1).mean(dim: 1), dim: -1)
  }

  /// Top-1 and top-5 accuracy; a class tied with the true one is placed ahead of it (`Ranking`).
  ///
  /// - Parameters:
  ///   - scores: [images, classes].
  ///   - labels: the true class of each image.
  public static func evaluate(_ scores: SimilarityMatrix, labels: [Int]) throws -> ZeroShotResult {
    guard labels.count == scores.rows else {
      throw EvaluationError("zero-shot: \(labels.count) labels for \(scores.rows) images")
    }
    if let bad = labels.firstIndex(where: { !(0..<scores.columns).contains($0) }) {
      throw EvaluationError("zero-shot: image \(bad) has label \(labels[bad]), but there are \(scores.columns) classes")
    }
    let ranks = Ranking.rowRanks(scores, correctColumns: labels.map { [$0] })
    return ZeroShotResult(
      top1: Ranking.recall(ranks, at: 1), top5: Ranking.recall(ranks, at: 5), images: scores.rows, classes: scores.columns)
  }
}
