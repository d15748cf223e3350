import Distillation
import Foundation
import Models
import Pyramid
import TestSupport
import Testing
import Torch
import TorchNN

@Suite("Baseline losses match independent PyTorch references (parts and gradients, 1e-5)")
struct BaselineTests {
  let fx: [String: Tensor]
  init() throws { fx = try loadFixture("DistillationTests", "baselines") }

  func input(_ test: String, _ name: String) throws -> Tensor {
    try #require(fx["\(test)/in/\(name)"], "\(test)/in/\(name) missing")
  }
  func leaf(_ test: String, _ name: String) throws -> Tensor { try input(test, name).clone().requiresGrad(true) }

  /// Copies a reference value into a module's parameter (leaving it a trainable leaf).
  func load(_ parameter: Tensor, _ test: String, _ name: String) throws -> Tensor {
    try Torch.noGrad { try parameter.copy(from: input(test, name)) }
    return parameter
  }

  @Test(
    "kd: Hinton KL and soft cross-entropy on both batch directions",
    arguments: [("kd_kl", 4.0, SoftTargetForm.kl), ("kd_soft_ce", 2.0, .softCE)])
  func kd(_ test: String, _ temperature: Double, _ form: SoftTargetForm) throws {
    let (img, txt, logScale) = (try leaf(test, "s_img"), try leaf(test, "s_txt"), try leaf(test, "s_log_scale"))
    let parts = try KDMethod.kd(
      studentImage: img, studentText: txt, studentScale: logScale.exp(), teacherImage: input(test, "t_img"),
      teacherText: input(test, "t_txt"),
      teacherScale: input(test, "t_scale").item(), temperature: temperature, form: form)
    #expect(parts.parts.map(\.name) == ["i2t", "t2i"])
    try expectParts(parts, fx, prefix: test, inputs: ["s_img": img, "s_txt": txt, "s_log_scale": logScale])
  }

  @Test("tinyclip: affinity mimicking at the models' own scales")
  func tinyclip() throws {
    let (img, txt, logScale) = (try leaf("tinyclip", "s_img"), try leaf("tinyclip", "s_txt"), try leaf("tinyclip", "s_log_scale"))
    let parts = try TinyCLIPMethod.affinity(
      studentImage: img, studentText: txt, studentScale: logScale.exp(), teacherImage: input("tinyclip", "t_img"),
      teacherText: input("tinyclip", "t_txt"), teacherScale: input("tinyclip", "t_scale").item())
    try expectParts(parts, fx, prefix: "tinyclip", inputs: ["s_img": img, "s_txt": txt, "s_log_scale": logScale])
  }

