import Distillation
import Foundation
import Models
import TestSupport
import Testing
import Torch

@Suite("promptkd: PromptKD's unsupervised KD loss in both directions")
struct PromptKDTests {
  let fx: [String: Tensor]
  init() throws { fx = try loadFixture("DistillationTests", "promptkd") }

  func input(_ test: String, _ name: String) throws -> Tensor {
    try #require(fx["\(test)/in/\(name)"], "\(test)/in/\(name) missing")
  }

  @Test("matches trainers/promptkd.py's L_ukd (values and gradients)", arguments: [("promptkd_t1", 1.0), ("promptkd_t2", 2.0)])
  func loss(_ test: String, _ temperature: Double) throws {
    let image = try input(test, "s_img").clone().requiresGrad(true), text = try input(test, "s_txt").clone().requiresGrad(true)
    let parts = try PromptKDMethod.kd(
      studentImage: image, studentText: text, teacherImage: input(test, "t_img"), teacherText: input(test, "t_txt"),
      scale: input(test, "scale").item(), temperature: temperature)
    #expect(parts.parts.map(\.name) == ["i2t", "t2i"])
    try expectParts(parts, fx, prefix: test, inputs: ["s_img": image, "s_txt": text])
  }

  @Test("no task loss by default; a student of the teacher's width needs no head")
  func defaults() throws {
    try Torch.manualSeed(2)
    let teacher = try CLIPModel(baselineTeacherConfig())
    try teacher.freeze()
    let student = try CLIPModel(baselineStudentConfig())
    let context = MethodContext(student: student.config, teacher: teacher)
    let method = try #require(try Methods.make(MethodConfig(name: "promptkd"), context: context) as? PromptKDMethod)
    #expect(method.head != nil, "the baseline student's joint width differs from the teacher's")
    let result = try method.loss(student: student, batch: baselineDistillBatch(teacher: teacher, pyramid: context.pyramid))
    #expect(result.loss.parts.map(\.name) == ["promptkd/i2t", "promptkd/t2i"])
    let same = try PromptKDMethod(config: PromptKDConfig(), context: MethodContext(student: teacher.config, teacher: teacher))
    #expect(same.head == nil)
  }
}
