import Testing
import Tokenizers

/// Hand-derived expectations on small vocabularies (the first ones from Hugging Face's own
/// BERT tests), plus special tokens, truncation and padding.
@Suite struct BertTokenizerTests {
  static let tokens = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",", "low",
    "lowest", "##aff", "##able", "hello", "!", "how", "are", "you", "?", "ah", "博", "推", "zz", "a", "b", "cafe",
  ]

  static func tokenizer(contextLength: Int = 512) throws -> BertTokenizer {
    try BertTokenizer(vocabulary: WordPieceVocabulary(tokens: tokens), contextLength: contextLength)
  }

  @Test func wordPieceTakesTheLongestMatchFirst() throws {
    let tokenizer = try Self.tokenizer()
    #expect(tokenizer.tokens("unaffable") == ["un", "##aff", "##able"])
    #expect(tokenizer.tokens("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"])
    // One unmatchable piece makes the whole word unknown.
    #expect(tokenizer.tokens("unwantedX running") == ["[UNK]", "runn", "##ing"])
    #expect(tokenizer.tokens("lowest") == ["lowest"])
  }

  @Test func wordsLongerThanAHundredCharactersAreUnknown() throws {
    let tokenizer = try BertTokenizer(vocabulary: WordPieceVocabulary(tokens: Self.tokens + ["##a"]))
    #expect(tokenizer.tokens(String(repeating: "a", count: 100)) == ["a"] + Array(repeating: "##a", count: 99))
    #expect(tokenizer.tokens(String(repeating: "a", count: 101)) == ["[UNK]"])
  }

  @Test func basicTokenizerCleansLowerCasesStripsAccentsAndSplitsPunctuation() throws {
    let tokenizer = try Self.tokenizer()
    #expect(tokenizer.tokens(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"])
    #expect(tokenizer.tokens("UNwant\u{E9}d,running") == ["un", "##want", "##ed", ",", "runn", "##ing"])
    #expect(tokenizer.tokens("ah博推zz") == ["ah", "博", "推", "zz"])  // CJK ideographs stand alone
    #expect(tokenizer.tokens("Ca\u{0}f\u{200B}\u{FFFD}É") == ["cafe"])  // NUL, ZWSP, U+FFFD dropped
    #expect(tokenizer.tokens("") == [])
  }

  @Test func specialTokensInTheTextAreKeptWhole() throws {
    let tokenizer = try Self.tokenizer()
    #expect(tokenizer.tokens("a[MASK]b") == ["a", "[MASK]", "b"])
    #expect(tokenizer.tokens("[mask]") == ["[UNK]", "[UNK]", "[UNK]"])  // case matters: [, mask, ]
    #expect(tokenizer.encode("[CLS]") == [2, 2, 3])
  }

  @Test func truncationKeepsTheFirstIdsBetweenClsAndSep() throws {
    let tokenizer = try Self.tokenizer(contextLength: 4)
    #expect(tokenizer.encode("hello how are you") == [2, 17, 19, 3])
    #expect(tokenizer.encode("hello how") == [2, 17, 19, 3])
    #expect(tokenizer.encode("hello") == [2, 17, 3])
    #expect(tokenizer.tokenIds("hello how are you") == [17, 19, 20, 21])
  }

  @Test func encodeBatchPadsWithPadAndMasksIt() throws {
    let tokenizer = try Self.tokenizer(contextLength: 5)
    let batch = try tokenizer.encodeBatch(["hello", "hello how are you"])
    #expect(tokenizer.padTokenId == 0)
    #expect(batch.ids == [2, 17, 3, 0, 0, 2, 17, 19, 20, 3])
    #expect(batch.attentionMask == [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
  }
}
