import Experiments
import Testing

@Suite("Statistics: Welch's t-test and the Student t tail")
struct StatisticsTests {
  @Test("Welch's t-test matches scipy.stats.ttest_ind(equal_var=False) on hand-checkable samples")
  func welch() throws {
    // a = 1, 2, 3 and b = 4, 5, 6: means 2 and 5, variances 1, t = −3/√(2/3), df = 4.
    let test = try #require(WelchTest([1, 2, 3], [4, 5, 6]))
    #expect(abs(test.t - (-3.6742346141747673)) < 1e-12)
    #expect(abs(test.degreesOfFreedom - 4) < 1e-12)
    #expect(abs(test.p - 0.021311641128756713) < 1e-9, "p = \(test.p)")
    #expect(WelchTest([1], [2, 3]) == nil && WelchTest([1, 1], [2, 2]) == nil)
  }

  @Test("two-sided Student t p-values match scipy.stats.t.sf", arguments: [
    (2.0, 10.0, 0.07338803477074037), (1.0, 1.0, 0.5), (0.5, 2.5, 0.6576979198697148), (0.0, 3.0, 1.0),
  ])
  func studentT(_ t: Double, _ nu: Double, _ expected: Double) {
    let p = StudentT.twoSidedP(t: t, degreesOfFreedom: nu)
    #expect(abs(p - expected) < 1e-9, "p(|T| ≥ \(t); ν = \(nu)) = \(p), expected \(expected)")
  }
}
