import Foundation
import Testing
import Torch

// MARK: - Helpers

/// The package root, found from this file (Tests/TorchTests/SafeTensorsTests.swift).
private let packageRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh directory under the system temp folder, removed when the object goes away.
private final class TemporaryDirectory {
  let path: String

  init() throws {
    path =
      FileManager.default.temporaryDirectory
      .appendingPathComponent("safetensors-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: path) }

  func file(_ name: String) -> String { "\(path)/\(name)" }

  func write(_ bytes: [UInt8], to name: String) throws -> String {
    let target = file(name)
    try Data(bytes).write(to: URL(fileURLWithPath: target))
    return target
  }
}

/// A safetensors file's bytes from a header text and a data buffer, with the length field
/// computed (or forced, to corrupt it).
private func fileBytes(header: String, buffer: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
  fileBytes(headerBytes: Array(header.utf8), buffer: buffer, length: length)
}

private func fileBytes(headerBytes: [UInt8], buffer: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
  let n = length ?? UInt64(headerBytes.count)
  return withUnsafeBytes(of: n.littleEndian, Array.init) + headerBytes + buffer
}

/// One tensor of each supported dtype (extreme and special values included), a 0-d scalar and
/// a zero-element tensor.
private func sampleTensors() throws -> [String: Tensor] {
  [
    "f64": try Tensor([1.5, -2.25, .pi, 1e300, -0.0, .infinity, .nan, .leastNonzeroMagnitude], shape: [2, 4]),
    "f32": try Tensor([Float(0.1), -3.5, .greatestFiniteMagnitude, .leastNonzeroMagnitude], shape: [2, 2]),
    "f16": try Tensor([Float(0.5), -1.25, 65504, 6.1035156e-05, 0, -0]).to(.float16),
    "bf16": try Tensor([Float(1), -2.5, 3.0e38, 1.0e-38, 0.15625, -0]).to(.bfloat16),
    "i64": try Tensor([Int64.min, Int64.max, 0, -1, 42]),
    "i32": try Tensor([Int32.min, Int32.max, 0, -7]),
    "i16": try Tensor([Int16.min, Int16.max, 3]),
    "i8": try Tensor([Int8.min, Int8.max, -1]),
    "u8": try Tensor([UInt8(0), 255, 128], shape: [3, 1]),
    "bool": try Tensor([true, false, true, true], shape: [2, 1, 2]),
    "scalar": try Tensor.scalar(2.75, dtype: .float64),
    "empty": try Tensor.zeros([0, 3], dtype: .int32),
  ]
}

/// Same dtype, shape and bytes: exact equality, NaN payloads and signed zeros included.
private func expectIdentical(_ actual: Tensor?, _ expected: Tensor, _ name: String) throws {
  let actual = try #require(actual, "missing tensor '\(name)'")
  #expect(actual.dtype == expected.dtype, "dtype of '\(name)'")
  #expect(actual.shape == expected.shape, "shape of '\(name)'")
  #expect(try actual.bytes() == expected.bytes(), "bytes of '\(name)'")
}

private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// Lines of /proc/self/maps that map `path` (Linux only; nil elsewhere).
private func mappings(of path: String) throws -> Int? {
  #if os(Linux)
    // Not String(contentsOfFile:): it trusts the size procfs reports and stops at one page.
    let data = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/maps")).readToEnd() ?? Data()
    let maps = String(decoding: data, as: UTF8.self)
    return maps.split(separator: "\n").filter { $0.contains(path) }.count
  #else
    return nil
  #endif
}

// MARK: - Round trips and reading

@Suite("SafeTensors")
struct SafeTensorsTests {
  @Test("every dtype, a 0-d and a zero-element tensor, and metadata round-trip exactly")
  func roundTrip() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("all.safetensors")
    let tensors = try sampleTensors()
    let metadata = ["format": "pt", "step": "1200", "note": "a/b \"quoted\" ünïcode"]
    try SafeTensors.save(tensors, to: path, metadata: metadata)

    let loaded = try SafeTensors.load(path)
    #expect(Set(loaded.keys) == Set(tensors.keys))
    for (name, tensor) in tensors { try expectIdentical(loaded[name], tensor, name) }

    let file = try SafeTensorsFile(path: path)
    #expect(file.metadata == metadata)
    #expect(file.names == tensors.keys.sorted())
    #expect(file.info("scalar")?.dtype == .float64)
    #expect(file.info("scalar")?.shape == [])
    #expect(file.info("empty")?.byteRange.isEmpty == true)
    #expect(file.info("missing") == nil)

    // Values, not just bytes, for a few dtypes (guards against a consistent mis-encoding).
    #expect(try loaded["i64"]!.toArray(Int64.self) == [Int64.min, Int64.max, 0, -1, 42])
    #expect(try loaded["f16"]!.doubles() == [0.5, -1.25, 65504, 6.103515625e-05, 0, 0])
    #expect(try loaded["bf16"]!.doubles()[..<2] == [1, -2.5])
    #expect(try loaded["bool"]!.toArray(Bool.self) == [true, false, true, true])
    #expect(try loaded["scalar"]!.item() == 2.75)
  }

  @Test("the header is sorted, padded to 8 bytes, and the data buffer is tiled in key order")
  func layout() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("layout.safetensors")
    try SafeTensors.save(["b": try Tensor([UInt8(1), 2, 3]), "a": try Tensor([Float(1), 2])], to: path)
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    let length = bytes[..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
    #expect(length % 8 == 0)
    #expect(bytes.count == 8 + length + 8 + 3)
    let header = String(decoding: bytes[8..<8 + length], as: UTF8.self)
    #expect(header.hasPrefix("{\"a\":"), "keys sorted: \(header)")
    let file = try SafeTensorsFile(path: path)
    #expect(file.info("a")?.byteRange == 0..<8)
    #expect(file.info("b")?.byteRange == 8..<11)
  }

  @Test("tensors whose data is misaligned for their dtype are copied and read back exactly")
  func misalignedData() throws {
    let directory = try TemporaryDirectory()
    var header = #"{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}}"#
    header += String(repeating: " ", count: (8 - header.utf8.count % 8) % 8)  // buffer 8-aligned, so b is not
    let floats: [Float] = [1.5, -0.25]
    let buffer = [UInt8(7), 8, 9] + floats.withUnsafeBytes(Array.init)
    let path = try directory.write(fileBytes(header: header, buffer: buffer), to: "misaligned.safetensors")
    let file = try SafeTensorsFile(path: path)
    #expect(try file.tensor("a").toArray(UInt8.self) == [7, 8, 9])
    #expect(try file.tensor("b").toArray(Float.self) == floats)
  }

  @Test("a view outlives its SafeTensorsFile, and the mapping goes with the last view")
  func viewKeepsMappingAlive() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("alive.safetensors")
    let values: [Float] = (0..<64).map { Float($0) * 0.5 }
    try SafeTensors.save(["w": try Tensor(values, shape: [8, 8])], to: path)

    var file: SafeTensorsFile? = try SafeTensorsFile(path: path)
    weak let weakFile = file
    var view: Tensor? = try file!.tensor("w").reshape([64])
    file = nil
    #expect(weakFile == nil, "the file object itself is released")
    try FileManager.default.removeItem(atPath: path)  // the mapping does not need the name
    if let count = try mappings(of: path) { #expect(count > 0, "mapped while a view lives") }
    #expect(try view!.toArray(Float.self) == values)
    #expect(try (view! * 2).toArray(Float.self) == values.map { $0 * 2 })
    view = nil
    if let count = try mappings(of: path) { #expect(count == 0, "unmapped after the last view") }
  }

  @Test("writing into a view changes the process's copy, never the file")
  func viewsAreCopyOnWrite() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("cow.safetensors")
    try SafeTensors.save(["w": try Tensor([Float(1), 2, 3, 4])], to: path)
    let view = try SafeTensorsFile(path: path).tensor("w")
    try view.addInPlace(10)
    #expect(try view.toArray(Float.self) == [11, 12, 13, 14])
    #expect(try SafeTensors.load(path)["w"]!.toArray(Float.self) == [1, 2, 3, 4])
  }

  @Test("copyRow copies one row's bytes; a missing tensor, a bad row or a wrong-size buffer is an error naming the file")
  func copyRows() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("rows.safetensors")
    let values: [Float] = (0..<12).map(Float.init)  // [3, 2, 2]: row r holds 4r…4r+3
    try SafeTensors.save(["x": try Tensor(values, shape: [3, 2, 2]), "h": try Tensor([Float(1), 2]).to(.float16)], to: path)
    let file = try SafeTensorsFile(path: path)
    var row = [Float](repeating: -1, count: 4)
    try row.withUnsafeMutableBytes { try file.copyRow("x", row: 2, to: $0) }
    #expect(row == [8, 9, 10, 11])
    var half = [UInt16](repeating: 0, count: 1)
    try half.withUnsafeMutableBytes { try file.copyRow("h", row: 1, to: $0) }
    #expect(half == [0x4000])  // 2.0 in binary16
    for (name, index, count) in [("y", 0, 4), ("x", 3, 4), ("x", -1, 4), ("x", 0, 3)] {
      var buffer = [Float](repeating: 0, count: count)
      do {
        try buffer.withUnsafeMutableBytes { try file.copyRow(name, row: index, to: $0) }
        Issue.record("copyRow(\(name), row: \(index)) into \(count) floats was accepted")
      } catch let error as TorchError {
        #expect(error.description.contains("rows.safetensors"), "\(error)")
      }
    }
  }

