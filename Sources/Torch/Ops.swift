import CTorch

// Op codes shared with Sources/CTorch/ctorch_ops.cpp (the switch statements there).
enum UnaryOp: Int32 {
  case neg = 0, exp, log, sqrt, rsqrt, abs, sigmoid, tanh, relu, gelu, geluTanh, quickGelu, sin, cos,
    square, reciprocal, logSigmoid, sign, floor, ceil, round, erf, logicalNot, silu, log1p, expm1,
    isnan, isfinite
}

enum BinaryOp: Int32 {
  case add = 0, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, logicalAnd, logicalOr,
    remainder, atan2, floorDivide
}

enum ReduceOp: Int32 {
  case sum = 0, mean, amax, amin, prod, logSumExp, all, any
}

/// Which approximation `gelu` uses (PyTorch's `approximate=` argument).
public enum GeluApproximation: Sendable {
  case none, tanh
}

extension Tensor {
  @inline(__always)
  func unary(_ op: UnaryOp, _ name: String) throws -> Tensor {
    try .make(name, ct_unary(op.rawValue, handle))
  }

  @inline(__always)
  func binary(_ op: BinaryOp, _ other: Tensor, _ name: String) throws -> Tensor {
    try withExtendedLifetime(other) { try .make(name, ct_binary(op.rawValue, handle, other.handle)) }
  }

  @inline(__always)
  func binary(_ op: BinaryOp, _ scalar: Double, _ name: String) throws -> Tensor {
    try .make(name, ct_binary_scalar(op.rawValue, handle, scalar))
  }

  // MARK: Elementwise

  public func neg() throws -> Tensor { try unary(.neg, "neg") }
  public func exp() throws -> Tensor { try unary(.exp, "exp") }
  public func log() throws -> Tensor { try unary(.log, "log") }
  public func sqrt() throws -> Tensor { try unary(.sqrt, "sqrt") }
  public func rsqrt() throws -> Tensor { try unary(.rsqrt, "rsqrt") }
  public func abs() throws -> Tensor { try unary(.abs, "abs") }
  public func sigmoid() throws -> Tensor { try unary(.sigmoid, "sigmoid") }
  public func tanh() throws -> Tensor { try unary(.tanh, "tanh") }
  public func relu() throws -> Tensor { try unary(.relu, "relu") }
  public func gelu(approximate: GeluApproximation = .none) throws -> Tensor {
    approximate == .none ? try unary(.gelu, "gelu") : try unary(.geluTanh, "gelu")
  }
  /// x · sigmoid(1.702 x), the activation of OpenAI's CLIP.
  public func quickGelu() throws -> Tensor { try unary(.quickGelu, "quickGelu") }
  public func silu() throws -> Tensor { try unary(.silu, "silu") }
  public func sin() throws -> Tensor { try unary(.sin, "sin") }
  public func cos() throws -> Tensor { try unary(.cos, "cos") }
  public func square() throws -> Tensor { try unary(.square, "square") }
  public func reciprocal() throws -> Tensor { try unary(.reciprocal, "reciprocal") }
  public func logSigmoid() throws -> Tensor { try unary(.logSigmoid, "logSigmoid") }
  public func sign() throws -> Tensor { try unary(.sign, "sign") }
  public func floor() throws -> Tensor { try unary(.floor, "floor") }
  public func ceil() throws -> Tensor { try unary(.ceil, "ceil") }
  public func round() throws -> Tensor { try unary(.round, "round") }
  public func erf() throws -> Tensor { try unary(.erf, "erf") }
  public func log1p() throws -> Tensor { try unary(.log1p, "log1p") }
  public func expm1() throws -> Tensor { try unary(.expm1, "expm1") }
  public func logicalNot() throws -> Tensor { try unary(.logicalNot, "logicalNot") }
  public func isNaN() throws -> Tensor { try unary(.isnan, "isNaN") }
  public func isFinite() throws -> Tensor { try unary(.isfinite, "isFinite") }

