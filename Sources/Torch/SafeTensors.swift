import CTorch
import Foundation
import SafeFiles

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// The safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: header length N, little-endian u64]
//   [N bytes: UTF-8 JSON object, name -> {"dtype", "shape", "data_offsets": [begin, end]},
//             plus an optional "__metadata__": {string: string}]
//   [data buffer: the tensors' raw little-endian bytes; offsets are relative to its start]
//
// Reading checks everything the Python package checks (and says which file and tensor is
// wrong), so a corrupt or truncated checkpoint is a `TorchError`, never a crash.

// MARK: - Dtype codes

extension DType {
  /// The dtype's code in a safetensors header (`"F32"`, `"BF16"`, …).
  ///
  /// ```swift
  /// DType.bfloat16.safetensorsCode  // "BF16"
  /// ```
  public var safetensorsCode: String {
    switch self {
    case .float64: "F64"
    case .float32: "F32"
    case .float16: "F16"
    case .bfloat16: "BF16"
    case .int64: "I64"
    case .int32: "I32"
    case .int16: "I16"
    case .int8: "I8"
    case .uint8: "U8"
    case .bool: "BOOL"
    }
  }

  /// The dtype a safetensors code names, or nil for codes with no `DType` (`F8_E4M3`, `U32`, …).
  ///
  /// ```swift
  /// DType(safetensorsCode: "F16")  // .float16
  /// ```
  /// - Parameters:
  ///   - code: the `dtype` string of a header entry.
  public init?(safetensorsCode code: String) {
    guard let match = DType.allCases.first(where: { $0.safetensorsCode == code }) else { return nil }
    self = match
  }
}

// MARK: - Reading

/// An open safetensors file, memory-mapped; tensors are read from the mapping on demand.
///
/// `tensor(_:)` returns a zero-copy view of the mapping when the data is aligned for its dtype
/// (always the case for files this package writes), else a copy. A view keeps the mapping alive
/// on its own, so tensors stay valid after the `SafeTensorsFile` is released; the file is
/// unmapped when the last of them is gone.
///
/// The mapping is private copy-on-write: writing into a view (an in-place op, an optimizer step
/// on loaded weights) changes this process's copy only, never the file. Like any mapping, it
/// assumes the file is not truncated in place while mapped (`SafeTensors.save` replaces files
/// by renaming, which leaves existing mappings intact).
///
/// ```swift
/// let file = try SafeTensorsFile(path: "model.safetensors")
/// print(file.names, file.metadata)
/// let weight = try file.tensor("encoder.weight")
/// ```
public final class SafeTensorsFile: Sendable {
  /// Shape, dtype and location of one tensor, as the header describes it.
  public struct Entry: Equatable, Sendable {
    public let dtype: DType
    public let shape: [Int]
    /// The tensor's bytes, relative to the start of the data buffer (the header's `data_offsets`).
    public let byteRange: Range<Int>
  }

  /// The path the file was opened with.
  public let path: String
  /// The header's `__metadata__` (empty when absent).
  public let metadata: [String: String]
  /// Tensor names, sorted.
  public let names: [String]

  private let entries: [String: Entry]
  private let mapping: FileMapping
  /// Where the data buffer starts in the file: 8 + header length.
  private let bufferStart: Int

  /// Maps the file and validates its header; tensor data is not touched until asked for.
  ///
  /// ```swift
  /// let file = try SafeTensorsFile(path: "weights.safetensors")
  /// ```
  /// - Parameters:
  ///   - path: the file to open.
  /// - Throws: `TorchError` naming the file (and tensor) when the file cannot be mapped or its
  ///   header is malformed: bad length, invalid JSON, missing or mistyped fields, unsupported
  ///   dtype, byte counts that do not match shapes, overlapping ranges or uncovered bytes.
  public init(path: String) throws {
    let mapping = try FileMapping(path: path)
    let header = try Header(mapping: mapping, path: path)
    self.path = path
    self.mapping = mapping
    self.entries = header.entries
    self.metadata = header.metadata
    self.names = header.entries.keys.sorted()
    self.bufferStart = header.bufferStart
  }

  /// The header entry of a tensor, or nil when the file has no tensor of that name.
  ///
  /// ```swift
  /// if let entry = file.info("w") { print(entry.dtype, entry.shape) }
  /// ```
  /// - Parameters:
  ///   - name: the tensor's name.
  public func info(_ name: String) -> Entry? { entries[name] }

