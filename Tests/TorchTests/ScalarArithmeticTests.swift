import TestSupport
import Testing
import Torch

/// `x + s`, `s - x`, `x * s`, … with a Swift number: on float32 / float64 tensors the shim passes
/// the number as a 0-d tensor of the tensor's dtype (ATen's Scalar overloads would convert a
/// float64 copy on every call). The values must be bit for bit those of ATen's own arithmetic,
/// which computes with the number rounded to the tensor's dtype; the other dtypes keep ATen's path.
@Suite("Arithmetic with numbers: same values, dtypes and gradients as ATen's")
struct ScalarArithmeticTests {
  /// x op s, and the same op against s as a one-element tensor of x's dtype (broadcast).
  func pairs(_ x: Tensor, _ s: Double) throws -> [(String, Tensor, Tensor)] {
    let t = try Tensor([s]).to(x.dtype)
    return [
      ("x + s", try x + s, try x + t), ("x - s", try x - s, try x - t), ("x * s", try x * s, try x * t),
      ("x / s", try x / s, try x / t), ("s + x", try s + x, try t + x), ("s - x", try s - x, try t - x),
      ("s * x", try s * x, try t * x), ("s / x", try s / x, try x.reciprocal() * t),
    ]
  }

  @Test("float32 and float64: bit for bit ATen's tensor arithmetic, the tensor's dtype kept")
  func floating() throws {
    for dtype in [DType.float32, .float64] {
      let x = try Tensor.randn([3, 5]).to(dtype)
      for s in [0.1, -1.5, 3.0, 1e-30, 7.3e5] {
        for (name, value, reference) in try pairs(x, s) {
          #expect(value.dtype == dtype && value.shape == [3, 5], "\(dtype) \(name)")
          #expect(try maxAbsDiff(value, reference) == 0, "\(dtype) \(name) with s = \(s)")
        }
      }
    }
    // A 0-d tensor stays 0-d and keeps its dtype.
    let loss = try Tensor([Float(2)], shape: [])
    #expect(try (loss * 0.25).shape == [] && (loss * 0.25).dtype == .float32 && (loss * 0.25).item() == 0.5)
  }

  @Test("gradients: d(x * s)/dx = s, d(s / x)/dx = −s / x², d(s − x)/dx = −1")
  func gradients() throws {
    let x = try Tensor([0.5, -2, 4] as [Float]).requiresGrad(true)
    let cases: [(Tensor, [Double])] = [
      (try (x * 3.0).sum(), [3, 3, 3]), (try (2.0 / x).sum(), [-8, -0.5, -0.125]), (try (1.0 - x).sum(), [-1, -1, -1]),
      (try (x / 4.0 + 1.0).sum(), [0.25, 0.25, 0.25]),
    ]
    for (loss, expected) in cases {
      let g = try #require(try Torch.gradients(of: [loss], withRespectTo: [x])[0])
      #expect(try g.doubles() == expected)
    }
  }

  @Test("other dtypes keep ATen's path: integers stay integral for whole numbers, half stays half")
  func otherDTypes() throws {
    let n = try Tensor([1, 2, 3] as [Int64])
    #expect(try (n * 2.0).dtype == .int64 && (n * 2.0).toArray(Int64.self) == [2, 4, 6])
    #expect(try (n * 0.5).dtype == .float32 && (n * 0.5).doubles() == [0.5, 1, 1.5])
    let h = try Tensor([1, 2, 3] as [Float]).to(.float16)
    #expect(try (h * 0.5).dtype == .float16 && (h * 0.5).to(.float32).doubles() == [0.5, 1, 1.5])
    let b = try Tensor([1.5, -2] as [Float]).to(.bfloat16)
    #expect(try (b + 1.0).dtype == .bfloat16 && (b + 1.0).to(.float32).doubles() == [2.5, -1])
  }
}