  public func pow(_ exponent: Tensor) throws -> Tensor { try binary(.pow, exponent, "pow") }
  public func pow(_ exponent: Double) throws -> Tensor { try binary(.pow, exponent, "pow") }
  public func maximum(_ other: Tensor) throws -> Tensor { try binary(.maximum, other, "maximum") }
  public func minimum(_ other: Tensor) throws -> Tensor { try binary(.minimum, other, "minimum") }
  public func remainder(_ other: Tensor) throws -> Tensor { try binary(.remainder, other, "remainder") }
  public func remainder(_ other: Double) throws -> Tensor { try binary(.remainder, other, "remainder") }
  public func atan2(_ other: Tensor) throws -> Tensor { try binary(.atan2, other, "atan2") }
  public func floorDivide(_ other: Tensor) throws -> Tensor { try binary(.floorDivide, other, "floorDivide") }
  public func floorDivide(_ other: Double) throws -> Tensor { try binary(.floorDivide, other, "floorDivide") }
  public func logicalAnd(_ other: Tensor) throws -> Tensor { try binary(.logicalAnd, other, "logicalAnd") }
  public func logicalOr(_ other: Tensor) throws -> Tensor { try binary(.logicalOr, other, "logicalOr") }

  public func eq(_ other: Tensor) throws -> Tensor { try binary(.eq, other, "eq") }
  public func eq(_ other: Double) throws -> Tensor { try binary(.eq, other, "eq") }
  public func ne(_ other: Tensor) throws -> Tensor { try binary(.ne, other, "ne") }
  public func ne(_ other: Double) throws -> Tensor { try binary(.ne, other, "ne") }
  public func lt(_ other: Tensor) throws -> Tensor { try binary(.lt, other, "lt") }
  public func lt(_ other: Double) throws -> Tensor { try binary(.lt, other, "lt") }
  public func le(_ other: Tensor) throws -> Tensor { try binary(.le, other, "le") }
  public func le(_ other: Double) throws -> Tensor { try binary(.le, other, "le") }
  public func gt(_ other: Tensor) throws -> Tensor { try binary(.gt, other, "gt") }
  public func gt(_ other: Double) throws -> Tensor { try binary(.gt, other, "gt") }
  public func ge(_ other: Tensor) throws -> Tensor { try binary(.ge, other, "ge") }
  public func ge(_ other: Double) throws -> Tensor { try binary(.ge, other, "ge") }

  /// Limits values to [min, max]; either bound may be omitted.
  public func clamp(min: Double? = nil, max: Double? = nil) throws -> Tensor {
    try .make("clamp", ct_clamp(handle, min ?? 0, max ?? 0, min != nil, max != nil))
  }

