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
