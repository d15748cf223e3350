import Torch

/// A tower's output at every layer. In data-parallel training (`CLIPModel.dataParallel`) it
/// holds this process's rows and gathers a layer from every process only when it is read, once:
/// a loss that reads 4 of 13 layers moves those 4 (at ViT-B/16, batch 256, gathering them all
/// would be about 2.5 GB a step). Every process reads the same layers in the same order, as
/// collectives require, because every process runs the same loss code.
public final class LayerStates {
  let local: [Tensor]
  let group: ProcessGroup?
  private var gathered: [Int: Tensor] = [:]

  /// Whole-batch states (one process).
  public init(_ states: [Tensor]) {
    local = states
    group = nil
  }

  /// This process's rows of each layer, gathered from `group` on read.
  public init(local: [Tensor], group: ProcessGroup) {
    self.local = local
    self.group = group
  }

  public var count: Int { local.count }

  /// Layer `index` (0 = the embeddings) over the whole batch.
  public func layer(_ index: Int) throws -> Tensor {
    guard local.indices.contains(index) else {
      throw TorchError("LayerStates", "layer \(index) of \(local.count) (0 = the embeddings)")
    }
    guard let group else { return local[index] }
    if let done = gathered[index] { return done }
    let all = try group.allGather(local[index])
    gathered[index] = all
    return all
  }

  /// Every layer over the whole batch.
  public func all() throws -> [Tensor] { try local.indices.map { try layer($0) } }
}