  @Test("clipkd: FD through the width projection, ICL, CRD")
  func clipkd() throws {
    let t = "clipkd"
    let head = try CLIPKDHead(studentWidth: 6, teacherWidth: 8, iclTemperature: 0.07)
    let projections = (try #require(head.imageProjection), try #require(head.textProjection))
    let inputs: [String: Tensor] = [
      "s_img": try leaf(t, "s_img"), "s_txt": try leaf(t, "s_txt"), "s_log_scale": try leaf(t, "s_log_scale"),
      "w_img": try load(projections.0.weight, t, "w_img"), "b_img": try load(projections.0.bias!, t, "b_img"),
      "w_txt": try load(projections.1.weight, t, "w_txt"), "b_txt": try load(projections.1.bias!, t, "b_txt"),
      "icl_log_scale": try load(head.iclLogitScale, t, "icl_log_scale"),
    ]
    let projected = try head.project(image: inputs["s_img"]!, text: inputs["s_txt"]!)
    let (tImg, tTxt) = (try input(t, "t_img"), try input(t, "t_txt"))
    let groups = [
      try CLIPKDMethod.featureDistillation(
        studentImage: projected.image, studentText: projected.text, teacherImage: tImg, teacherText: tTxt),
      try CLIPKDMethod.interactiveContrastive(
        studentImage: projected.image, studentText: projected.text, teacherImage: tImg, teacherText: tTxt,
        scale: head.iclLogitScale.exp()),
      try CLIPKDMethod.relational(
        studentImage: inputs["s_img"]!, studentText: inputs["s_txt"]!, studentScale: inputs["s_log_scale"]!.exp(),
        teacherImage: tImg,
        teacherText: tTxt, teacherScale: input(t, "t_scale").item(), temperature: 1),
    ]
    var named = LossParts()
    for (name, value) in groups.flatMap(\.parts) { named.add(name, value) }
    #expect(named.parts.map(\.name) == ["fd", "icl", "crd"])
    try expectParts(named, fx, prefix: t, inputs: inputs)
  }

  @Test("fitnet: vision hints (a resized map, a global vector) through the 1×1 regressor")
  func fitnetVision() throws {
    for (t, key) in [("fitnet_map", "s_map"), ("fitnet_global", "s_vec")] {
      let head = try FitNetHead(studentWidths: (3, 3), teacherWidths: (5, 4))
      let inputs = [
        key: try leaf(t, key), "weight": try load(head.vision.weight, t, "weight"),
        "bias": try load(head.vision.bias!, t, "bias"),
      ]
      let parts = try FitNetMethod.visionHint(
        student: inputs[key]!, teacher: input(t, key == "s_map" ? "t_map" : "t_vec"), regressor: head.vision)
      try expectParts(parts, fx, prefix: t, inputs: inputs)
    }
  }

  @Test("fitnet: text hints, masked over real tokens and on a vector tap")
  func fitnetText() throws {
    for (t, key, target, masked) in [("fitnet_tokens", "s_tok", "t_tok", true), ("fitnet_sentence", "s_vec", "t_vec", false)] {
      let head = try FitNetHead(studentWidths: (3, 3), teacherWidths: (5, 4))
      let inputs = [
        key: try leaf(t, key), "weight": try load(head.text.weight, t, "weight"), "bias": try load(head.text.bias!, t, "bias"),
      ]
      let parts = try FitNetMethod.textHint(
        student: inputs[key]!, teacher: input(t, target), mask: masked ? try input(t, "mask") : nil, regressor: head.text)
      try expectParts(parts, fx, prefix: t, inputs: inputs)
    }
  }
}

@Suite("Baseline configs and the method registry")
struct BaselineConfigTests {
  @Test("Methods.names lists every method in report order; unknown names are a clear error")
  func registry() throws {
    #expect(
      Methods.names == [
        "none", "kd", "fitnet", "clipkd", "tinyclip", "dsmd", "promptkd", "c2kd", "cmapkd", "dtokd", "iva", "multiteacher", "router",
      ])
    // The demo and the comparison run the single-teacher ones unless told otherwise.
    #expect(Methods.singleTeacherNames == Array(Methods.names.prefix(11)))
    let teacher = try CLIPModel(baselineTeacherConfig())
    let second = try CLIPModel(Presets.tiny)
    let context = MethodContext(
      student: baselineStudentConfig(), teacher: teacher, otherTeachers: [second],
      teacherSample: try multiTeacherSample([teacher, second]))
    for name in Methods.names { #expect(try Methods.make(MethodConfig(name: name), context: context).name == name) }
    #expect {
      try Methods.make(MethodConfig(name: "hinton"), context: context)
    } throws: { error in
      "\(error)".contains("unknown method 'hinton'") && "\(error)".contains("dsmd")
    }
  }

