import Foundation

/// Reads vocabulary files the way the Python references open them, with errors that name the
/// file and line.
enum VocabularyFile {
  /// The file's bytes; gzip files (by their magic number, not their name) come back decompressed.
  ///
  /// ```swift
  /// let bytes = try VocabularyFile.bytes(at: "bpe_simple_vocab_16e6.txt.gz")
  /// ```
  /// - Parameters:
  ///   - path: the file to read.
  static func bytes(at path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
      let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file"
      throw TokenizerError(file: path, reason)
    }
    let bytes = [UInt8](data)
    if bytes.isEmpty { throw TokenizerError(file: path, "the file is empty") }
    return bytes.starts(with: [0x1F, 0x8B]) ? try Gzip.decompress(bytes, file: path) : bytes
  }

  /// The file's lines as Python's text mode gives them: UTF-8, split at `\n`, `\r\n` or `\r`,
  /// without the line ends. A final line end does not start an empty last line.
  ///
  /// ```swift
  /// let tokens = try VocabularyFile.lines(at: "vocab.txt")  // ["[PAD]", "[unused0]", …]
  /// ```
  /// - Parameters:
  ///   - path: the file to read.
  static func lines(at path: String) throws -> [String] {
    try lines(of: bytes(at: path), file: path)
  }

  /// Splits `bytes` into UTF-8 lines; an invalid byte sequence is an error naming its line.
  ///
  /// - Parameters:
  ///   - bytes: the file's contents.
  ///   - file: the name errors use.
  static func lines(of bytes: [UInt8], file: String) throws -> [String] {
    var lines: [String] = []
    var start = 0
    var index = 0
    func finishLine(endingAt end: Int) throws {
      let raw = bytes[start..<end]
      let line = String(decoding: raw, as: UTF8.self)
      // Decoding repairs invalid sequences with U+FFFD; any repair changes the bytes.
      guard line.utf8.elementsEqual(raw) else {
        throw TokenizerError(file: file, line: lines.count + 1, "not valid UTF-8")
      }
      lines.append(line)
    }
    while index < bytes.count {
      let byte = bytes[index]
      if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
        try finishLine(endingAt: index)
        let isCRLF = byte == UInt8(ascii: "\r") && index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\n")
        index += isCRLF ? 2 : 1
        start = index
      } else {
        index += 1
      }
    }
    if start < bytes.count { try finishLine(endingAt: bytes.count) }
    return lines
  }
}
