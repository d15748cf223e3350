/// WordPiece: one word into vocabulary tokens, greedily taking the longest token that matches
/// at each point (`##` marks a piece that continues a word). A word with a part no token
/// matches, or longer than ``maximumWordLength`` code points, becomes the unknown token.
///
/// ```swift
/// // vocabulary: [UNK], un, ##aff, ##able
/// wordPiece.encode(Array("unaffable".unicodeScalars), into: &ids)  // ids of un, ##aff, ##able
/// ```
struct WordPiece: Sendable {
  /// Hugging Face's `max_input_chars_per_word`.
  static let maximumWordLength = 100
  private static let continuationPrefix = Array("##".utf8)

  let vocabulary: WordPieceVocabulary
  let unknownId: Int

  /// Appends the ids of `word`.
  ///
  /// - Parameters:
  ///   - word: one word from ``BertBasicTokenizer``.
  ///   - ids: where the ids go.
  func encode(_ word: [Unicode.Scalar], into ids: inout [Int]) {
    guard word.count <= Self.maximumWordLength else {
      ids.append(unknownId)
      return
    }
    // offsets[i] is where scalar i starts in `bytes`, so a piece is one slice of bytes.
    var bytes: [UInt8] = []
    var offsets: [Int] = []
    for scalar in word {
      offsets.append(bytes.count)
      UTF8.encode(scalar) { bytes.append($0) }
    }
    offsets.append(bytes.count)
    var pieces: [Int] = []
    var start = 0
    while start < word.count {
      let prefix = start > 0 ? Self.continuationPrefix : []
      // No piece longer than the longest token can match, so start looking there.
      var end = min(word.count, start + vocabulary.longestToken)
      var match: Int? = nil
      while end > start, match == nil {
        match = vocabulary.id(utf8: prefix + bytes[offsets[start]..<offsets[end]])
        if match == nil { end -= 1 }
      }
      guard let match else {
        ids.append(unknownId)
        return
      }
      pieces.append(match)
      start = end
    }
    ids += pieces
  }
}
