/// A true caption of a scene, with the spec and wording it was made from.
public struct SceneCaption: Equatable, Codable, Sendable {
  public var text: String
  public var spec: CaptionSpec
  public var style: CaptionStyle
}

/// Writes captions for scenes.
///
/// Captions alternate kinds (whole scene, a relation, one object in detail) with varied
/// templates, adjective orders and synonyms. Inside a contrast set each caption is also
/// checked to be false for every other member, so the set's images are told apart by what
/// their captions bind, never by which words occur.
enum SceneCaptioner {
  enum Kind { case listing, relation, detail }

  /// Tries per caption before accepting one that is true but not distinctive (or repeated).
  static let attempts = 48

  static func captions(for scene: Scene, distinguishingFrom others: [Scene], count: Int, random: inout SeededRandom)
    -> [SceneCaption]
  {
    let kinds: [Kind] =
      scene.objects.count >= 2 ? [.listing, .relation, .detail, .relation, .detail] : [.listing, .detail, .listing, .detail]
    var result: [SceneCaption] = []
    var texts: Set<String> = []
    for slot in 0..<count {
      let kind = kinds[slot % kinds.count]
      var fallback: SceneCaption? = nil
      for attempt in 0..<attempts {
        // Say more (sizes, fills, places) the longer a distinctive caption is not found.
        let (spec, style) = draw(kind, scene, specificity: min(3, attempt / 8), &random)
        let caption = SceneCaption(text: CaptionText.render(spec, style), spec: spec, style: style)
        if texts.contains(caption.text) { continue }
        if fallback == nil { fallback = caption }
        if others.allSatisfy({ !spec.isTrue(for: $0) }) {
          fallback = caption
          break
        }
      }
      // A scene with one object has only so many distinct captions; repeat one rather than fail.
      let caption = fallback ?? result[slot % result.count]
      result.append(caption)
      texts.insert(caption.text)
    }
    return result
  }

  static func draw(_ kind: Kind, _ scene: Scene, specificity s: Int, _ random: inout SeededRandom) -> (CaptionSpec, CaptionStyle)
  {
    let objects = scene.objects
    func phrase(_ o: SceneObject, withPlace: Bool) -> ObjectPhrase {
      var p = ObjectPhrase(shape: o.shape, color: o.color)
      if random.chance(0.35 + 0.2 * Double(s)) { p.size = o.size }
      if random.chance(0.25 + 0.2 * Double(s)) { p.fill = o.fill }
      if withPlace && random.chance(0.1 + 0.25 * Double(s)) { p.cell = o.cell }
      return p
    }
    let spec: CaptionSpec
    let templates: Int
    switch kind {
    case .listing:
      var order = Array(objects.indices)
      random.shuffle(&order)
      spec = .listing(order.map { phrase(objects[$0], withPlace: true) })
      templates = CaptionText.listingTemplates
    case .relation:
      let i = random.int(below: objects.count)
      var j = random.int(below: objects.count - 1)
      if j >= i { j += 1 }
      let relation = random.pick(scene.relations(from: i, to: j))
      spec = .relation(phrase(objects[i], withPlace: false), relation, phrase(objects[j], withPlace: false))
      templates = CaptionText.relationTemplates
    case .detail:
      spec = .detail(ObjectPhrase(fully: random.pick(objects)))
      templates = CaptionText.detailTemplates
    }
    let style = CaptionStyle(
      template: random.int(below: templates), phraseForms: spec.phrases.map { _ in random.int(below: 3) },
      synonym: random.int(below: 2), inverted: random.chance(0.5))
    return (spec, style)
  }
}
