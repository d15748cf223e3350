import Distillation
import Foundation
import Testing
import Torch

@Suite("PHI-S standardisation of a teacher's features")
struct PHISTests {
  /// Strongly anisotropic, correlated features: [N, D] = (z · A) ⊙ scales + offset, A a mixing
  /// matrix (correlations), scales 0.1…30 per dimension.
  func features(n: Int, d: Int, seed: UInt64) throws -> Tensor {
    let g = try Generator(seed: seed)
    let z = try Tensor.randn([n, d], generator: g).to(.float64)
    let scales = try Tensor((0..<d).map { 0.1 * pow(300, Double($0) / Double(max(d - 1, 1))) }, shape: [d])
    let mixing = try Tensor.randn([d, d], generator: g).to(.float64) * 0.3 + Tensor.eye(d).to(.float64)
    return try z.matmul(mixing) * scales + 5
  }

  func variances(_ y: Tensor) throws -> [Double] {
    let c = try y.to(.float64) - y.to(.float64).mean(dim: 0)
    return try c.square().mean(dim: 0).toArray(Double.self)
  }

  @Test("every dimension has unit variance on the data it was fitted on, for any width", arguments: [5, 8, 12, 33])
  func unitVariance(_ d: Int) throws {
    let x = try features(n: 4000, d: d, seed: UInt64(d))
    let before = try variances(x)
    #expect(before.max()! / before.min()! > 100, "the test data are not anisotropic: \(before)")
    let phis = try PHISStandardizer(fitting: x)
    let y = try phis(x)
    for (k, v) in try variances(y).enumerated() { #expect(abs(v - 1) < 1e-9, "dimension \(k): variance \(v)") }
    #expect(try y.mean(dim: 0).abs().amax().item() < 1e-9, "not centred")
    // R is orthogonal and the scale isotropic: x comes back, and distances shrink by 1/φ alike.
    let r = try Tensor(phis.rotation, shape: [d, d])
    #expect(try (r.matmul(r.transpose(0, 1)) - Tensor.eye(d).to(.float64)).abs().amax().item() < 1e-10)
    #expect(try (phis.inverse(y) - x).abs().amax().item() < 1e-9)
    let (a, b) = (try x.narrow(dim: 0, start: 0, length: 1), try x.narrow(dim: 0, start: 1, length: 1))
    let ratio = try (phis(a) - phis(b)).square().sum().sqrt().item() / (a - b).square().sum().sqrt().item()
    #expect(abs(ratio - 1 / phis.scale) < 1e-9)
  }

  @Test("a hand-derived case: Σ = diag(3, 1) is rotated by 45° and scaled by 1/√2")
  func handDerived() throws {
    let r = PHISStandardizer.equalizingRotation(covariance: [3, 0, 0, 1], dimension: 2)
    // M'₀₀ = 3c² + s² = 2 ⇒ c² = ½: a 45° rotation (up to the sign of its rows).
    for (value, expected) in zip(r.map(abs), [Double(0.5).squareRoot(), Double(0.5).squareRoot(), Double(0.5).squareRoot(), Double(0.5).squareRoot()]) {
      #expect(abs(value - expected) < 1e-12, "\(r)")
    }
    // Four points (±√3, ±1): population variances 3 and 1, no covariance.
    let t = Double(3).squareRoot()
    let x = try Tensor([t, 1, -t, -1, t, -1, -t, 1], shape: [4, 2])
    let phis = try PHISStandardizer(fitting: x)
    #expect(abs(phis.scale - Double(2).squareRoot()) < 1e-12)
    for v in try variances(phis(x)) { #expect(abs(v - 1) < 1e-12) }
  }

  @Test("features without variance are a clear error")
  func degenerate() throws {
    #expect { try PHISStandardizer(fitting: Tensor.ones([5, 3])) } throws: { "\($0)".contains("no variance") }
    #expect { try PHISStandardizer(fitting: Tensor.ones([1, 3])) } throws: { "\($0)".contains("N ≥ 2") }
  }
}
