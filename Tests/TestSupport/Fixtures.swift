import Foundation
import Torch

/// The package root, found from this file's location (tests run from any directory).
public let packageRoot: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/TestSupport/Fixtures.swift → root
  return url.path
}()

/// Loads `Tests/<target>/Fixtures/<name>.safetensors`, written by scripts/make_fixtures.py.
public func loadFixture(_ target: String, _ name: String) throws -> [String: Tensor] {
  try SafeTensors.load("\(packageRoot)/Tests/\(target)/Fixtures/\(name).safetensors")
}

/// How far `actual` is from `expected`; nil when every element is within
/// |a − e| ≤ atol + rtol·|e| (and shapes and dtypes agree). The message names the worst element.
public func mismatch(_ actual: Tensor, _ expected: Tensor, rtol: Double = 1e-5, atol: Double = 1e-6) throws -> String? {
  if actual.shape != expected.shape { return "shape \(actual.shape) != expected \(expected.shape)" }
  if actual.dtype != expected.dtype { return "dtype \(actual.dtype) != expected \(expected.dtype)" }
  let a = try actual.doubles()
  let e = try expected.doubles()
  var worst: (index: Int, excess: Double)? = nil
  var maxAbs = 0.0
  var maxRel = 0.0
  for i in a.indices {
    if a[i].isNaN != e[i].isNaN { return "NaN mismatch at flat index \(i): \(a[i]) vs \(e[i])" }
    if a[i].isNaN || a[i] == e[i] { continue }
    let diff = Swift.abs(a[i] - e[i])
    maxAbs = max(maxAbs, diff)
    if e[i] != 0 { maxRel = max(maxRel, diff / Swift.abs(e[i])) }
    let excess = diff - (atol + rtol * Swift.abs(e[i]))
    if excess > 0, excess > (worst?.excess ?? 0) { worst = (i, excess) }
  }
  guard let worst else { return nil }
  return
    "element \(worst.index): \(a[worst.index]) vs expected \(e[worst.index]) (max abs diff \(maxAbs), max rel diff \(maxRel))"
}

/// The largest |a − e| over all elements (shapes must match).
public func maxAbsDiff(_ actual: Tensor, _ expected: Tensor) throws -> Double {
  guard actual.shape == expected.shape else {
    throw TorchError("maxAbsDiff", "shape \(actual.shape) != expected \(expected.shape)")
  }
  return try (actual.to(.float64) - expected.to(.float64)).abs().amax().item()
}

/// The project venv's site-packages folder, where the test-time wheels live.
public func sitePackages() throws -> String {
  let lib = "\(packageRoot)/.venv/lib"
  let pythons = (try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? []
  guard let python = pythons.sorted().first(where: { $0.hasPrefix("python") }) else {
    throw TorchError("test", "\(lib): no python folder; run `make bootstrap` first")
  }
  return "\(lib)/\(python)/site-packages"
}

/// Whether the reference Python stack (`make bootstrap-reference`: torch, transformers,
/// open_clip) is installed, for live cross-checks that CI's engine-only venv skips.
public let referenceStackAvailable: Bool = {
  let python = "\(packageRoot)/.venv/bin/python"
  guard FileManager.default.isExecutableFile(atPath: python) else { return false }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: python)
  process.arguments = ["-c", "import torch, transformers, open_clip"]
  process.standardOutput = FileHandle.nullDevice
  process.standardError = FileHandle.nullDevice
  do { try process.run() } catch { return false }
  process.waitUntilExit()
  return process.terminationStatus == 0
}()

/// Runs a Python script with the project venv's interpreter; returns stdout, throws on failure.
public func runPython(_ script: String, arguments: [String] = []) throws -> String {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "\(packageRoot)/.venv/bin/python")
  process.arguments = ["-c", script] + arguments
  let out = Pipe(), err = Pipe()
  process.standardOutput = out
  process.standardError = err
  try process.run()
  let output = out.fileHandleForReading.readDataToEndOfFile()
  let errors = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  guard process.terminationStatus == 0 else {
    throw TorchError("python", String(decoding: errors, as: UTF8.self))
  }
  return String(decoding: output, as: UTF8.self)
}
