import Distillation
import Foundation
import Testing
import Torch

@Suite("router: the similarity-based teacher choice")
struct SimilarityRouterTests {
  /// Six reference samples on the unit circle at 0°, 10°, 20°, 90°, 100°, 110°, and two teachers:
  /// teacher 0 is good near 0° (0.9, 0.8, 0.7) and poor near 90° (0.1, 0.2, 0.3); teacher 1 the
  /// opposite (0.2, 0.3, 0.1 / 0.6, 0.9, 0.8).
  func router(neighbours: Int) throws -> SimilarityRouter {
    let angles = [0.0, 10, 20, 90, 100, 110].map { $0 * Double.pi / 180 }
    let bank = try Tensor(angles.flatMap { [cos($0), sin($0)] }, shape: [6, 2])
    let quality = try Tensor([0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.2, 0.3, 0.1, 0.6, 0.9, 0.8], shape: [2, 6])
    return try SimilarityRouter(bank: bank, quality: quality, neighbours: neighbours)
  }

  @Test("scores are each teacher's mean quality on the query's nearest bank samples; the best teacher is chosen")
  func handComputed() throws {
    let r = try router(neighbours: 2)
    // A query at 4° (scaled: the cosine ignores length): nearest 0° and 10° → teacher 0: (0.9 + 0.8)/2 = 0.85,
    // teacher 1: (0.2 + 0.3)/2 = 0.25. A query at 104°: nearest 100°, 110° → 0.25 and 0.85.
    // A query at 52°: nearest 20° (32° away) and 90° (38°; 10° is 42°) → (0.7 + 0.1)/2 = 0.4 and (0.1 + 0.6)/2 = 0.35.
    var points: [Double] = []
    for degrees in [4.0, 104, 52] {
      let radians = degrees * Double.pi / 180
      points += [3 * cos(radians), 3 * sin(radians)]
    }
    let (scores, choice) = try r.route(try Tensor(points, shape: [3, 2]))
    let values = try scores.toArray(Double.self)
    let expected: [Double] = [0.85, 0.25, 0.25, 0.85, 0.4, 0.35]
    for (value, want) in zip(values, expected) { #expect(abs(value - want) < 1e-12, "\(values)") }
    #expect(try choice.toArray(Int64.self) == [0, 1, 0])
  }

  @Test("skipSelf leaves a bank sample's own row out of its neighbours")
  func skipSelf() throws {
    let r = try router(neighbours: 1)
    // Bank sample 2 (20°) is its own nearest; without it, 10° (0.8 vs 0.3) — with it, itself (0.7 vs 0.1).
    let query = try r.bank.narrow(dim: 0, start: 2, length: 1)
    let own: [Double] = try r.route(query).scores.toArray(Double.self)
    let others: [Double] = try r.route(query, skipSelf: true).scores.toArray(Double.self)
    #expect(own == [0.7, 0.1] && others == [0.8, 0.3], "\(own) \(others)")
  }

  @Test("shapes and neighbour counts that cannot work are clear errors")
  func errors() throws {
    #expect { try router(neighbours: 7) } throws: { "\($0)".contains("between 1 and the bank size 6") }
    #expect {
      try SimilarityRouter(bank: Tensor.ones([4, 2]), quality: Tensor.ones([2, 5]), neighbours: 1)
    } throws: { "\($0)".contains("need [N, D] and [T, N]") }
  }
}
