import Foundation
import Testing
import Tokenizers

/// Bad vocabulary files fail with errors that name the file and, where one is at fault, the line.
@Suite final class VocabularyErrorTests {
  let directory: String

  init() throws { directory = try temporaryDirectory() }

  deinit { try? FileManager.default.removeItem(atPath: directory) }

  /// The error `body` throws, checked to name `file` (and `line`, when given) and to say `words`.
  func expectError(
    naming file: String, line: Int? = nil, saying words: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
  ) {
    let error = #expect(throws: TokenizerError.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return }
    #expect(error.file == file, sourceLocation: sourceLocation)
    #expect(error.line == line, sourceLocation: sourceLocation)
    #expect(error.description.hasPrefix(line.map { "\(file):\($0): " } ?? "\(file): "), sourceLocation: sourceLocation)
    #expect(error.message.contains(words), "\(error)", sourceLocation: sourceLocation)
  }

  // MARK: open_clip's merges file

  @Test func missingFile() {
    let path = directory + "/absent.txt.gz"
    expectError(naming: path, saying: "no such file") { _ = try CLIPTokenizer(openCLIPVocabularyAt: path) }
  }

  @Test func garbledGzip() throws {
    // A valid gzip header, then a deflate block of the reserved type 3.
    let path = try write([0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03, 0xFF, 0xFF, 0xFF], to: "bad.gz", in: directory)
    expectError(naming: path, saying: "not valid gzip data") { _ = try CLIPVocabulary.openCLIP(contentsOf: path) }
  }

  @Test func truncatedGzip() throws {
    let real = try [UInt8](Data(contentsOf: URL(fileURLWithPath: referenceFile(openCLIPVocabularyPath))))
    let path = try write(Array(real.prefix(real.count / 2)), to: "half.txt.gz", in: directory)
    expectError(naming: path, saying: "ends early") { _ = try CLIPVocabulary.openCLIP(contentsOf: path) }
  }

  @Test func mergeLineWithThreeTokens() throws {
    let path = try write("#version: 0.2\ni n\nt h e\na n\n", to: "merges.txt", in: directory)
    expectError(naming: path, line: 3, saying: "expected two tokens") {
      _ = try CLIPVocabulary.openCLIP(contentsOf: path, mergeCount: 3)
    }
  }

  @Test func tooFewMerges() throws {
    let path = try write("#version: 0.2\ni n\n", to: "short.txt", in: directory)
    expectError(naming: path, saying: "at least 48894 merges") { _ = try CLIPVocabulary.openCLIP(contentsOf: path) }
  }

  @Test func invalidUTF8() throws {
    let path = try write(Array("#version: 0.2\ni n\n".utf8) + [0xC3, 0x28, 0x20, 0x61, 0x0A], to: "bad.txt", in: directory)
    expectError(naming: path, line: 3, saying: "not valid UTF-8") {
      _ = try CLIPVocabulary.openCLIP(contentsOf: path, mergeCount: 2)
    }
  }

  // MARK: Hugging Face's vocab.json + merges.txt

  func huggingFaceFiles(vocab: String, merges: String) throws -> (String, String) {
    (try write(vocab, to: "vocab.json", in: directory), try write(merges, to: "merges.txt", in: directory))
  }

  static let vocab = #"{"a": 0, "b": 1, "ab": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}"#

  @Test func vocabJSONThatIsNotJSON() throws {
    let (vocab, merges) = try huggingFaceFiles(vocab: "{\"a\": 0,", merges: "#version: 0.2\n")
    expectError(naming: vocab, saying: "not valid JSON") {
      _ = try CLIPVocabulary.huggingFace(vocabJSON: vocab, merges: merges)
    }
  }

  @Test func vocabJSONThatIsAnArray() throws {
    let (vocab, merges) = try huggingFaceFiles(vocab: "[1, 2]", merges: "#version: 0.2\n")
    expectError(naming: vocab, saying: "not a JSON object") {
      _ = try CLIPVocabulary.huggingFace(vocabJSON: vocab, merges: merges)
    }
  }

  @Test func vocabJSONWithANonIntegerId() throws {
    let (vocab, merges) = try huggingFaceFiles(vocab: #"{"a": 0, "b": "one"}"#, merges: "#version: 0.2\n")
    expectError(naming: vocab, saying: "token \"b\"") {
      _ = try CLIPVocabulary.huggingFace(vocabJSON: vocab, merges: merges)
    }
  }

  @Test func mergeLineWithOneToken() throws {
    let (vocab, merges) = try huggingFaceFiles(vocab: Self.vocab, merges: "#version: 0.2\na b\nab\n")
    expectError(naming: merges, line: 3, saying: "found 1") {
      _ = try CLIPVocabulary.huggingFace(vocabJSON: vocab, merges: merges)
    }
  }

  @Test func mergeMakingATokenTheVocabularyLacks() throws {
    let (vocab, merges) = try huggingFaceFiles(vocab: Self.vocab, merges: "#version: 0.2\na b\nb a\n")
    expectError(naming: merges, line: 3, saying: "\"ba\"") {
      _ = try CLIPVocabulary.huggingFace(vocabJSON: vocab, merges: merges)
    }
  }

  @Test func unknownSpecialToken() throws {
    let (vocab, merges) = try huggingFaceFiles(vocab: Self.vocab, merges: "#version: 0.2\na b\n")
    expectError(naming: vocab, saying: "unknown special token \"<start_of_text>\"") {
      _ = try CLIPVocabulary.huggingFace(vocabJSON: vocab, merges: merges, startToken: "<start_of_text>")
    }
  }

  // MARK: BERT's vocab.txt

  @Test func vocabTxtWithInvalidUTF8() throws {
    let path = try write(Array("[PAD]\n[UNK]\r\n".utf8) + [0xFF, 0x0A], to: "vocab.txt", in: directory)
    expectError(naming: path, line: 3, saying: "not valid UTF-8") { _ = try WordPieceVocabulary(contentsOf: path) }
  }

  @Test func vocabTxtWithoutCLS() throws {
    let path = try write("[PAD]\n[UNK]\n[SEP]\nhello\n", to: "vocab.txt", in: directory)
    expectError(naming: path, saying: "unknown special token \"[CLS]\"") { _ = try BertTokenizer(vocabularyAt: path) }
  }

  @Test func emptyVocabTxt() throws {
    let path = try write("", to: "vocab.txt", in: directory)
    expectError(naming: path, saying: "empty") { _ = try BertTokenizer(vocabularyAt: path) }
  }
}
