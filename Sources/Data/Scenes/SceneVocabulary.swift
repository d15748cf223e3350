// The attributes a scene object has and the words captions use for them. Raw values are the
// caption words, so they are also the vocabulary of the bag-of-words baseline.

/// An object's outline.
public enum ShapeKind: String, CaseIterable, Codable, Sendable {
  case circle, square, triangle, diamond, star, cross, hexagon, crescent
}

/// An object's colour: saturated hues that stand out from the pale backgrounds.
public enum SceneColor: String, CaseIterable, Codable, Sendable {
  case red, orange, yellow, green, cyan, blue, purple, pink, brown, black

  /// The nominal sRGB value (objects jitter around it).
  var rgb: (Int, Int, Int) {
    switch self {
    case .red: (215, 35, 35)
    case .orange: (245, 135, 10)
    case .yellow: (235, 205, 10)
    case .green: (35, 155, 55)
    case .cyan: (10, 185, 205)
    case .blue: (35, 65, 215)
    case .purple: (130, 45, 175)
    case .pink: (240, 100, 175)
    case .brown: (120, 72, 32)
    case .black: (28, 28, 28)
    }
  }
}

/// Small or large (about 0.16 and 0.26 of the image side across).
public enum SizeClass: String, CaseIterable, Codable, Sendable {
  case small, large
}

/// How an object is filled. Stripes and dots are a few pixels wide: fine detail that survives
/// at the generated resolution and blurs away when the image is downsampled.
public enum FillPattern: String, CaseIterable, Codable, Sendable {
  case solid, striped, dotted
}

/// Where one object is relative to another (grid cells, so it is never ambiguous).
public enum Relation: String, CaseIterable, Codable, Sendable {
  case leftOf, rightOf, above, below

  /// The same fact seen from the other object: A left of B ⇔ B right of A.
  public var inverse: Relation {
    switch self {
    case .leftOf: .rightOf
    case .rightOf: .leftOf
    case .above: .below
    case .below: .above
    }
  }
}

/// One cell of the 3×3 layout grid; objects sit one per cell, jittered inside it.
public struct GridCell: Hashable, Codable, Sendable {
  /// 0 top … 2 bottom.
  public var row: Int
  /// 0 left … 2 right.
  public var column: Int

  public init(row: Int, column: Int) {
    self.row = row
    self.column = column
  }

  public static let all: [GridCell] = (0..<3).flatMap { r in (0..<3).map { GridCell(row: r, column: $0) } }

  /// Whether `relation` holds from an object in this cell to one in `other`.
  public func holds(_ relation: Relation, to other: GridCell) -> Bool {
    switch relation {
    case .leftOf: column < other.column
    case .rightOf: column > other.column
    case .above: row < other.row
    case .below: row > other.row
    }
  }
}