  /// Elements of `a` where `condition` is true, else of `b`.
  public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
    try make("where", ct_where(condition.handle, a.handle, b.handle))
  }

  /// `value` where `mask` is true.
  public func maskedFill(_ mask: Tensor, _ value: Double) throws -> Tensor {
    try withExtendedLifetime(mask) { try .make("maskedFill", ct_masked_fill(handle, mask.handle, value)) }
  }

  /// self + weight · (end − self).
  public func lerp(_ end: Tensor, weight: Double) throws -> Tensor {
    try withExtendedLifetime(end) { try .make("lerp", ct_lerp(handle, end.handle, weight)) }
  }

  // MARK: Operators (one `try` covers a whole expression)

  public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.add, b, "add") }
  public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.sub, b, "sub") }
  public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.mul, b, "mul") }
  public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.div, b, "div") }
  public static func + (a: Tensor, b: Double) throws -> Tensor { try a.binary(.add, b, "add") }
  public static func - (a: Tensor, b: Double) throws -> Tensor { try a.binary(.sub, b, "sub") }
  public static func * (a: Tensor, b: Double) throws -> Tensor { try a.binary(.mul, b, "mul") }
  public static func / (a: Tensor, b: Double) throws -> Tensor { try a.binary(.div, b, "div") }
  public static func + (a: Double, b: Tensor) throws -> Tensor { try make("add", ct_scalar_binary(0, a, b.handle)) }
  public static func - (a: Double, b: Tensor) throws -> Tensor { try make("sub", ct_scalar_binary(1, a, b.handle)) }
  public static func * (a: Double, b: Tensor) throws -> Tensor { try make("mul", ct_scalar_binary(2, a, b.handle)) }
  public static func / (a: Double, b: Tensor) throws -> Tensor { try make("div", ct_scalar_binary(3, a, b.handle)) }
  public static prefix func - (a: Tensor) throws -> Tensor { try a.neg() }

  // MARK: In place (optimizers, accumulators; not recorded by autograd when under noGrad)

  public func addInPlace(_ other: Tensor, alpha: Double = 1) throws {
    try withExtendedLifetime(other) { try checkStatus("addInPlace", ct_inplace_binary(0, handle, other.handle, alpha)) }
  }
  public func subInPlace(_ other: Tensor, alpha: Double = 1) throws {
    try withExtendedLifetime(other) { try checkStatus("subInPlace", ct_inplace_binary(1, handle, other.handle, alpha)) }
  }
  public func mulInPlace(_ other: Tensor) throws {
    try withExtendedLifetime(other) { try checkStatus("mulInPlace", ct_inplace_binary(2, handle, other.handle, 1)) }
  }
  public func divInPlace(_ other: Tensor) throws {
    try withExtendedLifetime(other) { try checkStatus("divInPlace", ct_inplace_binary(3, handle, other.handle, 1)) }
  }
  /// Copies `source`'s values into this tensor (broadcasting, converting dtype and device).
  public func copy(from source: Tensor) throws {
    try withExtendedLifetime(source) { try checkStatus("copy", ct_inplace_binary(100, handle, source.handle, 1)) }
  }
  public func addInPlace(_ scalar: Double) throws { try checkStatus("addInPlace", ct_inplace_scalar(0, handle, scalar)) }
  public func mulInPlace(_ scalar: Double) throws { try checkStatus("mulInPlace", ct_inplace_scalar(2, handle, scalar)) }
  public func fill(_ value: Double) throws { try checkStatus("fill", ct_inplace_scalar(100, handle, value)) }
  public func zero() throws { try checkStatus("zero", ct_inplace_scalar(101, handle, 0)) }

  // MARK: Reductions (empty `dims` = every dimension)

  @inline(__always)
  func reduce(_ op: ReduceOp, _ dims: [Int], _ keepDim: Bool, _ name: String) throws -> Tensor {
    let d = dims.map(Int64.init)
    return try d.withUnsafeBufferPointer {
      try .make(name, ct_reduce(op.rawValue, handle, $0.baseAddress, Int32(d.count), keepDim))
    }
  }

  public func sum(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.sum, dims, keepDim, "sum") }
  public func sum(dim: Int, keepDim: Bool = false) throws -> Tensor { try reduce(.sum, [dim], keepDim, "sum") }
  public func mean(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.mean, dims, keepDim, "mean") }
  public func mean(dim: Int, keepDim: Bool = false) throws -> Tensor { try reduce(.mean, [dim], keepDim, "mean") }
  public func amax(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.amax, dims, keepDim, "amax") }
  public func amin(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.amin, dims, keepDim, "amin") }
  public func prod(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.prod, dims, keepDim, "prod") }
  public func logSumExp(dims: [Int], keepDim: Bool = false) throws -> Tensor {
    try reduce(.logSumExp, dims, keepDim, "logSumExp")
  }
  public func all(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.all, dims, keepDim, "all") }
  public func any(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.any, dims, keepDim, "any") }

  /// The vector p-norm over `dims` (all elements when empty), as `torch.linalg.vector_norm`.
  public func norm(p: Double = 2, dims: [Int] = [], keepDim: Bool = false) throws -> Tensor {
    let d = dims.map(Int64.init)
    return try d.withUnsafeBufferPointer { try .make("norm", ct_norm(handle, p, $0.baseAddress, Int32(d.count), keepDim)) }
  }

  /// Variance with Bessel's correction by default (`correction: 1`), as `torch.var`.
  public func variance(dims: [Int] = [], correction: Int = 1, keepDim: Bool = false) throws -> Tensor {
    let d = dims.map(Int64.init)
    return try d.withUnsafeBufferPointer {
      try .make("variance", ct_var(handle, $0.baseAddress, Int32(d.count), Int64(correction), keepDim))
    }
  }

  public func std(dims: [Int] = [], correction: Int = 1, keepDim: Bool = false) throws -> Tensor {
    try variance(dims: dims, correction: correction, keepDim: keepDim).sqrt()
  }

  public func argmax(dim: Int, keepDim: Bool = false) throws -> Tensor {
    try .make("argmax", ct_arg_reduce(0, handle, Int64(dim), keepDim))
  }
  public func argmin(dim: Int, keepDim: Bool = false) throws -> Tensor {
    try .make("argmin", ct_arg_reduce(1, handle, Int64(dim), keepDim))
  }
  public func cumsum(dim: Int) throws -> Tensor { try .make("cumsum", ct_cumsum(handle, Int64(dim))) }

  /// Largest values along `dim` and their indices.
  public func max(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: Tensor) {
    try pair("max") { ct_max_dim(handle, Int64(dim), keepDim, false, $0, $1) }
  }
  public func min(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: Tensor) {
    try pair("min") { ct_max_dim(handle, Int64(dim), keepDim, true, $0, $1) }
  }

  // MARK: Matrix products and softmax

  public func matmul(_ other: Tensor) throws -> Tensor {
    try withExtendedLifetime(other) { try .make("matmul", ct_matmul(handle, other.handle)) }
  }

  public func softmax(dim: Int) throws -> Tensor { try .make("softmax", ct_softmax(handle, Int64(dim))) }
  public func logSoftmax(dim: Int) throws -> Tensor { try .make("logSoftmax", ct_log_softmax(handle, Int64(dim))) }

  /// `torch.einsum`.
  public static func einsum(_ equation: String, _ operands: [Tensor]) throws -> Tensor {
    let handles = operands.map { $0.handle as OpaquePointer? }
    return try withExtendedLifetime(operands) {
      try handles.withUnsafeBufferPointer { try make("einsum", ct_einsum(equation, $0.baseAddress, Int32(handles.count))) }
    }
  }

  // MARK: Sorting and selection

  /// The k largest (or smallest) values along `dim`, and their indices.
  public func topk(_ k: Int, dim: Int = -1, largest: Bool = true, sorted: Bool = true) throws -> (values: Tensor, indices: Tensor)
  {
    try pair("topk") { ct_topk(handle, Int64(k), Int64(dim), largest, sorted, $0, $1) }
  }

  public func sort(dim: Int = -1, descending: Bool = false, stable: Bool = false) throws -> (values: Tensor, indices: Tensor) {
    try pair("sort") { ct_sort(handle, Int64(dim), descending, stable, $0, $1) }
  }

  public func argsort(dim: Int = -1, descending: Bool = false, stable: Bool = false) throws -> Tensor {
    try sort(dim: dim, descending: descending, stable: stable).indices
  }

  private func pair(
    _ name: String, _ body: (UnsafeMutablePointer<OpaquePointer?>, UnsafeMutablePointer<OpaquePointer?>) -> Int32
  ) throws -> (values: Tensor, indices: Tensor) {
    var values: OpaquePointer?
    var indices: OpaquePointer?
    try checkStatus(name, body(&values, &indices))
    return (try .make(name, values), try .make(name, indices))
  }
}