  @Test("every field decodes from snake_case and defaults when missing")
  func decoding() throws {
    let json = #"""
      {"name": "dsmd",
       "kd": {"temperature": 2, "form": "soft_ce", "weight": 0.5, "task_weight": 0},
       "fitnet": {"vision_tap": 2, "text_tap": 0, "vision_weight": 3, "text_weight": 0, "task_weight": 0.5},
       "clipkd": {"fd_weight": 10, "icl_weight": 0, "crd_weight": 2, "task_weight": 1, "crd_temperature": 2, "icl_temperature": 0.05},
       "tinyclip": {"temperature": 1.5, "form": "kl", "weight": 2, "task_weight": 0.5},
       "dsmd": {"contrastive_weight": 0.5, "l1_weight": 2, "cosine_weight": 0, "hinge_weight": 3, "task_weight": 0.1,
                "temperature": 0.07, "queue_size": 16, "margin": 0.3, "hardest_negative": true, "balancer": "dwa",
                "balancer_scale": 5, "balancer_temperature": 2}}
      """#
    let c = try JSONDecoder().decode(MethodConfig.self, from: Data(json.utf8))
    #expect(c.name == "dsmd")
    #expect(c.kd == KDConfig(temperature: 2, form: .softCE, weight: 0.5, taskWeight: 0))
    #expect(c.fitnet == FitNetConfig(visionTap: 2, textTap: 0, visionWeight: 3, textWeight: 0, taskWeight: 0.5))
    #expect(
      c.clipkd.fdWeight == 10 && c.clipkd.iclWeight == 0 && c.clipkd.crdWeight == 2 && c.clipkd.crdTemperature == 2
        && c.clipkd.iclTemperature == 0.05)
    #expect(c.tinyclip == TinyCLIPConfig(temperature: 1.5, form: .kl, weight: 2, taskWeight: 0.5))
    let p = c.dsmd
    #expect(p.contrastiveWeight == 0.5 && p.l1Weight == 2 && p.cosineWeight == 0 && p.hingeWeight == 3 && p.taskWeight == 0.1)
    #expect(p.temperature == 0.07 && p.queueSize == 16 && p.margin == 0.3 && p.hardestNegative)
    #expect(p.balancer == .dwa && p.balancerScale == 5 && p.balancerTemperature == 2)
    let empty = try JSONDecoder().decode(MethodConfig.self, from: Data(#"{"name": "kd", "dsmd": {}}"#.utf8))
    var expected = MethodConfig(name: "kd")
    expected.dsmd = DSMDConfig()
    #expect(empty == expected)
    // What is encoded decodes back to the same config (the CLI round-trips configs through YAML).
    #expect(try JSONDecoder().decode(MethodConfig.self, from: JSONEncoder().encode(c)) == c)
  }

  @Test("each YAML overlay in configs/methods selects its method, decodes as MethodConfig and uses only keys the config has")
  func overlays() throws {
    for name in Methods.names {
      let path = "\(packageRoot)/configs/methods/\(name).yaml"
      let yaml = try SimpleYAML.parse(String(contentsOfFile: path, encoding: .utf8))
      #expect(Set(yaml.keys) == ["method"], "\(name).yaml: holds more than a method: section")
      let section = try #require(yaml["method"] as? [String: Any])
      let config = try JSONDecoder().decode(MethodConfig.self, from: JSONSerialization.data(withJSONObject: section))
      #expect(config.name == name)
      // A key the overlay has but the re-encoded config lacks was never read: misspelt or misplaced.
      let encoded = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any])
      let unknown = SimpleYAML.keyPaths(section).filter { !SimpleYAML.has(encoded, $0) }
      #expect(unknown.isEmpty, "\(name).yaml: unknown keys \(unknown)")
      // The overlays of the baselines spell out exactly the defaults the code has.
      if name != "cmapkd" { #expect(config == MethodConfig(name: name), "\(name).yaml differs from the defaults") }
    }
  }

  @Test("bad settings are errors naming the method and field")
  func validation() throws {
    let context = MethodContext(student: baselineStudentConfig(), teacher: try CLIPModel(baselineTeacherConfig()))
    func message(_ configure: (inout MethodConfig) -> Void, _ name: String) -> String {
      var config = MethodConfig(name: name)
      configure(&config)
      do {
        _ = try Methods.make(config, context: context)
        return "no error"
      } catch { return "\(error)" }
    }
    #expect(message({ $0.fitnet.visionTap = 4 }, "fitnet").contains("fitnet: vision_tap is 4"))
    #expect(message({ $0.kd.temperature = 0 }, "kd").contains("kd: temperature"))
    #expect(message({ $0.clipkd.iclWeight = -1 }, "clipkd").contains("clipkd: icl_weight is -1"))
    #expect(message({ $0.dsmd.queueSize = 0 }, "dsmd").contains("dsmd: need temperature > 0, margin ≥ 0 and queue_size ≥ 1"))
    #expect(message({ $0.tinyclip.weight = .nan }, "tinyclip").contains("tinyclip: weight is nan"))
  }
}

/// Just enough YAML for the method overlays: nested mappings by indentation, scalars (numbers,
/// booleans, strings), flow lists `[a, b]` and `#` comments. Tests only; the CLI uses Yams.
enum SimpleYAML {
  static func parse(_ text: String) throws -> [String: Any] {
    let lines = text.split(separator: "\n").map { line -> (indent: Int, text: String) in
      let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
      return (line.prefix { $0 == " " }.count, content.trimmingCharacters(in: .whitespaces))
    }.filter { !$0.text.isEmpty }
    var index = 0
    return try mapping(lines, &index, indent: 0)
  }

  static func mapping(_ lines: [(indent: Int, text: String)], _ index: inout Int, indent: Int) throws -> [String: Any] {
    var out: [String: Any] = [:]
    while index < lines.count, lines[index].indent == indent {
      let line = lines[index].text
      guard let colon = line.firstIndex(of: ":") else { throw MethodError("yaml: no key in '\(line)'") }
      let key = String(line[..<colon])
      let rest = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
      index += 1
      if rest.isEmpty {
        out[key] =
          index < lines.count && lines[index].indent > indent ? try mapping(lines, &index, indent: lines[index].indent) : [:]
      } else if rest.hasPrefix("[") {
        out[key] = rest.dropFirst().dropLast().split(separator: ",").map { scalar($0.trimmingCharacters(in: .whitespaces)) }
      } else {
        out[key] = scalar(rest)
      }
    }
    if index < lines.count, lines[index].indent > indent {
      throw MethodError("yaml: unexpected indentation at '\(lines[index].text)'")
    }
    return out
  }

  static func scalar(_ text: String) -> Any {
    if text == "true" || text == "false" { return text == "true" }
    if let number = Double(text) { return number }
    return text
  }

  /// Every key path of nested mappings: ["dsmd", "balancer", "momentum"], …
  static func keyPaths(_ mapping: [String: Any], prefix: [String] = []) -> [[String]] {
    mapping.flatMap { key, value -> [[String]] in
      let path = prefix + [key]
      if let nested = value as? [String: Any] { return [path] + keyPaths(nested, prefix: path) }
      return [path]
    }
  }

  static func has(_ mapping: [String: Any], _ path: [String]) -> Bool {
    guard let first = path.first, let value = mapping[first] else { return false }
    if path.count == 1 { return true }
    return (value as? [String: Any]).map { has($0, Array(path.dropFirst())) } ?? false
  }
}
