import Foundation

extension CLIPVocabulary {
  /// Reads a Hugging Face CLIP tokenizer's `vocab.json` (token → id) and `merges.txt` (a
  /// `#version` header, then one merge per line, highest priority first).
  ///
  /// Every merge must join two tokens of `vocab.json` into a third; a merge that does not is an
  /// error naming its line, since encoding would fail on it later.
  ///
  /// ```swift
  /// let vocabulary = try CLIPVocabulary.huggingFace(vocabJSON: dir + "/vocab.json", merges: dir + "/merges.txt")
  /// vocabulary.tokenIds["<|endoftext|>"]  // 49407
  /// ```
  /// - Parameters:
  ///   - vocabJSON: the `vocab.json` file.
  ///   - merges: the `merges.txt` file.
  ///   - startToken: the start-of-text token as `vocab.json` spells it.
  ///   - endToken: the end-of-text token as `vocab.json` spells it.
  public static func huggingFace(
    vocabJSON: String, merges mergesFile: String,
    startToken: String = "<|startoftext|>", endToken: String = "<|endoftext|>"
  ) throws -> CLIPVocabulary {
    let tokenIds = try readTokenIds(vocabJSON)
    var lines = try VocabularyFile.lines(at: mergesFile)
    while lines.last?.allSatisfy(\.isWhitespace) == true { lines.removeLast() }
    let headerCount = lines.first?.hasPrefix("#version") == true ? 1 : 0
    var merges: [Merge] = []
    for (index, line) in lines.enumerated().dropFirst(headerCount) {
      let merge = try merge(fromLine: line, number: index + 1, file: mergesFile)
      for token in [merge.first, merge.second, merge.first + merge.second] where tokenIds[token] == nil {
        throw TokenizerError(
          file: mergesFile, line: index + 1, "merge \"\(line)\" needs \"\(token)\", which \(vocabJSON) lacks")
      }
      merges.append(merge)
    }
    return try CLIPVocabulary(
      tokenIds: tokenIds, merges: merges, startToken: startToken, endToken: endToken, source: vocabJSON)
  }

  private static func readTokenIds(_ path: String) throws -> [String: Int] {
    let data = Data(try VocabularyFile.bytes(at: path))
    do {
      return try JSONDecoder().decode([String: Int].self, from: data)
    } catch DecodingError.typeMismatch(_, let context) where !context.codingPath.isEmpty {
      throw TokenizerError(file: path, "the id of token \"\(context.codingPath[0].stringValue)\" is not an integer")
    } catch DecodingError.valueNotFound(_, let context) where !context.codingPath.isEmpty {
      throw TokenizerError(file: path, "the id of token \"\(context.codingPath[0].stringValue)\" is not an integer")
    } catch DecodingError.dataCorrupted {
      throw TokenizerError(file: path, "not valid JSON (\(syntaxProblem(in: data)))")
    } catch {
      throw TokenizerError(file: path, "not a JSON object mapping tokens to ids")
    }
  }

  /// Where the JSON breaks: JSONDecoder does not say, JSONSerialization does.
  private static func syntaxProblem(in data: Data) -> String {
    do {
      _ = try JSONSerialization.jsonObject(with: data)
      return "JSONDecoder could not read it"
    } catch {
      return (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
    }
  }
}
