import Evaluation
import Foundation
import Models
import TestSupport
import Testing
import Torch

/// `Fixtures/flops.json`, written by scripts/fixtures/flops.py (fvcore on Hugging Face models).
struct FlopsFixture: Decodable {
  struct Preset: Decodable {
    var image: FlopBreakdown
    var caption: FlopBreakdown
    var sequenceLength: Int
    var parameters: [String: Int]
    enum CodingKeys: String, CodingKey { case image, caption, sequenceLength = "sequence_length", parameters }
  }
  var presets: [String: Preset]

  static func load() throws -> FlopsFixture {
    let url = URL(fileURLWithPath: "\(packageRoot)/Tests/EvaluationTests/Fixtures/flops.json")
    return try JSONDecoder().decode(FlopsFixture.self, from: Data(contentsOf: url))
  }
}

@Suite("Efficiency: parameters, FLOPs, timing")
struct EfficiencyTests {
  @Test("FLOPs of every preset equal fvcore's count of the Hugging Face model, operator by operator")
  func flopsMatchFvcore() throws {
    let fixture = try FlopsFixture.load()
    #expect(Set(fixture.presets.keys) == Set(Presets.all.keys))
    for (name, expected) in fixture.presets.sorted(by: { $0.key < $1.key }) {
      let config = try #require(Presets.all[name])
      #expect(FlopCounter.image(config) == expected.image, "\(name) image")
      #expect(FlopCounter.caption(config, sequenceLength: expected.sequenceLength) == expected.caption, "\(name) caption")
    }
    // The published figure for CLIP ViT-B/16 at 224 px: 17.6 GFLOPs (fvcore's convention).
    #expect(FlopCounter.image(Presets.vitB16).total == 17_582_369_280)
  }

  @Test("FLOPs by hand for a small ViT and text tower, and their dependence on the input size")
  func flopsByHand() {
    let vision = CLIPVisionConfig(
      hiddenSize: 128, intermediateSize: 512, numHiddenLayers: 4, numAttentionHeads: 4, imageSize: 64, patchSize: 8,
      projectionDim: 256)
    // 64 px, 8 px patches: 64 patches + the class token = 65 tokens.
    let full = FlopCounter.image(vision)
    #expect(full.conv == 64 * 128 * 3 * 8 * 8)
    #expect(full.linear == 4 * 65 * (4 * 128 * 128 + 2 * 128 * 512) + 128 * 256)
    #expect(full.matmul == 4 * 2 * 65 * 65 * 128)
    #expect(full.layerNorm == 5 * 65 * 128 * (1 + 2 * 4) + 5 * 128)
    #expect(full.macs == full.conv + full.linear + full.matmul && full.total == full.macs + full.layerNorm)
    let small = FlopCounter.image(vision, imageSize: 32)  // 16 patches + class token
    #expect(small.conv == 16 * 128 * 3 * 8 * 8 && small.matmul == 4 * 2 * 17 * 17 * 128)

    let text = CLIPTextConfig(
      vocabSize: 49408, hiddenSize: 128, intermediateSize: 512, numHiddenLayers: 4, numAttentionHeads: 4,
      maxPositionEmbeddings: 32,
      projectionDim: 256)
    let caption = FlopCounter.caption(text, sequenceLength: 16)
    #expect(caption.conv == 0 && caption.linear == 4 * 16 * (4 * 128 * 128 + 2 * 128 * 512) + 128 * 256)
    #expect(caption.matmul == 4 * 2 * 16 * 16 * 128 && caption.layerNorm == 5 * 16 * 128 * (2 * 4 + 1))
    #expect(FlopCounter.caption(text) == FlopCounter.caption(text, sequenceLength: 32))
  }

  @Test("parameter counts: the model's, the config's, Hugging Face's and OpenAI's ViT-B/32 agree")
  func parameterCounts() throws {
    let fixture = try FlopsFixture.load()
    for (name, config) in Presets.all {
      let counts = ParameterCounts(config)
      let expected = try #require(fixture.presets[name]?.parameters)
      #expect(counts.vision == expected["vision"] && counts.text == expected["text"], "\(name)")
      #expect(counts.total == counts.vision + counts.text + 1)
    }
    for config in [Presets.tiny, Presets.sceneStudent, Presets.vitB32] {
      let model = try CLIPModel(config)
      #expect(ParameterCounts(model) == ParameterCounts(config))
    }
    #expect(ParameterCounts(Presets.vitB32).total == 151_277_313)
  }

