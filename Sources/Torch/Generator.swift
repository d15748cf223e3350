import CTorch

/// A seeded random-number stream, independent of the global one.
///
/// ```swift
/// let g = try Generator(seed: 42)
/// let a = try Tensor.randn([3], generator: g)
/// ```
public final class Generator {
  package let handle: OpaquePointer

  public init(seed: UInt64) throws {
    guard let handle = ct_generator_new(seed) else { throw TorchError.fromShim("Generator") }
    self.handle = handle
  }

  deinit { ct_generator_free(handle) }

  /// The full state (a uint8 tensor), for checkpoints.
  public func state() throws -> Tensor { try .make("Generator.state", ct_generator_get_state(handle)) }

  public func setState(_ state: Tensor) throws {
    try checkStatus("Generator.setState", ct_generator_set_state(handle, state.handle))
  }
}

/// Process-wide settings of the engine.
public enum Torch {
  /// Seeds LibTorch's default CPU generator (dropout, `randn` without a generator).
  public static func manualSeed(_ seed: UInt64) throws {
    try checkStatus("manualSeed", ct_manual_seed(seed))
  }

  /// The default CPU generator's state, for checkpoints.
  public static func defaultGeneratorState() throws -> Tensor {
    try .make("defaultGeneratorState", ct_generator_get_state(nil))
  }

  public static func setDefaultGeneratorState(_ state: Tensor) throws {
    try checkStatus("setDefaultGeneratorState", ct_generator_set_state(nil, state.handle))
  }

  /// Whether LibTorch uses only deterministic algorithms (`torch.use_deterministic_algorithms`):
  /// bit-identical GPU runs, at some speed; an op with no deterministic kernel then throws,
  /// naming itself. Turning it on also makes cuDNN deterministic (no autotuning) and sets
  /// `CUBLAS_WORKSPACE_CONFIG=:4096:8` unless the environment sets it, which must happen
  /// before the first CUDA matmul. CPU kernels repeat exactly on one machine either way.
  public static func setDeterministic(_ enabled: Bool) throws {
    try checkStatus("setDeterministic", ct_set_deterministic(enabled))
  }

  public static var deterministic: Bool { ct_deterministic() }

  /// Intra-op threads LibTorch uses on CPU.
  public static var numThreads: Int {
    get { Int(ct_get_num_threads()) }
    set { ct_set_num_threads(Int32(newValue)) }
  }

  /// The LibTorch version this binary is linked against, e.g. "2.11.0".
  public static var version: String { String(cString: ct_torch_version()) }

  /// Whether a CUDA device can be used. The first call loads LibTorch's CUDA library if the
  /// CUDA wheels are installed; without them this is simply false.
  public static var cudaAvailable: Bool { CUDAState.available }

  public static var cudaDeviceCount: Int { cudaAvailable ? Int(ct_cuda_device_count()) : 0 }

  /// Why LibTorch's CUDA library did not load (the loader's message, e.g. a missing NVIDIA
  /// library), or nil when it loaded; for error messages.
  public static var cudaLoadError: String? {
    ct_try_load_cuda() == 1 ? nil : ct_last_error().map { String(cString: $0) } ?? "failed without a message"
  }

  /// Why CUDA cannot be used, in words: the library's load error, or that no GPU is visible;
  /// nil when it can.
  public static var cudaUnavailableReason: String? {
    if cudaAvailable { return nil }
    if let error = cudaLoadError { return "LibTorch's CUDA library did not load: \(error)" }
    return "no GPU is visible (LibTorch's CUDA library loaded)"
  }

  /// Waits for queued CUDA work (for timing).
  public static func synchronize(_ device: Device) throws {
    if case .cuda(let i) = device { try checkStatus("synchronize", ct_cuda_synchronize(Int32(i))) }
  }

  /// The first CUDA device when there is one, else the CPU.
  public static var defaultDevice: Device { cudaAvailable ? .cuda(0) : .cpu }
}

private enum CUDAState {
  // Asked once per process (the shim loads libtorch_cuda.so first); a static let is
  // initialised lazily and thread-safely.
  static let available: Bool = ct_cuda_is_available()
}
