import TestSupport
import Testing
import Torch
import TorchNN

/// Swift versions of the torch.nn.functional cases in Fixtures/functional.safetensors.
func functionalCases() -> [String: CaseBody] {
  typealias F = Functional
  var c: [String: CaseBody] = [:]
  c["linear"] = { [try F.linear($0[0], weight: $0[1], bias: $0[2])] }
  c["linear_nobias"] = { [try F.linear($0[0], weight: $0[1])] }
  c["layer_norm"] = { [try F.layerNorm($0[0], normalizedShape: [4], weight: $0[1], bias: $0[2], eps: 1e-5)] }
  c["layer_norm_2d"] = { [try F.layerNorm($0[0], normalizedShape: [3, 4], eps: 1e-6)] }
  c["group_norm"] = { [try F.groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2])] }
  c["sdpa"] = { [try F.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2])] }
  c["sdpa_bool_mask"] = { [try F.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], mask: $0[3])] }
  c["sdpa_float_mask"] = { [try F.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], mask: $0[3])] }
  c["sdpa_causal_scale"] = {
    [try F.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], isCausal: true, scale: 0.3)]
  }
  c["conv2d"] = { [try F.conv2d($0[0], weight: $0[1], bias: $0[2], stride: (2, 2), padding: (1, 1))] }
  c["conv2d_groups_dilation"] = { [try F.conv2d($0[0], weight: $0[1], padding: (2, 1), dilation: (2, 1), groups: 2)] }
  c["avg_pool1d"] = { [try F.avgPool1d($0[0], kernel: 3, stride: 2, padding: 1)] }
  c["avg_pool2d"] = { [try F.avgPool2d($0[0], kernel: (2, 3), stride: (2, 2), padding: (1, 1), countIncludePad: false)] }
  c["adaptive_avg_pool1d"] = { [try F.adaptiveAvgPool1d($0[0], outputSize: 4)] }
  c["adaptive_avg_pool2d"] = { [try F.adaptiveAvgPool2d($0[0], outputSize: (4, 3))] }
  c["max_pool2d"] = { [try F.maxPool2d($0[0], kernel: (3, 3), stride: (2, 2), padding: (1, 1))] }
  c["interp_nearest"] = { [try F.interpolate($0[0], size: (5, 13), mode: .nearest)] }
  c["interp_bilinear"] = { [try F.interpolate($0[0], size: (14, 6), mode: .bilinear)] }
  c["interp_bilinear_ac"] = { [try F.interpolate($0[0], size: (14, 6), mode: .bilinear, alignCorners: true)] }
  c["interp_bicubic"] = { [try F.interpolate($0[0], size: (4, 4), mode: .bicubic)] }
  c["interp_bicubic_aa"] = { [try F.interpolate($0[0], size: (4, 4), mode: .bicubic, antialias: true)] }
  c["embedding"] = { [try F.embedding($0[1], weight: $0[0])] }
  c["normalize"] = { [try F.normalize($0[0], dim: -1)] }
  c["normalize_p1"] = { [try F.normalize($0[0], p: 1, dim: 1)] }
  c["cosine_similarity"] = { [try F.cosineSimilarity($0[0], $0[1], dim: 1)] }
  c["one_hot"] = { [try F.oneHot($0[0], classes: 6)] }
  c["cross_entropy"] = { [try F.crossEntropy($0[0], $0[1])] }
  c["cross_entropy_smooth_sum"] = { [try F.crossEntropy($0[0], $0[1], reduction: .sum, labelSmoothing: 0.1)] }
  c["cross_entropy_ignore_none"] = { [try F.crossEntropy($0[0], $0[1], reduction: .none, ignoreIndex: 2)] }
  c["cross_entropy_probs"] = { [try F.crossEntropy($0[0], $0[1])] }
  c["kl_div_batchmean"] = { [try F.klDiv($0[0], $0[1], reduction: .batchMean)] }
  c["kl_div_log_target_sum"] = { [try F.klDiv($0[0], $0[1], reduction: .sum, logTarget: true)] }
  c["kl_div_none"] = { [try F.klDiv($0[0], $0[1], reduction: .none)] }
  c["mse"] = { [try F.mseLoss($0[0], $0[1])] }
  c["mse_sum"] = { [try F.mseLoss($0[0], $0[1], reduction: .sum)] }
  c["mse_none"] = { [try F.mseLoss($0[0], $0[1], reduction: .none)] }
  c["smooth_l1"] = { [try F.smoothL1Loss($0[0], $0[1], beta: 0.5)] }
  c["bce_logits"] = { [try F.binaryCrossEntropyWithLogits($0[0], $0[1])] }
  c["composite"] = { [try F.crossEntropy($0[0].matmul($0[1]).gelu().softmax(dim: -1).log(), $0[2])] }
  return c
}

@Suite("Functional matches torch.nn.functional")
struct FunctionalParityTests {
  @Test("every case in functional.safetensors: forward and gradients within 1e-5 relative")
  func functionalMatchesPyTorch() throws {
    let fixture = try loadFixture("TorchNNTests", "functional")
    let failures = runCases(fixture, functionalCases())
    #expect(failures.isEmpty, "\(failures.count) functional cases differ:\n\(failures.joined(separator: "\n"))")
  }

  @Test("dropout with the same global seed drops the same elements as PyTorch")
  func dropoutSeed() throws {
    let fixture = try loadFixture("TorchNNTests", "functional")
    try Torch.manualSeed(7)
    let y = try Functional.dropout(Tensor.ones([4, 8]), p: 0.5, training: true)
    #expect(try mismatch(y, fixture["random/dropout_seed7"]!, rtol: 0, atol: 0) == nil)
  }
}
