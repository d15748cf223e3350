import Evaluation
import Testing

@Suite("Retrieval recall over similarity matrices")
struct RetrievalTests {
  /// 3 images, 5 captions (captions 0–1 → image 0, 2–3 → image 1, 4 → image 2).
  let handBuilt: [[Float]] = [
    [0.9, 0.1, 0.95, 0.2, 0.3],  // best own caption 0.9; caption 2 (wrong) is higher → rank 1
    [0.5, 0.6, 0.4, 0.7, 0.7],  // best own caption 0.7 ties with wrong caption 4 → rank 1
    [0.1, 0.2, 0.3, 0.4, 0.8],  // own caption first → rank 0
  ]

  @Test("multi-caption hits and ties, derived by hand")
  func handDerived() throws {
    let s = try SimilarityMatrix(handBuilt)
    let mapping = [0, 0, 1, 1, 2]
    #expect(try Retrieval.imageToTextRanks(s, captionToImage: mapping) == [1, 1, 0])
    // Columns: cap0 [.9,.5,.1] → 0; cap1 [.1,.6,.2] → 2; cap2 [.95,.4,.3] → 1; cap3 [.2,.7,.4] → 0; cap4 → 0
    #expect(try Retrieval.textToImageRanks(s, captionToImage: mapping) == [0, 2, 1, 0, 0])
    let result = try Retrieval.evaluate(s, captionToImage: mapping)
    #expect(result.imageToText == RecallAtK(r1: 1.0 / 3, r5: 1, r10: 1))
    #expect(result.textToImage == RecallAtK(r1: 0.6, r5: 1, r10: 1))
    #expect(abs(result.meanRecall - (1.0 / 3 + 1 + 1 + 0.6 + 1 + 1) / 6) < 1e-12)
    #expect(result.images == 3 && result.captions == 5)
  }

  @Test("an image query hits through whichever of its captions ranks best")
  func anyCaptionHits() throws {
    // Image 0's first caption is last of all, its second first: still a hit at 1.
    let s = try SimilarityMatrix([[0.0, 0.9, 0.5, 0.4], [0.1, 0.2, 0.8, 0.3]])
    #expect(try Retrieval.imageToTextRanks(s, captionToImage: [0, 0, 1, 1]) == [0, 0])
  }

  @Test("recall at 1, 5 and 10 cut exactly at K")
  func kBoundaries() throws {
    // Image i has exactly i wrong captions above its own: ranks 0…11.
    let n = 12
    var rows = [[Float]](repeating: [Float](repeating: 0, count: n), count: n)
    for i in 0..<n {
      rows[i][i] = 0.5
      for j in (0..<n).filter({ $0 != i }).prefix(i) { rows[i][j] = 1 }
    }
    let s = try SimilarityMatrix(rows)
    #expect(try Retrieval.imageToTextRanks(s, captionToImage: Array(0..<n)) == Array(0..<n))
    #expect(
      try Retrieval.evaluate(s, captionToImage: Array(0..<n)).imageToText == RecallAtK(r1: 1.0 / 12, r5: 5.0 / 12, r10: 10.0 / 12)
    )
  }

  @Test("ties go against the query, whatever the order of the candidates")
  func tiesArePessimistic() throws {
    // Every score equal (a collapsed model): 3 images, 2 captions each.
    let flat = try SimilarityMatrix([[Float]](repeating: [Float](repeating: 0.3, count: 6), count: 3))
    let mapping = [0, 0, 1, 1, 2, 2]
    #expect(try Retrieval.imageToTextRanks(flat, captionToImage: mapping) == [4, 4, 4])
    #expect(try Retrieval.textToImageRanks(flat, captionToImage: mapping) == [Int](repeating: 2, count: 6))
    let result = try Retrieval.evaluate(flat, captionToImage: mapping)
    #expect(result.imageToText.r1 == 0 && result.textToImage.r1 == 0 && result.imageToText.r5 == 1)

    // Moving the true caption before or after its tied rival changes nothing.
    let first = try SimilarityMatrix([[0.5, 0.5], [0.1, 0.9]])
    let second = try SimilarityMatrix([[0.5, 0.5], [0.9, 0.1]])
    #expect(try Retrieval.imageToTextRanks(first, captionToImage: [0, 1]) == [1, 0])
    #expect(try Retrieval.imageToTextRanks(second, captionToImage: [1, 0]) == [1, 0])
  }

  @Test("NaN scores rank last, so a diverged model scores zero")
  func nanIsAMiss() throws {
    let s = try SimilarityMatrix([[.nan, 0.1], [.nan, .nan]])
    #expect(try Retrieval.imageToTextRanks(s, captionToImage: [0, 1]) == [1, 1])
    #expect(try Retrieval.textToImageRanks(s, captionToImage: [0, 1]) == [1, 1])
  }

  @Test("agrees with a sort-based reference on random matrices with many ties")
  func matchesSortReference() throws {
    var random = SplitMix(seed: 7)
    let (images, perImage) = (17, 3)
    let captions = images * perImage
    let mapping = (0..<captions).map { $0 / perImage }.shuffled(using: &random)
    // Scores from 6 levels: ties everywhere.
    let rows = (0..<images).map { _ in (0..<captions).map { _ in Float(Int.random(in: 0..<6, using: &random)) / 5 } }
    let s = try SimilarityMatrix(rows)

    // Reference: sort candidates by score, best first, wrong before right among equals;
    // the rank is the position of the first right one.
    func rank(_ scores: [Float], correct: (Int) -> Bool) -> Int {
      let order = scores.indices.sorted { a, b in
        scores[a] != scores[b] ? scores[a] > scores[b] : (!correct(a) && correct(b))
      }
      return order.firstIndex(where: correct)!
    }
    let i2t = (0..<images).map { i in rank(rows[i]) { mapping[$0] == i } }
    let t2i = (0..<captions).map { c in rank(rows.map { $0[c] }) { $0 == mapping[c] } }
    #expect(try Retrieval.imageToTextRanks(s, captionToImage: mapping) == i2t)
    #expect(try Retrieval.textToImageRanks(s, captionToImage: mapping) == t2i)
    let result = try Retrieval.evaluate(s, captionToImage: mapping)
    #expect(result.imageToText == RecallAtK(ranks: i2t) && result.textToImage == RecallAtK(ranks: t2i))
  }

  @Test("mappings that cannot be evaluated are errors naming the problem")
  func badMappings() throws {
    let s = try SimilarityMatrix([[0.1, 0.2], [0.3, 0.4]])
    #expect(throws: EvaluationError.self) { try Retrieval.evaluate(s, captionToImage: [0]) }
    let lonely = #expect(throws: EvaluationError.self) { try Retrieval.evaluate(s, captionToImage: [0, 0]) }
    #expect(lonely?.description.contains("image 1 has no caption") == true)
    #expect(throws: EvaluationError.self) { try Retrieval.evaluate(s, captionToImage: [0, 2]) }
    #expect(throws: EvaluationError.self) { try SimilarityMatrix([[0.1, 0.2], [0.3]]) }
  }
}

