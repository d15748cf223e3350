/// A WordPiece vocabulary: BERT's `vocab.txt`, one token per line, a token's id its line's
/// index (from 0).
///
/// Tokens are compared by their exact code points, as Python compares them; Swift's `String`
/// would treat `é` and `e` + combining acute as the same key.
///
/// ```swift
/// let vocabulary = try WordPieceVocabulary(contentsOf: "vocab.txt")
/// vocabulary.id(of: "[CLS]")  // 101
/// ```
public struct WordPieceVocabulary: Sendable {
  /// Every token, by id.
  public let tokens: [String]
  /// Where it was read from, for error messages.
  public let source: String
  /// The most code points any token has: no longer piece of a word can be a token.
  let longestToken: Int
  private let ids: [[UInt8]: Int]

  /// Reads `vocab.txt` as Hugging Face's `load_vocab` does (a repeated token keeps its last
  /// line); an empty or non-UTF-8 file is an error naming the file (and line).
  ///
  /// - Parameters:
  ///   - path: the `vocab.txt` file.
  public init(contentsOf path: String) throws {
    self.init(tokens: try VocabularyFile.lines(at: path), source: path)
  }

  /// A vocabulary of `tokens`, each one's id its index.
  ///
  /// - Parameters:
  ///   - tokens: the tokens in id order.
  ///   - source: the name error messages use.
  public init(tokens: [String], source: String = "vocabulary") {
    self.tokens = tokens
    self.source = source
    ids = Dictionary(zip(tokens.map { Array($0.utf8) }, tokens.indices), uniquingKeysWith: { $1 })
    longestToken = tokens.map(\.unicodeScalars.count).max() ?? 0
  }

  /// The id of `token`, if it is in the vocabulary.
  ///
  /// - Parameters:
  ///   - token: the token, e.g. `"##ing"`.
  public func id(of token: String) -> Int? { ids[Array(token.utf8)] }

  /// The id of the token spelled by these UTF-8 bytes.
  func id(utf8 bytes: [UInt8]) -> Int? { ids[bytes] }
}
