import CTorch

// Error policy (the one rule for every library in this package):
//
// * Every operation that reaches LibTorch `throws`. The shim catches every C++ exception and
//   leaves its message in a thread-local slot; `Tensor.make` / `checkStatus` read it right
//   after the call and throw `TorchError` with LibTorch's own text. One `try` covers a whole
//   expression (`let y = try (x.matmul(w) + b).gelu()`), so this costs little at call sites.
// * Argument errors found on the Swift side (a wrong rank, an unknown dtype in a file) throw
//   `TorchError` too, never trap, so a bad input cannot take a long run down.
// * Traps are kept for broken invariants of this library itself (a handle the shim returned
//   as NULL without an error message is reported as an error, not trapped, all the same).

/// An error raised by LibTorch or by a Swift-side check, with the operation that failed.
public struct TorchError: Error, CustomStringConvertible, Equatable {
  /// The operation that failed, e.g. `"matmul"` or `"safetensors.load"`.
  public let operation: String
  /// LibTorch's message (without the C++ backtrace) or our own explanation.
  public let message: String

  public init(_ operation: String, _ message: String) {
    self.operation = operation
    self.message = message
  }

  public var description: String { "\(operation): \(message)" }

  /// Builds an error from the shim's thread-local slot.
  package static func fromShim(_ operation: String) -> TorchError {
    let message = ct_last_error().map { String(cString: $0) } ?? "failed without a message"
    return TorchError(operation, message)
  }
}

/// Throws the shim's error when a status-returning call failed.
@inline(__always)
package func checkStatus(_ operation: String, _ status: Int32) throws {
  if status != 0 { throw TorchError.fromShim(operation) }
}
