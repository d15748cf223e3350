import Distillation
import Models
import Testing
import Torch
import TorchNN

@Suite("Mixed precision: bf16 autocast on the CPU")
struct MixedPrecisionTests {
  @Test("under bf16 autocast matmuls and linears give bf16, softmaxes and losses float32; outside, float32 again")
  func dtypes() throws {
    let layer = try Linear(8, 4)
    let x = try Tensor.randn([3, 8])
    try Torch.autocast(.cpu, dtype: .bfloat16) {
      #expect(Torch.autocastEnabled(.cpu))
      let y = try layer(x)
      #expect(y.dtype == .bfloat16)
      #expect(try y.logSoftmax(dim: 1).dtype == .float32)
      #expect(try y.softmax(dim: 1).dtype == .float32)
      let labels = try Tensor([0, 1, 2] as [Int64])
      #expect(try Functional.crossEntropy(y.narrow(dim: 1, start: 0, length: 3), labels).dtype == .float32)
      #expect(try Functional.mseLoss(y, y.detach() * 0.5).dtype == .float32)
    }
    #expect(!Torch.autocastEnabled(.cpu))
    #expect(try layer(x).dtype == .float32)
    #expect(throws: TorchError.self) { try Torch.autocast(.cpu, dtype: .float64) {} }
  }

  @Test("a CMAPKD step under bf16 autocast: float32 loss within 2 % of the float32 step, float32 gradients everywhere")
  func cmapkdStep() throws {
    let (teacher, student, head) = try smallTeacherStudent(seed: 0)
    let method = try fittedCMAPKD(everyTerm(.uniform), teacher: teacher)
    let batch = try smallBatch()
    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: method.config.pyramid)
    func step() throws -> Tensor {
      try method.step(
        student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
        stage: .fine
      ).total
    }
    let full = try step().item()
    let mixed = try Torch.autocast(.cpu, dtype: .bfloat16) { try step() }
    #expect(mixed.dtype == .float32)
    let value = try mixed.item()
    #expect(value.isFinite && abs(value - full) <= 0.02 * abs(full), "bf16 \(value) vs fp32 \(full)")
    try mixed.backward()
    for (key, p) in student.namedParameters() {
      let g = try #require(try p.grad, "student \(key) got no gradient")
      #expect(g.dtype == .float32 && p.dtype == .float32, "student \(key): weight \(p.dtype), gradient \(g.dtype)")
    }
  }
}
