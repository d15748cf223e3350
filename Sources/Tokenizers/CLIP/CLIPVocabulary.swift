/// A CLIP byte-level BPE vocabulary: every token's id, the merges in rank order, and the
/// start- and end-of-text tokens. Load one from open_clip's gzipped merges file
/// (``openCLIP(contentsOf:mergeCount:startToken:endToken:)``) or from Hugging Face's
/// `vocab.json` + `merges.txt` (``huggingFace(vocabJSON:merges:startToken:endToken:)``).
///
/// ```swift
/// let vocabulary = try CLIPVocabulary.openCLIP(contentsOf: "bpe_simple_vocab_16e6.txt.gz")
/// vocabulary.tokenIds["cat</w>"]  // 2368
/// ```
public struct CLIPVocabulary: Sendable {
  /// Two adjacent symbols that BPE joins into one.
  public struct Merge: Hashable, Sendable {
    public var first: String
    public var second: String

    /// - Parameters:
    ///   - first: the left symbol.
    ///   - second: the right symbol.
    public init(_ first: String, _ second: String) {
      self.first = first
      self.second = second
    }
  }

  /// Token → id. Tokens spell bytes with ``ByteEncoder`` characters; `</w>` ends a word.
  public let tokenIds: [String: Int]
  /// The merges, highest priority first.
  public let merges: [Merge]
  /// The token every sequence starts with (id 49406 in CLIP).
  public let startToken: String
  /// The token every sequence ends with (id 49407 in CLIP).
  public let endToken: String
  /// The file its tokens were read from (`vocab.json`, or open_clip's merges file), for error
  /// messages.
  public let source: String

  /// Checks that both special tokens are in `tokenIds`.
  init(tokenIds: [String: Int], merges: [Merge], startToken: String, endToken: String, source: String) throws {
    for token in [startToken, endToken] where tokenIds[token] == nil {
      throw TokenizerError(
        file: source, "unknown special token \"\(token)\": it is not in the vocabulary; pass the name the file uses")
    }
    self.tokenIds = tokenIds
    self.merges = merges
    self.startToken = startToken
    self.endToken = endToken
    self.source = source
  }

  /// The two symbols of a merges-file line (`"e r</w>"`), split on whitespace as Python's
  /// `str.split()` does; anything else is an error naming the line.
  static func merge(fromLine line: String, number: Int, file: String) throws -> Merge {
    let symbols = PythonText.split(Array(line.unicodeScalars))
    guard symbols.count == 2 else {
      throw TokenizerError(
        file: file, line: number,
        "expected two tokens separated by a space, found \(symbols.count) in \"\(line.prefix(80))\"")
    }
    return Merge(String(String.UnicodeScalarView(symbols[0])), String(String.UnicodeScalarView(symbols[1])))
  }
}
