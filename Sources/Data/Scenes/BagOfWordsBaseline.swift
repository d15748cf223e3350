/// The difficulty check of the benchmark: text→image retrieval by bags of words.
///
/// A caption is reduced to its content words (attributes, places, relation and number
/// words, synonyms merged); an image to the same words for its ground truth (every object's
/// attributes, the places it occupies, the relations and count present). Images are ranked
/// by how many caption words they have, then by fewest words the caption does not mention;
/// ties are broken at random in expectation. A benchmark where this scores well would not
/// need a model that binds attributes to objects.
///
/// ```swift
/// let result = BagOfWordsBaseline.textToImage(try ScenesDataset(ScenesConfig(), split: .test))
/// print(result.recallAt1)
/// ```
public enum BagOfWordsBaseline {
  public struct Result: Equatable, Sendable {
    /// Expected recall at 1, 5 and 10 over every caption, with ties broken uniformly.
    public var recallAt1: Double
    public var recallAt5: Double
    public var recallAt10: Double
    public var queries: Int
  }

  /// Runs the baseline over every caption of `dataset`.
  public static func textToImage(_ dataset: ScenesDataset) -> Result {
    let samples = (0..<dataset.count).map { dataset.sample(at: $0) }
    let imageWords = samples.map { words(of: $0.scene) }
    var queries: [(Set<String>, Int)] = []
    for (i, sample) in samples.enumerated() {
      for caption in sample.captions { queries.append((words(of: caption.text), i)) }
    }
    return rank(queries, imageWords) { caption, image in
      // Words explained first, then the fewest unexplained image words.
      caption.intersection(image).count * 1000 - image.subtracting(caption).count
    }
  }

  /// The same ranking with a perfect reader of captions: an image scores 1 when the caption
  /// is true of it. Its recall is the ceiling any model can reach on this split.
  public static func oracleTextToImage(_ dataset: ScenesDataset) -> Result {
    let samples = (0..<dataset.count).map { dataset.sample(at: $0) }
    var queries: [(CaptionSpec, Int)] = []
    for (i, sample) in samples.enumerated() {
      for caption in sample.captions { queries.append((caption.spec, i)) }
    }
    let scenes = samples.map(\.scene)
    return rank(queries, scenes) { spec, scene in spec.isTrue(for: scene) ? 1 : 0 }
  }

  /// Content words of a caption, synonyms merged into the words `words(of: Scene)` uses.
  public static func words(of caption: String) -> Set<String> {
    let tokens = caption.lowercased().split { !$0.isLetter }.map(String.init)
    return Set(tokens.compactMap { canonical[$0] ?? (vocabulary.contains($0) ? $0 : nil) })
  }

  /// The ground-truth words of a scene.
  public static func words(of scene: Scene) -> Set<String> {
    var result: Set<String> = [CaptionText.numberWord(scene.objects.count)]
    for (i, o) in scene.objects.enumerated() {
      result.formUnion([o.shape.rawValue, o.color.rawValue, o.size.rawValue, o.fill.rawValue])
      result.insert(["top", "middle", "bottom"][o.cell.row])
      result.insert(["left", "middle", "right"][o.cell.column])
      for j in scene.objects.indices where j != i {
        for relation in scene.relations(from: i, to: j) {
          result.insert(["left", "right", "above", "below"][Relation.allCases.firstIndex(of: relation)!])
        }
      }
    }
    return result
  }

  private static let vocabulary: Set<String> = Set(
    ShapeKind.allCases.map(\.rawValue) + SceneColor.allCases.map(\.rawValue) + SizeClass.allCases.map(\.rawValue)
      + FillPattern.allCases.map(\.rawValue) + ["top", "middle", "bottom", "left", "right", "above", "below"]
      + ["one", "two", "three", "four"])

  private static let canonical: [String: String] = [
    "stripes": "striped", "dots": "dotted", "center": "middle", "upper": "top", "lower": "bottom", "over": "above",
    "under": "below",
  ]

  /// Expected recall with uniform tie-breaking: a query whose image has `better` images
  /// scoring above it and `tied` (itself included) level with it is found in the top k with
  /// probability clamp((k − better) / tied, 0, 1).
  private static func rank<Q, I>(_ queries: [(Q, Int)], _ images: [I], score: (Q, I) -> Int) -> Result {
    var recall = [1: 0.0, 5: 0.0, 10: 0.0]
    for (query, truth) in queries {
      let target = score(query, images[truth])
      var better = 0
      var tied = 0
      for image in images {
        let s = score(query, image)
        if s > target { better += 1 } else if s == target { tied += 1 }
      }
      for k in recall.keys { recall[k]! += min(1, max(0, Double(k - better) / Double(tied))) }
    }
    let n = Double(max(1, queries.count))
    return Result(recallAt1: recall[1]! / n, recallAt5: recall[5]! / n, recallAt10: recall[10]! / n, queries: queries.count)
  }
}
