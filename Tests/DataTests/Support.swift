import Data
import Foundation
import Tokenizers

/// A word-level tokenizer for tests: lowercase words hashed into a small vocabulary between
/// start (1) and end (2) tokens, padded with 0. Enough to check what the loader does with
/// any `TextTokenizer`, without the real vocabularies.
struct TinyTokenizer: TextTokenizer {
  var contextLength = 12
  var padTokenId: Int { 0 }

  func encode(_ text: String) throws -> [Int] {
    let words = text.lowercased().split { !$0.isLetter }.map { 3 + Int(StableHash.string(String($0)) % 997) }
    return Array(([1] + words).prefix(contextLength - 1)) + [2]
  }
}

/// A fresh folder under the system temp folder, removed when the value is released.
final class TemporaryFolder {
  let path: String

  init() throws {
    path = NSTemporaryDirectory() + "cmapkd-data-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  /// Writes `bytes` at `relative` (creating folders) and returns the full path.
  @discardableResult
  func write(_ relative: String, _ bytes: [UInt8]) throws -> String {
    let full = "\(path)/\(relative)"
    try FileManager.default.createDirectory(
      atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(bytes).write(to: URL(fileURLWithPath: full))
    return full
  }

  @discardableResult
  func write(_ relative: String, _ text: String) throws -> String { try write(relative, Array(text.utf8)) }
}

/// A small deterministic picture (gradients and a block), `seed` varying it.
func testImage(width: Int, height: Int, seed: Int = 0) -> RGBImage {
  var pixels = [UInt8](repeating: 0, count: width * height * 3)
  for y in 0..<height {
    for x in 0..<width {
      let o = (y * width + x) * 3
      let block = (x / 4 + y / 4 + seed) % 3 == 0
      pixels[o] = UInt8((x * 255 / max(1, width - 1) + seed * 40) % 256)
      pixels[o + 1] = UInt8((y * 255 / max(1, height - 1) + seed * 70) % 256)
      pixels[o + 2] = block ? 230 : 20
    }
  }
  return RGBImage(width: width, height: height, pixels: pixels)
}

/// Runs `body`, which must throw a `DataError`, and returns it (nil when it did not throw
/// one, which the caller's `#expect` then reports).
func dataError(_ body: () throws -> Void) -> DataError? {
  do {
    try body()
    return nil
  } catch let error as DataError {
    return error
  } catch {
    return nil
  }
}

/// FNV-1a of bytes, for pinning generated output in tests.
func digest(_ bytes: [UInt8]) -> UInt64 {
  var h: UInt64 = 0xCBF2_9CE4_8422_2325
  for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
  return h
}
