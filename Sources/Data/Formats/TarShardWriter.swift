/// Writes tar shards in the img2dataset layout (`KEY.jpg` + `KEY.txt`), as plain ustar.
///
/// ```swift
/// let writer = try TarShardWriter("shards/00000.tar")
/// try writer.add("000000012.jpg", bytes: jpeg)
/// try writer.add("000000012.txt", bytes: Array("a red circle".utf8))
/// try writer.close()
/// ```
public final class TarShardWriter {
  private let tar: TarWriter

  public init(_ path: String) throws { tar = try TarWriter(path) }

  public func add(_ name: String, bytes: [UInt8]) throws { try tar.add(name, bytes: bytes) }

  /// Finishes the archive (end blocks) and closes the file.
  public func close() throws { try tar.close() }
}
