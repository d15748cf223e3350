import Torch
import TorchNN

/// The similarity-based router of knowledge purification (ICLR'26, SPEC §7): instead of
/// averaging teachers that disagree, each sample is routed to one teacher — the one whose quality
/// is highest on the sample's k nearest neighbours in a fixed embedding (a bank of cached
/// reference samples).
///
/// A building block of `router` (issue 16): the trainer does not take several teachers yet.
public struct SimilarityRouter {
  /// L2-normalised reference embeddings [N, D].
  public let bank: Tensor
  /// Each teacher's quality on each reference sample [T, N] (higher is better).
  public let quality: Tensor
  public let neighbours: Int

  public init(bank: Tensor, quality: Tensor, neighbours: Int) throws {
    guard bank.rank == 2, quality.rank == 2, quality.size(1) == bank.size(0) else {
      throw MethodError("router: the bank is \(bank.shape) and the qualities \(quality.shape); they need [N, D] and [T, N]")
    }
    guard (1...bank.size(0)).contains(neighbours) else {
      throw MethodError("router: neighbours is \(neighbours); it must be between 1 and the bank size \(bank.size(0))")
    }
    self.bank = try Functional.normalize(bank.detach())
    self.quality = try quality.detach()
    self.neighbours = neighbours
  }

  /// For queries [B, D]: each teacher's mean quality over the query's `neighbours` most similar
  /// bank samples (cosine) [B, T], and the chosen teacher per query [B] (the first on ties).
  /// `skipSelf`: a query that is itself in the bank (its own row, the most similar) is left out
  /// of its neighbours, so a sample's own quality does not route it.
  public func route(_ queries: Tensor, skipSelf: Bool = false) throws -> (scores: Tensor, choice: Tensor) {
    try Torch.noGrad {
      let similarity = try Functional.normalize(queries.detach()).matmul(bank.transpose(0, 1))  // [B, N]
      let k = neighbours + (skipSelf ? 1 : 0)
      guard k <= bank.size(0) else {
        throw MethodError("router: \(neighbours) neighbours besides the sample itself need a bank of \(k), it has \(bank.size(0))")
      }
      var indices = try similarity.topk(k, dim: 1).indices  // [B, k], most similar first
      if skipSelf { indices = try indices.narrow(dim: 1, start: 1, length: neighbours) }
      let (b, t) = (queries.size(0), quality.size(0))
      // quality[t, indices[b, j]] for every t: gather along N from [T, B·k].
      let flat = try indices.reshape([1, b * neighbours]).expand([t, b * neighbours])
      let picked = try quality.gather(dim: 1, index: flat).reshape([t, b, neighbours])  // [T, B, k]
      let scores = try picked.mean(dim: 2).transpose(0, 1).contiguous()  // [B, T]
      return (scores, try scores.argmax(dim: 1))
    }
  }
}
