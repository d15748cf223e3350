import Foundation
import SafeFiles
import Torch
import TorchNN

/// Reading and writing model checkpoints in the formats people bring: Hugging Face model
/// directories (`config.json` + `model.safetensors`, or sharded with an index) and open_clip
/// state dicts saved as safetensors.
public enum Checkpoint {
  /// Loads every tensor of a Hugging Face model directory (single file or sharded).
  public static func loadHuggingFaceWeights(_ directory: String) throws -> [String: Tensor] {
    let single = "\(directory)/model.safetensors"
    let index = "\(directory)/model.safetensors.index.json"
    if FileManager.default.fileExists(atPath: single) { return try SafeTensors.load(single) }
    guard FileManager.default.fileExists(atPath: index) else {
      if FileManager.default.fileExists(atPath: "\(directory)/pytorch_model.bin") {
        throw TorchError(
          "checkpoint", "\(directory): only pytorch_model.bin found; convert it to safetensors (pickle files are not read)")
      }
      throw TorchError("checkpoint", "\(directory): no model.safetensors or model.safetensors.index.json")
    }
    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: index)))
    guard let map = (object as? [String: Any])?["weight_map"] as? [String: String] else {
      throw TorchError("checkpoint", "\(index): no \"weight_map\" object")
    }
    var tensors: [String: Tensor] = [:]
    for shard in Set(map.values).sorted() {
      for (key, tensor) in try SafeTensors.load("\(directory)/\(shard)") { tensors[key] = tensor }
    }
    let missing = Set(map.keys).subtracting(tensors.keys)
    if !missing.isEmpty {
      throw TorchError("checkpoint", "\(index): keys listed but not in any shard: \(missing.sorted().prefix(5))")
    }
    return tensors
  }

  /// Decodes a JSON config file, naming the file in any error.
  public static func readConfig<T: Decodable>(_ type: T.Type, at path: String) throws -> T {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
      throw TorchError("checkpoint", "\(path): cannot read (\(error.localizedDescription))")
    }
    do { return try JSONDecoder().decode(T.self, from: data) } catch {
      throw TorchError("checkpoint", "\(path): not a valid \(T.self): \(error)")
    }
  }

  /// Writes `value` as pretty JSON atomically.
  static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try AtomicFile.write(try encoder.encode(value), to: path)
  }

  /// Loads `state` into `module`, dropping buffers checkpoints may carry that hold no weights
  /// (`*.position_ids`), and naming `source` in any error.
  static func load(_ state: [String: Tensor], into module: Module, strict: Bool, source: String) throws {
    let weights = state.filter { !$0.key.hasSuffix("position_ids") }
    do { try module.loadStateDict(weights, strict: strict) } catch let error as TorchError {
      throw TorchError("checkpoint", "\(source): \(error.message)")
    }
  }

  static func stateDictionary(_ module: Module) throws -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: module.stateDict())
  }
}

extension CLIPModel {
  /// Loads a Hugging Face `CLIPModel` directory (`config.json` + safetensors).
  ///
  /// - Parameters:
  ///   - directory: the folder `save_pretrained` wrote.
  ///   - strict: a missing or unexpected key is an error naming it (shape mismatches always are).
  public static func load(huggingFace directory: String, strict: Bool = true) throws -> CLIPModel {
    let config = try Checkpoint.readConfig(CLIPConfig.self, at: "\(directory)/config.json")
    let model = try CLIPModel(config)
    try Checkpoint.load(Checkpoint.loadHuggingFaceWeights(directory), into: model, strict: strict, source: directory)
    return model
  }

  /// Loads an open_clip model: its state dict saved as safetensors, and its model config JSON
  /// (`embed_dim`, `vision_cfg`, `text_cfg`, `quick_gelu`).
  public static func load(openCLIP weights: String, config: String, strict: Bool = true) throws -> CLIPModel {
    let description = try Checkpoint.readConfig(OpenCLIPConfig.self, at: config)
    let model = try CLIPModel(description.clipConfig)
    let state = try OpenCLIPKeys.toOurs(SafeTensors.load(weights))
    try Checkpoint.load(state, into: model, strict: strict, source: weights)
    return model
  }

  /// Writes `config.json` and `model.safetensors` that `transformers.CLIPModel.from_pretrained` loads.
  public func save(huggingFace directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try Checkpoint.writeJSON(config, to: "\(directory)/config.json")
    try SafeTensors.save(Checkpoint.stateDictionary(self), to: "\(directory)/model.safetensors", metadata: ["format": "pt"])
  }

  /// Writes open_clip's state dict (`weights`) and model config (`config`) that
  /// `open_clip.CLIP(**json)` + `load_state_dict` accept.
  public func save(openCLIP weights: String, config configPath: String) throws {
    // open_clip pools at the argmax of the ids; pooling at the first end-of-text is the same
    // when end-of-text is the largest id of the vocabulary (CLIP's 49407 of 49408).
    let pooling = config.resolvedTextPooling
    guard pooling == .argmax || pooling == .firstToken(config.textConfig.vocabSize - 1) else {
      throw TorchError(
        "openCLIP", "open_clip pools text at the argmax of the ids; this model pools at \(pooling), which would not match")
    }
    try Checkpoint.writeJSON(OpenCLIPConfig(config), to: configPath)
    try SafeTensors.save(OpenCLIPKeys.fromOurs(Checkpoint.stateDictionary(self)), to: weights, metadata: ["format": "pt"])
  }
}

extension BertModel {
  /// Loads a Hugging Face `BertModel` directory (e.g. MiniLM). Checkpoints saved from
  /// `BertForMaskedLM` or sentence-transformers may prefix keys with `bert.`; that prefix is
  /// removed and task heads are ignored.
  public static func load(huggingFace directory: String, pooling: BertPooling = .cls, strict: Bool = true) throws -> BertModel {
    let config = try Checkpoint.readConfig(BertConfig.self, at: "\(directory)/config.json")
    var state = try Checkpoint.loadHuggingFaceWeights(directory)
    if state.keys.contains(where: { $0.hasPrefix("bert.") }) {
      state = Dictionary(
        uniqueKeysWithValues: state.compactMap { key, t in key.hasPrefix("bert.") ? (String(key.dropFirst(5)), t) : nil })
    }
    let model = try BertModel(config, pooling: pooling, withPooler: state["pooler.dense.weight"] != nil)
    try Checkpoint.load(state, into: model, strict: strict, source: directory)
    return model
  }

  public func save(huggingFace directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try Checkpoint.writeJSON(config, to: "\(directory)/config.json")
    try SafeTensors.save(Checkpoint.stateDictionary(self), to: "\(directory)/model.safetensors", metadata: ["format": "pt"])
  }
}
