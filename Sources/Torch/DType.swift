import CTorch

/// Element types. Raw values are c10::ScalarType codes, which the shim passes straight through.
public enum DType: Int32, CaseIterable, Sendable, CustomStringConvertible {
  case uint8 = 0
  case int8 = 1
  case int16 = 2
  case int32 = 3
  case int64 = 4
  case float16 = 5
  case float32 = 6
  case float64 = 7
  case bool = 11
  case bfloat16 = 15

  /// Bytes per element.
  public var byteSize: Int {
    switch self {
    case .uint8, .int8, .bool: 1
    case .int16, .float16, .bfloat16: 2
    case .int32, .float32: 4
    case .int64, .float64: 8
    }
  }

  public var isFloatingPoint: Bool {
    switch self {
    case .float16, .float32, .float64, .bfloat16: true
    default: false
    }
  }

  public var description: String {
    switch self {
    case .uint8: "uint8"
    case .int8: "int8"
    case .int16: "int16"
    case .int32: "int32"
    case .int64: "int64"
    case .float16: "float16"
    case .float32: "float32"
    case .float64: "float64"
    case .bool: "bool"
    case .bfloat16: "bfloat16"
    }
  }
}

/// Where a tensor lives.
public enum Device: Equatable, Hashable, Sendable, CustomStringConvertible {
  case cpu
  /// A CUDA device by index.
  case cuda(Int)

  package var code: (type: Int32, index: Int32) {
    switch self {
    case .cpu: (0, -1)
    case .cuda(let i): (1, Int32(i))
    }
  }

  package init(type: Int32, index: Int32) {
    self = type == 1 ? .cuda(Int(max(index, 0))) : .cpu
  }

  public var isCUDA: Bool { if case .cuda = self { true } else { false } }

  public var description: String {
    switch self {
    case .cpu: "cpu"
    case .cuda(let i): "cuda:\(i)"
    }
  }

  /// Parses `cpu`, `cuda`, `cuda:N` (as PyTorch spells devices).
  public init(parsing text: String) throws {
    switch text {
    case "cpu": self = .cpu
    case "cuda": self = .cuda(0)
    default:
      if text.hasPrefix("cuda:"), let i = Int(text.dropFirst(5)), i >= 0 {
        self = .cuda(i)
      } else {
        throw TorchError("device", "unknown device '\(text)' (expected cpu, cuda or cuda:N)")
      }
    }
  }
}

/// Swift scalar types that map to a tensor dtype.
public protocol TensorElement {
  static var dtype: DType { get }
}
extension Float: TensorElement { public static var dtype: DType { .float32 } }
extension Double: TensorElement { public static var dtype: DType { .float64 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension Int16: TensorElement { public static var dtype: DType { .int16 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }
