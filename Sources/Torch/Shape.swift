import CTorch

extension Tensor {
  @inline(__always)
  func withDims(_ name: String, _ dims: [Int], _ body: (UnsafePointer<Int64>?, Int32) -> OpaquePointer?) throws -> Tensor {
    let d = dims.map(Int64.init)
    return try d.withUnsafeBufferPointer { try .make(name, body($0.baseAddress, Int32(d.count))) }
  }

  /// A tensor with the same elements in `shape` (one entry may be -1); copies only if needed.
  public func reshape(_ shape: [Int]) throws -> Tensor { try withDims("reshape", shape) { ct_reshape(handle, $0, $1) } }
  /// Like `reshape` but never copies; fails on incompatible strides.
  public func view(_ shape: [Int]) throws -> Tensor { try withDims("view", shape) { ct_view(handle, $0, $1) } }
  public func permute(_ dims: [Int]) throws -> Tensor { try withDims("permute", dims) { ct_permute(handle, $0, $1) } }
  public func expand(_ shape: [Int]) throws -> Tensor { try withDims("expand", shape) { ct_expand(handle, $0, $1) } }
  public func `repeat`(_ repeats: [Int]) throws -> Tensor { try withDims("repeat", repeats) { ct_repeat(handle, $0, $1) } }
  public func flip(_ dims: [Int]) throws -> Tensor { try withDims("flip", dims) { ct_flip(handle, $0, $1) } }

  public func transpose(_ dim0: Int, _ dim1: Int) throws -> Tensor {
    try .make("transpose", ct_transpose(handle, Int64(dim0), Int64(dim1)))
  }
  /// The matrix transpose of a 2-D tensor.
  public var t: Tensor { get throws { try transpose(0, 1) } }

  public func squeeze(_ dim: Int) throws -> Tensor { try .make("squeeze", ct_squeeze(handle, Int64(dim))) }
  public func unsqueeze(_ dim: Int) throws -> Tensor { try .make("unsqueeze", ct_unsqueeze(handle, Int64(dim))) }
  public func flatten(start: Int = 0, end: Int = -1) throws -> Tensor {
    try .make("flatten", ct_flatten(handle, Int64(start), Int64(end)))
  }

  public func narrow(dim: Int, start: Int, length: Int) throws -> Tensor {
    try .make("narrow", ct_narrow(handle, Int64(dim), Int64(start), Int64(length)))
  }
  /// Elements start..<end (clamped, negative indices from the end) with a step, along `dim`.
  public func slice(dim: Int, start: Int = 0, end: Int = Int.max, step: Int = 1) throws -> Tensor {
    try .make("slice", ct_slice(handle, Int64(dim), Int64(start), Int64(end), Int64(step)))
  }
  /// The sub-tensor at `index` along `dim`, with that dimension removed.
  public func select(dim: Int, index: Int) throws -> Tensor {
    try .make("select", ct_select(handle, Int64(dim), Int64(index)))
  }
  public func indexSelect(dim: Int, index: Tensor) throws -> Tensor {
    try withExtendedLifetime(index) { try .make("indexSelect", ct_index_select(handle, Int64(dim), index.handle)) }
  }
  public func gather(dim: Int, index: Tensor) throws -> Tensor {
    try withExtendedLifetime(index) { try .make("gather", ct_gather(handle, Int64(dim), index.handle)) }
  }
  public func scatterAdd(dim: Int, index: Tensor, source: Tensor) throws -> Tensor {
    try withExtendedLifetime((index, source)) {
      try .make("scatterAdd", ct_scatter_add(handle, Int64(dim), index.handle, source.handle))
    }
  }
  /// The elements where `mask` is true, flattened (`x[mask]`).
  public func masked(_ mask: Tensor) throws -> Tensor {
    try withExtendedLifetime(mask) { try .make("masked", ct_index_bool(handle, mask.handle)) }
  }
  /// The indices of the nonzero elements, [N, dim] (int64), in row-major order (`torch.nonzero`).
  public func nonzero() throws -> Tensor { try .make("nonzero", ct_nonzero(handle)) }
  /// A copy with the slices at `index` along `dim` replaced by `source`'s (`torch.index_copy`):
  /// the inverse of `indexSelect(dim:index:)`, differentiable in both tensors.
  public func indexCopy(dim: Int, index: Tensor, source: Tensor) throws -> Tensor {
    try withExtendedLifetime((index, source)) {
      try .make("indexCopy", ct_index_copy(handle, Int64(dim), index.handle, source.handle))
    }
  }

  public func tril(_ diagonal: Int = 0) throws -> Tensor { try .make("tril", ct_tril(handle, Int64(diagonal))) }
  public func triu(_ diagonal: Int = 0) throws -> Tensor { try .make("triu", ct_triu(handle, Int64(diagonal))) }
  public func diagonal(offset: Int = 0, dim0: Int = 0, dim1: Int = 1) throws -> Tensor {
    try .make("diagonal", ct_diagonal(handle, Int64(offset), Int64(dim0), Int64(dim1)))
  }

  public static func cat(_ tensors: [Tensor], dim: Int = 0) throws -> Tensor {
    try withHandles(tensors) { try make("cat", ct_cat($0, $1, Int64(dim))) }
  }
  public static func stack(_ tensors: [Tensor], dim: Int = 0) throws -> Tensor {
    try withHandles(tensors) { try make("stack", ct_stack($0, $1, Int64(dim))) }
  }

  /// Splits into `chunks` pieces (the last may be smaller) along `dim`.
  public func chunk(_ chunks: Int, dim: Int = 0) throws -> [Tensor] {
    try pieces("chunk", max: chunks) { ct_chunk(handle, Int64(chunks), Int64(dim), $0, $1) }
  }
  /// Splits into pieces of `size` along `dim` (the last may be smaller).
  public func split(size: Int, dim: Int = 0) throws -> [Tensor] {
    let n = (self.size(dim) + size - 1) / Swift.max(size, 1)
    return try pieces("split", max: Swift.max(n, 1)) { ct_split(handle, Int64(size), Int64(dim), $0, $1) }
  }

  private func pieces(_ name: String, max: Int, _ body: (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Int32) throws -> [Tensor]
  {
    var out = [OpaquePointer?](repeating: nil, count: max)
    let n = out.withUnsafeMutableBufferPointer { body($0.baseAddress!, Int32(max)) }
    if n < 0 { throw TorchError.fromShim(name) }
    return try out[..<Int(n)].map { try .make(name, $0) }
  }

  /// Runs `body` with a C array of the tensors' handles, keeping the tensors alive.
  package static func withHandles<R>(_ tensors: [Tensor], _ body: (UnsafePointer<OpaquePointer?>?, Int32) throws -> R) throws -> R
  {
    let handles = tensors.map { $0.handle as OpaquePointer? }
    return try withExtendedLifetime(tensors) {
      try handles.withUnsafeBufferPointer { try body($0.baseAddress, Int32(handles.count)) }
    }
  }
}
