import Foundation
import Torch

/// PHI-S standardisation of one teacher's features (Ranzinger et al. 2024, "PHI-S: Distribution
/// Balancing for Label-Free Multi-Source Distillation"; RADIO): y = φ⁻¹ · R · (x − μ) with R
/// orthogonal and φ one scalar, chosen so that every dimension of y has unit variance on the
/// features it was fitted on. Because the map is a rotation and one isotropic scale, distances
/// and angles keep their proportions, and no teacher dominates a multi-teacher loss by the
/// magnitude of its features.
///
/// PHI-S takes R = H · Uᵀ (the PCA basis U of the covariance Σ = U Λ Uᵀ, then a normalised
/// Hadamard matrix H): every row of H has entries ±1/√D, so each output dimension receives
/// mean(λ) of the variance, and φ = √mean(λ) makes it 1. A Hadamard matrix exists only for some
/// D (1, 2 and multiples of 4), and ours needs no eigendecomposition: R is built directly from Σ
/// by D − 1 Givens rotations, each turning one diagonal entry of R Σ Rᵀ into the mean
/// tr(Σ)/D (the constructive Schur–Horn argument), so diag(R Σ Rᵀ) = mean(λ) exactly as PHI-S's
/// rotation gives it, for every D. φ is PHI-S's φ.
public struct PHISStandardizer: Sendable, Equatable {
  public let dimension: Int
  /// μ [D].
  public let mean: [Double]
  /// R, D × D row-major, orthogonal.
  public let rotation: [Double]
  /// φ = √(tr Σ / D).
  public let scale: Double

  /// Fits μ, R and φ to `features` [N, D] (N ≥ 2), with the population covariance.
  public init(fitting features: Tensor) throws {
    guard features.rank == 2, features.size(0) >= 2 else {
      throw MethodError("PHI-S: needs features [N ≥ 2, D], got \(features.shape)")
    }
    let x = try features.detach().to(.float64)
    let (n, d) = (x.size(0), x.size(1))
    let mu = try x.mean(dim: 0)
    let centered = try x - mu
    let covariance = try (centered.transpose(0, 1).matmul(centered) / Double(n)).toArray(Double.self)
    let trace = (0..<d).reduce(0.0) { $0 + covariance[$1 * d + $1] }
    guard trace > 0, trace.isFinite else { throw MethodError("PHI-S: the features have no variance (trace \(trace))") }
    dimension = d
    mean = try mu.toArray(Double.self)
    rotation = PHISStandardizer.equalizingRotation(covariance: covariance, dimension: d)
    scale = (trace / Double(d)).squareRoot()
  }

  public init(mean: [Double], rotation: [Double], scale: Double) {
    dimension = mean.count
    self.mean = mean
    self.rotation = rotation
    self.scale = scale
  }

  /// y = φ⁻¹ R (x − μ) for x [..., D], in x's dtype.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    let (mu, r) = try tensors(x.device)
    return try ((x.to(.float64) - mu).matmul(r.transpose(0, 1)) / scale).to(x.dtype)
  }

  /// x = φ Rᵀ y + μ (R is orthogonal).
  public func inverse(_ y: Tensor) throws -> Tensor {
    let (mu, r) = try tensors(y.device)
    return try ((y.to(.float64) * scale).matmul(r) + mu).to(y.dtype)
  }

  func tensors(_ device: Device) throws -> (Tensor, Tensor) {
    try cache.tensors(device) {
      (try Tensor(mean, shape: [dimension]).to(device), try Tensor(rotation, shape: [dimension, dimension]).to(device))
    }
  }

  /// μ and R as tensors, made once per device: a step applies the standardisation to every
  /// batch, and building a D × D tensor from the array each time was part of every step.
  private let cache = TensorCache()

  public static func == (a: PHISStandardizer, b: PHISStandardizer) -> Bool {
    a.dimension == b.dimension && a.mean == b.mean && a.rotation == b.rotation && a.scale == b.scale
  }

  /// An orthogonal R (D × D, row-major) with every diagonal entry of R Σ Rᵀ equal to tr(Σ)/D.
  ///
  /// M = Σ; repeatedly take an entry i above the mean m and one j below it (both not yet at m),
  /// and rotate the (i, j) plane by the angle θ that makes M'ᵢᵢ = c²Mᵢᵢ + s²Mⱼⱼ − 2csMᵢⱼ = m
  /// (it exists: M'ᵢᵢ moves continuously from Mᵢᵢ > m at θ = 0 to Mⱼⱼ < m at θ = π/2). Entry i is
  /// then final; the trace is kept, so after at most D − 1 rotations every entry is m.
  public static func equalizingRotation(covariance: [Double], dimension d: Int) -> [Double] {
    var m = covariance
    var r = [Double](repeating: 0, count: d * d)
    for i in 0..<d { r[i * d + i] = 1 }
    let target = (0..<d).reduce(0.0) { $0 + m[$1 * d + $1] } / Double(d)
    let tolerance = 1e-12 * max(abs(target), 1e-300)
    var open = [Bool](repeating: true, count: d)  // an array, not a Set: the same R on every run
    while open.filter({ $0 }).count > 1 {
      let candidates = (0..<d).filter { open[$0] }
      let above = candidates.filter { m[$0 * d + $0] > target + tolerance }
      let below = candidates.filter { m[$0 * d + $0] < target - tolerance }
      guard let i = above.max(by: { m[$0 * d + $0] < m[$1 * d + $1] }),
        let j = below.min(by: { m[$0 * d + $0] < m[$1 * d + $1] })
      else { break }  // every open entry is at the mean already
      // f(φ) = (a+b)/2 + A cos φ + B sin φ with φ = 2θ, A = (a−b)/2, B = −Mᵢⱼ; solve f = m.
      let (a, b, off) = (m[i * d + i], m[j * d + j], m[i * d + j])
      let (bigA, bigB, c) = ((a - b) / 2, -off, target - (a + b) / 2)
      let radius = (bigA * bigA + bigB * bigB).squareRoot()
      let phi = atan2(bigB, bigA) + acos(max(-1, min(1, c / radius)))
      let (cosT, sinT) = (cos(phi / 2), sin(phi / 2))
      // Rows i, j of G: row_i' = c·row_i − s·row_j, row_j' = s·row_i + c·row_j; M ← G M Gᵀ, R ← G R.
      func rotateRows(_ x: inout [Double]) {
        for k in 0..<d {
          let (u, v) = (x[i * d + k], x[j * d + k])
          x[i * d + k] = cosT * u - sinT * v
          x[j * d + k] = sinT * u + cosT * v
        }
      }
      rotateRows(&m)
      for k in 0..<d {  // columns
        let (u, v) = (m[k * d + i], m[k * d + j])
        m[k * d + i] = cosT * u - sinT * v
        m[k * d + j] = sinT * u + cosT * v
      }
      rotateRows(&r)
      m[i * d + i] = target  // exact by construction; drop the rounding
      open[i] = false
    }
    return r
  }
}

/// Tensors made on first use per device and kept (immutable once made; the lock guards the table).
final class TensorCache: @unchecked Sendable {
  private let lock = NSLock()
  private var byDevice: [Device: (Tensor, Tensor)] = [:]

  func tensors(_ device: Device, make: () throws -> (Tensor, Tensor)) throws -> (Tensor, Tensor) {
    lock.lock()
    defer { lock.unlock() }
    if let made = byDevice[device] { return made }
    let made = try make()
    byDevice[device] = made
    return made
  }
}
