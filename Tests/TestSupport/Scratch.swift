import Foundation

/// Temporary folders for tests, all under one root per test process that is removed when the
/// process exits. Tests write real runs (checkpoints of tens of MB each); left in /tmp, one
/// `make test` (debug and release) left several GB behind and filled a CI machine's disk.
public enum Scratch {
  /// `$TMPDIR/cmapkd-tests-<pid>`: created on first use, removed at exit.
  public static let root: String = {
    let path = "\(NSTemporaryDirectory())cmapkd-tests-\(getpid())"
    try? FileManager.default.removeItem(atPath: path)  // a crashed run's, whose pid came back
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: Scratch.root) }
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
}
