import Distillation
import Foundation
import Models
import TestSupport
import Testing
import Torch

@Suite("c2kd: C2KD's proxy, selection and non-target terms")
struct C2KDTests {
  let fx: [String: Tensor]
  init() throws { fx = try loadFixture("DistillationTests", "c2kd") }

  func input(_ test: String, _ name: String) throws -> Tensor {
    try #require(fx["\(test)/in/\(name)"], "\(test)/in/\(name) missing")
  }

  @Test(
    "every term matches utils/helper.py's formulas (values and gradients), with and without samples left out",
    arguments: [("c2kd_all", -1.0), ("c2kd_select", 0.2)])
  func terms(_ test: String, _ krc: Double) throws {
    var leaves: [String: Tensor] = [:]
    for name in ["student", "sp_image", "sp_text", "tp_image", "tp_text"] { leaves[name] = try input(test, name).clone().requiresGrad(true) }
    let logits = C2KDMethod.Logits(
      student: leaves["student"]!, teacher: try input(test, "teacher"), studentProxyImage: leaves["sp_image"]!,
      studentProxyText: leaves["sp_text"]!, teacherProxyImage: leaves["tp_image"]!, teacherProxyText: leaves["tp_text"]!)
    let (parts, selected) = try C2KDMethod.terms(logits, krc: krc)
    #expect(abs(selected - (try #require(fx["\(test)/selected"]).item())) < 1e-12)
    if test == "c2kd_select" { #expect(selected > 0 && selected < 1, "the case no longer leaves samples out: \(selected)") }
    try expectParts(parts, fx, prefix: test, inputs: leaves)
  }

  @Test("Kendall's tau: +1 for the same order, −1 for the reverse, pair counts otherwise")
  func kendall() throws {
    let a = try Tensor([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4] as [Float], shape: [3, 4])
    let b = try Tensor([10, 20, 30, 40, 4, 3, 2, 1, 2, 1, 3, 4] as [Float], shape: [3, 4])
    // Row 3: of the 6 pairs only (1, 2) is discordant: (5 − 1) / 6.
    let tau = try C2KDMethod.kendallTau(a, b).toArray(Float.self)
    for (x, y) in zip(tau, [1, -1, 4.0 / 6]) { #expect(abs(Double(x) - y) < 1e-6, "\(tau)") }
  }
}
