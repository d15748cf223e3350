/// A false caption that differs from a true one in one controlled way.
public struct HardNegative: Equatable, Codable, Sendable {
  public enum Kind: String, Codable, Sendable, CaseIterable {
    /// One attribute changed to a value no matching object has ("red" → "green").
    case attribute
    /// Attributes swapped between the objects named ("red circle and blue square" →
    /// "blue circle and red square"), or an object given another object's attribute.
    case binding
    /// The relation flipped ("left of" → "right of") or two objects' places swapped.
    case relation
  }

  public var kind: Kind
  /// The true caption (index into the image's captions) this was made from.
  public var captionIndex: Int
  public var text: String
  public var spec: CaptionSpec
}

/// Makes hard negatives: for each caption, at most one of each kind, each checked false for
/// the scene and worded exactly like the caption apart from the change.
enum HardNegativeMaker {
  static let attempts = 12

  static func negatives(for captions: [SceneCaption], scene: Scene, random: inout SeededRandom) -> [HardNegative] {
    var result: [HardNegative] = []
    for (index, caption) in captions.enumerated() {
      for kind in HardNegative.Kind.allCases {
        for _ in 0..<attempts {
          guard let spec = perturb(caption.spec, kind, scene, &random), !spec.isTrue(for: scene) else { continue }
          let text = CaptionText.render(spec, caption.style)
          guard text != caption.text else { continue }
          result.append(HardNegative(kind: kind, captionIndex: index, text: text, spec: spec))
          break
        }
      }
    }
    return result
  }

  /// One random change of `kind`, or nil when this spec offers none.
  static func perturb(_ spec: CaptionSpec, _ kind: HardNegative.Kind, _ scene: Scene, _ random: inout SeededRandom)
    -> CaptionSpec?
  {
    var phrases = spec.phrases
    switch kind {
    case .attribute:
      let i = random.int(below: phrases.count)
      var p = phrases[i]
      switch random.int(below: 4) {
      case 0: p.color = p.color.map { _ in random.pick(SceneColor.allCases) }
      case 1: p.shape = random.pick(ShapeKind.allCases)
      case 2: p.size = p.size.map { $0 == .small ? .large : .small }
      default: p.fill = p.fill.map { _ in random.pick(FillPattern.allCases) }
      }
      phrases[i] = p
      return spec.with(phrases: phrases)
    case .binding:
      if phrases.count >= 2 {
        // Swap an attribute that both phrases mention with different values.
        var options: [(Int, Int, Int)] = []
        for i in phrases.indices {
          for j in phrases.indices where i < j {
            let (a, b) = (phrases[i], phrases[j])
            if a.color != nil && b.color != nil && a.color != b.color { options.append((i, j, 0)) }
            if a.shape != b.shape { options.append((i, j, 1)) }
            if a.size != nil && b.size != nil && a.size != b.size { options.append((i, j, 2)) }
            if a.fill != nil && b.fill != nil && a.fill != b.fill { options.append((i, j, 3)) }
          }
        }
        guard !options.isEmpty else { return nil }
        let (i, j, attribute) = random.pick(options)
        var (a, b) = (phrases[i], phrases[j])
        switch attribute {
        case 0: swap(&a.color, &b.color)
        case 1: swap(&a.shape, &b.shape)
        case 2: swap(&a.size, &b.size)
        default: swap(&a.fill, &b.fill)
        }
        (phrases[i], phrases[j]) = (a, b)
      } else {
        // One phrase: give it an attribute of another object in the scene.
        let other = random.pick(scene.objects)
        switch random.int(below: 3) {
        case 0: phrases[0].color = other.color
        case 1: phrases[0].shape = other.shape
        default: phrases[0].fill = other.fill
        }
      }
      return spec.with(phrases: phrases)
    case .relation:
      if case .relation(let a, let relation, let b) = spec { return .relation(a, relation.inverse, b) }
      // Places: move a placed phrase to another object's cell.
      let placed = phrases.indices.filter { phrases[$0].cell != nil }
      guard let i = placed.isEmpty ? nil : random.pick(placed) else { return nil }
      phrases[i].cell = random.pick(scene.objects).cell
      return spec.with(phrases: phrases)
    }
  }
}
