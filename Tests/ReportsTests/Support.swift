import Foundation
import TestSupport

/// A fresh empty folder under the system temporary directory.
func temporaryDirectory(_ name: String = #function) throws -> String {
  try Scratch.folder("reports-" + name)
}

func writeText(_ text: String, to path: String) throws {
  try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

func appendText(_ text: String, to path: String) throws {
  let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
  defer { try? handle.close() }
  try handle.seekToEnd()
  try handle.write(contentsOf: Data(text.utf8))
}

func readText(_ path: String) throws -> String {
  try String(contentsOfFile: path, encoding: .utf8)
}
