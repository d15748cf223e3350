import Foundation
import Models
import TestSupport
import Testing
import Torch
import TorchNN

func temporaryDirectory() throws -> String {
  try Scratch.folder("models")
}

/// Keys, shapes and dtypes of a safetensors file.
func layout(_ path: String) throws -> [String: String] {
  let file = try SafeTensorsFile(path: path)
  return Dictionary(
    uniqueKeysWithValues: file.names.map { name in
      let info = file.info(name)!
      return (name, "\(info.dtype) \(info.shape)")
    })
}

@Suite("Checkpoints: saving, reloading, formats and bad input")
struct CheckpointTests {
  @Test("a saved model has exactly the reference file's keys, shapes and dtypes, and reloads to the same outputs")
  func huggingFaceRoundTrip() throws {
    let model = try CLIPModel.load(huggingFace: "\(fixtures)/hf_clip")
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try model.save(huggingFace: dir)
    #expect(try layout("\(dir)/model.safetensors") == layout("\(fixtures)/hf_clip/model.safetensors"))
    let reloaded = try CLIPModel.load(huggingFace: dir)
    #expect(reloaded.config == model.config)
    let io = try SafeTensors.load("\(fixtures)/hf_clip_io.safetensors")
    let (imageDiff, textDiff) = try Torch.noGrad {
      (
        try maxAbsDiff(reloaded.encodeImage(io["pixels"]!), model.encodeImage(io["pixels"]!)),
        try maxAbsDiff(reloaded.encodeText(io["ids"]!), model.encodeText(io["ids"]!))
      )
    }
    #expect(imageDiff == 0 && textDiff == 0)
  }

  @Test("open_clip format: our saved state dict has open_clip's keys and shapes and reloads exactly")
  func openCLIPRoundTrip() throws {
    let model = try CLIPModel.load(
      openCLIP: "\(fixtures)/openclip/weights.safetensors", config: "\(fixtures)/openclip/config.json")
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try model.save(openCLIP: "\(dir)/weights.safetensors", config: "\(dir)/config.json")
    var reference = try layout("\(fixtures)/openclip/weights.safetensors")
    reference["attn_mask"] = nil  // a buffer of open_clip's, not a weight
    #expect(try layout("\(dir)/weights.safetensors") == reference)
    let reloaded = try CLIPModel.load(openCLIP: "\(dir)/weights.safetensors", config: "\(dir)/config.json")
    for ((key, a), (_, b)) in zip(model.stateDict(), reloaded.stateDict()) {
      #expect(try maxAbsDiff(a, b) == 0, "\(key) changed in the round trip")
    }
  }

  @Test("saved models load in transformers and open_clip with the same embeddings", .enabled(if: referenceStackAvailable))
  func loadsInPython() throws {
    let model = try CLIPModel(Presets.tiny)
    model.eval()
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try model.save(huggingFace: "\(dir)/hf")
    let pixels = try Tensor.randn([2, 3, 32, 32])
    let ids = try Tensor([49406, 320, 1929, 49407, 0, 0, 49406, 320, 49407, 0, 0, 0] as [Int64], shape: [2, 6])
    try SafeTensors.save(["pixels": pixels, "ids": ids], to: "\(dir)/inputs.safetensors")
    let (images, texts) = try Torch.noGrad { (try model.encodeImage(pixels), try model.encodeText(ids)) }
    try SafeTensors.save(["images": images, "texts": texts], to: "\(dir)/ours.safetensors")
    // Our tiny preset pools at the first end-of-text id (49407), as transformers does.
    let script = """
      import sys, torch
      from safetensors.torch import load_file
      from transformers import CLIPModel
      d = sys.argv[1]
      inp, ours = load_file(d + "/inputs.safetensors"), load_file(d + "/ours.safetensors")
      m = CLIPModel.from_pretrained(d + "/hf").eval()
      with torch.no_grad():
          i = m.get_image_features(pixel_values=inp["pixels"]).pooler_output
          t = m.get_text_features(input_ids=inp["ids"]).pooler_output
      print(max((i - ours["images"]).abs().max().item(), (t - ours["texts"]).abs().max().item()))
      """
    let hfDiff = try #require(Double(runPython(script, arguments: [dir]).trimmingCharacters(in: .whitespacesAndNewlines)))
    #expect(hfDiff <= 1e-4, "transformers embeddings differ by \(hfDiff)")

    let openCLIPModel = try CLIPModel(OpenCLIPConfig(Presets.tiny).clipConfig)
    openCLIPModel.eval()
    try openCLIPModel.save(openCLIP: "\(dir)/oc.safetensors", config: "\(dir)/oc.json")
    let (ocImages, ocTexts) = try Torch.noGrad { (try openCLIPModel.encodeImage(pixels), try openCLIPModel.encodeText(ids)) }
    try SafeTensors.save(["images": ocImages, "texts": ocTexts], to: "\(dir)/ours_oc.safetensors")
    let ocScript = """
      import json, sys, torch, open_clip
      from safetensors.torch import load_file
      d = sys.argv[1]
      inp, ours = load_file(d + "/inputs.safetensors"), load_file(d + "/ours_oc.safetensors")
      cfg = json.load(open(d + "/oc.json"))
      m = open_clip.model.CLIP(**cfg).eval()
      missing, unexpected = m.load_state_dict(load_file(d + "/oc.safetensors"), strict=False)
      assert not unexpected and set(missing) <= {"attn_mask"}, (missing, unexpected)
      ids = torch.zeros(2, cfg["text_cfg"]["context_length"], dtype=torch.long)
      ids[:, : inp["ids"].shape[1]] = inp["ids"]
      with torch.no_grad():
          i, t = m.encode_image(inp["pixels"]), m.encode_text(ids)
      print(max((i - ours["images"]).abs().max().item(), (t - ours["texts"]).abs().max().item()))
      """
    let ocDiff = try #require(Double(runPython(ocScript, arguments: [dir]).trimmingCharacters(in: .whitespacesAndNewlines)))
    #expect(ocDiff <= 1e-4, "open_clip embeddings differ by \(ocDiff)")
  }

