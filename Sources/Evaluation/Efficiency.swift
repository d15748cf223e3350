import Models
import Torch
import TorchNN

/// Parameters of each tower (its projection included) and of the whole model.
public struct ParameterCounts: Codable, Equatable, Sendable {
  public var vision: Int
  public var text: Int
  /// Both towers and the logit scale.
  public var total: Int

  public init(vision: Int, text: Int, total: Int) {
    self.vision = vision
    self.text = text
    self.total = total
  }

  /// Counted on the model's parameters.
  public init(_ model: CLIPModel) {
    vision = model.visionModel.parameterCount() + model.visualProjection.parameterCount()
    text = model.textModel.parameterCount() + model.textProjection.parameterCount()
    total = model.parameterCount()
  }

  /// Derived from a config, without allocating the model (ViT-L/14 is 1.7 GB of float32).
  public init(_ config: CLIPConfig) {
    // A pre-norm block: two LayerNorms, q/k/v/out with biases, the MLP with biases.
    func blocks(_ d: Int, _ i: Int, _ layers: Int) -> Int { layers * (2 * 2 * d + 4 * (d * d + d) + (d * i + i) + (i * d + d)) }
    let v = config.visionConfig
    let t = config.textConfig
    let grid = v.gridSize * v.gridSize
    vision =
      v.hiddenSize * (1 + v.numChannels * v.patchSize * v.patchSize + grid + 1)  // class token, patch conv, positions
      + 2 * 2 * v.hiddenSize + blocks(v.hiddenSize, v.intermediateSize, v.numHiddenLayers)  // pre/post norms, blocks
      + v.hiddenSize * config.projectionDim
    text =
      (t.vocabSize + t.maxPositionEmbeddings) * t.hiddenSize + blocks(t.hiddenSize, t.intermediateSize, t.numHiddenLayers)
      + 2 * t.hiddenSize + t.hiddenSize * config.projectionDim
    total = vision + text + 1  // the logit scale
  }
}

/// How fast one tower encodes: one item at a time, and a batch at a time.
public struct EncoderSpeed: Codable, Equatable, Sendable {
  /// Seconds per call at batch 1.
  public var latency: TimingStats
  /// Seconds per call at `batchSize`.
  public var batch: TimingStats
  public var batchSize: Int
  /// `batchSize / batch.median`.
  public var itemsPerSecond: Double

  enum CodingKeys: String, CodingKey {
    case latency, batch, batchSize = "batch_size", itemsPerSecond = "items_per_second"
  }
}

/// How much faster and smaller a student is than a teacher: teacher ÷ student for costs,
/// student ÷ teacher for throughput, so above 1 always means the student is cheaper.
public struct SpeedUp: Codable, Equatable, Sendable {
  public var imageLatency: Double
  public var textLatency: Double
  public var imageThroughput: Double
  public var textThroughput: Double
  /// From the analytic counts, independent of the machine.
  public var imageFlops: Double
  public var captionFlops: Double
  public var parameters: Double

  enum CodingKeys: String, CodingKey {
    case imageLatency = "image_latency", textLatency = "text_latency", imageThroughput = "image_throughput"
    case textThroughput = "text_throughput", imageFlops = "image_flops", captionFlops = "caption_flops", parameters
  }
}

/// What `Efficiency.measure` does: how many runs, at which batch size.
public struct EfficiencyOptions: Codable, Equatable, Sendable {
  /// Untimed runs before timing.
  public var warmup = 3
  /// Timed runs; the median is reported.
  public var runs = 10
  /// Batch size of the throughput measurement.
  public var throughputBatchSize = 64

  enum CodingKeys: String, CodingKey {
    case warmup, runs, throughputBatchSize = "throughput_batch_size"
  }

  public init(warmup: Int = 3, runs: Int = 10, throughputBatchSize: Int = 64) {
    self.warmup = warmup
    self.runs = runs
    self.throughputBatchSize = throughputBatchSize
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = EfficiencyOptions()
    warmup = try c.decode(.warmup, default: d.warmup)
    runs = try c.decode(.runs, default: d.runs)
    throughputBatchSize = try c.decode(.throughputBatchSize, default: d.throughputBatchSize)
  }
}

