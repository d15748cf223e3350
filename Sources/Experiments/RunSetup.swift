import Data
import Distillation
import Foundation
import Models
import Pyramid
import Tokenizers
import Torch

/// Resolves the pieces a run is made of from its config: model configs, tokenizer, datasets,
/// preprocessing, weights. Every failure names the config key or the file.
public enum RunSetup {
  /// A model's architecture from its section: a preset by name or a Hugging Face config.json.
  public static func modelConfig(_ section: ModelSection, key: String) throws -> CLIPConfig {
    if let path = section.config {
      guard FileManager.default.fileExists(atPath: path) else { throw ConfigError("\(key).config: file not found: \(path)") }
      return try Checkpoint.readConfig(CLIPConfig.self, at: path)
    }
    // A Hugging Face model folder as the checkpoint brings its architecture (over `preset`).
    if let folder = section.checkpoint, isHuggingFaceFolder(folder) {
      return try Checkpoint.readConfig(CLIPConfig.self, at: "\(folder)/config.json")
    }
    guard let name = section.preset else { throw ConfigError("\(key): give a preset or a config file") }
    guard let config = Presets.all[name] else {
      throw ConfigError(
        "\(key).preset: unknown preset '\(name)'; choose one of: \(Presets.all.keys.sorted().joined(separator: ", "))")
    }
    return config
  }

  /// open_clip's BPE vocabulary: the configured file, else `$CMAPKD_VOCABULARY` (the bundle's
  /// launcher sets it), else the one in the project venv.
  public static func vocabularyPath(_ configured: String?) throws -> String {
    if let configured {
      guard FileManager.default.fileExists(atPath: configured) else {
        throw ConfigError("data.vocabulary: file not found: \(configured)")
      }
      return configured
    }
    if let env = ProcessInfo.processInfo.environment["CMAPKD_VOCABULARY"], !env.isEmpty {
      guard FileManager.default.fileExists(atPath: env) else {
        throw ConfigError("CMAPKD_VOCABULARY: file not found: \(env)")
      }
      return env
    }
    var roots = [FileManager.default.currentDirectoryPath]
    if let env = ProcessInfo.processInfo.environment["CMAPKD_ROOT"] { roots.insert(env, at: 0) }
    for root in roots {
      let lib = "\(root)/.venv/lib"
      for python in ((try? FileManager.default.contentsOfDirectory(atPath: lib)) ?? []).sorted() where python.hasPrefix("python")
      {
        let candidate = "\(lib)/\(python)/site-packages/open_clip/bpe_simple_vocab_16e6.txt.gz"
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
      }
    }
    throw ConfigError(
      "data.vocabulary: no CLIP BPE vocabulary found; set data.vocabulary to open_clip's bpe_simple_vocab_16e6.txt.gz, or point teacher.checkpoint at a Hugging Face folder with vocab.json and merges.txt (`make bootstrap` installs open_clip's file into the checkout's .venv)"
    )
  }

  /// The run's tokenizer: `data.vocabulary` (open_clip's BPE file) when set, else the
  /// teacher's Hugging Face folder's `vocab.json` + `merges.txt` when it has them, else
  /// open_clip's file from `$CMAPKD_VOCABULARY` or the project venv.
  public static func tokenizer(_ data: DataSection, model: CLIPConfig, teacher: ModelSection? = nil) throws -> CLIPTokenizer {
    if data.vocabulary == nil, let files = huggingFaceTokenizer(teacher?.checkpoint) {
      return try CLIPTokenizer(
        vocabJSON: files.vocab, merges: files.merges, contextLength: model.textConfig.maxPositionEmbeddings, padding: .zero)
    }
    return try CLIPTokenizer(
      openCLIPVocabularyAt: try vocabularyPath(data.vocabulary), contextLength: model.textConfig.maxPositionEmbeddings)
  }