  /// One tensor: a view of the mapping when its data is aligned for its dtype, else a copy.
  ///
  /// ```swift
  /// let w = try file.tensor("w").to(.cuda(0))
  /// ```
  /// - Parameters:
  ///   - name: the tensor's name (see `names`).
  /// - Throws: `TorchError` when there is no such tensor or LibTorch fails to wrap the data.
  public func tensor(_ name: String) throws -> Tensor {
    guard let entry = entries[name] else {
      throw readError(path, "no tensor named '\(name)' (the file has \(names.count) tensors)")
    }
    let data = mapping.base + bufferStart + entry.byteRange.lowerBound
    do {
      // LibTorch kernels assume element-aligned data; the Python writer does not align each
      // tensor (a 3-byte u8 tensor shifts every later one), so those are copied instead.
      let aligned = Int(bitPattern: data) % entry.dtype.byteSize == 0
      if entry.byteRange.isEmpty || !aligned {
        let bytes = UnsafeRawBufferPointer(start: data, count: entry.byteRange.count)
        return try Tensor.fromBytes(bytes, shape: entry.shape, dtype: entry.dtype)
      }
      return try view(data, entry)
    } catch let error as TorchError {
      throw readError(path, "tensor '\(name)': \(error.description)")
    }
  }

  /// Copies row `row` (index along dimension 0) of tensor `name`, its raw bytes in the file's
  /// dtype, to `destination`, which must hold exactly one row: gathering rows of many files into
  /// one buffer costs a `memcpy` each, where a tensor view per row costs a LibTorch call each.
  ///
  /// ```swift
  /// var row = [UInt8](repeating: 0, count: file.info("x")!.byteRange.count / 4)
  /// try row.withUnsafeMutableBytes { try file.copyRow("x", row: 2, to: $0) }
  /// ```
  /// - Throws: `TorchError` naming the file when there is no such tensor, it is 0-d, the row is
  ///   out of range or the destination is not one row's size.
  public func copyRow(_ name: String, row: Int, to destination: UnsafeMutableRawBufferPointer) throws {
    guard let entry = entries[name] else {
      throw readError(path, "no tensor named '\(name)' (the file has \(names.count) tensors)")
    }
    guard let rows = entry.shape.first, (0..<rows).contains(row) else {
      throw readError(path, "tensor '\(name)' of shape \(entry.shape) has no row \(row)")
    }
    let rowBytes = entry.byteRange.count / rows
    guard destination.count == rowBytes else {
      throw readError(path, "tensor '\(name)': a row is \(rowBytes) bytes, the destination \(destination.count)")
    }
    guard rowBytes > 0, let target = destination.baseAddress else { return }
    target.copyMemory(from: mapping.base + bufferStart + entry.byteRange.lowerBound + row * rowBytes, byteCount: rowBytes)
  }

  /// Every tensor, by name.
  ///
  /// ```swift
  /// for (name, tensor) in try file.tensors() { print(name, tensor.shape) }
  /// ```
  public func tensors() throws -> [String: Tensor] {
    var result: [String: Tensor] = [:]
    for name in names { result[name] = try tensor(name) }
    return result
  }

  /// Wraps mapped bytes without copying; the tensor's storage holds a reference to the mapping.
  private func view(_ data: UnsafeMutableRawPointer, _ entry: Entry) throws -> Tensor {
    // A fresh owner per view, retained once on LibTorch's behalf and released by its deleter.
    var owner = MappingOwner(mapping)
    let context = Unmanaged.passRetained(owner).toOpaque()
    let dims = entry.shape.map(Int64.init)
    let handle = dims.withUnsafeBufferPointer {
      ct_from_blob(data, $0.baseAddress, Int32(dims.count), entry.dtype.rawValue, context) { context in
        Unmanaged<MappingOwner>.fromOpaque(context!).release()
      }
    }
    guard let handle else {
      // Whether LibTorch ran the deleter before failing depends on where it failed; the
      // reference count tells: if ours is not the only one left, release LibTorch's.
      if !isKnownUniquelyReferenced(&owner) { Unmanaged.passUnretained(owner).release() }
      throw TorchError.fromShim("fromBlob")
    }
    return Tensor(owning: handle)
  }
}

/// A whole file mapped private copy-on-write, unmapped when the last reference goes.
private final class FileMapping: @unchecked Sendable {  // immutable after init
  let base: UnsafeMutableRawPointer
  let length: Int

