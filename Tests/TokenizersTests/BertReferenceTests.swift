import Testing
import Tokenizers

/// Our BERT tokenizer against Hugging Face's slow BertTokenizer on every fixture string.
@Suite struct BertReferenceTests {
  @Test func agreesWithHuggingFaceOnMiniLMVocabulary() throws {
    let fixture = try ReferenceFixture.load("bert")
    let tokenizer = try BertTokenizer(vocabularyAt: referenceFile(miniLMVocabularyPath), contextLength: fixture.contextLength)
    #expect(fixture.cases.count >= 2000)
    let agreement = Agreement(fixture) { tokenizer.encode($0) }
    print("BERT vs \(fixture.reference): \(agreement)")
    #expect(agreement.agreed == agreement.total, "\(agreement)")
  }
}