  /// A Hugging Face model folder: `config.json` and weights, not one of our checkpoints.
  static func isHuggingFaceFolder(_ path: String) -> Bool {
    let fm = FileManager.default
    return fm.fileExists(atPath: "\(path)/config.json") && !fm.fileExists(atPath: "\(path)/meta.json")
      && (fm.fileExists(atPath: "\(path)/model.safetensors") || fm.fileExists(atPath: "\(path)/pytorch_model.bin"))
  }

  /// The `vocab.json` and `merges.txt` of a Hugging Face folder, when it has both.
  static func huggingFaceTokenizer(_ folder: String?) -> (vocab: String, merges: String)? {
    guard let folder else { return nil }
    let (vocab, merges) = ("\(folder)/vocab.json", "\(folder)/merges.txt")
    let fm = FileManager.default
    return fm.fileExists(atPath: vocab) && fm.fileExists(atPath: merges) ? (vocab, merges) : nil
  }

  /// A split of the configured data (the embedded benchmark unless `data.dataset` is set).
  public static func dataset(_ data: DataSection, splits: [String]) throws -> any ImageTextDataset {
    let dataset: any ImageTextDataset
    if var files = data.dataset {
      files.splits = splits
      dataset = try files.load()
    } else {
      guard splits.count == 1, let split = SceneSplit(rawValue: splits[0]) else {
        throw ConfigError("data: the embedded benchmark has the splits train, val and test, not \(splits)")
      }
      dataset = try ScenesDataset(data.scenes, split: split)
    }
    guard dataset.count > 0 else { throw ConfigError("data: split \(splits.joined(separator: "+")) of \(dataset.name) is empty") }
    return dataset
  }

  /// CLIP preprocessing at the model's input size, with the configured training augmentation.
  /// Up to `count` training images that have two captions or more, each with its first two
  /// captions (evaluation preprocessing): `iva`'s layer probe. nil when no image has two.
  public static func captionProbe(
    _ dataset: any ImageTextDataset, tokenizer: any TextTokenizer, preprocessor: ImagePreprocessor, count: Int, device: Device
  ) throws -> CaptionProbe? {
    var images: [Tensor] = []
    var captions: [[String]] = [[], []]
    var index = 0
    while images.count < count, index < dataset.count {
      let texts = dataset.captions(at: index)
      if texts.count >= 2 {
        images.append(try preprocessor.tensor(preprocessor.evaluationImage(dataset.loadImage(at: index))))
        captions[0].append(texts[0])
        captions[1].append(texts[1])
      }
      index += 1
    }
    guard !images.isEmpty else { return nil }
    return CaptionProbe(
      pixels: try Tensor.stack(images).to(device),
      captions: try captions.map { texts in
        let batch = try tokenizer.encodeBatch(texts)
        let shape = [batch.count, batch.contextLength]
        return (try Tensor(batch.ids, shape: shape).to(device), try Tensor(batch.attentionMask, shape: shape).to(device))
      })
  }

  /// Every teacher's L2-normalised image and text embeddings of `count` training pairs spread
  /// evenly over the dataset (evaluation preprocessing, each image's first caption).
  public static func teacherSample(
    teachers: [CLIPModel], dataset: any ImageTextDataset, tokenizer: any TextTokenizer, preprocessor: ImagePreprocessor,
    count: Int, device: Device
  ) throws -> TeacherSample {
    let n = min(count, dataset.count)
    let spacing = max(dataset.count / max(n, 1), 1)
    var images: [[Tensor]] = Array(repeating: [], count: teachers.count)
    var texts: [[Tensor]] = Array(repeating: [], count: teachers.count)
    for start in stride(from: 0, to: n, by: 256) {
      let indices = (start..<min(start + 256, n)).map { $0 * spacing }
      let pixels = try Tensor.stack(indices.map { try preprocessor.tensor(preprocessor.evaluationImage(dataset.loadImage(at: $0))) })
        .to(device)
      let encoded = try tokenizer.encodeBatch(indices.map { dataset.captions(at: $0).first ?? "" })
      let shape = [encoded.count, encoded.contextLength]
      let (ids, mask) = (try Tensor(encoded.ids, shape: shape).to(device), try Tensor(encoded.attentionMask, shape: shape).to(device))
      try Torch.noGrad {
        for (t, teacher) in teachers.enumerated() {
          images[t].append(try teacher.encodeImage(pixels, normalize: true).to(.float32))
          texts[t].append(try teacher.encodeText(ids, attentionMask: mask, normalize: true).to(.float32))
        }
      }
    }
    return TeacherSample(
      images: try images.map { try Tensor.cat($0, dim: 0) }, texts: try texts.map { try Tensor.cat($0, dim: 0) },
      logitScales: try teachers.map { try $0.logitScale.detach().exp().item() })
  }

