import Models
import Pyramid
import Torch

/// The `method:` section of an experiment config: which method, and each method's settings
/// (only the named method's section is used; the others keep their defaults).
public struct MethodConfig: Codable, Equatable, Sendable {
  public var name = "cmapkd"
  public var cmapkd = CMAPKDConfig()

  enum CodingKeys: String, CodingKey { case name, cmapkd }

  public init(name: String = "cmapkd") { self.name = name }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = MethodConfig()
    name = try c.decode(.name, default: d.name)
    cmapkd = try c.decode(.cmapkd, default: d.cmapkd)
  }
}

/// Methods by name.
public enum Methods {
  /// Every selectable method name, in the order reports list them.
  public static let names = ["none", "cmapkd"]

  public static func make(_ config: MethodConfig, context: MethodContext) throws -> any DistillationMethod {
    switch config.name {
    case "none": return NoDistillation()
    case "cmapkd": return try CMAPKDMethod(config: config.cmapkd, context: context)
    default:
      throw MethodError("unknown method '\(config.name)'; choose one of: \(names.joined(separator: ", "))")
    }
  }
}
