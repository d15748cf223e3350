/// Exact integer inside-tests for the object outlines.
///
/// Outlines are fixed integer tables in units of 1/1000 of the object's radius, tested with
/// integer cross products, so rasterising never touches floating point and renders the same
/// bytes on every machine.
enum ShapeGeometry {
  /// Outlines reach at most this far from the centre along x and along y (their bounding box),
  /// in permille of the radius.
  static let extentPermille = 1_060

  static let square = [(-820, -820), (820, -820), (820, 820), (-820, 820)]
  static let triangle = [(0, -1000), (1060, 840), (-1060, 840)]
  static let diamond = [(0, -1060), (1000, 0), (0, 1060), (-1000, 0)]
  static let hexagon = [(1000, 0), (500, 866), (-500, 866), (-1000, 0), (-500, -866), (500, -866)]
  /// Outer radius 1050 at −90° + k·72°, inner 430 halfway between (values pre-rounded).
  static let star = [
    (0, -1050), (253, -348), (999, -324), (409, 133), (617, 849),
    (0, 430), (-617, 849), (-409, 133), (-999, -324), (-253, -348),
  ]
  static let cross = [
    (-330, -1000), (330, -1000), (330, -330), (1000, -330), (1000, 330), (330, 330),
    (330, 1000), (-330, 1000), (-330, 330), (-1000, 330), (-1000, -330), (-330, -330),
  ]

  static func polygon(_ shape: ShapeKind) -> [(Int, Int)]? {
    switch shape {
    case .square: square
    case .triangle: triangle
    case .diamond: diamond
    case .hexagon: hexagon
    case .star: star
    case .cross: cross
    case .circle, .crescent: nil
    }
  }

  /// Whether the point (dx, dy), relative to the centre, is inside a shape of radius `r`
  /// (all in the same integer units).
  static func contains(_ shape: ShapeKind, dx: Int, dy: Int, radius r: Int) -> Bool {
    Outline(shape, radius: r).contains(dx: dx, dy: dy)
  }

  /// One shape at one radius, scaled once so that testing a point is a few integer ops.
  struct Outline {
    let shape: ShapeKind
    let radius: Int
    /// Polygon vertices scaled by the radius (units: 1/1000 of the point units).
    let vertices: [(Int, Int)]

    init(_ shape: ShapeKind, radius: Int) {
      self.shape = shape
      self.radius = radius
      vertices = (polygon(shape) ?? []).map { ($0.0 * radius, $0.1 * radius) }
    }

    func contains(dx: Int, dy: Int) -> Bool {
      let r = radius
      switch shape {
      case .circle:
        return dx * dx + dy * dy <= r * r
      case .crescent:
        // A disc with an offset disc cut out of its upper right.
        let cx = dx - r * 450 / 1000
        let cy = dy + r * 250 / 1000
        let cut = r * 800 / 1000
        return dx * dx + dy * dy <= r * r && cx * cx + cy * cy > cut * cut
      default:
        return insidePolygon(x: dx * 1000, y: dy * 1000)
      }
    }

    /// Even–odd crossing test; exact in integers.
    private func insidePolygon(x: Int, y: Int) -> Bool {
      var inside = false
      var (ax, ay) = vertices[vertices.count - 1]
      for (bx, by) in vertices {
        if (ay > y) != (by > y) {
          // Crossing to the right of the point: x < ax + (y − ay)(bx − ax)/(by − ay), multiplied
          // out with the sign of (by − ay) so no division happens.
          let lhs = (x - ax) * (by - ay)
          let rhs = (y - ay) * (bx - ax)
          if by > ay ? lhs < rhs : lhs > rhs { inside.toggle() }
        }
        (ax, ay) = (bx, by)
      }
      return inside
    }
  }
}
