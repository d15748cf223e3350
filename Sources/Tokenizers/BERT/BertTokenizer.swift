/// BERT's WordPiece tokenizer (uncased BERT, MiniLM), giving the ids of Hugging Face's slow
/// `BertTokenizer`.
///
/// Special tokens written in the text (`[MASK]`, exactly so) are found first and kept whole;
/// the text between them goes through ``BertBasicTokenizer`` (cleaning, CJK, lower-casing,
/// accent stripping, punctuation) and ``WordPiece``. The sequence is `[CLS]`, the ids, `[SEP]`;
/// a longer one keeps its first `contextLength - 2` ids between them, as Hugging Face
/// truncates with `truncation=True, max_length=contextLength`.
///
/// ```swift
/// let tokenizer = try BertTokenizer(vocabularyAt: "vocab.txt", contextLength: 256)
/// tokenizer.encode("Hello, world!")  // [101, 7592, 1010, 2088, 999, 102]
/// tokenizer.tokens("unaffable")      // ["una", "##ffa", "##ble"]
/// ```
public struct BertTokenizer: TextTokenizer {
  /// The names of the special tokens in the vocabulary.
  public struct SpecialTokens: Sendable {
    public var unknown = "[UNK]"
    public var classifier = "[CLS]"
    public var separator = "[SEP]"
    public var padding = "[PAD]"
    /// Optional: a vocabulary without it simply has no mask token.
    public var mask = "[MASK]"

    public init() {}
  }

  public let contextLength: Int
  /// The id of `[PAD]`.
  public let padTokenId: Int
  /// The id every sequence starts with (`[CLS]`, 101 in BERT).
  public let classifierTokenId: Int
  /// The id every sequence ends with (`[SEP]`, 102 in BERT).
  public let separatorTokenId: Int
  /// The id of words WordPiece cannot spell (`[UNK]`, 100 in BERT).
  public let unknownTokenId: Int
  /// The vocabulary in use.
  public let vocabulary: WordPieceVocabulary

  private let basic: BertBasicTokenizer
  private let wordPiece: WordPiece
  /// Special tokens as they may appear in text, with their ids.
  private let specialTokens: [(scalars: [Unicode.Scalar], id: Int)]

  /// - Parameters:
  ///   - vocabulary: the WordPiece vocabulary.
  ///   - contextLength: the length sequences are truncated (and padded) to.
  ///   - lowercase: lower-case and strip accents (uncased models); false for cased ones.
  ///   - specialTokens: the special tokens' names; all but the mask token must be in the vocabulary.
  /// - Precondition: `contextLength >= 2`, room for `[CLS]` and `[SEP]`.
  public init(
    vocabulary: WordPieceVocabulary, contextLength: Int = 512, lowercase: Bool = true,
    specialTokens names: SpecialTokens = SpecialTokens()
  ) throws {
    precondition(contextLength >= 2, "context length \(contextLength) leaves no room for [CLS] and [SEP]")
    func id(_ token: String) throws -> Int {
      guard let id = vocabulary.id(of: token) else {
        throw TokenizerError(file: vocabulary.source, "unknown special token \"\(token)\": no line holds it")
      }
      return id
    }
    self.contextLength = contextLength
    self.vocabulary = vocabulary
    padTokenId = try id(names.padding)
    classifierTokenId = try id(names.classifier)
    separatorTokenId = try id(names.separator)
    unknownTokenId = try id(names.unknown)
    let all = [names.unknown, names.separator, names.padding, names.classifier, names.mask]
    specialTokens = all.compactMap { token in vocabulary.id(of: token).map { (Array(token.unicodeScalars), $0) } }
    basic = BertBasicTokenizer(lowercase: lowercase, neverSplit: Set(specialTokens.map(\.scalars)))
    wordPiece = WordPiece(vocabulary: vocabulary, unknownId: unknownTokenId)
  }

  /// Reads `vocab.txt`; see ``WordPieceVocabulary/init(contentsOf:)``.
  ///
  /// - Parameters:
  ///   - path: the `vocab.txt` file.
  ///   - contextLength: the length sequences are truncated (and padded) to.
  ///   - lowercase: lower-case and strip accents (uncased models).
  public init(vocabularyAt path: String, contextLength: Int = 512, lowercase: Bool = true) throws {
    try self.init(vocabulary: WordPieceVocabulary(contentsOf: path), contextLength: contextLength, lowercase: lowercase)
  }

  /// `[CLS]`, the ids of `text`, `[SEP]`, truncated to `contextLength`; not padded.
  ///
  /// - Parameters:
  ///   - text: any text.
  public func encode(_ text: String) -> [Int] {
    [classifierTokenId] + tokenIds(text, limit: contextLength - 2) + [separatorTokenId]
  }

  /// The ids of `text` alone, without `[CLS]` and `[SEP]`, not truncated.
  ///
  /// - Parameters:
  ///   - text: any text.
  public func tokenIds(_ text: String) -> [Int] {
    tokenIds(text, limit: .max)
  }

  /// The tokens `text` becomes (`["un", "##aff", "##able"]`); for looking at what the tokenizer does.
  ///
  /// - Parameters:
  ///   - text: any text.
  public func tokens(_ text: String) -> [String] {
    tokenIds(text).map { vocabulary.tokens[$0] }
  }

  private func tokenIds(_ text: String, limit: Int) -> [Int] {
    let scalars = Array(text.unicodeScalars)
    var ids: [Int] = []
    var segmentStart = 0
    var index = 0
    func encodeSegment(upTo end: Int) {
      for word in basic.words(scalars[segmentStart..<end]) where ids.count < limit {
        wordPiece.encode(word, into: &ids)
      }
    }
    while index < scalars.count, ids.count < limit {
      if let special = specialToken(in: scalars, at: index) {
        encodeSegment(upTo: index)
        ids.append(special.id)
        index += special.length
        segmentStart = index
      } else {
        index += 1
      }
    }
    if ids.count < limit { encodeSegment(upTo: scalars.count) }
    return Array(ids.prefix(limit))
  }

  /// The longest special token spelled at `index`, as Hugging Face's added-token trie finds it.
  private func specialToken(in text: [Unicode.Scalar], at index: Int) -> (id: Int, length: Int)? {
    var best: (id: Int, length: Int)? = nil
    for token in specialTokens where token.scalars.count > best?.length ?? 0 {
      let end = index + token.scalars.count
      if end <= text.count, text[index..<end].elementsEqual(token.scalars) { best = (token.id, token.scalars.count) }
    }
    return best
  }
}
