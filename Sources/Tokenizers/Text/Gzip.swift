import CZlib

/// gzip decompression through zlib, as Python's `gzip.open(path).read()` does it, including
/// files made of several gzip members one after another.
enum Gzip {
  /// The decompressed bytes of `data`.
  ///
  /// ```swift
  /// let text = try Gzip.decompress(compressed, file: "bpe_simple_vocab_16e6.txt.gz")
  /// ```
  /// - Parameters:
  ///   - data: gzip (or zlib) compressed bytes.
  ///   - file: the name errors use.
  static func decompress(_ data: [UInt8], file: String) throws -> [UInt8] {
    var stream = z_stream()
    // windowBits 15 + 32: the largest window, and detect a gzip or zlib header automatically.
    guard inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
      throw TokenizerError(file: file, "zlib could not start inflating (out of memory?)")
    }
    defer { inflateEnd(&stream) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    var input = data
    try input.withUnsafeMutableBufferPointer { input in
      stream.next_in = input.baseAddress
      stream.avail_in = UInt32(input.count)
      while true {
        var status: Int32 = Z_OK
        let produced = chunk.withUnsafeMutableBufferPointer { buffer in
          stream.next_out = buffer.baseAddress
          stream.avail_out = UInt32(buffer.count)
          status = inflate(&stream, Z_NO_FLUSH)
          return buffer.count - Int(stream.avail_out)
        }
        output += chunk[..<produced]
        switch status {
        case Z_STREAM_END where stream.avail_in == 0:
          return
        case Z_STREAM_END:
          _ = inflateReset(&stream)  // another gzip member follows
        case Z_OK:
          continue
        case Z_BUF_ERROR:
          throw TokenizerError(file: file, "gzip data ends early (truncated download?)")
        default:
          let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
          throw TokenizerError(file: file, "not valid gzip data (zlib: \(reason))")
        }
      }
    }
    return output
  }
}
