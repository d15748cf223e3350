/// Text→image retrieval split into its two halves on a split made of contrast sets (groups of
/// images that share every caption word and differ only in what goes with what).
///
/// A bag-of-words reader can find a caption's contrast set but then only guesses inside it, so
/// the two numbers say which skill a model lacks: `setR1` is word-level perception, `withinSetR1`
/// is binding and relations (chance is 1 / set size).
public struct ContrastSetResult: Codable, Equatable, Sendable {
  /// Caption queries whose top-ranked image is in the caption's own contrast set.
  public var setR1: Double
  /// Caption queries whose image outranks every other member of its contrast set.
  public var withinSetR1: Double
  /// Mean contrast-set size, so chance for `withinSetR1` is 1 / this.
  public var meanSetSize: Double
  public var captions: Int

  enum CodingKeys: String, CodingKey {
    case setR1 = "set_r1", withinSetR1 = "within_set_r1", meanSetSize = "mean_set_size", captions
  }
}

/// Scores a caption×image similarity matrix against contrast sets, with `Ranking`'s rule:
/// ties go against the query and NaN ranks last.
///
/// ```swift
/// // 4 images in 2 sets, one caption each; caption 1's image loses to its set mate.
/// let s = try SimilarityMatrix([[0.9, 0.6, 0.0, 0.0], [0.2, 0.5, 0.0, 0.0],
///                               [0.0, 0.0, 0.8, 0.1], [0.0, 0.0, 0.1, 0.7]])
/// let r = try ContrastSetRetrieval.evaluate(s, captionToImage: [0, 1, 2, 3], setOfImage: [0, 0, 1, 1])
/// r.setR1         // 1.0: every top image is in the right set
/// r.withinSetR1   // 0.75
/// ```
public enum ContrastSetRetrieval {
  /// - Parameters:
  ///   - similarities: [images, captions].
  ///   - captionToImage: the image row each caption describes.
  ///   - setOfImage: the contrast set of each image row (any integer label).
  public static func evaluate(_ s: SimilarityMatrix, captionToImage: [Int], setOfImage: [Int]) throws -> ContrastSetResult {
    guard captionToImage.count == s.columns, setOfImage.count == s.rows else {
      throw EvaluationError(
        "contrast sets: \(captionToImage.count) captions and \(setOfImage.count) set labels for a \(s.rows) × \(s.columns) matrix")
    }
    guard captionToImage.allSatisfy({ 0 <= $0 && $0 < s.rows }) else {
      throw EvaluationError("contrast sets: a caption points at an image row outside 0..<\(s.rows)")
    }
    var members: [Int: [Int]] = [:]
    for (row, set) in setOfImage.enumerated() { members[set, default: []].append(row) }
    var setHits = 0
    var withinHits = 0
    for column in 0..<s.columns {
      let row = captionToImage[column]
      let set = setOfImage[row]
      let target = Ranking.key(s[row, column])
      // Top-1 by the tie rule: the caption's image counts as first only if nothing else scores as high.
      var best = row
      var bestScore = target
      for other in 0..<s.rows where other != row && Ranking.key(s[other, column]) >= bestScore {
        if Ranking.key(s[other, column]) > bestScore || best == row { best = other }
        bestScore = Ranking.key(s[other, column])
      }
      if setOfImage[best] == set { setHits += 1 }
      if members[set]!.allSatisfy({ $0 == row || Ranking.key(s[$0, column]) < target }) { withinHits += 1 }
    }
    let n = Double(max(s.columns, 1))
    let sizes = members.values.map(\.count)
    return ContrastSetResult(
      setR1: Double(setHits) / n, withinSetR1: Double(withinHits) / n,
      meanSetSize: sizes.isEmpty ? 0 : Double(sizes.reduce(0, +)) / Double(sizes.count), captions: s.columns)
  }
}