  @Test("save replaces a file atomically: no temporary left, old mappings keep the old data")
  func atomicReplace() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("model.safetensors")
    try SafeTensors.save(["w": try Tensor([Float(1), 2])], to: path)
    let old = try SafeTensorsFile(path: path).tensor("w")
    try SafeTensors.save(["w": try Tensor([Float(3), 4, 5])], to: path, metadata: ["v": "2"])
    #expect(try old.toArray(Float.self) == [1, 2])
    #expect(try SafeTensors.load(path)["w"]!.toArray(Float.self) == [3, 4, 5])
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.safetensors"])
  }

  @Test("an empty dictionary makes a valid file")
  func emptyFile() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("empty.safetensors")
    try SafeTensors.save([:], to: path, metadata: ["only": "metadata"])
    let file = try SafeTensorsFile(path: path)
    #expect(file.names.isEmpty)
    #expect(file.metadata == ["only": "metadata"])
  }

  @Test("save errors name the file and leave the target untouched")
  func saveErrors() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("target.safetensors")
    try SafeTensors.save(["w": try Tensor([Float(1)])], to: path)
    let reserved = #expect(throws: TorchError.self) {
      try SafeTensors.save(["__metadata__": try Tensor([Float(1)])], to: path)
    }
    #expect(reserved?.message.contains(path) == true)
    #expect(reserved?.message.contains("reserved") == true)
    #expect(try SafeTensors.load(path)["w"]!.toArray(Float.self) == [1])

    let missingDirectory = directory.file("no/such/dir/x.safetensors")
    let io = #expect(throws: TorchError.self) { try SafeTensors.save(["w": try Tensor([Float(1)])], to: missingDirectory) }
    #expect(io?.message.contains(missingDirectory) == true)
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["target.safetensors"])
  }

  @Test("tensor(_:) with an unknown name is an error naming the file and the tensor")
  func unknownName() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("names.safetensors")
    try SafeTensors.save(["w": try Tensor([Float(1)])], to: path)
    let error = #expect(throws: TorchError.self) { try SafeTensorsFile(path: path).tensor("nope") }
    #expect(error?.message.contains(path) == true)
    #expect(error?.message.contains("'nope'") == true)
  }
}

