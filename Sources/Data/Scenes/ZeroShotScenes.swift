/// Single-object scenes labelled by shape and colour, for zero-shot classification.
///
/// Classes are every colour–shape pair ("red circle", …): class `shape × colors + color`.
/// Size, fill, place and background vary, so a classifier must ignore them.
///
/// ```swift
/// let view = try ZeroShotScenes(ScenesConfig())
/// let (image, label) = (view.image(at: 0), view.label(at: 0))
/// print(ZeroShotScenes.classNames[label.classIndex])      // "blue star"
/// ```
public struct ZeroShotScenes: Sendable {
  public struct Label: Equatable, Sendable {
    public var shape: ShapeKind
    public var color: SceneColor
    public var classIndex: Int {
      ShapeKind.allCases.firstIndex(of: shape)! * SceneColor.allCases.count + SceneColor.allCases.firstIndex(of: color)!
    }
  }

  /// "red circle", "orange circle", …, "black crescent".
  public static let classNames: [String] = ShapeKind.allCases.flatMap { shape in
    SceneColor.allCases.map { "\($0.rawValue) \(shape.rawValue)" }
  }

  public let config: ScenesConfig

  public init(_ config: ScenesConfig = ScenesConfig()) throws {
    guard config.zeroShotCount > 0 else {
      throw DataError(.emptySplit, file: "ScenesConfig", key: "zeroShotCount", "count is \(config.zeroShotCount)")
    }
    self.config = config
  }

  public var count: Int { config.zeroShotCount }

  public func scene(at index: Int) -> Scene {
    var random = SeededRandom(config.seed, 4, UInt64(index))
    return SceneSampler.scene(objectCount: 1...1, forContrast: false, random: &random)
  }

  public func label(at index: Int) -> Label {
    let object = scene(at: index).objects[0]
    return Label(shape: object.shape, color: object.color)
  }

  public func image(at index: Int) -> RGBImage { SceneRenderer.render(scene(at: index), size: config.imageSize, jitterPermille: config.jitterPermille) }
}
