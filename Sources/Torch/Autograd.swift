import CTorch

extension Tensor {
  /// Whether autograd records operations on this tensor.
  public var requiresGrad: Bool { ct_requires_grad(handle) }

  /// Turns gradient recording on or off for this (leaf) tensor; returns self for chaining.
  @discardableResult
  public func requiresGrad(_ value: Bool) throws -> Tensor {
    try checkStatus("requiresGrad", ct_set_requires_grad(handle, value))
    return self
  }

  /// A tensor sharing storage with this one but cut from the autograd graph.
  public func detach() throws -> Tensor { try .make("detach", ct_detach(handle)) }

  /// Back-propagates from this tensor (a scalar unless `gradient` is given) into the
  /// `.grad` of every leaf that requires grad, accumulating as PyTorch does.
  public func backward(gradient: Tensor? = nil, retainGraph: Bool = false) throws {
    try withExtendedLifetime(gradient) {
      try checkStatus("backward", ct_backward(handle, gradient?.handle, retainGraph))
    }
  }

  /// The accumulated gradient, or nil if none has been computed.
  public var grad: Tensor? {
    get throws {
      guard let g = ct_grad(handle) else {
        if ct_last_error() != nil { throw TorchError.fromShim("grad") }
        return nil
      }
      return Tensor(owning: g)
    }
  }

  /// Drops the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
  public func zeroGrad() throws { try checkStatus("zeroGrad", ct_zero_grad(handle)) }

  /// Replaces the accumulated gradient.
  public func setGrad(_ gradient: Tensor) throws {
    try withExtendedLifetime(gradient) { try checkStatus("setGrad", ct_set_grad(handle, gradient.handle)) }
  }
}

extension Torch {
  /// Runs `body` without recording operations for autograd (`torch.no_grad()`).
  /// The switch is per thread, as in PyTorch; the previous state is restored on exit.
  public static func noGrad<R>(_ body: () throws -> R) rethrows -> R {
    let previous = ct_set_grad_enabled(false)
    defer { _ = ct_set_grad_enabled(previous) }
    return try body()
  }

  /// Runs `body` with gradient recording forced on.
  public static func enableGrad<R>(_ body: () throws -> R) rethrows -> R {
    let previous = ct_set_grad_enabled(true)
    defer { _ = ct_set_grad_enabled(previous) }
    return try body()
  }

  public static var isGradEnabled: Bool { ct_is_grad_enabled() }

  /// Runs `body` with operations whose backward can itself be differentiated (double
  /// backward, `createGraph: true`): attention runs through its math kernel, as the fused CPU
  /// flash-attention kernel has no second derivative. Per thread; restored on exit.
  public static func twiceDifferentiable<R>(_ body: () throws -> R) rethrows -> R {
    let previous = ct_set_sdpa_math_only(true)
    defer { _ = ct_set_sdpa_math_only(previous) }
    return try body()
  }

  /// Gradients of the sum of `outputs` with respect to `inputs` (`torch.autograd.grad`),
  /// nil for an input the outputs do not depend on.
  public static func gradients(
    of outputs: [Tensor], withRespectTo inputs: [Tensor], retainGraph: Bool = false, createGraph: Bool = false
  ) throws -> [Tensor?] {
    var out = [OpaquePointer?](repeating: nil, count: inputs.count)
    try Tensor.withHandles(outputs) { outs, nOut in
      try Tensor.withHandles(inputs) { ins, nIn in
        try out.withUnsafeMutableBufferPointer {
          try checkStatus("gradients", ct_autograd_grad(outs, nOut, ins, nIn, retainGraph, createGraph, $0.baseAddress))
        }
      }
    }
    return out.map { $0.map(Tensor.init(owning:)) }
  }
}

extension Tensor {
  /// Replaces this tensor's data with `source`'s (which may have another dtype or device)
  /// while keeping this object, its leaf status and `requiresGrad` — PyTorch's `.data =`.
  public func setData(_ source: Tensor) throws {
    try withExtendedLifetime(source) { try checkStatus("setData", ct_set_data(handle, source.handle)) }
  }
}
