import CTorch
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// One process's membership of a data-parallel job: LibTorch's c10d with a Gloo backend over a
/// TCPStore rendezvous (CUDA tensors are staged through host memory).
///
/// ```swift
/// if let group = try ProcessGroup.fromEnvironment() {     // RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
///   try group.allReduceSum(gradients)                    // Σ over ranks, in place
///   let everyone = try group.allGather(embeddings)       // [W·B, D], differentiable
/// }
/// ```
///
/// Every collective must be called by every rank in the same order. A rank that dies or never
/// arrives makes the others fail after `timeout` instead of hanging (the launcher also stops
/// the whole job when one worker exits with an error).
public final class ProcessGroup: @unchecked Sendable {
  public let rank: Int
  public let worldSize: Int
  /// torchrun's LOCAL_RANK: which of this machine's GPUs a rank uses.
  public let localRank: Int
  let handle: OpaquePointer

  /// Joins the group; rank 0 listens on `host:port`.
  public init(host: String, port: Int, rank: Int, worldSize: Int, localRank: Int? = nil, timeout: Double = 1800) throws {
    guard worldSize >= 1, (0..<worldSize).contains(rank) else {
      throw TorchError("ProcessGroup", "rank \(rank) is not in 0..<\(worldSize)")
    }
    guard (1...65535).contains(port) else { throw TorchError("ProcessGroup", "MASTER_PORT \(port) is not a TCP port") }
    guard let handle = ct_pg_new(host, Int32(port), Int32(rank), Int32(worldSize), timeout) else {
      throw TorchError.fromShim("ProcessGroup(rank \(rank) of \(worldSize) at \(host):\(port))")
    }
    self.handle = handle
    self.rank = rank
    self.worldSize = worldSize
    self.localRank = localRank ?? rank
  }

  deinit { ct_pg_free(handle) }

  /// The group torchrun (or `cmapkd launch`) describes in the environment: RANK, WORLD_SIZE,
  /// MASTER_ADDR (default 127.0.0.1), MASTER_PORT (default 29500), LOCAL_RANK. nil when
  /// WORLD_SIZE is unset or 1: a single process needs no group.
  public static func fromEnvironment(
    _ environment: [String: String] = ProcessInfo.processInfo.environment, timeout: Double = 1800
  ) throws -> ProcessGroup? {
    func integer(_ key: String) throws -> Int? {
      guard let text = environment[key], !text.isEmpty else { return nil }
      guard let value = Int(text) else { throw TorchError("ProcessGroup", "environment variable \(key)='\(text)' is not an integer") }
      return value
    }
    guard let world = try integer("WORLD_SIZE"), world > 1 else { return nil }
    guard let rank = try integer("RANK") else {
      throw TorchError("ProcessGroup", "WORLD_SIZE=\(world) but RANK is unset (start workers with `cmapkd launch` or torchrun)")
    }
    return try ProcessGroup(
      host: environment["MASTER_ADDR"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1", port: try integer("MASTER_PORT") ?? 29500,
      rank: rank, worldSize: world, localRank: try integer("LOCAL_RANK"), timeout: timeout)
  }

  /// Σ over ranks, in place, no autograd: flattened into buckets of at most `bucketBytes`,
  /// all started before the first is awaited.
  public func allReduceSum(_ tensors: [Tensor], bucketBytes: Int = 25 << 20) throws {
    guard !tensors.isEmpty else { return }
    try Tensor.withHandles(tensors) { handles, n in
      try checkStatus("allReduceSum", ct_pg_allreduce_sum(handle, handles, n, Int64(bucketBytes)))
    }
  }

  /// Overwrites every tensor with rank `root`'s values.
  public func broadcast(_ tensors: [Tensor], root: Int = 0) throws {
    guard !tensors.isEmpty else { return }
    try Tensor.withHandles(tensors) { handles, n in
      try checkStatus("broadcast", ct_pg_broadcast(handle, handles, n, Int32(root)))
    }
  }

  /// Returns when every rank has called it (fails after the timeout if one never does).
  public func barrier() throws { try checkStatus("barrier", ct_pg_barrier(handle)) }

  /// Every rank's `x` concatenated along dim 0, in rank order; every rank's `x` must have the
  /// same shape. Differentiable: the gradient reaching `x` is the sum over ranks of the
  /// gradients of the gathered rows that are this rank's (each rank computes its loss on the
  /// gathered batch, so Σ_r L_r is what the averaged parameter gradients descend).
  public func allGather(_ x: Tensor) throws -> Tensor { try .make("allGather", ct_pg_all_gather(handle, x.handle)) }

  /// Σ over ranks; differentiable (its backward is the same sum), also twice.
  public func allReduceSum(_ x: Tensor) throws -> Tensor { try .make("allReduceSum", ct_pg_all_reduce_sum(handle, x.handle)) }

  /// This rank's contiguous share of `rows` rows: [rank·rows/W, (rank+1)·rows/W).
  public func share(ofRows rows: Int) throws -> Range<Int> {
    guard rows % worldSize == 0 else {
      throw TorchError("ProcessGroup", "\(rows) rows do not split evenly over \(worldSize) processes")
    }
    let each = rows / worldSize
    return (rank * each)..<((rank + 1) * each)
  }

  /// This rank's rows of a tensor that holds the whole (global) batch.
  public func localRows(_ x: Tensor) throws -> Tensor {
    let range = try share(ofRows: x.size(0))
    return try x.narrow(dim: 0, start: range.lowerBound, length: range.count)
  }

  /// Asks Linux to SIGKILL this process when its parent dies (a launched worker and its launcher).
  public static func dieWithParent() { _ = ct_die_with_parent() }

  /// A TCP port nothing listens on now (the kernel's choice of a free one).
  public static func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TorchError("ProcessGroup", "cannot open a socket to find a free port") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TorchError("ProcessGroup", "cannot bind a socket to find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}
