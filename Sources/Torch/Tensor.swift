import CTorch

/// An n-dimensional array on a device, backed by a LibTorch tensor.
///
/// A `Tensor` owns one LibTorch handle and releases it in `deinit`. Handles are never
/// shared between two `Tensor` objects; a second view of the same storage comes from an
/// operation (`view`, `detach`, …) or from `shallowClone()`.
///
/// ```swift
/// let x = try Tensor.randn([2, 3])
/// let y = try (x * 2 + 1).relu()
/// print(try y.sum().item())
/// ```
public final class Tensor {
  /// The owned handle. Valid as long as this object is alive: any call that passes it to
  /// the shim must keep `self` alive across the call (methods do, since `self` is
  /// guaranteed for their duration; free code uses `withExtendedLifetime`).
  package let handle: OpaquePointer

  package init(owning handle: OpaquePointer) {
    self.handle = handle
  }

  deinit { ct_free(handle) }

  /// Wraps the handle a shim call returned, or throws the shim's error.
  @inline(__always)
  package static func make(_ operation: String, _ handle: OpaquePointer?) throws -> Tensor {
    guard let handle else { throw TorchError.fromShim(operation) }
    return Tensor(owning: handle)
  }

  /// Handles currently alive (created and not yet released) across the whole process.
  public static var liveCount: Int { Int(ct_live_tensors()) }

  /// Handles created minus handles released on the calling thread (for leak checks in
  /// synchronous code that other threads' work cannot disturb).
  public static var liveCountOnThisThread: Int { Int(ct_thread_live_delta()) }

  /// A second tensor object sharing this one's storage and autograd history.
  public func shallowClone() throws -> Tensor { try .make("shallowClone", ct_shallow_clone(handle)) }

  // MARK: Properties

  public var rank: Int { Int(ct_dim(handle)) }

  public var shape: [Int] {
    let n = rank
    if n == 0 { return [] }
    var sizes = [Int64](repeating: 0, count: n)
    _ = ct_sizes(handle, &sizes)
    return sizes.map(Int.init)
  }

  public var strides: [Int] {
    let n = rank
    if n == 0 { return [] }
    var values = [Int64](repeating: 0, count: n)
    _ = ct_strides(handle, &values)
    return values.map(Int.init)
  }

  /// The size of one dimension; negative indices count from the end.
  public func size(_ dim: Int) -> Int {
    let s = shape
    return s[dim < 0 ? dim + s.count : dim]
  }

  public var count: Int { Int(ct_numel(handle)) }
  public var dtype: DType {
    let code = ct_dtype(handle)
    // No public operation creates a dtype outside `DType` (complex, float8, …), so an unknown
    // code is a bug in this library: a broken invariant, the one case the error policy traps.
    guard let dtype = DType(rawValue: code) else {
      preconditionFailure("tensor has c10::ScalarType \(code), which DType does not model")
    }
    return dtype
  }
  public var isContiguous: Bool { ct_is_contiguous(handle) }

  public var device: Device {
    var type: Int32 = 0
    var index: Int32 = -1
    _ = ct_device(handle, &type, &index)
    return Device(type: type, index: index)
  }

  // MARK: Values out

  /// The value of a one-element tensor as a Double.
  public func item() throws -> Double {
    var value = 0.0
    try checkStatus("item", ct_item_double(handle, &value))
    return value
  }

  /// The value of a one-element integral tensor.
  public func itemInt() throws -> Int {
    var value: Int64 = 0
    try checkStatus("item", ct_item_int64(handle, &value))
    return Int(value)
  }

  /// Copies the elements, in row-major order, into a Swift array. The tensor's dtype must
  /// be `T.dtype` (convert first with `to(_:)`).
  public func toArray<T: TensorElement>(_: T.Type = T.self) throws -> [T] {
    guard dtype == T.dtype else {
      throw TorchError("toArray", "tensor is \(dtype), asked for \(T.dtype); convert with .to(.\(T.dtype)) first")
    }
    let n = count
    if n == 0 { return [] }
    return try [T](unsafeUninitializedCapacity: n) { buffer, initialized in
      try checkStatus("toArray", ct_copy_to_host(handle, buffer.baseAddress, n * T.dtype.byteSize))
      initialized = n
    }
  }

  /// Elements as Double whatever the dtype (for tests, printing and metrics).
  public func doubles() throws -> [Double] {
    try to(.float64).toArray(Double.self)
  }

  /// The raw bytes of the contiguous tensor (safetensors writing).
  public func bytes() throws -> [UInt8] {
    let n = count * dtype.byteSize
    if n == 0 { return [] }
    return try [UInt8](unsafeUninitializedCapacity: n) { buffer, initialized in
      try checkStatus("bytes", ct_copy_to_host(handle, buffer.baseAddress, n))
      initialized = n
    }
  }

  // MARK: Conversion

  public func to(_ dtype: DType) throws -> Tensor {
    let d = device.code
    return try .make("to", ct_to(handle, dtype.rawValue, d.type, d.index, false))
  }

  public func to(_ device: Device) throws -> Tensor {
    let d = device.code
    return try .make("to", ct_to(handle, dtype.rawValue, d.type, d.index, false))
  }

  public func to(_ device: Device, _ dtype: DType) throws -> Tensor {
    let d = device.code
    return try .make("to", ct_to(handle, dtype.rawValue, d.type, d.index, false))
  }

  public func contiguous() throws -> Tensor { try .make("contiguous", ct_contiguous(handle)) }
  public func clone() throws -> Tensor { try .make("clone", ct_clone(handle)) }
}

// MARK: - Creation