  @Test("a checkpoint of another architecture is an error naming the file and the key")
  func wrongArchitecture() throws {
    var config = try Checkpoint.readConfig(CLIPConfig.self, at: "\(fixtures)/hf_clip/config.json")
    config.visionConfig.hiddenSize = 32
    config.visionConfig.intermediateSize = 64
    let model = try CLIPModel(config)
    let state = try Checkpoint.loadHuggingFaceWeights("\(fixtures)/hf_clip")
    #expect {
      try model.loadStateDict(state)
    } throws: { error in
      "\(error)".contains("shape mismatch for 'vision_model.")
    }
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // A BERT checkpoint handed to the CLIP loader: keys are reported, with the directory.
    try FileManager.default.copyItem(atPath: "\(fixtures)/hf_clip/config.json", toPath: "\(dir)/config.json")
    try SafeTensors.save(["encoder.layer.0.attention.self.query.weight": Tensor.zeros([2, 2])], to: "\(dir)/model.safetensors")
    #expect {
      try CLIPModel.load(huggingFace: dir)
    } throws: { error in
      let text = "\(error)"
      return text.contains(dir) && text.contains("missing keys: text_model.") && text.contains("unexpected keys: encoder.layer.0")
    }
  }

  @Test("truncated weights, a missing config and a garbled config are errors naming the file")
  func badFiles() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect { try CLIPModel.load(huggingFace: dir) } throws: { "\($0)".contains("\(dir)/config.json") }
    try FileManager.default.copyItem(atPath: "\(fixtures)/hf_clip/config.json", toPath: "\(dir)/config.json")
    #expect { try CLIPModel.load(huggingFace: dir) } throws: { "\($0)".contains("no model.safetensors") }
    let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/hf_clip/model.safetensors"))
    try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: "\(dir)/model.safetensors"))
    #expect { try CLIPModel.load(huggingFace: dir) } throws: { "\($0)".contains("\(dir)/model.safetensors") }
    try Data("{\"text_config\": 3}".utf8).write(to: URL(fileURLWithPath: "\(dir)/config.json"))
    #expect { try CLIPModel.load(huggingFace: dir) } throws: { "\($0)".contains("config.json: not a valid CLIPConfig") }
  }

  @Test("an image size not divisible by the patch, and a text longer than the context, are clear errors")
  func badInputs() throws {
    let model = try CLIPModel(Presets.tiny)
    #expect { try model.encodeImage(Tensor.randn([1, 3, 30, 32])) } throws: {
      "\($0)".contains("30×32 is not divisible by the patch size 8")
    }
    #expect { try model.encodeText(Tensor.zeros([1, 80], dtype: .int64)) } throws: {
      "\($0)".contains("80 tokens is longer than the context length 77")
    }
    #expect { try model.encodeImage(Tensor.randn([3, 32, 32])) } throws: { "\($0)".contains("expected pixels [B, C, H, W]") }
  }

  @Test("configs read Hugging Face defaults for omitted fields and HF activation names")
  func configDefaults() throws {
    let config = try JSONDecoder().decode(
      CLIPConfig.self, from: Data(#"{"vision_config": {"hidden_act": "gelu_new", "patch_size": 16}}"#.utf8))
    #expect(
      config.visionConfig.patchSize == 16 && config.visionConfig.hiddenSize == 768 && config.visionConfig.hiddenAct == .geluTanh)
    #expect(config.textConfig.eosTokenId == 49407 && config.textConfig.pooling == .firstToken(49407))
    #expect(config.projectionDim == 512)
  }
}
