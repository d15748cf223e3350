/// A vocabulary file that cannot be used, or text its vocabulary cannot encode.
///
/// The description says which file and, when one line is at fault, which line:
///
/// ```swift
/// do { _ = try CLIPVocabulary.huggingFace(vocabJSON: "vocab.json", merges: "merges.txt") }
/// catch { print(error) }  // merges.txt:12: expected two tokens separated by a space, found "a b c"
/// ```
public struct TokenizerError: Error, Equatable, CustomStringConvertible {
  /// The file at fault, as the caller named it.
  public var file: String
  /// The 1-based line at fault, when there is one.
  public var line: Int?
  /// What is wrong, and where it helps, what to do.
  public var message: String

  /// - Parameters:
  ///   - file: the file at fault.
  ///   - line: the 1-based line at fault, if any.
  ///   - message: what is wrong.
  public init(file: String, line: Int? = nil, _ message: String) {
    self.file = file
    self.line = line
    self.message = message
  }

  public var description: String {
    if let line { return "\(file):\(line): \(message)" }
    return "\(file): \(message)"
  }
}