  @Test("timing: warm-up runs untimed, median of the timed runs")
  func timing() throws {
    var calls = 0
    let stats = try Timing.measure(warmup: 2, runs: 3) {
      calls += 1
      Thread.sleep(forTimeInterval: 0.002)
    }
    #expect(calls == 5 && stats.runs == 3)
    #expect(stats.min >= 0.002 && stats.min <= stats.median && stats.median <= stats.max)
    #expect(TimingStats(seconds: [4, 1, 3, 2]).median == 2.5 && TimingStats(seconds: [5, 1, 3]).median == 3)
    #expect(throws: EvaluationError.self) { try Timing.measure(runs: 0) {} }
  }

  @Test("measure a model: latency, throughput, FLOPs, parameters, peak memory; training mode restored")
  func measure() throws {
    let model = try CLIPModel(Presets.tiny)
    model.train()
    let result = try Efficiency.measure(model, options: EfficiencyOptions(warmup: 1, runs: 3, throughputBatchSize: 8))
    #expect(model.isTraining, "the model goes back to training mode")
    #expect(result.device == "cpu" && result.threads == Torch.numThreads && result.parameters == ParameterCounts(model))
    #expect(
      result.flopsPerImage == FlopCounter.image(Presets.tiny) && result.flopsPerCaption == FlopCounter.caption(Presets.tiny))
    #expect(result.captionLength == 77)
    for speed in [result.image, result.text] {
      #expect(speed.latency.runs == 3 && speed.batch.runs == 3 && speed.batchSize == 8)
      #expect(speed.latency.median > 0 && abs(speed.itemsPerSecond - 8 / speed.batch.median) < 1e-9)
    }
    let peak = try #require(result.peakMemory.bytes)
    #expect(peak > 50 << 20, "LibTorch alone takes more than 50 MB")
    #expect(PeakMemory.current(device: .cuda(0)).bytes == nil)
    #expect(throws: EvaluationError.self) { try Efficiency.measure(model, options: EfficiencyOptions(throughputBatchSize: 0)) }
  }

  @Test("speed-up over a teacher: teacher ÷ student for costs, student ÷ teacher for throughput")
  func speedUp() throws {
    // Timings on a shared machine are noise; the arithmetic is checked on set values.
    var student = try Efficiency.measure(
      CLIPModel(Presets.tiny), options: EfficiencyOptions(warmup: 0, runs: 1, throughputBatchSize: 2))
    var teacher = student
    student.image.latency = TimingStats(seconds: [0.01])
    teacher.image.latency = TimingStats(seconds: [0.03])
    student.text.latency = TimingStats(seconds: [0.02])
    teacher.text.latency = TimingStats(seconds: [0.05])
    (student.image.itemsPerSecond, teacher.image.itemsPerSecond) = (600, 150)
    (student.text.itemsPerSecond, teacher.text.itemsPerSecond) = (900, 300)
    teacher.flopsPerImage = FlopBreakdown(conv: 0, linear: 8 * student.flopsPerImage.total, matmul: 0, layerNorm: 0)
    teacher.parameters.total = 5 * student.parameters.total
    let speedUp = student.speedUp(over: teacher)
    #expect(speedUp.imageLatency == 3 && speedUp.textLatency == 2.5)
    #expect(speedUp.imageThroughput == 4 && speedUp.textThroughput == 3)
    #expect(speedUp.imageFlops == 8 && speedUp.captionFlops == 1 && speedUp.parameters == 5)
    student.speedUpOverTeacher = speedUp
    let json = String(decoding: try JSONEncoder().encode(student), as: UTF8.self)
    #expect(
      json.contains("\"speed_up_over_teacher\"") && json.contains("\"flops_per_image\"") && json.contains("\"peak_memory\""))
    #expect(try JSONDecoder().decode(EfficiencyResult.self, from: Data(json.utf8)) == student)
  }
}
