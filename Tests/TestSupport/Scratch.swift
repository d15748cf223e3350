import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Temporary folders for tests, all under one root per test process. Tests write real runs
/// (checkpoints of tens of MB each); left in /tmp, one `make test` (debug and release) left
/// several GB behind and filled a CI machine's disk.
///
/// Tests remove their folders when done (`remove(_:)`); what is left goes when the next test
/// process starts, which removes every root whose process has ended. Nothing is removed at
/// exit: work during process teardown (an `atexit` handler calling Foundation while LibTorch's
/// and the C++ runtime's destructors run) is the one place a crash cannot be attributed to a
/// test, and a CI run ended in such a crash.
public enum Scratch {
  static let prefix = "cmapkd-tests-"

  /// `$TMPDIR/cmapkd-tests-<pid>`: created on first use, after the roots of ended processes
  /// are removed.
  public static let root: String = {
    removeEndedRoots()
    let path = "\(NSTemporaryDirectory())\(prefix)\(getpid())"
    try? FileManager.default.removeItem(atPath: path)  // a crashed run's, whose pid came back
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }()

  /// A fresh empty folder `<root>/<name>-<random>`.
  public static func folder(_ name: String) throws -> String {
    let safe = name.filter { $0.isLetter || $0.isNumber || $0 == "-" }
    let path = "\(root)/\(safe)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  /// Removes a folder made by `folder(_:)` as soon as a test is done with it, so that the
  /// suite's peak disk use stays near one test's.
  public static func remove(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// Removes `cmapkd-tests-<pid>` roots whose process no longer runs (a finished or crashed
  /// test process's); a running one (another configuration's tests) is left alone.
  static func removeEndedRoots() {
    let temporary = NSTemporaryDirectory()
    let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? []
    for name in names where name.hasPrefix(prefix) {
      guard let pid = pid_t(name.dropFirst(prefix.count)), pid != getpid(), !isRunning(pid) else { continue }
      try? FileManager.default.removeItem(atPath: temporary + name)
    }
  }

  /// Whether process `pid` exists (signal 0 checks without sending; EPERM: it exists but is
  /// another user's).
  static func isRunning(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }
}