  init(path: String) throws {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw readError(path, "cannot open: \(errnoText())") }
    defer { close(fd) }  // the mapping holds its own reference to the file
    var status = stat()
    guard fstat(fd, &status) == 0 else { throw readError(path, "cannot stat: \(errnoText())") }
    guard status.st_mode & S_IFMT == S_IFREG else { throw readError(path, "not a regular file") }
    let length = Int(status.st_size)
    guard length >= 8 else {
      throw readError(path, "file is \(length) bytes, shorter than the 8-byte header length field")
    }
    // PROT_WRITE with MAP_PRIVATE: writes to a view land in private copies of the pages, so an
    // in-place op on a loaded tensor works (PROT_READ alone would make it a segfault) and the
    // file itself is never modified. The fd only needs read access for a private mapping.
    let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
    guard let base, base != MAP_FAILED else { throw readError(path, "cannot mmap: \(errnoText())") }
    self.base = base
    self.length = length
  }

  deinit { munmap(base, length) }
}

/// What a view's storage retains: one object per view, so a failed `ct_from_blob` can tell
/// from the reference count whether LibTorch already released it.
private final class MappingOwner {
  let mapping: FileMapping
  init(_ mapping: FileMapping) { self.mapping = mapping }
}

// MARK: - Header validation

/// The parsed and validated header of a mapped file.
private struct Header {
  /// The Python package's limit; a larger length is corruption, not a real header.
  static let maxLength = 100_000_000

  var entries: [String: SafeTensorsFile.Entry] = [:]
  var metadata: [String: String] = [:]
  let bufferStart: Int

  init(mapping: FileMapping, path: String) throws {
    let fail = { (message: String) in readError(path, message) }
    let available = mapping.length - 8
    let length = UInt64(littleEndian: mapping.base.loadUnaligned(as: UInt64.self))
    guard length <= UInt64(available) else {
      throw fail("header length \(length) is larger than the \(available) bytes after the length field")
    }
    guard length <= UInt64(Header.maxLength) else {
      throw fail("header length \(length) exceeds the \(Header.maxLength)-byte limit")
    }
    bufferStart = 8 + Int(length)
    let bufferSize = mapping.length - bufferStart
    let json = try Header.jsonObject(UnsafeRawBufferPointer(start: mapping.base + 8, count: Int(length)), path)
    for (name, value) in json {
      if name == "__metadata__" {
        metadata = try Header.metadata(value, path)
      } else {
        entries[name] = try Header.entry(name, value, bufferSize: bufferSize, path)
      }
    }
    try Header.checkCoverage(entries, bufferSize: bufferSize, path)
  }

  static func jsonObject(_ bytes: UnsafeRawBufferPointer, _ path: String) throws -> [String: Any] {
    let fail = { (message: String) in readError(path, message) }
    // JSONSerialization would also accept UTF-16/32; the format is UTF-8 only.
    guard let text = String(bytes: bytes, encoding: .utf8) else { throw fail("header is not valid UTF-8") }
    let parsed: Any
    do {
      parsed = try JSONSerialization.jsonObject(with: Data(text.utf8))
    } catch {
      throw fail("header is not valid JSON (\(error.localizedDescription))")
    }
    guard let object = parsed as? [String: Any] else { throw fail("header is not a JSON object") }
    return object
  }

  static func metadata(_ value: Any, _ path: String) throws -> [String: String] {
    let fail = { (message: String) in readError(path, message) }
    if value is NSNull { return [:] }  // serde reads `null` as no metadata
    guard let object = value as? [String: Any] else { throw fail("'__metadata__' is not a JSON object") }
    var result: [String: String] = [:]
    for (key, item) in object {
      guard let text = item as? String else { throw fail("'__metadata__' value for '\(key)' is not a string") }
      result[key] = text
    }
    return result
  }

