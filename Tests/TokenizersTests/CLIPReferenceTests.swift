import Foundation
import Testing
import Tokenizers

/// Our CLIP tokenizer against open_clip on every fixture string.
@Suite struct CLIPReferenceTests {
  let tokenizer: CLIPTokenizer

  init() throws {
    tokenizer = try CLIPTokenizer(openCLIPVocabularyAt: referenceFile(openCLIPVocabularyPath))
  }

  @Test func agreesWithOpenCLIPOnTextFtfyLeavesAlone() throws {
    let fixture = try ReferenceFixture.load("clip")
    #expect(fixture.contextLength == tokenizer.contextLength)
    #expect(fixture.cases.count >= 2000)
    let agreement = Agreement(fixture) { try tokenizer.encode($0) }
    print("CLIP vs \(fixture.reference): \(agreement)")
    #expect(agreement.agreed == agreement.total, "\(agreement)")
  }

  /// The strings ftfy would change, against open_clip's own pipeline with ftfy switched off:
  /// this is where HTML unescaping, control characters and non-NFC text get exercised.
  @Test func agreesWithOpenCLIPWithoutFtfyOnTextFtfyWouldChange() throws {
    let fixture = try ReferenceFixture.load("clip_without_ftfy")
    let agreement = Agreement(fixture) { try tokenizer.encode($0) }
    print("CLIP vs \(fixture.reference), ftfy off: \(agreement)")
    #expect(agreement.agreed == agreement.total, "\(agreement)")
  }

  /// The same vocabulary written as Hugging Face files (`<|startoftext|>` naming the special
  /// tokens) gives the same ids.
  @Test func huggingFaceFilesGiveTheSameIds() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let vocabulary = tokenizer.vocabulary
    var tokenIds = vocabulary.tokenIds
    tokenIds["<|startoftext|>"] = tokenIds.removeValue(forKey: vocabulary.startToken)
    tokenIds["<|endoftext|>"] = tokenIds.removeValue(forKey: vocabulary.endToken)
    let vocabJSON = try write(
      String(decoding: JSONSerialization.data(withJSONObject: tokenIds), as: UTF8.self), to: "vocab.json", in: directory)
    let merges = try write(
      "#version: 0.2\n" + vocabulary.merges.map { "\($0.first) \($0.second)\n" }.joined(), to: "merges.txt",
      in: directory)
    let huggingFace = try CLIPTokenizer(vocabJSON: vocabJSON, merges: merges)

    #expect(huggingFace.padTokenId == 49407)
    #expect(try huggingFace.encode("<|startoftext|>a<|endoftext|>") == [49406, 49406, 320, 49407, 49407])
    let fixture = try ReferenceFixture.load("clip")
    let mentionsNoSpecialToken = fixture.cases.filter { testCase in
      !["of_text", "oftext"].contains { testCase.text.lowercased().contains($0) }
    }
    for testCase in mentionsNoSpecialToken {
      #expect(try huggingFace.encode(testCase.text) == testCase.ids, "\(testCase.text.debugDescription)")
    }
  }
}
