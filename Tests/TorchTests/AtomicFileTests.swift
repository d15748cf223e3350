import Foundation
import SafeFiles
import TestSupport
import Testing

@Suite("AtomicFile: the one way files are written")
struct AtomicFileTests {
  func folder() throws -> String {
    try Scratch.folder("atomic")
  }

  @Test("a write replaces the file whole; a failed one leaves the old file and no temporary file")
  func replaceOrKeep() throws {
    let dir = try folder()
    let path = "\(dir)/a.json"
    try AtomicFile.write("old", to: path)
    try AtomicFile.write("new", to: path)
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "new")
    struct Stop: Error {}
    #expect(throws: Stop.self) {
      try AtomicFile.write(to: path) { append in
        try Data("half".utf8).withUnsafeBytes { try append($0) }
        throw Stop()
      }
    }
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "new")
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["a.json"])
    let error = #expect(throws: AtomicFileError.self) { try AtomicFile.write("x", to: "\(dir)/missing/b.json") }
    #expect(error?.description.contains("\(dir)/missing/b.json") == true)
  }

  @Test("FNV-1a of known inputs")
  func contentHash() throws {
    var h = ContentHash()
    #expect(h.hex == "cbf29ce484222325")  // the offset basis: the hash of nothing
    h.update("a")
    #expect(h.hex == "af63dc4c8601ec8c")
    let dir = try folder()
    try AtomicFile.write("a", to: "\(dir)/a")
    #expect(try ContentHash.file("\(dir)/a") == "af63dc4c8601ec8c")
  }
}
