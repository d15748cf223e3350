/// GPT-2's reversible map from bytes to printable characters (`bytes_to_unicode` in CLIP):
/// byte-level BPE works on UTF-8 bytes, but its vocabulary files are text, so every byte is
/// written as one visible character. Printable Latin-1 bytes stand for themselves; the other
/// 68 (controls, space, soft hyphen, …) become U+0100, U+0101, … in byte order.
///
/// ```swift
/// ByteEncoder.character(for: UInt8(ascii: "a"))  // "a"
/// ByteEncoder.character(for: 0x20)               // "Ġ" (U+0120)
/// ```
enum ByteEncoder {
  /// The bytes that stand for themselves.
  private static let printable: [UInt8] =
    Array(UInt8(ascii: "!")...UInt8(ascii: "~")) + Array(0xA1...0xAC) + Array(0xAE...0xFF)

  /// The bytes in the order CLIP's vocabulary lists them: the printable ones, then the rest.
  static let vocabularyOrder: [UInt8] = {
    let printableSet = Set(printable)
    return printable + (0...255).filter { !printableSet.contains($0) }
  }()

  /// `characters[byte]`: the character that stands for `byte`.
  private static let characters: [Unicode.Scalar] = {
    var table = [Unicode.Scalar](repeating: "\0", count: 256)
    for (index, byte) in vocabularyOrder.enumerated() {
      let isPrintable = index < printable.count
      table[Int(byte)] = isPrintable ? Unicode.Scalar(byte) : Unicode.Scalar(UInt32(256 + index - printable.count))!
    }
    return table
  }()

  /// The character that stands for `byte`.
  ///
  /// - Parameters:
  ///   - byte: a UTF-8 byte.
  static func character(for byte: UInt8) -> Unicode.Scalar { characters[Int(byte)] }
}
