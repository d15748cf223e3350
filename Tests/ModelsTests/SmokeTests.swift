import Models
import TestSupport
import Testing
import Torch
import TorchNN

/// Forward + backward; every parameter must receive a finite gradient.
func expectTrainable(_ module: Module, _ loss: Tensor) throws {
  #expect(try loss.isFinite().all().item() == 1, "loss is not finite")
  try loss.backward()
  for (key, p) in module.namedParameters() {
    guard let g = try p.grad else {
      Issue.record("\(key) received no gradient")
      continue
    }
    #expect(try g.isFinite().all().item() == 1, "\(key) has a non-finite gradient")
  }
}

@Suite("Every model trains: forward + backward, no NaN, gradients everywhere")
struct SmokeTests {
  @Test("CLIP dual encoder (tiny preset), contrastive loss over a batch")
  func clip() throws {
    let model = try CLIPModel(Presets.tiny)
    let pixels = try Tensor.randn([3, 3, 32, 32])
    let ids = try Tensor([49406, 320, 49407, 0, 49406, 1929, 530, 49407, 49406, 49407, 0, 0] as [Int64], shape: [3, 4])
    let mask = try ids.ne(0).to(.int64)
    let (perImage, perText) = try model.logits(
      images: model.encodeImage(pixels), texts: model.encodeText(ids, attentionMask: mask))
    let labels = try Tensor.arange(3)
    let loss = try (Functional.crossEntropy(perImage, labels) + Functional.crossEntropy(perText, labels)) / 2
    try expectTrainable(model, loss)
    let vision = try model.visionModel(pixels)
    #expect(try vision.states.count == 3 && vision.states.layer(0).shape == [3, 17, 64])
  }

  @Test("BERT encoder, mean pooling with padding")
  func bert() throws {
    let config = BertConfig(
      vocabSize: 100, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 64, maxPositionEmbeddings: 16)
    let model = try BertModel(config, pooling: .pooler)
    let ids = try Tensor([2, 5, 9, 3, 2, 7, 3, 0] as [Int64], shape: [2, 4])
    let out = try model(ids, attentionMask: ids.ne(0).to(.int64))
    #expect(out.states.count == 3)
    try expectTrainable(model, out.pooled.square().sum() + (try out.lastHiddenState).mean())
  }

  @Test("padding never changes the pooled feature of the real tokens (CLIP text and BERT)")
  func paddingDoesNotLeak() throws {
    let clip = try CLIPModel(Presets.tiny)
    clip.eval()
    let short = try Tensor([49406, 320, 49407] as [Int64], shape: [1, 3])
    let padded = try Tensor([49406, 320, 49407, 0, 0] as [Int64], shape: [1, 5])
    let a = try clip.textModel(short).pooled
    let b = try clip.textModel(padded, attentionMask: padded.ne(0).to(.int64)).pooled
    #expect(try maxAbsDiff(a, b) < 1e-5)
    let config = BertConfig(
      vocabSize: 100, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, intermediateSize: 64, maxPositionEmbeddings: 16)
    let bert = try BertModel(config, pooling: .mean)
    bert.eval()
    let x = try bert(Tensor([2, 5, 3] as [Int64], shape: [1, 3])).pooled
    let y = try bert(
      Tensor([2, 5, 3, 0, 0] as [Int64], shape: [1, 5]), attentionMask: Tensor([1, 1, 1, 0, 0] as [Int64], shape: [1, 5])
    ).pooled
    #expect(try maxAbsDiff(x, y) < 1e-5)
  }

  @Test("length-chunked text encoding gives encodeText's embeddings and gradients")
  func textByLength() throws {
    let model = try CLIPModel(Presets.tiny)
    model.eval()
    // 12 captions of lengths 2…12 in scrambled order, right-padded to 14.
    let lengths = [5, 2, 12, 7, 3, 9, 2, 11, 4, 8, 6, 10]
    var ids: [Int64] = []
    for (row, n) in lengths.enumerated() {
      let words = (1..<(n - 1)).map { Int64(300 + (row * 7 + $0 * 13) % 900) }
      ids += [49406] + words + [49407] + Array(repeating: 0, count: 14 - n)
    }
    let tokens = try Tensor(ids, shape: [12, 14])
    let mask = try tokens.ne(0).to(.int64)
    let reference = try model.encodeText(tokens, attentionMask: mask)
    try reference.square().sum().backward()
    let referenceGrad = try #require(try model.textModel.embeddings.tokenEmbedding.weight.grad).clone()
    for p in model.parameters() { try p.zeroGrad() }
    let chunked = try model.encodeTextByLength(tokens, attentionMask: mask, chunks: 3)
    #expect(try maxAbsDiff(reference, chunked) < 1e-5)
    try chunked.square().sum().backward()
    #expect(try maxAbsDiff(referenceGrad, #require(try model.textModel.embeddings.tokenEmbedding.weight.grad)) < 1e-5)
  }

  @Test(
    "presets have the published parameter counts of OpenAI CLIP",
    arguments: [("vit-b-32", 151_277_313), ("vit-b-16", 149_620_737), ("vit-l-14", 427_616_513)])
  func presetSizes(_ name: String, _ expected: Int) throws {
    // Counted analytically from the config, without allocating the big models.
    let c = Presets.all[name]!
    #expect(parameterCount(c) == expected)
  }
}

/// Parameters of a CLIPModel, computed from its config.
func parameterCount(_ c: CLIPConfig) -> Int {
  func layers(_ d: Int, _ inner: Int, _ n: Int) -> Int { n * (4 * (d * d + d) + 2 * 2 * d + d * inner + inner + inner * d + d) }
  let v = c.visionConfig, t = c.textConfig
  let grid = v.imageSize / v.patchSize
  let vision =
    v.hiddenSize + v.numChannels * v.patchSize * v.patchSize * v.hiddenSize + (grid * grid + 1) * v.hiddenSize
    + 2 * 2 * v.hiddenSize + layers(v.hiddenSize, v.intermediateSize, v.numHiddenLayers)
  let text =
    t.vocabSize * t.hiddenSize + t.maxPositionEmbeddings * t.hiddenSize + 2 * t.hiddenSize
    + layers(t.hiddenSize, t.intermediateSize, t.numHiddenLayers)
  return vision + text + (v.hiddenSize + t.hiddenSize) * c.projectionDim + 1
}