extension Tensor {
  private static func create(
    _ operation: String, _ shape: [Int],
    _ body: (UnsafePointer<Int64>?, Int32) -> OpaquePointer?
  ) throws -> Tensor {
    let dims = shape.map(Int64.init)
    return try dims.withUnsafeBufferPointer { try make(operation, body($0.baseAddress, Int32(dims.count))) }
  }

  public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
    let d = device.code
    return try create("zeros", shape) { ct_zeros($0, $1, dtype.rawValue, d.type, d.index) }
  }

  public static func ones(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
    let d = device.code
    return try create("ones", shape) { ct_ones($0, $1, dtype.rawValue, d.type, d.index) }
  }

  public static func empty(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
    let d = device.code
    return try create("empty", shape) { ct_empty($0, $1, dtype.rawValue, d.type, d.index) }
  }

  public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
    let d = device.code
    return try create("full", shape) { ct_full($0, $1, value, dtype.rawValue, d.type, d.index) }
  }

  /// A zero-dimensional tensor holding `value`.
  public static func scalar(_ value: Double, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
    try full([], value, dtype: dtype, device: device)
  }

  /// Standard normal samples; pass a `Generator` for a reproducible stream of its own.
  public static func randn(
    _ shape: [Int], dtype: DType = .float32, device: Device = .cpu, generator: Generator? = nil
  ) throws -> Tensor {
    let d = device.code
    return try withExtendedLifetime(generator) {
      try create("randn", shape) { ct_randn($0, $1, dtype.rawValue, d.type, d.index, generator?.handle) }
    }
  }

  /// Uniform samples in [0, 1).
  public static func rand(
    _ shape: [Int], dtype: DType = .float32, device: Device = .cpu, generator: Generator? = nil
  ) throws -> Tensor {
    let d = device.code
    return try withExtendedLifetime(generator) {
      try create("rand", shape) { ct_rand($0, $1, dtype.rawValue, d.type, d.index, generator?.handle) }
    }
  }

  /// Integers uniform in [low, high), int64.
  public static func randint(
    _ low: Int, _ high: Int, _ shape: [Int], device: Device = .cpu, generator: Generator? = nil
  ) throws -> Tensor {
    let d = device.code
    return try withExtendedLifetime(generator) {
      try create("randint", shape) { ct_randint(Int64(low), Int64(high), $0, $1, d.type, d.index, generator?.handle) }
    }
  }

  /// A random permutation of 0..<n, int64.
  public static func randperm(_ n: Int, device: Device = .cpu, generator: Generator? = nil) throws -> Tensor {
    let d = device.code
    return try withExtendedLifetime(generator) {
      try make("randperm", ct_randperm(Int64(n), d.type, d.index, generator?.handle))
    }
  }

  public static func arange(
    _ start: Double, _ end: Double, step: Double = 1, dtype: DType = .int64, device: Device = .cpu
  ) throws -> Tensor {
    let d = device.code
    return try make("arange", ct_arange(start, end, step, dtype.rawValue, d.type, d.index))
  }

  /// 0, 1, …, end - 1 as int64.
  public static func arange(_ end: Int, device: Device = .cpu) throws -> Tensor {
    try arange(0, Double(end), dtype: .int64, device: device)
  }

  public static func linspace(
    _ start: Double, _ end: Double, steps: Int, dtype: DType = .float32, device: Device = .cpu
  ) throws -> Tensor {
    let d = device.code
    return try make("linspace", ct_linspace(start, end, Int64(steps), dtype.rawValue, d.type, d.index))
  }

  public static func eye(_ n: Int, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
    let d = device.code
    return try make("eye", ct_eye(Int64(n), dtype.rawValue, d.type, d.index))
  }

  /// A CPU tensor holding a copy of `values`, laid out row-major in `shape`
  /// (default: one dimension of `values.count`).
  public convenience init<T: TensorElement>(_ values: [T], shape: [Int]? = nil) throws {
    let shape = shape ?? [values.count]
    let expected = shape.reduce(1, *)
    guard expected == values.count else {
      throw TorchError("Tensor(values:shape:)", "\(values.count) values do not fill shape \(shape) (\(expected) elements)")
    }
    let dims = shape.map(Int64.init)
    let handle = values.withUnsafeBytes { bytes in
      dims.withUnsafeBufferPointer {
        ct_from_data(bytes.baseAddress, bytes.count, $0.baseAddress, Int32(dims.count), T.dtype.rawValue)
      }
    }
    guard let handle else { throw TorchError.fromShim("Tensor(values:shape:)") }
    self.init(owning: handle)
  }

  /// A tensor of `dtype` from raw little-endian bytes (safetensors reading).
  public static func fromBytes(_ bytes: UnsafeRawBufferPointer, shape: [Int], dtype: DType) throws -> Tensor {
    let dims = shape.map(Int64.init)
    return try dims.withUnsafeBufferPointer {
      try make("fromBytes", ct_from_data(bytes.baseAddress, bytes.count, $0.baseAddress, Int32(dims.count), dtype.rawValue))
    }
  }
}

// MARK: - Description

extension Tensor: CustomStringConvertible {
  public var description: String {
    var text = "Tensor(shape: \(shape), dtype: \(dtype), device: \(device)"
    if count <= 16, let values = try? doubles() {
      text += ", values: \(values)"
    }
    if requiresGrad { text += ", requiresGrad" }
    return text + ")"
  }
}

extension Tensor {
  /// Zeros with this tensor's shape, dtype and device.
  public func zerosLike() throws -> Tensor { try .zeros(shape, dtype: dtype, device: device) }
  /// Ones with this tensor's shape, dtype and device.
  public func onesLike() throws -> Tensor { try .ones(shape, dtype: dtype, device: device) }
}
