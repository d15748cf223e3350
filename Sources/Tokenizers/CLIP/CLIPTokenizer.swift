/// CLIP's byte-level BPE tokenizer, giving the ids open_clip's `tokenize` gives.
///
/// A caption is cleaned (``CLIPTextCleaner``: HTML unescaped twice, whitespace collapsed,
/// lower-cased; open_clip's ftfy repair is not done), split by CLIP's pre-tokenizer pattern,
/// and each piece's UTF-8 bytes are BPE-encoded with `</w>` marking its end. The sequence is
/// start-of-text, the ids, end-of-text; a longer one keeps its first `contextLength` ids with
/// the last set to end-of-text, as open_clip truncates.
///
/// ```swift
/// let tokenizer = try CLIPTokenizer(openCLIPVocabularyAt: site + "/open_clip/bpe_simple_vocab_16e6.txt.gz")
/// try tokenizer.encode("a photo of a cat")  // [49406, 320, 1125, 539, 320, 2368, 49407]
/// let batch = try tokenizer.encodeBatch(["a dog", "a cat"])  // [2, 77], padded with 0
/// ```
public struct CLIPTokenizer: TextTokenizer {
  /// What fills a sequence up to `contextLength` in ``encodeBatch(_:)``.
  public enum Padding: Sendable, Equatable {
    /// Id 0, as open_clip pads (id 0 is also the token `!`; the attention mask tells them apart).
    case zero
    /// The end-of-text id, as Hugging Face CLIP configurations pad.
    case endOfText
    /// Any id.
    case id(Int)
  }

  public let contextLength: Int
  public let padTokenId: Int
  /// The id every sequence starts with (49406 in CLIP).
  public let startTokenId: Int
  /// The id every sequence ends with (49407 in CLIP).
  public let endTokenId: Int
  /// The vocabulary in use.
  public let vocabulary: CLIPVocabulary

  private let preTokenizer: CLIPPreTokenizer
  private let encoder: BytePairEncoder
  /// Special tokens by their UTF-8 bytes: a piece spelled exactly so is that token, not BPE'd.
  private let specialIds: [[UInt8]: Int]
  /// Id → token, for ``tokens(_:)``.
  private let tokenNames: [Int: String]

  /// - Parameters:
  ///   - vocabulary: the tokens and merges.
  ///   - contextLength: the length sequences are truncated (and padded) to.
  ///   - padding: what pads a sequence.
  /// - Precondition: `contextLength >= 2`, room for start and end.
  public init(vocabulary: CLIPVocabulary, contextLength: Int = 77, padding: Padding = .zero) {
    precondition(contextLength >= 2, "context length \(contextLength) leaves no room for start and end of text")
    self.vocabulary = vocabulary
    self.contextLength = contextLength
    startTokenId = vocabulary.tokenIds[vocabulary.startToken]!  // CLIPVocabulary checked both exist
    endTokenId = vocabulary.tokenIds[vocabulary.endToken]!
    switch padding {
    case .zero: padTokenId = 0
    case .endOfText: padTokenId = endTokenId
    case .id(let id): padTokenId = id
    }
    let specialTokens = [vocabulary.startToken, vocabulary.endToken]
    preTokenizer = CLIPPreTokenizer(specialTokens: specialTokens)
    encoder = BytePairEncoder(vocabulary)
    specialIds = Dictionary(
      specialTokens.map { (Array($0.utf8), vocabulary.tokenIds[$0]!) }, uniquingKeysWith: { $1 })
    tokenNames = Dictionary(vocabulary.tokenIds.map { ($1, $0) }, uniquingKeysWith: { $1 })
  }

  /// Reads open_clip's `bpe_simple_vocab_16e6.txt.gz`; see
  /// ``CLIPVocabulary/openCLIP(contentsOf:mergeCount:startToken:endToken:)``.
  ///
  /// - Parameters:
  ///   - path: the merges file.
  ///   - contextLength: the length sequences are truncated (and padded) to.
  ///   - padding: what pads a sequence; open_clip pads with 0.
  public init(openCLIPVocabularyAt path: String, contextLength: Int = 77, padding: Padding = .zero) throws {
    try self.init(vocabulary: .openCLIP(contentsOf: path), contextLength: contextLength, padding: padding)
  }

  /// Reads a Hugging Face CLIP tokenizer's files; see ``CLIPVocabulary/huggingFace(vocabJSON:merges:startToken:endToken:)``.
  ///
  /// - Parameters:
  ///   - vocabJSON: the `vocab.json` file.
  ///   - merges: the `merges.txt` file.
  ///   - contextLength: the length sequences are truncated (and padded) to.
  ///   - padding: what pads a sequence; Hugging Face configurations pad with end-of-text.
  public init(vocabJSON: String, merges: String, contextLength: Int = 77, padding: Padding = .endOfText) throws {
    try self.init(
      vocabulary: .huggingFace(vocabJSON: vocabJSON, merges: merges), contextLength: contextLength, padding: padding)
  }

  /// Start-of-text, the ids of `text`, end-of-text, truncated to `contextLength` as open_clip
  /// truncates (the last id kept becomes end-of-text); not padded.
  ///
  /// - Parameters:
  ///   - text: a caption.
  public func encode(_ text: String) throws -> [Int] {
    // open_clip encodes everything, then keeps the first contextLength - 1 ids and appends
    // end-of-text; stopping once contextLength - 2 text ids are known gives the same ids.
    [startTokenId] + (try tokenIds(text, limit: contextLength - 2)) + [endTokenId]
  }

  /// The ids of `text` alone, without start or end and not truncated: open_clip's
  /// `SimpleTokenizer.encode`.
  ///
  /// - Parameters:
  ///   - text: a caption.
  public func tokenIds(_ text: String) throws -> [Int] {
    try tokenIds(text, limit: .max)
  }

  /// The tokens `text` becomes, as the vocabulary spells them (`["a</w>", "photo</w>"]`); for
  /// looking at what the tokenizer does.
  ///
  /// - Parameters:
  ///   - text: a caption.
  public func tokens(_ text: String) throws -> [String] {
    try tokenIds(text).map { tokenNames[$0]! }
  }

  private func tokenIds(_ text: String, limit: Int) throws -> [Int] {
    let cleaned = CLIPTextCleaner.clean(text)
    var ids: [Int] = []
    var bytes: [UInt8] = []
    for piece in preTokenizer.split(cleaned) {
      if ids.count >= limit { break }
      bytes.removeAll(keepingCapacity: true)
      for scalar in cleaned[piece] { UTF8.encode(scalar) { bytes.append($0) } }
      if let special = specialIds[bytes] {
        ids.append(special)
      } else {
        try encoder.encode(bytes, into: &ids)
      }
    }
    return Array(ids.prefix(limit))
  }
}