/// Size, cost and speed of a model on this machine.
public struct EfficiencyResult: Codable, Equatable, Sendable {
  /// Where it was timed ("cpu", "cuda:0") and with how many CPU threads.
  public var device: String
  public var threads: Int
  public var parameters: ParameterCounts
  /// fvcore-convention FLOPs (see `FlopBreakdown`) of one image and one caption.
  public var flopsPerImage: FlopBreakdown
  public var flopsPerCaption: FlopBreakdown
  /// Tokens per caption in `flopsPerCaption` and the text timings: the full context.
  public var captionLength: Int
  public var image: EncoderSpeed
  public var text: EncoderSpeed
  public var peakMemory: PeakMemory
  /// Filled in by the caller when a teacher was measured too (`speedUp(over:)`).
  public var speedUpOverTeacher: SpeedUp?

  enum CodingKeys: String, CodingKey {
    case device, threads, parameters, flopsPerImage = "flops_per_image", flopsPerCaption = "flops_per_caption"
    case captionLength = "caption_length", image, text, peakMemory = "peak_memory", speedUpOverTeacher = "speed_up_over_teacher"
  }

  /// This model against `teacher` (both measured on the same machine with the same options).
  public func speedUp(over teacher: EfficiencyResult) -> SpeedUp {
    func ratio(_ a: Double, _ b: Double) -> Double { b == 0 ? 0 : a / b }
    return SpeedUp(
      imageLatency: ratio(teacher.image.latency.median, image.latency.median),
      textLatency: ratio(teacher.text.latency.median, text.latency.median),
      imageThroughput: ratio(image.itemsPerSecond, teacher.image.itemsPerSecond),
      textThroughput: ratio(text.itemsPerSecond, teacher.text.itemsPerSecond),
      imageFlops: ratio(Double(teacher.flopsPerImage.total), Double(flopsPerImage.total)),
      captionFlops: ratio(Double(teacher.flopsPerCaption.total), Double(flopsPerCaption.total)),
      parameters: ratio(Double(teacher.parameters.total), Double(parameters.total)))
  }
}

/// Measures a model's size, cost and speed.
///
/// ```swift
/// var student = try Efficiency.measure(studentModel)
/// let teacher = try Efficiency.measure(teacherModel)
/// student.speedUpOverTeacher = student.speedUp(over: teacher)
/// ```
public enum Efficiency {
  /// Times `encodeImage` and `encodeText` (eval mode, no autograd, normalized output) at batch
  /// 1 and at `options.throughputBatchSize` on the model's device, with inputs of the
  /// configured image size and full-context captions, so the timings and FLOPs describe the
  /// same work. Random inputs: the cost of a dense transformer does not depend on the values.
  public static func measure(_ model: CLIPModel, options: EfficiencyOptions = EfficiencyOptions()) throws -> EfficiencyResult {
    guard options.throughputBatchSize >= 1 else { throw EvaluationError("efficiency: throughputBatchSize must be at least 1") }
    let device = model.logitScale.device
    let vision = model.config.visionConfig
    let text = model.config.textConfig
    let length = text.maxPositionEmbeddings
    let generator = try Generator(seed: 0)

    func speed(_ encode: (Int) throws -> () throws -> Void) throws -> EncoderSpeed {
      let latency = try Timing.measure(warmup: options.warmup, runs: options.runs, device: device, encode(1))
      let n = options.throughputBatchSize
      let batch = try Timing.measure(warmup: options.warmup, runs: options.runs, device: device, encode(n))
      return EncoderSpeed(
        latency: latency, batch: batch, batchSize: n, itemsPerSecond: batch.median > 0 ? Double(n) / batch.median : 0)
    }
    let (imageSpeed, textSpeed) = try evaluationMode(model) {
      let images = try speed { n in
        let pixels = try Tensor.randn([n, vision.numChannels, vision.imageSize, vision.imageSize], generator: generator).to(
          device)
        return { _ = try model.encodeImage(pixels, normalize: true) }
      }
      let texts = try speed { n in
        let ids = try Tensor.randint(0, text.vocabSize, [n, length], generator: generator).to(device)
        return { _ = try model.encodeText(ids, normalize: true) }
      }
      return (images, texts)
    }
    return EfficiencyResult(
      device: device.description, threads: Torch.numThreads, parameters: ParameterCounts(model),
      flopsPerImage: FlopCounter.image(vision), flopsPerCaption: FlopCounter.caption(text), captionLength: length,
      image: imageSpeed, text: textSpeed, peakMemory: PeakMemory.current(device: device), speedUpOverTeacher: nil)
  }
}
