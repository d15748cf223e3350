/// One object of a scene: the attributes captions talk about, and rendering details they don't.
public struct SceneObject: Hashable, Codable, Sendable {
  public var shape: ShapeKind
  public var color: SceneColor
  public var size: SizeClass
  public var fill: FillPattern
  public var cell: GridCell
  /// Where in its cell, as permille of the free room on each axis (−1000…1000), so an object
  /// moved to another cell (a contrast variant) still fits.
  public var slackX: Int
  public var slackY: Int
  /// Radius scale in permille around the size class's nominal radius.
  public var radiusPermille: Int
  /// Per-channel offsets from the nominal colour.
  public var colorJitter: [Int]

  /// An object centred in its cell at nominal size and colour unless told otherwise.
  public init(
    shape: ShapeKind, color: SceneColor, size: SizeClass, fill: FillPattern, cell: GridCell, slackX: Int = 0,
    slackY: Int = 0, radiusPermille: Int = 1000, colorJitter: [Int] = [0, 0, 0]
  ) {
    self.shape = shape
    self.color = color
    self.size = size
    self.fill = fill
    self.cell = cell
    self.slackX = slackX
    self.slackY = slackY
    self.radiusPermille = radiusPermille
    self.colorJitter = colorJitter
  }
}

/// How the background is painted: a pale colour, a gradient to a second pale colour, or a
/// low-contrast texture. Low contrast and large scale keep it from looking like an object
/// or a fill pattern.
public struct SceneBackground: Hashable, Codable, Sendable {
  public enum Kind: String, Codable, Sendable, CaseIterable {
    case flat, verticalGradient, horizontalGradient, diagonalGradient, noise, checker
  }
  public var kind: Kind
  public var base: [Int]
  public var second: [Int]
  /// Seeds the per-pixel noise of `.noise`.
  public var noiseSeed: UInt64

  public init(kind: Kind, base: [Int], second: [Int]? = nil, noiseSeed: UInt64 = 0) {
    self.kind = kind
    self.base = base
    self.second = second ?? base
    self.noiseSeed = noiseSeed
  }
}

/// A generated scene: 1–4 objects on a background.
public struct Scene: Hashable, Codable, Sendable {
  public var objects: [SceneObject]
  public var background: SceneBackground

  public init(objects: [SceneObject], background: SceneBackground) {
    self.objects = objects
    self.background = background
  }

  /// Relations that hold from object `i` to object `j`.
  public func relations(from i: Int, to j: Int) -> [Relation] {
    Relation.allCases.filter { objects[i].cell.holds($0, to: objects[j].cell) }
  }
}
