import Foundation

/// Welch's two-sample t-test (unequal variances), two-sided: whether two methods' means over
/// seeds differ by more than their seed-to-seed spread explains.
public struct WelchTest: Equatable, Sendable {
  public var t: Double
  /// Welch–Satterthwaite degrees of freedom.
  public var degreesOfFreedom: Double
  /// Two-sided p-value.
  public var p: Double

  /// nil when either sample has fewer than 2 values or both have zero variance.
  public init?(_ a: [Double], _ b: [Double]) {
    guard a.count > 1, b.count > 1 else { return nil }
    func meanVar(_ x: [Double]) -> (Double, Double) {
      let m = x.reduce(0, +) / Double(x.count)
      return (m, x.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(x.count - 1))
    }
    let (ma, va) = meanVar(a), (mb, vb) = meanVar(b)
    let (sa, sb) = (va / Double(a.count), vb / Double(b.count))
    guard sa + sb > 0 else { return nil }
    t = (ma - mb) / (sa + sb).squareRoot()
    degreesOfFreedom = (sa + sb) * (sa + sb) / (sa * sa / Double(a.count - 1) + sb * sb / Double(b.count - 1))
    p = StudentT.twoSidedP(t: t, degreesOfFreedom: degreesOfFreedom)
  }
}

/// The Student t distribution's tail, through the regularized incomplete beta function.
public enum StudentT {
  /// P(|T| ≥ |t|) for T ~ t(ν) = I_{ν/(ν+t²)}(ν/2, 1/2).
  public static func twoSidedP(t: Double, degreesOfFreedom nu: Double) -> Double {
    regularizedIncompleteBeta(x: nu / (nu + t * t), a: nu / 2, b: 0.5)
  }

  /// I_x(a, b) by Lentz's continued fraction (Numerical Recipes §6.4), to ~1e-12.
  public static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
    if x <= 0 { return 0 }
    if x >= 1 { return 1 }
    let logBeta: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
    let logPowers: Double = a * log(x) + b * log(1 - x)
    let front = exp(logBeta + logPowers)
    // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(x: 1 - x, a: b, b: a) }
    let tiny = 1e-300
    var c = 1.0
    var d = 1 - (a + b) * x / (a + 1)
    if abs(d) < tiny { d = tiny }
    d = 1 / d
    var f = d
    for m in 1...300 {
      let m = Double(m)
      let even: Double = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
      d = 1 + even * d
      if abs(d) < tiny { d = tiny }
      c = 1 + even / c
      if abs(c) < tiny { c = tiny }
      d = 1 / d
      f *= d * c
      let odd: Double = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
      d = 1 + odd * d
      if abs(d) < tiny { d = tiny }
      c = 1 + odd / c
      if abs(c) < tiny { c = tiny }
      d = 1 / d
      let delta = d * c
      f *= delta
      if abs(delta - 1) < 1e-13 { break }
    }
    return front * f / a
  }
}
