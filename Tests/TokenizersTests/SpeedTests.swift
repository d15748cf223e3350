import Testing
import Tokenizers

/// Tokenizing 10,000 captions, timed (cold caches). Release builds must take well under a
/// second; debug builds only report.
@Suite struct SpeedTests {
  /// Captions in the style of COCO, from a fixed seed: varied, with repeated words as in real data.
  static let captions: [String] = {
    let counts = ["a", "an old", "two", "three", "some", "a group of", "the", "one", "four", "many"]
    let adjectives = ["red", "small", "large", "wooden", "shiny", "striped", "young", "crowded", "snowy", "bright"]
    let nouns = ["dog", "cat", "man", "woman", "bicycle", "bus", "train", "giraffe", "pizza", "skateboard", "kite"]
    let verbs = ["sitting", "standing", "riding", "holding", "eating", "parked", "jumping", "crossing", "waiting"]
    let places = ["in the park.", "on a city street", "next to a building", "near the water!", "at night, 2019"]
    var state: UInt64 = 42
    func pick(_ words: [String]) -> String {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return words[Int(state >> 33) % words.count]
    }
    return (0..<10_000).map { index in
      "\(pick(counts)) \(pick(adjectives)) \(pick(nouns)) \(pick(verbs)) \(pick(places)) It's #\(index)"
    }
  }()

  @Test func tenThousandCaptions() throws {
    let clip = try CLIPTokenizer(openCLIPVocabularyAt: referenceFile(openCLIPVocabularyPath))
    let bert = try BertTokenizer(vocabularyAt: referenceFile(miniLMVocabularyPath), contextLength: 77)
    let clock = ContinuousClock()
    let clipTime = try clock.measure { _ = try clip.encodeBatch(Self.captions) }
    let bertTime = try clock.measure { _ = try bert.encodeBatch(Self.captions) }
    print("10,000 captions: CLIP \(clipTime), BERT \(bertTime)")
    #if !DEBUG
      #expect(clipTime < .seconds(1))
      #expect(bertTime < .seconds(1))
    #endif
  }
}