  public static func preprocessor(_ data: DataSection, model: CLIPConfig) throws -> ImagePreprocessor {
    try ImagePreprocessor(PreprocessConfig(imageSize: model.visionConfig.imageSize, augmentation: data.augmentation))
  }

  /// A run folder, a step folder or a Hugging Face folder → the checkpoint folder to load.
  public static func checkpointFolder(_ path: String) throws -> String {
    let fm = FileManager.default
    guard fm.fileExists(atPath: path) else { throw ConfigError("checkpoint not found: \(path)") }
    if fm.fileExists(atPath: "\(path)/meta.json") || fm.fileExists(atPath: "\(path)/config.json") { return path }
    let folder = "\(path)/checkpoints"
    if let best = try? JSONCoding.decode(BestCheckpoint.self, file: "\(folder)/best.json"),
      fm.fileExists(atPath: "\(folder)/\(best.folder)/meta.json")
    {
      return "\(folder)/\(best.folder)"
    }
    if let latest = RunCheckpoint.stepFolders(in: folder).first { return latest }
    throw ConfigError("\(path) holds no checkpoint (no meta.json, config.json or checkpoints/)")
  }

  /// Loads weights into a model of the configured architecture; refuses another architecture.
  public static func loadModel(_ config: CLIPConfig, from path: String, key: String) throws -> CLIPModel {
    let folder = try checkpointFolder(path)
    if FileManager.default.fileExists(atPath: "\(folder)/meta.json") {
      let checkpoint = try RunCheckpoint.open(folder)
      let saved = try JSONDecoder().decode(CLIPConfig.self, from: Data(checkpoint.meta.architecture.utf8))
      guard saved == config else {
        throw ConfigError(
          "\(key): checkpoint \(folder) is a different architecture (\(describe(saved))) from the configured one (\(describe(config)))"
        )
      }
      let model = try CLIPModel(config)
      _ = try model.loadStateDict(try checkpoint.tensors("model"))
      return model
    }
    let model = try CLIPModel.load(huggingFace: folder)
    guard model.config.visionConfig.hiddenSize == config.visionConfig.hiddenSize,
      model.config.textConfig.hiddenSize == config.textConfig.hiddenSize
    else {
      throw ConfigError(
        "\(key): checkpoint \(folder) is a different architecture (\(describe(model.config))) from the configured one (\(describe(config)))"
      )
    }
    return model
  }

  static func describe(_ c: CLIPConfig) -> String {
    let v = c.visionConfig, t = c.textConfig
    return
      "vision \(v.numHiddenLayers)×\(v.hiddenSize) at \(v.imageSize)px/\(v.patchSize), text \(t.numHiddenLayers)×\(t.hiddenSize), joint \(c.projectionDim)"
  }

  static func architectureJSON(_ config: CLIPConfig) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(config), as: UTF8.self)
  }
}

/// `checkpoints/best.json`: which step folder holds the best validation result.
public struct BestCheckpoint: Codable, Equatable, Sendable {
  public var folder: String
  public var step: Int
  public var metric: String
  public var value: Double
}
