import Foundation
import Testing
import Tokenizers

/// Hand-derived expectations: BPE on a vocabulary small enough to work through by hand,
/// CLIP's pre-tokenizer and cleaning on the real vocabulary, truncation and padding.
@Suite struct CLIPTokenizerTests {
  /// Merges by priority: `l o`, `lo w`, `e r</w>`, `w er</w>`, `n e`, `e s`, `es t</w>`, `a a`.
  static let merges = ["l o", "lo w", "e r</w>", "w er</w>", "n e", "e s", "es t</w>", "a a"]

  /// Every single character (with and without `</w>`), every merge's result, the two specials.
  static func tinyTokenizer(in directory: String, contextLength: Int = 77) throws -> CLIPTokenizer {
    let characters = "adelnorstw".map(String.init)
    let tokens =
      characters + characters.map { $0 + "</w>" } + merges.map { $0.replacingOccurrences(of: " ", with: "") }
      + ["<|startoftext|>", "<|endoftext|>"]
    let json = "{" + tokens.enumerated().map { "\"\($1)\": \($0)" }.joined(separator: ", ") + "}"
    return try CLIPTokenizer(
      vocabJSON: write(json, to: "vocab.json", in: directory),
      merges: write("#version: 0.2\n" + merges.joined(separator: "\n") + "\n", to: "merges.txt", in: directory),
      contextLength: contextLength)
  }

  @Test func bytePairEncodingAppliesMergesByPriority() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let tokenizer = try Self.tinyTokenizer(in: directory)
    // l o w e r</w> → lo w e r</w> (rank 0) → low e r</w> (1) → low er</w> (2); `w er</w>`
    // (3) never applies because `lo w` took the w first.
    #expect(try tokenizer.tokens("lower") == ["low", "er</w>"])
    // n e w e r</w> → n e w er</w> (2) → n e wer</w> (3) → ne wer</w> (4).
    #expect(try tokenizer.tokens("newer") == ["ne", "wer</w>"])
    // l o w e s t</w> → lo … → low e s t</w> → low es t</w> (5) → low est</w> (6).
    #expect(try tokenizer.tokens("lowest") == ["low", "est</w>"])
    // One pass joins every occurrence, left to right, without overlap: a a a</w> → aa a</w>.
    #expect(try tokenizer.tokens("aaa") == ["aa", "a</w>"])
    #expect(try tokenizer.tokens("aaaa") == ["aa", "a", "a</w>"])
    // A one-byte word is its byte with `</w>`.
    #expect(try tokenizer.tokens("a") == ["a</w>"])
    // Words are encoded apart; the cache must not mix them up on a second call.
    #expect(try tokenizer.tokens("lower lower newer") == ["low", "er</w>", "low", "er</w>", "ne", "wer</w>"])
  }

  @Test func textTheVocabularyCannotSpellIsAnErrorNamingTheToken() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let tokenizer = try Self.tinyTokenizer(in: directory)
    let error = #expect(throws: TokenizerError.self) { try tokenizer.encode("lowz") }
    #expect(error?.description.contains("vocab.json") == true)
    #expect(error?.description.contains("\"z</w>\"") == true)
  }

  @Test func truncationKeepsTheFirstIdsAndEndsWithEndOfText() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let tokenizer = try Self.tinyTokenizer(in: directory, contextLength: 4)
    let start = try #require(tokenizer.vocabulary.tokenIds["<|startoftext|>"])
    let end = try #require(tokenizer.vocabulary.tokenIds["<|endoftext|>"])
    let low = try #require(tokenizer.vocabulary.tokenIds["low"])
    let er = try #require(tokenizer.vocabulary.tokenIds["er</w>"])
    #expect(try tokenizer.encode("lower") == [start, low, er, end])  // exactly 4: unchanged
    #expect(try tokenizer.encode("lower lower") == [start, low, er, end])  // 6: cut to 4, last is end
    #expect(try tokenizer.encode("") == [start, end])
    #expect(try tokenizer.tokenIds("lower lower") == [low, er, low, er])  // no truncation here
  }

  @Test func preTokenizerSplitsLikeCLIPsPattern() throws {
    let tokenizer = try CLIPTokenizer(openCLIPVocabularyAt: referenceFile(openCLIPVocabularyPath))
    // Contractions apart, digits one by one, other characters in runs.
    #expect(try tokenizer.tokens("it's 42!") == ["it</w>", "'s</w>", "4</w>", "2</w>", "!</w>"])
    #expect(try tokenizer.tokens("IT'S") == tokenizer.tokens("it's"))
    // `'sa` is the contraction `'s` and then `a`, as the regex's first match wins.
    #expect(try tokenizer.tokens("'sa") == ["'s</w>", "a</w>"])
    // Special tokens written in the text are matched whole.
    #expect(try tokenizer.encode("<start_of_text>a<end_of_text>") == [49406, 49406, 320, 49407, 49407])
    #expect(try tokenizer.encode("<START_OF_TEXT>") == [49406, 49406, 49407])
  }

  @Test func cleaningUnescapesHTMLTwiceCollapsesWhitespaceAndLowerCasesLikePython() throws {
    let tokenizer = try CLIPTokenizer(openCLIPVocabularyAt: referenceFile(openCLIPVocabularyPath))
    #expect(try tokenizer.tokenIds("fish &amp;amp; chips") == tokenizer.tokenIds("fish & chips"))
    #expect(try tokenizer.tokenIds("\u{3000} a \t\n dog\u{2028}") == tokenizer.tokenIds("a dog"))
    // Python lower-cases a word-final capital sigma to ς, and İ to i + combining dot.
    #expect(try tokenizer.tokenIds("ΣΑΣ") == tokenizer.tokenIds("σας"))
    #expect(try tokenizer.tokenIds("ΣΑΣ") != tokenizer.tokenIds("σασ"))
    #expect(try tokenizer.tokenIds("İ") == tokenizer.tokenIds("i\u{307}"))
  }

  @Test func encodeBatchPadsWithTheChosenIdAndMasksThePadding() throws {
    let path = try referenceFile(openCLIPVocabularyPath)
    let tokenizer = try CLIPTokenizer(openCLIPVocabularyAt: path, contextLength: 6)
    let batch = try tokenizer.encodeBatch(["a dog", "", "a photo of a cat"])
    #expect(batch.count == 3)
    #expect(batch.contextLength == 6)
    #expect(batch.ids == [49406, 320, 1929, 49407, 0, 0, 49406, 49407, 0, 0, 0, 0, 49406, 320, 1125, 539, 320, 49407])
    #expect(batch.attentionMask == [1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])

    let endPadded = try CLIPTokenizer(vocabulary: .openCLIP(contentsOf: path), contextLength: 6, padding: .endOfText)
    let padded = try endPadded.encodeBatch(["a dog"])
    #expect(padded.ids == [49406, 320, 1929, 49407, 49407, 49407])
    #expect(padded.attentionMask == [1, 1, 1, 1, 0, 0])
  }

  @Test func concurrentEncodingSharesTheCacheSafely() async throws {
    let tokenizer = try CLIPTokenizer(openCLIPVocabularyAt: referenceFile(openCLIPVocabularyPath))
    let cases = try ReferenceFixture.load("clip").cases
    let agreed = try await withThrowingTaskGroup(of: Int.self) { group in
      for _ in 0..<4 {
        group.addTask { try cases.filter { try tokenizer.encode($0.text) == $0.ids }.count }
      }
      return try await group.reduce(0, +)
    }
    #expect(agreed == 4 * cases.count)
  }
}
