import Models
import Pyramid
import TestSupport
import Testing
import Torch
import TorchNN

@Suite("Pyramids: levels, resolutions, masking, adapters and bridge")
struct PyramidTests {
  @Test("quarter taps for several depths")
  func taps() throws {
    #expect(PyramidConfig.quarterTaps(depth: 12) == [3, 6, 9, 12])
    #expect(PyramidConfig.quarterTaps(depth: 24) == [6, 12, 18, 24])
    #expect(PyramidConfig.quarterTaps(depth: 2) == [1, 1, 2, 2])
    #expect(throws: PyramidError.self) {
      try PyramidConfig(visionTaps: [1, 2, 3, 13]).taps([1, 2, 3, 13], depth: 12, tower: "vision")
    }
  }

  @Test("phrase windows average real tokens only (hand-derived)")
  func phraseWindows() throws {
    // One text of 5 positions, 3 real (values 1, 2, 4), 2 padded (values 100 that must not leak).
    let x = try Tensor([1, 2, 4, 100, 100] as [Float], shape: [1, 5, 1])
    let mask = try Tensor([1, 1, 1, 0, 0] as [Float], shape: [1, 5])
    let taps = [x, x, x, x]
    let levels = try LanguageHierarchy.levels(
      taps: taps, attentionMask: mask, pooledPositions: Tensor([Int64(2)]), config: PyramidConfig())
    func close(_ a: [Double], _ b: [Double]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { Swift.abs($0 - $1) < 1e-6 } }
    #expect(close(try levels.phrases.doubles(), [7.0 / 3, 3, 4]))  // windows {1,2,4}, {2,4}, {4}
    #expect(try levels.phraseMask.doubles() == [1, 1, 1])
    #expect(close(try levels.sentence.doubles(), [7.0 / 3]))
    #expect(try levels.global.doubles() == [4])  // pooled at position 2
    #expect(try levels.tokens.doubles() == [1, 2, 4, 0, 0])
    let shortMask = try Tensor([1, 0, 0, 0, 0] as [Float], shape: [1, 5])
    let short = try LanguageHierarchy.levels(taps: taps, attentionMask: shortMask, pooledPositions: nil, config: PyramidConfig())
    #expect(try short.phraseMask.doubles() == [1, 0, 0])  // windows without a real token are masked out
    #expect(try short.global.doubles() == [1])  // masked mean when the tower pools by averaging
  }

  @Test("padding never leaks: levels of a padded batch equal those of the unpadded text")
  func paddingInvariance() throws {
    let clip = try CLIPModel(Presets.tiny)
    clip.eval()
    let short = try Tensor([49406, 320, 1929, 530, 49407] as [Int64], shape: [1, 5])
    let padded = try Tensor([49406, 320, 1929, 530, 49407, 0, 0, 0] as [Int64], shape: [1, 8])
    let config = PyramidConfig()
    func levels(_ ids: Tensor, mask: Tensor?) throws -> LanguageLevels {
      let out = try clip.textModel(ids, attentionMask: mask)
      return try LanguageHierarchy.levels(
        taps: LanguageHierarchy.taps(out, config: config), attentionMask: out.attentionMask, pooledPositions: out.pooledPositions,
        config: config)
    }
    let a = try levels(short, mask: nil)
    let b = try levels(padded, mask: padded.ne(0).to(.int64))
    #expect(try maxAbsDiff(a.sentence, b.sentence) < 1e-5)
    #expect(try maxAbsDiff(a.global, b.global) < 1e-5)
    #expect(try maxAbsDiff(a.tokens, b.tokens.narrow(dim: 1, start: 0, length: 5)) < 1e-5)
    #expect(try maxAbsDiff(a.phrases, b.phrases.narrow(dim: 1, start: 0, length: 3)) < 1e-5)
    #expect(try b.tokens.narrow(dim: 1, start: 5, length: 3).abs().amax().item() == 0)
  }

  @Test(
    "seed ladder: resolutions follow image and patch size (B/16 at 224 gives 56, 28, 14)",
    arguments: [(224, 16, 14), (64, 8, 8), (96, 16, 6)])
  func resolutions(_ image: Int, _ patch: Int, _ grid: Int) throws {
    let d = 8
    let state = try Tensor.randn([2, 1 + grid * grid, d])
    let levels = try VisionPyramid.levels(
      taps: [state, state, state, state], grid: (grid, grid), config: PyramidConfig(ladder: .seed))
    #expect(levels.maps.map(\.shape) == [[2, d, 4 * grid, 4 * grid], [2, d, 2 * grid, 2 * grid], [2, d, grid, grid]])
    #expect(levels.global.shape == [2, d])
    _ = (image, patch)
  }

  @Test(
    "native ladder: P2 on the ViT grid g, P3 at ⌈g/2⌉, P4 at ⌈g/4⌉ (B/16 at 224 gives 14, 7, 4)",
    arguments: [(224, 16, 14, 7, 4), (64, 8, 8, 4, 2), (96, 16, 6, 3, 2), (48, 16, 3, 2, 1)])
  func nativeResolutions(_ image: Int, _ patch: Int, _ grid: Int, _ half: Int, _ quarter: Int) throws {
    let d = 8
    let state = try Tensor.randn([2, 1 + grid * grid, d])
    let levels = try VisionPyramid.levels(taps: [state, state, state, state], grid: (grid, grid), config: PyramidConfig())
    #expect(levels.maps.map(\.shape) == [[2, d, grid, grid], [2, d, half, half], [2, d, quarter, quarter]])
    #expect(PyramidConfig().ladder == .native)
    // P2 is the tap's own map; P3 and P4 are its adaptive average pools (hand-checked on P4 of
    // the 3×3 grid: one cell, the mean of all nine patches).
    let map = try state.narrow(dim: 1, start: 1, length: grid * grid).transpose(1, 2).reshape([2, d, grid, grid])
    #expect(try maxAbsDiff(levels.maps[0], map) == 0)
    if grid == 3 {
      #expect(try maxAbsDiff(levels.maps[2].reshape([2, d]), map.mean(dims: [2, 3])) < 1e-6)
    }
    _ = (image, patch)
  }

  @Test("a student on a different grid is resampled to the teacher's level sizes before its adapters")
  func studentResampling() throws {
    let student = try Tensor.randn([2, 1 + 4 * 4, 16])
    let levels = try VisionPyramid.levels(
      taps: [student, student, student, student], grid: (4, 4), targetGrid: (8, 8), config: PyramidConfig(ladder: .seed))
    #expect(levels.maps.map { $0.size(2) } == [32, 16, 8])
    let native = try VisionPyramid.levels(
      taps: [student, student, student, student], grid: (4, 4), targetGrid: (8, 8), config: PyramidConfig())
    #expect(native.maps.map { $0.size(2) } == [8, 4, 2])
    let adapters = try StudentPyramid(studentWidths: (16, 12), teacherWidths: (24, 20))
    let text = try Tensor.randn([2, 6, 12])
    let mask = try Tensor.ones([2, 6])
    let language = try LanguageHierarchy.levels(
      taps: [text, text, text, text], attentionMask: mask, pooledPositions: nil, config: PyramidConfig())
    let (v, l) = try adapters.adapt(vision: levels, language: language)
    #expect(v.maps.map { $0.size(1) } == [24, 24, 24] && v.global.shape == [2, 24])
    #expect(l.tokens.shape == [2, 6, 20] && l.phrases.shape == [2, 4, 20] && l.global.shape == [2, 20])
  }

  @Test("a spatial adapter gives conv 3×3 → GroupNorm → GELU → conv 1×1 on every map size, values and gradients")
  func spatialAdapterRoutes() throws {
    try Torch.manualSeed(23)  // the inputs and tolerance margin do not depend on what ran before
    let adapter = try SpatialAdapter(from: 6, to: 8)
    for size in [3, 2, 1] {
      let x = try Tensor.randn([4, 6, size, size]).requiresGrad(true)
      let fast = try adapter(x)
      let reference = try adapter.out(adapter.norm(adapter.conv(x)).gelu())
      #expect(fast.shape == [4, 8, size, size])
      #expect(try maxAbsDiff(fast, reference) < 1e-5, "map \(size)×\(size)")
      let target = try Tensor.randn([4, 8, size, size])
      let inputs = [x] + adapter.parameters()
      let a = try Torch.gradients(of: [(fast - target).square().sum()], withRespectTo: inputs)
      let b = try Torch.gradients(of: [(reference - target).square().sum()], withRespectTo: inputs)
      for (ga, gb) in zip(a, b) { #expect(try maxAbsDiff(ga!, gb!) < 1e-4, "map \(size)×\(size)") }
    }
  }

  @Test("a linear adapter is a 1×1 conv on maps and a Linear on vectors; padded positions stay 0")
  func linearAdapters() throws {
    let spatial = try LinearAdapter(from: 6, to: 8, spatial: true)
    let x = try Tensor.randn([4, 6, 3, 3])
    let kernel = try spatial.proj.weight.reshape([8, 6, 1, 1])
    let reference = try Functional.conv2d(x, weight: kernel, bias: spatial.proj.bias)
    #expect(try spatial(x).shape == [4, 8, 3, 3])
    #expect(try maxAbsDiff(spatial(x), reference) < 1e-5)
    let vector = try LinearAdapter(from: 12, to: 20, spatial: false)
    let tokens = try Tensor.randn([3, 5, 12])
    let mask = try Tensor([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0] as [Float], shape: [3, 5])
    // By hand: x Wᵀ + b on every real position, 0 on padding.
    let byHand = try (tokens.matmul(vector.proj.weight.t) + vector.proj.bias!) * mask.unsqueeze(2)
    let pyramid = try StudentPyramid(studentWidths: (6, 12), teacherWidths: (8, 20))
    #expect(pyramid.l1 is LinearAdapter && pyramid.p2 is LinearAdapter && PyramidConfig().adapter == .linear, "linear is the default")
    let adapted = try vector.onSequence(tokens, mask: mask)
    #expect(try maxAbsDiff(adapted, byHand) < 1e-5)
    #expect(try adapted.select(dim: 0, index: 2).abs().sum().item() == 0)
    let mlp = try StudentPyramid(studentWidths: (6, 12), teacherWidths: (8, 20), kind: .mlp)
    #expect(mlp.p2 is SpatialAdapter && mlp.p5 is VectorAdapter && mlp.l2 is VectorAdapter)
    #expect(try mlp.parameters().count == 4 * 6 + 4 * 6 && pyramid.parameters().count == 8 * 2)
  }

  @Test("a sequence adapter on the real positions only gives adapter(x) · mask, values and gradients")
  func adapterOnRealPositions() throws {
    let adapter = try VectorAdapter(from: 12, to: 20)
    let x = try Tensor.randn([3, 5, 12]).requiresGrad(true)
    // Rows with 5, 2 and 0 real positions: full, padded, and all padding.
    let mask = try Tensor([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0] as [Float], shape: [3, 5])
    let target = try Tensor.randn([3, 5, 20])
    let packed = try StudentPyramid.onRealPositions(adapter, x, mask: mask)
    let reference = try adapter(x) * mask.unsqueeze(2)
    #expect(packed.shape == [3, 5, 20])
    #expect(try maxAbsDiff(packed, reference) < 1e-6)
    #expect(try packed.select(dim: 0, index: 2).abs().sum().item() == 0)
    let inputs = [x] + adapter.parameters()
    let a = try Torch.gradients(of: [((packed - target).square() * 0.5).sum()], withRespectTo: inputs)
    let b = try Torch.gradients(of: [((reference - target).square() * 0.5).sum()], withRespectTo: inputs)
    for (ga, gb) in zip(a, b) { #expect(try maxAbsDiff(ga!, gb!) < 1e-5) }
  }

  @Test("the teacher bridge maps L4 to exactly the teacher's text embedding; the student bridge starts equal to it")
  func bridge() throws {
    let teacher = try CLIPModel(Presets.tiny)
    teacher.eval()
    let ids = try Tensor([49406, 320, 1929, 49407, 0, 49406, 530, 49407, 0, 0] as [Int64], shape: [2, 5])
    let mask = try ids.ne(0).to(.int64)
    let config = PyramidConfig()
    let text = try teacher.textModel(ids, attentionMask: mask)
    let language = try LanguageHierarchy.levels(
      taps: LanguageHierarchy.taps(text, config: config), attentionMask: mask, pooledPositions: text.pooledPositions,
      config: config)
    let pixels = try Tensor.randn([2, 3, 32, 32])
    let vision = try teacher.visionModel(pixels)
    let visionLevels = try VisionPyramid.levels(
      taps: VisionPyramid.taps(vision, config: config), grid: vision.grid, config: config)
    let frozen = TeacherBridge(teacher)
    let shared = try frozen.shared(vision: visionLevels, language: language)
    #expect(try maxAbsDiff(shared.language[3], teacher.encodeText(ids, attentionMask: mask)) < 1e-5)
    let student = try CrossModalBridge(teacher: frozen)
    let learned = try student.shared(vision: visionLevels, language: language)
    for i in 0..<4 {
      #expect(try maxAbsDiff(learned.vision[i], shared.vision[i]) < 1e-5)
      #expect(try maxAbsDiff(learned.language[i], shared.language[i]) < 1e-5)
    }
    #expect(student.namedParameters().map(\.0).prefix(3) == ["v2l.0.norm.weight", "v2l.0.norm.bias", "v2l.0.proj.weight"])
  }
}
