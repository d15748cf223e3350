import Models
import Pyramid
import Torch

/// The `method:` section of an experiment config: which method, and each method's settings
/// (only the named method's section is used; the others keep their defaults).
public struct MethodConfig: Codable, Equatable, Sendable {
  public var name = "cmapkd"
  /// Start the student from a slice of the teacher (TinyCLIP's manual weight inheritance,
  /// `WeightInheritance`) whatever the method; false starts it from scratch. `tinyclip` inherits
  /// by its own default (`tinyclip.inherit`) either way.
  public var inherit = false
  public var kd = KDConfig()
  public var fitnet = FitNetConfig()
  public var clipkd = CLIPKDConfig()
  public var tinyclip = TinyCLIPConfig()
  public var dsmd = DSMDConfig()
  public var promptkd = PromptKDConfig()
  public var c2kd = C2KDConfig()
  public var dtokd = DTOKDConfig()
  public var iva = IVAConfig()
  public var multiteacher = MultiTeacherConfig()
  public var router = RouterConfig()
  public var cmapkd = CMAPKDConfig()

  enum CodingKeys: String, CodingKey {
    case name, inherit, kd, fitnet, clipkd, tinyclip, dsmd, cmapkd, promptkd, c2kd, dtokd, iva, multiteacher, router
  }

  public init(name: String = "cmapkd") { self.name = name }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = MethodConfig()
    name = try c.decode(.name, default: d.name)
    inherit = try c.decode(.inherit, default: d.inherit)
    kd = try c.decode(.kd, default: d.kd)
    fitnet = try c.decode(.fitnet, default: d.fitnet)
    clipkd = try c.decode(.clipkd, default: d.clipkd)
    tinyclip = try c.decode(.tinyclip, default: d.tinyclip)
    dsmd = try c.decode(.dsmd, default: d.dsmd)
    promptkd = try c.decode(.promptkd, default: d.promptkd)
    c2kd = try c.decode(.c2kd, default: d.c2kd)
    dtokd = try c.decode(.dtokd, default: d.dtokd)
    iva = try c.decode(.iva, default: d.iva)
    multiteacher = try c.decode(.multiteacher, default: d.multiteacher)
    router = try c.decode(.router, default: d.router)
    cmapkd = try c.decode(.cmapkd, default: d.cmapkd)
  }
}

/// Methods by name.
public enum Methods {
  /// Every selectable method name, in the order reports list them.
  public static let names = [
    "none", "kd", "fitnet", "clipkd", "tinyclip", "dsmd", "promptkd", "c2kd", "cmapkd", "dtokd", "iva", "multiteacher", "router",
  ]

  /// The methods that distil from several teachers (`extra_teachers` as well as `teacher`).
  public static let multiTeacherNames: Set<String> = ["multiteacher", "router"]

  /// The methods `make demo` and `cmapkd compare` run when none are named: every method that
  /// needs one teacher only (the others need a second trained teacher, configs/multiteacher.yaml).
  public static var singleTeacherNames: [String] { names.filter { !multiTeacherNames.contains($0) } }

  /// Whether a method distils from the teachers under `extra_teachers` as well as `teacher`
  /// (also as `dtokd`'s base).
  public static func usesOtherTeachers(_ config: MethodConfig) -> Bool {
    multiTeacherNames.contains(config.name) || (config.name == "dtokd" && multiTeacherNames.contains(config.dtokd.base))
  }

  /// Whether the runner must give the method a sample of the teachers' embeddings before training
  /// (`MethodContext.teacherSample`): the multi-teacher methods, and CMAPKD's `unified`
  /// embedding term (directly or as the base of `dtokd` or `multiteacher`).
  public static func needsTeacherSample(_ config: MethodConfig) -> Bool {
    let runsCMAPKD = config.name == "cmapkd" || (config.name == "dtokd" && config.dtokd.base == "cmapkd")
    return usesOtherTeachers(config) || (runsCMAPKD && config.cmapkd.needsTeacherSample)
  }

  /// Whether a method cannot run on `teacher` alone: a router with one teacher has nothing to
  /// choose, while `multiteacher` with no `extra_teachers` is its own single-teacher control
  /// (the same standardisation, projector and loss on the first teacher only).
  public static func needsSecondTeacher(_ config: MethodConfig) -> Bool {
    config.name == "router" || (config.name == "dtokd" && config.dtokd.base == "router")
  }

  public static func make(_ config: MethodConfig, context: MethodContext) throws -> any DistillationMethod {
    switch config.name {
    case "none": return NoDistillation()
    case "kd": return try KDMethod(config: config.kd, context: context)
    case "fitnet": return try FitNetMethod(config: config.fitnet, context: context)
    case "clipkd": return try CLIPKDMethod(config: config.clipkd, context: context)
    case "tinyclip": return try TinyCLIPMethod.make(config: config.tinyclip, context: context)
    case "dsmd": return try DSMDMethod(config: config.dsmd, context: context)
    case "dtokd": return try DTOKDMethod(config: config.dtokd, methods: config, context: context)
    case "c2kd": return try C2KDMethod(config: config.c2kd, context: context)
    case "promptkd": return try PromptKDMethod(config: config.promptkd, context: context)
    case "cmapkd": return try CMAPKDMethod(config: config.cmapkd, context: context)
    case "iva": return try IVAMethod(config: config.iva, context: context)
    case "multiteacher":
      return try MultiTeacherMethod(
        name: "multiteacher", config: config.multiteacher, router: nil, cmapkd: config.cmapkd, context: context)
    case "router":
      return try MultiTeacherMethod(
        name: "router", config: config.multiteacher, router: config.router, cmapkd: config.cmapkd, context: context)
    default:
      throw MethodError("unknown method '\(config.name)'; choose one of: \(names.joined(separator: ", "))")
    }
  }
}
