/// Recall at 1, 5 and 10 of one retrieval direction, as fractions in [0, 1].
public struct RecallAtK: Codable, Equatable, Sendable {
  public var r1: Double
  public var r5: Double
  public var r10: Double

  public init(r1: Double, r5: Double, r10: Double) {
    self.r1 = r1
    self.r5 = r5
    self.r10 = r10
  }

  /// From 0-based ranks (see `Ranking`): recall at K is the fraction of ranks below K.
  public init(ranks: [Int]) {
    self.init(r1: Ranking.recall(ranks, at: 1), r5: Ranking.recall(ranks, at: 5), r10: Ranking.recall(ranks, at: 10))
  }
}

/// Image↔text retrieval with several captions per image (the COCO 5k / Flickr30k 1k protocol).
public struct RetrievalResult: Codable, Equatable, Sendable {
  /// Image queries: a hit when any of the image's captions is in the top K.
  public var imageToText: RecallAtK
  /// Caption queries: a hit when the caption's image is in the top K.
  public var textToImage: RecallAtK
  /// Mean of the six recalls ("rsum / 6"), the single number papers rank by.
  public var meanRecall: Double
  public var images: Int
  public var captions: Int

  enum CodingKeys: String, CodingKey {
    case imageToText = "image_to_text", textToImage = "text_to_image", meanRecall = "mean_recall", images, captions
  }

  public init(imageToText: RecallAtK, textToImage: RecallAtK, images: Int, captions: Int) {
    self.imageToText = imageToText
    self.textToImage = textToImage
    let six = [imageToText.r1, imageToText.r5, imageToText.r10, textToImage.r1, textToImage.r5, textToImage.r10]
    meanRecall = six.reduce(0, +) / 6
    self.images = images
    self.captions = captions
  }
}

/// Retrieval metrics over a similarity matrix; ties are broken against the query (`Ranking`).
///
/// ```swift
/// // 2 images, 3 captions: captions 0 and 1 describe image 0, caption 2 image 1.
/// let s = try SimilarityMatrix([[0.9, 0.2, 0.1], [0.3, 0.1, 0.8]])
/// let result = try Retrieval.evaluate(s, captionToImage: [0, 0, 1])
/// result.imageToText.r1    // 1.0
/// ```
public enum Retrieval {
  /// - Parameters:
  ///   - similarities: [images, captions].
  ///   - captionToImage: the image each caption describes; every image needs at least one.
  public static func evaluate(_ similarities: SimilarityMatrix, captionToImage: [Int]) throws -> RetrievalResult {
    let captionsOf = try captionsPerImage(similarities, captionToImage)
    return RetrievalResult(
      imageToText: RecallAtK(ranks: Ranking.rowRanks(similarities, correctColumns: captionsOf)),
      textToImage: RecallAtK(ranks: Ranking.columnRanks(similarities, correctRow: captionToImage)),
      images: similarities.rows, captions: similarities.columns)
  }

  /// For each image query, how many wrong captions rank ahead of its best true caption.
  public static func imageToTextRanks(_ similarities: SimilarityMatrix, captionToImage: [Int]) throws -> [Int] {
    Ranking.rowRanks(similarities, correctColumns: try captionsPerImage(similarities, captionToImage))
  }

  /// For each caption query, how many other images rank ahead of its image.
  public static func textToImageRanks(_ similarities: SimilarityMatrix, captionToImage: [Int]) throws -> [Int] {
    _ = try captionsPerImage(similarities, captionToImage)
    return Ranking.columnRanks(similarities, correctRow: captionToImage)
  }

  /// Inverts `captionToImage`, checking it against the matrix.
  static func captionsPerImage(_ s: SimilarityMatrix, _ captionToImage: [Int]) throws -> [[Int]] {
    guard captionToImage.count == s.columns else {
      throw EvaluationError("retrieval: \(captionToImage.count) caption→image entries for \(s.columns) caption columns")
    }
    var captions = [[Int]](repeating: [], count: s.rows)
    for (caption, image) in captionToImage.enumerated() {
      guard (0..<s.rows).contains(image) else {
        throw EvaluationError("retrieval: caption \(caption) names image \(image), but there are \(s.rows) images")
      }
      captions[image].append(caption)
    }
    if let lonely = captions.firstIndex(where: \.isEmpty) {
      throw EvaluationError("retrieval: image \(lonely) has no caption, so it could never be retrieved; drop it or give it one")
    }
    return captions
  }
}
