// Metrics logs, TensorBoard event files, SVG plots and report tables: plain Swift + Foundation,
// no LibTorch, and no knowledge of models. Inputs are scalars and Codable summaries that the
// experiment runner fills in.
import Foundation
import SafeFiles

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An error from a Reports file: what went wrong and where (`path:line: message`).
public struct ReportsError: Error, CustomStringConvertible, Equatable, Sendable {
  public let message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Writes `data` to `path` so that a reader sees either the old file or the new one, never a
/// mix: it goes to a temporary file in the same folder, is synced, then renamed over `path`.
public func writeAtomically(_ data: Data, to path: String) throws {
  do { try AtomicFile.write(data, to: path) } catch let error as AtomicFileError { throw ReportsError("\(error)") }
}

/// Opens `path` for appending (creating it), for the logs that write one record at a time.
func openForAppending(_ path: String) throws -> FileHandle {
  if !FileManager.default.fileExists(atPath: path) {
    guard FileManager.default.createFile(atPath: path, contents: nil) else {
      throw ReportsError("\(path): cannot create (does the folder exist and is it writable?)")
    }
  }
  do {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.seekToEnd()
    return handle
  } catch {
    throw ReportsError("\(path): cannot open for appending: \(error)")
  }
}

/// Creates `directory` and its parents if needed.
func makeDirectory(_ directory: String) throws {
  do {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  } catch {
    throw ReportsError("\(directory): cannot create folder: \(error)")
  }
}
