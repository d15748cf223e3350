import Foundation

/// Byte-level BPE over token ids: one pre-token's UTF-8 bytes in, its token ids out.
///
/// Each byte starts as the id of its ``ByteEncoder`` character (the last byte's with `</w>`);
/// then, while any adjacent pair has a merge, every occurrence of the highest-priority pair is
/// joined, left to right, as CLIP's `bpe()` does on strings. Working on ids makes a merge one
/// dictionary lookup. Results are cached per pre-token, as in CLIP: captions repeat words.
///
/// ```swift
/// let encoder = try BytePairEncoder(vocabulary)
/// var ids: [Int] = []
/// try encoder.encode(Array("lower".utf8), into: &ids)  // e.g. [ids of "lo", "wer</w>"]
/// ```
final class BytePairEncoder: @unchecked Sendable {  // the cache is the only mutable state; `lock` guards it
  /// The ids of each byte's character, without and with `</w>`; nil where the vocabulary lacks it.
  private let byteIds: [Int?]
  private let finalByteIds: [Int?]
  /// (left id, right id) packed into one key → the merge's priority and the joined token's id.
  private let merges: [UInt64: (rank: Int, id: Int)]
  private let source: String

  /// How many pre-tokens the cache holds before it starts over; bounds memory on endless
  /// streams of new words while keeping every common word cached.
  static let cacheCapacity = 1 << 18
  private var cache: [[UInt8]: [Int]] = [:]
  private let lock = NSLock()

  /// - Parameters:
  ///   - vocabulary: the tokens and merges to use; merges whose tokens are missing never apply.
  init(_ vocabulary: CLIPVocabulary) {
    let characters = (0...255).map { String(ByteEncoder.character(for: UInt8($0))) }
    byteIds = characters.map { vocabulary.tokenIds[$0] }
    finalByteIds = characters.map { vocabulary.tokenIds[$0 + "</w>"] }
    var merges: [UInt64: (rank: Int, id: Int)] = [:]
    for (rank, merge) in vocabulary.merges.enumerated() {
      guard let first = vocabulary.tokenIds[merge.first], let second = vocabulary.tokenIds[merge.second],
        let joined = vocabulary.tokenIds[merge.first + merge.second]
      else { continue }
      // A repeated merge keeps its last rank, as Python's dict(zip(merges, range(...))) does.
      merges[Self.key(first, second)] = (rank, joined)
    }
    self.merges = merges
    source = vocabulary.source
  }

  /// Appends the ids of one pre-token.
  ///
  /// - Parameters:
  ///   - bytes: the pre-token's UTF-8 bytes (not empty).
  ///   - ids: where the ids go.
  func encode(_ bytes: [UInt8], into ids: inout [Int]) throws {
    lock.lock()
    let cached = cache[bytes]
    lock.unlock()
    if let cached {
      ids += cached
      return
    }
    let word = try merged(initialSymbols(bytes))
    lock.lock()
    if cache.count >= Self.cacheCapacity { cache.removeAll(keepingCapacity: true) }
    cache[bytes] = word
    lock.unlock()
    ids += word
  }

  private func initialSymbols(_ bytes: [UInt8]) throws -> [Int] {
    try bytes.indices.map { index in
      let isLast = index == bytes.count - 1
      guard let id = (isLast ? finalByteIds : byteIds)[Int(bytes[index])] else {
        let token = String(ByteEncoder.character(for: bytes[index])) + (isLast ? "</w>" : "")
        throw TokenizerError(file: source, "no token \"\(token)\" for byte 0x\(String(bytes[index], radix: 16))")
      }
      return id
    }
  }

  private func merged(_ initial: [Int]) -> [Int] {
    var word = initial
    while word.count > 1 {
      var best: (rank: Int, id: Int, left: Int, right: Int)? = nil
      for index in 0..<(word.count - 1) {
        if let merge = merges[Self.key(word[index], word[index + 1])], merge.rank < best?.rank ?? .max {
          best = (merge.rank, merge.id, word[index], word[index + 1])
        }
      }
      guard let best else { break }
      var next: [Int] = []
      next.reserveCapacity(word.count - 1)
      var index = 0
      while index < word.count {
        if index + 1 < word.count, word[index] == best.left, word[index + 1] == best.right {
          next.append(best.id)
          index += 2
        } else {
          next.append(word[index])
          index += 1
        }
      }
      word = next
    }
    return word
  }

  private static func key(_ first: Int, _ second: Int) -> UInt64 {
    UInt64(UInt32(truncatingIfNeeded: first)) << 32 | UInt64(UInt32(truncatingIfNeeded: second))
  }
}
