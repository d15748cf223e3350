import CTorch

extension Torch {
  /// Runs `body` under LibTorch autocast on `device`'s type: matmuls, linears, convolutions and
  /// attention run in `dtype` (bfloat16 or float16), numerically sensitive ops in float32.
  /// `dtype` nil runs `body` unchanged. Weights and their gradients keep their own dtype.
  ///
  /// Softmaxes and the loss functions of `Functional` return float32 for reduced-precision
  /// inputs (the shim upcasts them), so losses built from them are float32.
  public static func autocast<R>(_ device: Device, dtype: DType?, _ body: () throws -> R) throws -> R {
    guard let dtype else { return try body() }
    guard dtype == .bfloat16 || dtype == .float16 else {
      throw TorchError("autocast", "autocast runs in bfloat16 or float16, not \(dtype)")
    }
    let type: Int32 = device.isCUDA ? 1 : 0
    let previous = ct_autocast_enabled(type)
    try checkStatus("autocast", ct_autocast_set(type, true, dtype.rawValue))
    defer { _ = ct_autocast_set(type, previous, dtype.rawValue) }
    return try body()
  }

  /// Whether autocast is on for `device`'s type.
  public static func autocastEnabled(_ device: Device) -> Bool { ct_autocast_enabled(device.isCUDA ? 1 : 0) }
}
