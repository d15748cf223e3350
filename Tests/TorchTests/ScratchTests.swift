import Foundation
import Testing

@testable import TestSupport

@Suite("Scratch: test folders and the roots of ended test processes")
struct ScratchTests {
  @Test("a root whose process has ended is removed; a running process's root is kept")
  func endedRootsGo() throws {
    let temporary = NSTemporaryDirectory()
    // pid_max is at most 2^22 on Linux: no process has pid 2^30. The parent (make, or the
    // shell) runs while this test does.
    let ended = "\(temporary)\(Scratch.prefix)\(1 << 30)", running = "\(temporary)\(Scratch.prefix)\(getppid())"
    let keptBefore = FileManager.default.fileExists(atPath: running)
    for path in [ended, running] {
      try FileManager.default.createDirectory(atPath: path + "/run", withIntermediateDirectories: true)
    }
    defer { if !keptBefore { Scratch.remove(running) } }
    #expect(Scratch.isRunning(getpid()) && Scratch.isRunning(getppid()) && !Scratch.isRunning(1 << 30))
    Scratch.removeEndedRoots()
    #expect(!FileManager.default.fileExists(atPath: ended))
    #expect(FileManager.default.fileExists(atPath: running + "/run"))
    #expect(FileManager.default.fileExists(atPath: Scratch.root))
  }
}