// MARK: - Corrupt files

/// A damaged file and words its error message must contain (besides the file name).
struct Corruption: Sendable, CustomTestStringConvertible {
  let label: String
  let bytes: [UInt8]
  let expected: [String]
  var testDescription: String { label }
}

private let floatEntry = #""dtype":"F32","shape":[2],"data_offsets":[0,8]"#

private let corruptions: [Corruption] = [
  Corruption(label: "empty file", bytes: [], expected: ["shorter than"]),
  Corruption(label: "shorter than 8 bytes", bytes: [1, 0, 0], expected: ["shorter than"]),
  Corruption(
    label: "header length beyond the file", bytes: fileBytes(header: "{}", length: 1000), expected: ["header length 1000"]),
  Corruption(label: "header length u64 max", bytes: fileBytes(header: "{}", length: .max), expected: ["header length"]),
  Corruption(label: "header not UTF-8", bytes: fileBytes(headerBytes: [0x7B, 0xFF, 0xFE, 0x7D]), expected: ["UTF-8"]),
  Corruption(label: "header not JSON", bytes: fileBytes(header: "{not json"), expected: ["not valid JSON"]),
  Corruption(label: "header not an object", bytes: fileBytes(header: "[1, 2]"), expected: ["not a JSON object"]),
  Corruption(label: "entry not an object", bytes: fileBytes(header: #"{"w": 5}"#), expected: ["'w'", "not a JSON object"]),
  Corruption(
    label: "missing dtype",
    bytes: fileBytes(header: #"{"w":{"shape":[2],"data_offsets":[0,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "missing field 'dtype'"]),
  Corruption(
    label: "missing shape",
    bytes: fileBytes(header: #"{"w":{"dtype":"F32","data_offsets":[0,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "missing field 'shape'"]),
  Corruption(
    label: "missing data_offsets",
    bytes: fileBytes(header: #"{"w":{"dtype":"F32","shape":[2]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "missing field 'data_offsets'"]),
  Corruption(
    label: "dtype not a string",
    bytes: fileBytes(header: #"{"w":{"dtype":6,"shape":[2],"data_offsets":[0,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "'dtype' must be a string"]),
  Corruption(
    label: "shape not an array",
    bytes: fileBytes(header: #"{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "'shape' must be"]),
  Corruption(
    label: "unsupported dtype F8_E4M3",
    bytes: fileBytes(header: #"{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#, buffer: [0, 0]),
    expected: ["'w'", "unsupported dtype 'F8_E4M3'"]),
  Corruption(
    label: "unsupported dtype U32",
    bytes: fileBytes(header: #"{"w":{"dtype":"U32","shape":[2],"data_offsets":[0,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "unsupported dtype 'U32'"]),
  Corruption(
    label: "negative shape",
    bytes: fileBytes(header: #"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "non-negative integers"]),
  Corruption(
    label: "fractional shape",
    bytes: fileBytes(header: #"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "non-negative integers"]),
  Corruption(
    label: "boolean shape", bytes: fileBytes(header: #"{"w":{"dtype":"U8","shape":[true],"data_offsets":[0,1]}}"#, buffer: [0]),
    expected: ["'w'", "non-negative integers"]),
  Corruption(
    label: "three data_offsets",
    bytes: fileBytes(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "[begin, end]"]),
  Corruption(
    label: "begin after end",
    bytes: fileBytes(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "begin <= end"]),
  Corruption(
    label: "end beyond the buffer", bytes: fileBytes(header: "{\"w\":{\(floatEntry)}}", buffer: .init(repeating: 0, count: 4)),
    expected: ["'w'", "beyond the 4-byte data buffer"]),
  Corruption(
    label: "byte count does not match the shape",
    bytes: fileBytes(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "needs 12 bytes", "span 8"]),
  Corruption(
    label: "shape product overflows",
    bytes: fileBytes(
      header: #"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
      buffer: .init(repeating: 0, count: 8)),
    expected: ["'w'", "too many"]),
  Corruption(
    label: "overlapping tensors",
    bytes: fileBytes(
      header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
      buffer: .init(repeating: 0, count: 12)),
    expected: ["'b'", "overlaps tensor 'a'"]),
  Corruption(
    label: "hole between tensors",
    bytes: fileBytes(
      header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
      buffer: .init(repeating: 0, count: 12)),
    expected: ["hole before tensor 'b'", "bytes 4..<8"]),
  Corruption(
    label: "trailing bytes no tensor covers",
    bytes: fileBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, buffer: .init(repeating: 0, count: 8)),
    expected: ["bytes 4..<8", "belong to no tensor"]),
  Corruption(
    label: "metadata value not a string", bytes: fileBytes(header: #"{"__metadata__":{"k":1}}"#),
    expected: ["'__metadata__'", "'k'"]),
  Corruption(
    label: "metadata not an object", bytes: fileBytes(header: #"{"__metadata__":[]}"#),
    expected: ["'__metadata__'", "not a JSON object"]),
]

@Suite("SafeTensors corrupt files")
struct SafeTensorsCorruptionTests {
  @Test("a corrupt file is a TorchError naming the file and the problem", arguments: corruptions)
  func corrupt(_ corruption: Corruption) throws {
    let directory = try TemporaryDirectory()
    let path = try directory.write(corruption.bytes, to: "corrupt.safetensors")
    let error = #expect(throws: TorchError.self) { try SafeTensorsFile(path: path) }
    let message = error?.message ?? ""
    #expect(message.contains(path), "message names the file: \(message)")
    for fragment in corruption.expected {
      #expect(message.contains(fragment), "message mentions \(fragment): \(message)")
    }
  }

  @Test("a missing file and a directory are errors naming the path")
  func notAFile() throws {
    let directory = try TemporaryDirectory()
    let missing = directory.file("missing.safetensors")
    let error = #expect(throws: TorchError.self) { try SafeTensors.load(missing) }
    #expect(error?.message.contains(missing) == true)
    let notRegular = #expect(throws: TorchError.self) { try SafeTensorsFile(path: directory.path) }
    #expect(notRegular?.message.contains(directory.path) == true)
  }
}

// MARK: - Leaks

/// Serialized so its two tests do not overlap; tests of other suites still may, so the checks
/// tolerate their handles (the growth a leak would cause is far larger).
@Suite("SafeTensors leaks", .serialized)
struct SafeTensorsLeakTests {
  @Test("loading and dropping tensors leaks no handle and no mapping")
  func noLeak() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("leak.safetensors")
    try SafeTensors.save(try sampleTensors(), to: path)
    let perCycle = try sampleTensors().count
    let cycles = 300
    let before = Tensor.liveCount
    for _ in 0..<cycles {
      let loaded = try SafeTensors.load(path)
      let sum = try loaded["f32"]!.sum()  // use a view, so a derived tensor is dropped too
      _ = try sum.item()
    }
    let growth = Tensor.liveCount - before
    #expect(growth < cycles * perCycle / 4, "live handles grew by \(growth) over \(cycles) cycles")
    if let count = try mappings(of: path) { #expect(count == 0, "every mapping released") }
  }

  @Test("saving leaks no handle")
  func saveNoLeak() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("save-leak.safetensors")
    let tensors = try sampleTensors()
    let cycles = 100
    let before = Tensor.liveCount
    for _ in 0..<cycles { try SafeTensors.save(tensors, to: path) }
    let growth = Tensor.liveCount - before
    // save makes two temporaries per tensor (to(.cpu), contiguous()).
    #expect(growth < cycles * tensors.count / 4, "live handles grew by \(growth) over \(cycles) saves")
  }
}

// MARK: - Interoperability with the Python package

/// Runs the project venv's Python on `script` with `arguments`; returns stdout.
private func runPython(_ script: String, _ arguments: [String]) throws -> String {
  let python = packageRoot.appendingPathComponent(".venv/bin/python").path
  try #require(
    FileManager.default.isExecutableFile(atPath: python),
    "\(python) not found: run `make bootstrap` to create the project venv (numpy, safetensors)")
  let process = Process()
  process.executableURL = URL(fileURLWithPath: python)
  process.arguments = ["-c", script] + arguments
  process.environment = ["PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"]
  let output = Pipe()
  // stderr goes to a file: two pipes read one after the other can deadlock when both fill.
  let errorLog = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-py-\(UUID().uuidString).log")
  _ = FileManager.default.createFile(atPath: errorLog.path, contents: nil)
  defer { try? FileManager.default.removeItem(at: errorLog) }
  process.standardOutput = output
  process.standardError = try FileHandle(forWritingTo: errorLog)
  try process.run()
  let data = output.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  let stderr = (try? String(contentsOf: errorLog, encoding: .utf8)) ?? ""
  try #require(process.terminationStatus == 0, "python failed (\(process.terminationStatus)):\n\(stderr)")
  return String(decoding: data, as: UTF8.self)
}

/// What the Python side of `writeForPython` reports about our file.
private struct PythonReport: Decodable {
  struct Entry: Decodable {
    let dtype: String
    let shape: [Int]
    let raw: String  // bytes from safetensors.deserialize, hex
    let numpy: String?  // bytes numpy's loader produced, hex (all dtypes but BF16)
    let numpy_shape: [Int]?
    let values: [[Double]]?  // f32 only
  }
  let metadata: [String: String]?
  let tensors: [String: Entry]
}

@Suite("SafeTensors interop with the Python package")
struct SafeTensorsInteropTests {
  @Test("a file written by Python loads with exact values")
  func readPythonFile() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("python.safetensors")
    // Writes the file, then prints one line per tensor: name, dtype, shape, raw bytes in hex.
    let script = """
      import sys, numpy as np
      from safetensors.numpy import save_file
      tensors = {
          "f16": np.array([[0.5, -1.25, 65504.0], [6.1035156e-05, 0.0, -0.0]], dtype=np.float16),
          "i64": np.array([-2**63, 2**63 - 1, 0, -1, 123456789012345], dtype=np.int64),
          "f32": (np.arange(6, dtype=np.float32).reshape(2, 3) / np.float32(7)),
          "f64": np.array([np.pi, -np.e, 1e-310], dtype=np.float64),
          "u8": np.array([0, 255, 7], dtype=np.uint8),
          "i16": np.array([-32768, 32767], dtype=np.int16),
          "b": np.array([[True, False], [False, True]]),
          "scalar": np.array(2.5, dtype=np.float64),
          "empty": np.zeros((0, 4), dtype=np.int32),
      }
      save_file(tensors, sys.argv[1], metadata={"source": "numpy"})
      for name, a in tensors.items():
          print(name, a.dtype.str, ",".join(map(str, a.shape)), a.tobytes().hex())
      """
    let output = try runPython(script, [path])
    let file = try SafeTensorsFile(path: path)
    #expect(file.metadata == ["source": "numpy"])
    let lines = output.split(separator: "\n")
    #expect(lines.count == 9)
    for line in lines {
      let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
      let name = fields[0]
      let tensor = try file.tensor(name)
      #expect(tensor.shape == fields[2].split(separator: ",").map { Int($0)! }, "shape of \(name)")
      #expect(hex(try tensor.bytes()) == fields[3], "bytes of \(name)")
    }
    #expect(try file.tensor("f16").dtype == .float16)
    #expect(try file.tensor("f16").doubles() == [0.5, -1.25, 65504, 6.103515625e-05, 0, 0])
    #expect(try file.tensor("i64").toArray(Int64.self) == [.min, .max, 0, -1, 123_456_789_012_345])
    #expect(try file.tensor("b").toArray(Bool.self) == [true, false, false, true])
    #expect(try file.tensor("scalar").shape == [])
    #expect(try file.tensor("empty").shape == [0, 4])
  }

  @Test("a file we write loads in Python with the same values (bf16 by raw bytes)")
  func writeForPython() throws {
    let directory = try TemporaryDirectory()
    let path = directory.file("swift.safetensors")
    let tensors = try sampleTensors()
    try SafeTensors.save(tensors, to: path, metadata: ["writer": "swift"])
    // numpy's loader for every tensor it has a dtype for; the format-level deserializer for raw
    // bytes of all of them (numpy has no bfloat16).
    let script = """
      import sys, json
      import safetensors
      from safetensors import safe_open
      path = sys.argv[1]
      raw = {name: info for name, info in safetensors.deserialize(open(path, "rb").read())}
      out = {}
      with safe_open(path, framework="numpy") as f:
          meta = f.metadata()
          for name in f.keys():
              entry = {"dtype": raw[name]["dtype"], "shape": list(raw[name]["shape"]), "raw": bytes(raw[name]["data"]).hex()}
              if entry["dtype"] != "BF16":
                  a = f.get_tensor(name)
                  entry["numpy"] = a.tobytes().hex()
                  entry["numpy_shape"] = list(a.shape)
                  if name == "f32":
                      entry["values"] = a.astype("float64").tolist()
              out[name] = entry
      print(json.dumps({"metadata": meta, "tensors": out}))
      """
    let output = try runPython(script, [path])
    // JSONDecoder, not JSONSerialization: on Linux the latter rounds some doubles by an ulp.
    let seen = try JSONDecoder().decode(PythonReport.self, from: Data(output.utf8))
    #expect(seen.metadata == ["writer": "swift"])
    #expect(Set(seen.tensors.keys) == Set(tensors.keys))
    for (name, tensor) in tensors {
      let entry = try #require(seen.tensors[name], "python did not see '\(name)'")
      let bytes = hex(try tensor.bytes())
      #expect(entry.dtype == tensor.dtype.safetensorsCode, "dtype of \(name)")
      #expect(entry.shape == tensor.shape, "shape of \(name)")
      #expect(entry.raw == bytes, "raw bytes of \(name)")
      if tensor.dtype != .bfloat16 {
        #expect(entry.numpy == bytes, "numpy bytes of \(name)")
        #expect(entry.numpy_shape == tensor.shape, "numpy shape of \(name)")
      }
    }
    // Decoded values, beyond the bytes.
    let f32 = try #require(seen.tensors["f32"]?.values)
    #expect(f32.flatMap { $0 } == (try tensors["f32"]!.doubles()))
  }
}
