import CArchive

/// Writes tar shards in the img2dataset layout (`KEY.jpg` + `KEY.txt`), through libarchive.
///
/// ```swift
/// let writer = try TarShardWriter("shards/00000.tar")
/// try writer.add("000000012.jpg", bytes: jpeg)
/// try writer.add("000000012.txt", bytes: Array("a red circle".utf8))
/// try writer.close()
/// ```
public final class TarShardWriter {
  private let path: String
  private var archive: OpaquePointer?

  public init(_ path: String) throws {
    self.path = path
    guard let archive = archive_write_new() else { throw DataError(.unreadableFile, file: path, "libarchive: out of memory") }
    self.archive = archive
    archive_write_set_format_ustar(archive)
    guard archive_write_open_filename(archive, path) == ARCHIVE_OK else { throw failure("cannot create") }
  }

  deinit { if let archive { archive_write_free(archive) } }

  /// Adds one regular file member.
  public func add(_ name: String, bytes: [UInt8]) throws {
    guard let archive else { throw DataError(.invalidArgument, file: path, "shard is already closed") }
    guard let entry = archive_entry_new() else { throw failure("out of memory") }
    defer { archive_entry_free(entry) }
    archive_entry_set_pathname(entry, name)
    archive_entry_set_size(entry, Int64(bytes.count))
    archive_entry_set_filetype(entry, archiveRegularFile)
    archive_entry_set_perm(entry, 0o644)
    guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw failure("cannot add \(name)") }
    let written = bytes.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
    guard written == bytes.count else { throw failure("cannot write \(name)") }
  }

  /// Finishes the archive (writes the end-of-archive blocks).
  public func close() throws {
    guard let archive else { return }
    defer {
      archive_write_free(archive)
      self.archive = nil
    }
    guard archive_write_close(archive) == ARCHIVE_OK else { throw failure("cannot finish") }
  }

  private func failure(_ what: String) -> DataError {
    let detail = archive.flatMap { archive_error_string($0) }.map { String(cString: $0) } ?? "unknown error"
    return DataError(.unreadableFile, file: path, "\(what): \(detail)")
  }
}

/// libarchive's `AE_IFREG` (a cast macro, which Swift does not import).
let archiveRegularFile: UInt32 = 0o100000
