extension CLIPVocabulary {
  /// How many merges open_clip (and OpenAI's CLIP) read from the file: a 49,408-token
  /// vocabulary less 256 bytes, 256 end-of-word bytes and 2 special tokens.
  public static let openCLIPMergeCount = 49_152 - 256 - 2

  /// Reads open_clip's `bpe_simple_vocab_16e6.txt.gz` (gzipped or not): a header line, then one
  /// merge per line. Like open_clip, the vocabulary is built from it: the 256 byte characters,
  /// the same with `</w>`, each merge's result in rank order, then the two special tokens.
  ///
  /// ```swift
  /// let vocabulary = try CLIPVocabulary.openCLIP(contentsOf: site + "/open_clip/bpe_simple_vocab_16e6.txt.gz")
  /// vocabulary.tokenIds["<start_of_text>"]  // 49406
  /// ```
  /// - Parameters:
  ///   - path: the merges file.
  ///   - mergeCount: how many merges to read after the header; the file holds more.
  ///   - startToken: the start-of-text token's name. open_clip 3 says `<start_of_text>`;
  ///     OpenAI's CLIP said `<|startoftext|>` for the same id, and its pre-tokenizer matches that
  ///     spelling in text instead.
  ///   - endToken: the end-of-text token's name (`<end_of_text>`; OpenAI: `<|endoftext|>`).
  public static func openCLIP(
    contentsOf path: String, mergeCount: Int = openCLIPMergeCount,
    startToken: String = "<start_of_text>", endToken: String = "<end_of_text>"
  ) throws -> CLIPVocabulary {
    let lines = try VocabularyFile.lines(at: path)
    guard lines.count > mergeCount else {
      throw TokenizerError(
        file: path, "expected a header line and at least \(mergeCount) merges, found \(lines.count) lines")
    }
    let merges = try (1...mergeCount).map { try merge(fromLine: lines[$0], number: $0 + 1, file: path) }
    let bytes = ByteEncoder.vocabularyOrder.map { String(ByteEncoder.character(for: $0)) }
    let tokens = bytes + bytes.map { $0 + "</w>" } + merges.map { $0.first + $0.second } + [startToken, endToken]
    // A repeated token keeps its last id, as Python's dict(zip(vocab, range(...))) does.
    let tokenIds = Dictionary(zip(tokens, tokens.indices), uniquingKeysWith: { $1 })
    return try CLIPVocabulary(
      tokenIds: tokenIds, merges: merges, startToken: startToken, endToken: endToken, source: path)
  }
}
