import Foundation

/// A file write failed; `path` is the file meant, `reason` what went wrong.
public struct AtomicFileError: Error, CustomStringConvertible {
  public var path: String
  public var reason: String
  public var description: String { "\(path): \(reason)" }
}

/// The one way the program writes a file: to a temporary file beside it, synced, renamed over
/// it, then the folder synced so the rename itself survives a crash. A reader sees the old
/// file or the new one, never a mix; a failed write leaves the old one and no temporary file.
///
/// ```swift
/// try AtomicFile.write(Data("{}".utf8), to: "runs/a/results.json")
/// ```
public enum AtomicFile {
  public static func write(_ data: Data, to path: String) throws {
    try write(to: path) { append in try data.withUnsafeBytes { try append($0) } }
  }

  public static func write(_ text: String, to path: String) throws { try write(Data(text.utf8), to: path) }

  /// Makes renames inside `directory` durable (a folder renamed into place, e.g. a checkpoint).
  public static func syncDirectory(_ directory: String) throws {
    let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw AtomicFileError(path: directory, reason: "cannot open to sync: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    _ = fsync(fd)
  }

  /// Runs `body` with an `append` function writing to the temporary file, then makes it `path`.
  public static func write(to path: String, _ body: (_ append: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
    func failure(_ reason: String) -> AtomicFileError {
      AtomicFileError(path: path, reason: "\(reason): \(String(cString: strerror(errno)))")
    }
    let url = URL(fileURLWithPath: path)
    let directory = url.deletingLastPathComponent().path
    let temporary = "\(directory)/.\(url.lastPathComponent).\(UUID().uuidString).tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw failure("cannot create \(temporary) (does the folder exist and is it writable?)") }
    var isOpen = true
    var renamed = false
    defer {
      if isOpen { close(fd) }
      if !renamed { unlink(temporary) }
    }
    try body { bytes in
      var done = 0
      while done < bytes.count {
        let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
          if errno == EINTR { continue }
          throw failure("write failed")
        }
        done += n
      }
    }
    guard fsync(fd) == 0 else { throw failure("fsync failed") }
    isOpen = false
    guard close(fd) == 0 else { throw failure("close failed") }
    guard rename(temporary, path) == 0 else { throw failure("cannot rename the temporary file into place") }
    renamed = true
    // Makes the new directory entry durable, not just the file's data. Some file systems
    // cannot sync a directory (EINVAL); the file is in place regardless.
    let dir = open(directory, O_RDONLY | O_CLOEXEC)
    guard dir >= 0 else { throw failure("cannot open the folder \(directory) to sync it") }
    defer { close(dir) }
    guard fsync(dir) == 0 || errno == EINVAL else { throw failure("fsync of the folder \(directory) failed") }
  }
}

/// FNV-1a, 64 bits: the one content hash, for cache fingerprints, shard checksums and
/// checkpoint file hashes (corruption and staleness detection, not security).
public struct ContentHash {
  public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

  public init() {}

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    var h = value
    for byte in bytes {
      h ^= UInt64(byte)
      h &*= 0x0000_0100_0000_01b3
    }
    value = h
  }

  public mutating func update(_ text: String) {
    var copy = text
    copy.withUTF8 { update(UnsafeRawBufferPointer($0)) }
  }

  public var hex: String { String(format: "%016llx", value) }

  /// The hash of a file's bytes (memory-mapped).
  public static func file(_ path: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    var hash = ContentHash()
    data.withUnsafeBytes { hash.update($0) }
    return hash.hex
  }
}
