import Foundation
import Models
import SafeFiles
import Tokenizers

/// `cmapkd export RUN --format hf | open_clip`: the distilled student alone, in a format other
/// tools load. The method's modules (adapters, bridge, ALSN, projectors) are training-time
/// parts of the run and are left out: the student is a plain CLIP model.
///
/// - `hf`: `config.json` + `model.safetensors` (`transformers.CLIPModel.from_pretrained`), and the
///   tokenizer as `vocab.json`, `merges.txt`, `tokenizer_config.json`, `special_tokens_map.json`
///   (`CLIPTokenizer.from_pretrained`), written from the run's BPE vocabulary.
/// - `open_clip`: `open_clip_model.safetensors` (open_clip's key names) and `open_clip_config.json`
///   (`open_clip.CLIP(**config)` + `load_state_dict`), plus the BPE vocabulary file.
public enum Export {
  public enum Format: String, CaseIterable, Sendable {
    case hf
    case openCLIP = "open_clip"
  }

  /// Exports the run's best checkpoint (its latest when none is marked best); returns the folder.
  @discardableResult
  public static func run(_ run: String, format: Format, out: String? = nil) throws -> String {
    let configPath = "\(run)/config.yaml"
    guard FileManager.default.fileExists(atPath: configPath) else {
      throw ConfigError("\(run): not a run folder (no config.yaml)")
    }
    let config = try ConfigLoader.load(ExperimentConfig.self, files: [configPath])
    let results = try? JSONCoding.decode(RunResults.self, file: "\(run)/results.json")
    let section = results?.kind == "teacher" ? config.teacher : config.student
    let modelConfig = try RunSetup.modelConfig(section, key: results?.kind == "teacher" ? "teacher" : "student")
    let model = try RunSetup.loadModel(modelConfig, from: run, key: run)
    let folder = out ?? "\(run)/export-\(format.rawValue)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    // The tokenizer the run trained with (RunSetup.tokenizer's order).
    let teacherTokenizer = config.data.vocabulary == nil ? RunSetup.huggingFaceTokenizer(config.teacher.checkpoint) : nil
    let vocabularyPath = teacherTokenizer == nil ? try RunSetup.vocabularyPath(config.data.vocabulary) : nil
    switch format {
    case .hf:
      try model.save(huggingFace: folder)
      let vocabulary =
        if let teacherTokenizer {
          try CLIPVocabulary.huggingFace(vocabJSON: teacherTokenizer.vocab, merges: teacherTokenizer.merges)
        } else {
          try CLIPVocabulary.openCLIP(contentsOf: vocabularyPath!)
        }
      try writeHuggingFaceTokenizer(vocabulary, contextLength: modelConfig.textConfig.maxPositionEmbeddings, to: folder)
    case .openCLIP:
      // open_clip brings its own tokenizer; the run's file is copied alongside when it is open_clip's.
      try model.save(openCLIP: "\(folder)/open_clip_model.safetensors", config: "\(folder)/open_clip_config.json")
      if let vocabularyPath {
        let copy = "\(folder)/\((vocabularyPath as NSString).lastPathComponent)"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: vocabularyPath, toPath: copy)
      }
    }
    return folder
  }

  /// Hugging Face's CLIP tokenizer files for `vocabulary`.
  public static func writeHuggingFaceTokenizer(_ vocabulary: CLIPVocabulary, contextLength: Int, to folder: String) throws {
    // Hugging Face names the special tokens <|startoftext|> and <|endoftext|> (open_clip's file
    // calls them <start_of_text> and <end_of_text>); the ids stay.
    let (start, end) = ("<|startoftext|>", "<|endoftext|>")
    var ids = vocabulary.tokenIds
    if let id = ids.removeValue(forKey: vocabulary.startToken) { ids[start] = id }
    if let id = ids.removeValue(forKey: vocabulary.endToken) { ids[end] = id }
    let vocab = try JSONSerialization.data(withJSONObject: ids, options: [.sortedKeys, .withoutEscapingSlashes])
    try AtomicFile.write(vocab, to: "\(folder)/vocab.json")
    let merges = "#version: 0.2\n" + vocabulary.merges.map { "\($0.first) \($0.second)\n" }.joined()
    try AtomicFile.write(Data(merges.utf8), to: "\(folder)/merges.txt")
    // open_clip pads with 0; so do our runs. Hugging Face's CLIP configs pad with end-of-text;
    // either works with the attention mask, and pooling reads the first end-of-text.
    let special: [String: Any] = ["bos_token": start, "eos_token": end, "unk_token": end, "pad_token": end]
    var tokenizerConfig = special
    tokenizerConfig["tokenizer_class"] = "CLIPTokenizer"
    tokenizerConfig["model_max_length"] = contextLength
    tokenizerConfig["do_lower_case"] = true
    tokenizerConfig["errors"] = "replace"
    for (name, object) in [("tokenizer_config.json", tokenizerConfig), ("special_tokens_map.json", special)] {
      try AtomicFile.write(
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), to: "\(folder)/\(name)")
    }
  }
}
