/// What the data pipeline needs from a tokenizer, whichever kind it is.
///
/// ```swift
/// let tokenizer: any TextTokenizer = try CLIPTokenizer(...)
/// let batch = try tokenizer.encodeBatch(["a red circle", "two blue squares"])  // [2, contextLength]
/// ```
public protocol TextTokenizer: Sendable {
  /// Sequences are truncated (and padded) to this many ids.
  var contextLength: Int { get }
  /// The id used for padding.
  var padTokenId: Int { get }
  /// Ids of one text including its special tokens (start/end or [CLS]/[SEP]), truncated to
  /// `contextLength` the way the reference implementation truncates; not padded.
  func encode(_ text: String) throws -> [Int]
}

/// A padded batch of token ids, row-major [count, contextLength].
public struct TokenBatch: Equatable, Sendable {
  public var ids: [Int64]
  /// 1 for real tokens, 0 for padding.
  public var attentionMask: [Int64]
  public var count: Int
  public var contextLength: Int
}

extension TextTokenizer {
  /// Encodes and pads every text to `contextLength`.
  public func encodeBatch(_ texts: [String]) throws -> TokenBatch {
    var ids: [Int64] = []
    var mask: [Int64] = []
    ids.reserveCapacity(texts.count * contextLength)
    mask.reserveCapacity(texts.count * contextLength)
    for text in texts {
      let row = try encode(text).prefix(contextLength)
      ids += row.map(Int64.init)
      mask += Array(repeating: 1, count: row.count)
      ids += Array(repeating: Int64(padTokenId), count: contextLength - row.count)
      mask += Array(repeating: 0, count: contextLength - row.count)
    }
    return TokenBatch(ids: ids, attentionMask: mask, count: texts.count, contextLength: contextLength)
  }
}