  static func entry(
    _ name: String, _ value: Any, bufferSize: Int, _ path: String
  ) throws -> SafeTensorsFile.Entry {
    let fail = { (message: String) in readError(path, "tensor '\(name)': \(message)") }
    guard let fields = value as? [String: Any] else { throw fail("entry is not a JSON object") }
    func field<T>(_ key: String, _ type: T.Type, _ expected: String) throws -> T {
      guard let raw = fields[key] else { throw fail("missing field '\(key)'") }
      guard let typed = raw as? T else { throw fail("'\(key)' must be \(expected)") }
      return typed
    }

    let code = try field("dtype", String.self, "a string")
    guard let dtype = DType(safetensorsCode: code) else {
      let supported = DType.allCases.map(\.safetensorsCode).joined(separator: " ")
      throw fail("unsupported dtype '\(code)' (supported: \(supported))")
    }
    let rawShape = try field("shape", [Any].self, "an array of non-negative integers")
    guard let shape = nonNegativeIntegers(rawShape) else {
      throw fail("'shape' must be an array of non-negative integers, got \(rawShape)")
    }
    let rawOffsets = try field("data_offsets", [Any].self, "an array [begin, end]")
    guard let offsets = nonNegativeIntegers(rawOffsets), offsets.count == 2, offsets[0] <= offsets[1] else {
      throw fail("'data_offsets' must be [begin, end] with 0 <= begin <= end, got \(rawOffsets)")
    }
    let range = offsets[0]..<offsets[1]
    guard range.upperBound <= bufferSize else {
      throw fail("data_offsets end \(range.upperBound) is beyond the \(bufferSize)-byte data buffer")
    }
    guard let needed = byteCount(shape, dtype), needed == range.count else {
      throw fail(
        "shape \(shape) of \(code) needs \(byteCount(shape, dtype).map(String.init) ?? "too many") bytes but data_offsets span \(range.count)"
      )
    }
    return SafeTensorsFile.Entry(dtype: dtype, shape: shape, byteRange: range)
  }

  /// The Python package requires the ranges, in order, to tile the buffer exactly: no overlap
  /// (two tensors sharing bytes) and no hole (bytes no tensor accounts for, a sign of a
  /// truncated or tampered header).
  static func checkCoverage(
    _ entries: [String: SafeTensorsFile.Entry], bufferSize: Int, _ path: String
  ) throws {
    let fail = { (message: String) in readError(path, message) }
    let ordered = entries.map { (name: $0.key, range: $0.value.byteRange) }
      .sorted { ($0.range.lowerBound, $0.range.upperBound, $0.name) < ($1.range.lowerBound, $1.range.upperBound, $1.name) }
    var end = 0
    var previous: (name: String, range: Range<Int>)?
    for item in ordered {
      if item.range.lowerBound < end, let previous {
        throw fail("tensor '\(item.name)' (bytes \(item.range)) overlaps tensor '\(previous.name)' (bytes \(previous.range))")
      }
      if item.range.lowerBound > end {
        throw fail(
          "bytes \(end)..<\(item.range.lowerBound) of the data buffer belong to no tensor (a hole before tensor '\(item.name)')")
      }
      end = item.range.upperBound
      previous = item
    }
    guard end == bufferSize else {
      throw fail("bytes \(end)..<\(bufferSize) at the end of the data buffer belong to no tensor")
    }
  }
}

/// The integers of a JSON array, or nil if any element is not a non-negative integer.
private func nonNegativeIntegers(_ values: [Any]) -> [Int]? {
  var result: [Int] = []
  for value in values {
    guard let integer = jsonInteger(value), integer >= 0 else { return nil }
    result.append(integer)
  }
  return result
}

/// A JSON integer. JSONSerialization returns NSNumber for numbers *and* booleans, and
/// `as? Int` accepts `true` and `2.0`; the format (serde in the Python package) rejects both,
/// so booleans (objCType "c") and floating-point literals ("d", "f") are refused here.
private func jsonInteger(_ value: Any) -> Int? {
  guard let number = value as? NSNumber else { return nil }
  let kind = String(cString: number.objCType)
  guard kind != "c", kind != "d", kind != "f" else { return nil }
  return Int(exactly: number)
}

/// product(shape) × element size, or nil on overflow.
private func byteCount(_ shape: [Int], _ dtype: DType) -> Int? {
  var total = dtype.byteSize
  for size in shape {
    let (product, overflow) = total.multipliedReportingOverflow(by: size)
    if overflow { return nil }
    total = product
  }
  return total
}

private func readError(_ path: String, _ message: String) -> TorchError {
  TorchError("safetensors.load", "\(path): \(message)")
}

private func writeError(_ path: String, _ message: String) -> TorchError {
  TorchError("safetensors.save", "\(path): \(message)")
}

private func errnoText() -> String { String(cString: strerror(errno)) }

