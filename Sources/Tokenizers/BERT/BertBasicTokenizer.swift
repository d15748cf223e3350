import Foundation

/// Hugging Face's `BasicTokenizer`: splits text into words before WordPiece, as uncased BERT
/// (and MiniLM) were trained with.
///
/// In order: control characters, NUL and U+FFFD are dropped and whitespace becomes spaces; CJK
/// ideographs are spaced out as words of their own; the text is NFC-normalised and split on
/// whitespace; each word (unless it is a special token) is lower-cased, stripped of accents
/// (NFD, then nonspacing marks dropped) and split around every punctuation character.
///
/// ```swift
/// let basic = BertBasicTokenizer(lowercase: true, neverSplit: [])
/// basic.words(Array("Héllo, WORLD!".unicodeScalars)[...])  // "hello", ",", "world", "!"
/// ```
struct BertBasicTokenizer: Sendable {
  /// Lower-case and strip accents (`do_lower_case`; `strip_accents` left to follow it).
  let lowercase: Bool
  /// Words kept exactly as they are: the special tokens.
  let neverSplit: Set<[Unicode.Scalar]>

  /// The words of `text`.
  ///
  /// - Parameters:
  ///   - text: text without special tokens in it.
  func words(_ text: ArraySlice<Unicode.Scalar>) -> [[Unicode.Scalar]] {
    let spaced = Self.normalizedNFC(Self.spacingCJK(Self.cleaned(text)))
    var words: [[Unicode.Scalar]] = []
    for word in PythonText.split(spaced) {
      if neverSplit.contains(word) {
        words.append(word)
        continue
      }
      let folded = lowercase ? Self.strippingAccents(PythonText.lowercased(word)) : word
      words += Self.splittingPunctuation(folded)
    }
    return words
  }

  /// `_clean_text`: drops NUL, U+FFFD and control characters; whitespace becomes a space.
  private static func cleaned(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
    var result: [Unicode.Scalar] = []
    result.reserveCapacity(text.count)
    for scalar in text {
      if scalar == "\u{FFFD}" || isControl(scalar) { continue }  // NUL is a control character
      result.append(isWhitespace(scalar) ? " " : scalar)
    }
    return result
  }

  /// `_is_whitespace`: space, tab, newline, carriage return and the Zs category.
  private static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case " ", "\t", "\n", "\r": true
    default: !scalar.isASCII && scalar.properties.generalCategory == .spaceSeparator
    }
  }

  /// `_is_control`: every C* category (control, format, surrogate, private use, unassigned)
  /// except tab, newline and carriage return, which count as whitespace.
  private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
    if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
    if scalar.isASCII { return scalar.value < 0x20 || scalar.value == 0x7F }
    switch scalar.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned: return true
    default: return false
    }
  }

  /// `_tokenize_chinese_chars`: a space either side of every CJK ideograph.
  private static func spacingCJK(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains(where: isCJK) else { return text }
    var result: [Unicode.Scalar] = []
    for scalar in text {
      if isCJK(scalar) { result += [" ", scalar, " "] } else { result.append(scalar) }
    }
    return result
  }

  /// `_is_chinese_char`: the CJK Unified Ideographs blocks and their extensions, and the
  /// compatibility ideographs (not Hangul or kana, which are written with spaces).
  private static func isCJK(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
      0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
      true
    default: false
    }
  }

  /// `_is_punctuation`: every non-alphanumeric printable ASCII character (`$`, `^`, `` ` ``
  /// included though Unicode calls them symbols), and the P* categories.
  private static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 33...47, 58...64, 91...96, 123...126: return true
    case 0..<128: return false
    default: break
    }
    switch scalar.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
      .finalPunctuation, .otherPunctuation:
      return true
    default: return false
    }
  }

  /// `_run_split_on_punc`: every punctuation character alone, the runs between kept together.
  private static func splittingPunctuation(_ word: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
    var pieces: [[Unicode.Scalar]] = []
    var current: [Unicode.Scalar] = []
    for scalar in word {
      if isPunctuation(scalar) {
        if !current.isEmpty { pieces.append(current) }
        pieces.append([scalar])
        current = []
      } else {
        current.append(scalar)
      }
    }
    if !current.isEmpty { pieces.append(current) }
    return pieces
  }

  /// `_run_strip_accents`: NFD, then nonspacing marks (Mn) dropped.
  private static func strippingAccents(_ word: [Unicode.Scalar]) -> [Unicode.Scalar] {
    // Below U+00C0 no character has a canonical decomposition or is a mark.
    if word.allSatisfy({ $0.value < 0xC0 }) { return word }
    let decomposed = string(word).decomposedStringWithCanonicalMapping.unicodeScalars
    return decomposed.filter { $0.properties.generalCategory != .nonspacingMark }
  }

  /// NFC, which the basic tokenizer applies before splitting.
  private static func normalizedNFC(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    // Every combining character is at or past U+0300, and nothing below it decomposes
    // canonically, so such text is already NFC.
    if text.allSatisfy({ $0.value < 0x300 }) { return text }
    return Array(string(text).precomposedStringWithCanonicalMapping.unicodeScalars)
  }

  private static func string(_ scalars: [Unicode.Scalar]) -> String {
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    return String(view)
  }
}