/// A small seeded generator (SplitMix64) so the random cases are the same on every run.
struct SplitMix: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

@Suite("Contrast-set retrieval")
struct ContrastSetRetrievalTests {
  // Rows are images, columns captions; images 0–1 form set 7, images 2–4 set 9.
  static let sets = [7, 7, 9, 9, 9]

  @Test("set and within-set top-1 by hand, ties counted against the caption")
  func byHand() throws {
    let s = try SimilarityMatrix([
      // c0→0   c1→1   c2→2   c3→3   c4→4   c5→4
      [0.9, 0.6, 0.0, 0.3, 0.0, 0.0],
      [0.1, 0.5, 0.0, 0.0, 0.0, 0.9],
      [0.0, 0.0, 0.4, 0.2, 0.5, 0.0],
      [0.0, 0.0, 0.4, 0.8, 0.1, 0.0],
      [0.0, 0.0, 0.1, 0.1, 0.2, 0.1],
    ])
    let r = try ContrastSetRetrieval.evaluate(s, captionToImage: [0, 1, 2, 3, 4, 4], setOfImage: Self.sets)
    // c0 top image 0 (own): set ✓ within ✓.  c1 top image 0 (same set): set ✓ within ✗.
    // c2 ties with image 3 (same set): set ✓ within ✗ (tie).  c3 top image 3: ✓ ✓.
    // c4 top image 2 (same set): set ✓ within ✗.  c5 top image 1 (set 7): set ✗, and image 4's
    // set mates score 0.0 < 0.1: within ✓.
    #expect(abs(r.setR1 - 5.0 / 6) < 1e-12)
    #expect(abs(r.withinSetR1 - 3.0 / 6) < 1e-12)
    #expect(abs(r.meanSetSize - 2.5) < 1e-12 && r.captions == 6)
  }

  @Test("a collapsed model (every score equal) gets no within-set hit; NaN ranks last")
  func collapsedAndNaN() throws {
    let flat = try SimilarityMatrix(rows: 5, columns: 5, values: Array(repeating: 0.5, count: 25))
    let r = try ContrastSetRetrieval.evaluate(flat, captionToImage: [0, 1, 2, 3, 4], setOfImage: Self.sets)
    #expect(r.withinSetR1 == 0)
    var values = Array(repeating: Float.nan, count: 25)
    for i in 0..<5 { values[i * 5 + i] = 0.1 }  // every caption's own image is the only number
    let n = try ContrastSetRetrieval.evaluate(
      SimilarityMatrix(rows: 5, columns: 5, values: values), captionToImage: [0, 1, 2, 3, 4], setOfImage: Self.sets)
    #expect(n.setR1 == 1 && n.withinSetR1 == 1)
  }

  @Test("mismatched sizes are refused with the counts")
  func sizesChecked() throws {
    let s = try SimilarityMatrix([[1, 0], [0, 1]])
    #expect(throws: EvaluationError.self) {
      try ContrastSetRetrieval.evaluate(s, captionToImage: [0, 1], setOfImage: [0])
    }
  }
}
