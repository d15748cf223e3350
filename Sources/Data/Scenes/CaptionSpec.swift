/// What a caption says about a scene, before it is put into words. Captions are generated
/// from specs, checked against scenes with `isTrue(for:)`, and hard negatives are specs with
/// one thing changed, rendered in the same words.

/// A description of one object; attributes left nil are not mentioned.
public struct ObjectPhrase: Equatable, Codable, Sendable {
  public var shape: ShapeKind
  public var color: SceneColor?
  public var size: SizeClass?
  public var fill: FillPattern?
  /// Where the object is ("in the top left"), when mentioned.
  public var cell: GridCell?

  public init(shape: ShapeKind, color: SceneColor? = nil, size: SizeClass? = nil, fill: FillPattern? = nil, cell: GridCell? = nil)
  {
    self.shape = shape
    self.color = color
    self.size = size
    self.fill = fill
    self.cell = cell
  }

  /// Everything about `object`.
  init(fully object: SceneObject) {
    self.init(shape: object.shape, color: object.color, size: object.size, fill: object.fill, cell: object.cell)
  }

  public func matches(_ object: SceneObject) -> Bool {
    shape == object.shape && (color.map { $0 == object.color } ?? true) && (size.map { $0 == object.size } ?? true)
      && (fill.map { $0 == object.fill } ?? true) && (cell.map { $0 == object.cell } ?? true)
  }
}

/// The three kinds of caption.
public enum CaptionSpec: Equatable, Codable, Sendable {
  /// Every object in the scene ("a red circle and a small blue square").
  case listing([ObjectPhrase])
  /// Two objects and where one is relative to the other.
  case relation(ObjectPhrase, Relation, ObjectPhrase)
  /// One object with all its attributes, fine detail included, and where it is.
  case detail(ObjectPhrase)

  public var phrases: [ObjectPhrase] {
    switch self {
    case .listing(let phrases): phrases
    case .relation(let a, _, let b): [a, b]
    case .detail(let p): [p]
    }
  }

  /// The same spec with its phrases replaced (same count, same order).
  func with(phrases: [ObjectPhrase]) -> CaptionSpec {
    switch self {
    case .listing: .listing(phrases)
    case .relation(_, let relation, _): .relation(phrases[0], relation, phrases[1])
    case .detail: .detail(phrases[0])
    }
  }

  /// Whether the caption is a true description of `scene`. A listing must account for every
  /// object, each phrase naming a different one.
  public func isTrue(for scene: Scene) -> Bool {
    let objects = scene.objects
    switch self {
    case .listing(let phrases):
      return phrases.count == objects.count && Self.assignable(phrases[...], Set(objects.indices), objects)
    case .relation(let a, let relation, let b):
      for i in objects.indices where a.matches(objects[i]) {
        for j in objects.indices where j != i && b.matches(objects[j]) {
          if objects[i].cell.holds(relation, to: objects[j].cell) { return true }
        }
      }
      return false
    case .detail(let p):
      return objects.contains(where: p.matches)
    }
  }

  /// Whether each phrase can name a distinct object among `free` (at most 4: brute force).
  private static func assignable(_ phrases: ArraySlice<ObjectPhrase>, _ free: Set<Int>, _ objects: [SceneObject]) -> Bool {
    guard let first = phrases.first else { return true }
    for i in free where first.matches(objects[i]) {
      if assignable(phrases.dropFirst(), free.subtracting([i]), objects) { return true }
    }
    return false
  }
}