// MARK: - Loading and saving

/// Whole-file safetensors loading and saving.
public enum SafeTensors {
  /// Every tensor of a safetensors file (views of a mapping where aligned; see `SafeTensorsFile`).
  ///
  /// ```swift
  /// let weights = try SafeTensors.load("model.safetensors")
  /// ```
  /// - Parameters:
  ///   - path: the file to read.
  /// - Throws: `TorchError` naming the file and what is wrong with it.
  public static func load(_ path: String) throws -> [String: Tensor] {
    try SafeTensorsFile(path: path).tensors()
  }

  /// Writes tensors (from any device) and metadata as a safetensors file, atomically.
  ///
  /// Keys are sorted and the header is padded with spaces so the data buffer starts 8-byte
  /// aligned, as the Python package does. The file is written under a temporary name in the
  /// same directory, synced, and renamed over `path`: a crash leaves either the old file or the
  /// new one, and mappings of the old file stay valid.
  ///
  /// ```swift
  /// try SafeTensors.save(["w": w, "b": b], to: "layer.safetensors", metadata: ["step": "100"])
  /// ```
  /// - Parameters:
  ///   - tensors: the tensors by name (`"__metadata__"` is reserved).
  ///   - path: the file to create or replace.
  ///   - metadata: string pairs stored in the header's `__metadata__`.
  /// - Throws: `TorchError` naming the file for a reserved name, a dtype with no safetensors
  ///   code, or an I/O failure (the target is left untouched).
  public static func save(_ tensors: [String: Tensor], to path: String, metadata: [String: String] = [:]) throws {
    let layout = try plan(tensors, path)
    let header = try headerBytes(layout, metadata, path)
    try writeAtomically(to: path) { append in
      var length = UInt64(header.count).littleEndian
      try withUnsafeBytes(of: &length) { try append($0) }
      try header.withUnsafeBytes { try append($0) }
      // One tensor's bytes in memory at a time, however large the checkpoint.
      for item in layout {
        let bytes = try item.tensor.to(.cpu).contiguous().bytes()
        guard bytes.count == item.range.count else {
          throw writeError(path, "tensor '\(item.name)' produced \(bytes.count) bytes, expected \(item.range.count)")
        }
        try bytes.withUnsafeBytes { try append($0) }
      }
    }
  }

  private struct Planned {
    let name: String
    let tensor: Tensor
    let dtype: DType
    let range: Range<Int>
  }

  /// Dtypes, shapes and byte ranges in key order, computed before any data is copied out.
  private static func plan(_ tensors: [String: Tensor], _ path: String) throws -> [Planned] {
    var layout: [Planned] = []
    var offset = 0
    for name in tensors.keys.sorted() {
      guard name != "__metadata__" else { throw writeError(path, "'__metadata__' is reserved and cannot name a tensor") }
      let tensor = tensors[name]!
      // Read the raw code: `Tensor.dtype` maps dtypes it does not know to float32.
      let code = ct_dtype(tensor.handle)
      guard let dtype = DType(rawValue: code) else {
        throw writeError(path, "tensor '\(name)' has dtype code \(code), which has no safetensors code")
      }
      let size = tensor.count * dtype.byteSize
      layout.append(Planned(name: name, tensor: tensor, dtype: dtype, range: offset..<offset + size))
      offset += size
    }
    return layout
  }

  /// The header JSON, padded with spaces to a multiple of 8 bytes.
  private static func headerBytes(_ layout: [Planned], _ metadata: [String: String], _ path: String) throws -> [UInt8] {
    var object: [String: Any] = [:]
    for item in layout {
      object[item.name] = [
        "dtype": item.dtype.safetensorsCode,
        "shape": item.tensor.shape,
        "data_offsets": [item.range.lowerBound, item.range.upperBound],
      ]
    }
    if !metadata.isEmpty { object["__metadata__"] = metadata }
    var bytes: [UInt8]
    do {
      bytes = [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    } catch {
      throw writeError(path, "cannot encode the header: \(error.localizedDescription)")
    }
    bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8))
    return bytes
  }

  /// Writes through `AtomicFile` (temporary file, fsync, rename, fsync of the folder).
  private static func writeAtomically(
    to path: String, _ body: (_ append: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
  ) throws {
    do { try AtomicFile.write(to: path, body) } catch let error as AtomicFileError { throw writeError(path, error.reason) }
  }

}
