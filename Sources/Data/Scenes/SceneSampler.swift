/// Draws random scenes and their contrast variants.
///
/// A contrast set is a base scene plus variants that keep every attribute word and every
/// occupied cell but change what goes with what: colours swapped between two objects
/// (binding), two objects swapped in place (relations), fill patterns swapped (fine-detail
/// binding). A bag of words cannot tell the members apart; only binding and layout can.
enum SceneSampler {
  /// A scene with `objectCount` objects. With `forContrast`, it has two objects that differ
  /// in shape and colour and two that differ in fill, so every variant is a different scene.
  static func scene(objectCount: ClosedRange<Int>, forContrast: Bool, random: inout SeededRandom) -> Scene {
    while true {
      let scene = drawScene(objectCount: objectCount, random: &random)
      if !forContrast || contrastPairs(scene) != nil { return scene }
    }
  }

  /// Largest contrast set: the base and its four single swaps.
  static let maxContrastSetSize = 5

  /// The `k`-th member of a contrast set (0 is the base itself). With the binding pair
  /// differing in shape and colour and the fill pair in fill, all five members differ: at the
  /// binding pair's first place they show red circle (base), blue circle (colours swapped),
  /// blue square (places swapped), red square (shapes swapped), and only the fills differ
  /// between the base and member 3.
  static func variant(_ base: Scene, _ k: Int) -> Scene {
    guard k > 0, let pairs = contrastPairs(base) else { return base }
    var scene = base
    let (i, j) = pairs.binding
    switch k {
    case 1: scene.objects.swapAt(i, j, keyPath: \.color)
    case 2: scene.objects.swapAt(i, j, keyPath: \.cell)
    case 3: scene.objects.swapAt(pairs.fill.0, pairs.fill.1, keyPath: \.fill)
    default: scene.objects.swapAt(i, j, keyPath: \.shape)
    }
    return scene
  }

  /// The pairs the variants swap: one differing in shape and colour, one differing in fill.
  static func contrastPairs(_ scene: Scene) -> (binding: (Int, Int), fill: (Int, Int))? {
    let n = scene.objects.count
    let pairs = (0..<n).flatMap { i in (i + 1..<n).map { (i, $0) } }
    let o = scene.objects
    guard let binding = pairs.first(where: { o[$0.0].shape != o[$0.1].shape && o[$0.0].color != o[$0.1].color }),
      let fill = pairs.first(where: { o[$0.0].fill != o[$0.1].fill })
    else { return nil }
    return (binding, fill)
  }

  private static func drawScene(objectCount: ClosedRange<Int>, random: inout SeededRandom) -> Scene {
    let n = random.int(in: objectCount)
    var cells = GridCell.all
    random.shuffle(&cells)
    var objects: [SceneObject] = []
    var used: Set<String> = []
    while objects.count < n {
      let shape = random.pick(ShapeKind.allCases)
      let color = random.pick(SceneColor.allCases)
      // One object per shape-and-colour, so "the red circle" names one object.
      guard used.insert("\(color) \(shape)").inserted else { continue }
      objects.append(
        SceneObject(
          shape: shape, color: color, size: random.pick(SizeClass.allCases), fill: random.pick(FillPattern.allCases),
          cell: cells[objects.count], slackX: random.int(in: -1000...1000), slackY: random.int(in: -1000...1000),
          radiusPermille: random.int(in: 920...1080), colorJitter: (0..<3).map { _ in random.int(in: -14...14) }))
    }
    return Scene(objects: objects, background: drawBackground(&random))
  }

  private static func drawBackground(_ random: inout SeededRandom) -> SceneBackground {
    func pale() -> [Int] { (0..<3).map { _ in random.int(in: 178...246) } }
    let kind = random.pick(SceneBackground.Kind.allCases)
    let base = pale()
    return SceneBackground(kind: kind, base: base, second: pale(), noiseSeed: random.next())
  }
}

extension Array {
  /// Swaps one property between two elements.
  fileprivate mutating func swapAt<V>(_ i: Int, _ j: Int, keyPath: WritableKeyPath<Element, V>) {
    let value = self[i][keyPath: keyPath]
    self[i][keyPath: keyPath] = self[j][keyPath: keyPath]
    self[j][keyPath: keyPath] = value
  }
}
