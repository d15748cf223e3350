/// CLIP's pre-tokenizer: splits cleaned text into the pieces BPE encodes one by one, as
///
///     <special tokens>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
///
/// with Python's `regex` module and `IGNORECASE`, written as a scanner over Unicode scalars:
/// at each position the first alternative that matches wins; whitespace matches nothing and is
/// skipped. So `it's 42!` becomes `it`, `'s`, `4`, `2`, `!` — digits one by one, letters in
/// runs, everything else in runs.
///
/// ```swift
/// let splitter = CLIPPreTokenizer(specialTokens: ["<start_of_text>", "<end_of_text>"])
/// splitter.split(Array("it's 42!".unicodeScalars))  // ranges of "it", "'s", "4", "2", "!"
/// ```
struct CLIPPreTokenizer: Sendable {
  /// The literal alternatives, case-folded, tried in this order before the runs.
  private let literals: [[Unicode.Scalar]]
  /// The folded first scalars of `literals`: most positions are rejected by this alone.
  private let literalStarts: Set<Unicode.Scalar>

  /// - Parameters:
  ///   - specialTokens: tokens matched whole before anything else (open_clip's
  ///     `<start_of_text>`, Hugging Face's `<|startoftext|>`, …).
  init(specialTokens: [String]) {
    let contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
    literals = (specialTokens + contractions).map { $0.unicodeScalars.map(Self.folded) }.filter { !$0.isEmpty }
    literalStarts = Set(literals.map { $0[0] })
  }

  /// The pieces of `text`, as ranges into it, in order.
  ///
  /// - Parameters:
  ///   - text: cleaned text (``CLIPTextCleaner``).
  func split(_ text: [Unicode.Scalar]) -> [Range<Int>] {
    var pieces: [Range<Int>] = []
    var start = 0
    while start < text.count {
      var end = start + 1
      if let length = literalLength(in: text, at: start) {
        end = start + length
      } else {
        let kind = CharacterKind(text[start])
        switch kind {
        case .letter, .other:
          while end < text.count, CharacterKind(text[end]) == kind { end += 1 }
        case .number:
          break  // `[\p{N}]` takes one digit at a time
        case .whitespace:
          start += 1
          continue
        }
      }
      pieces.append(start..<end)
      start = end
    }
    return pieces
  }

  /// The length of the first literal that matches at `start`, if one does.
  private func literalLength(in text: [Unicode.Scalar], at start: Int) -> Int? {
    guard literalStarts.contains(Self.folded(text[start])) else { return nil }
    let literal = literals.first { literal in
      start + literal.count <= text.count
        && literal.indices.allSatisfy { Self.folded(text[start + $0]) == literal[$0] }
    }
    return literal?.count
  }

  /// Simple case folding, which is how `IGNORECASE` compares, as far as lower-cased text can
  /// need it. Swift exposes no fold table, so fold with the one-scalar lower-case mapping, plus
  /// `ſ` (U+017F), already lower case but folded to `s`: over all of Unicode it is the only
  /// lower-case scalar that `regex` matches to an ASCII letter under IGNORECASE, which makes
  /// `'ſ` a contraction and `<ſtart_of_text>` a special-token match in open_clip.
  private static func folded(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
    if scalar.isASCII {
      return (0x41...0x5A).contains(scalar.value) ? Unicode.Scalar(UInt8(scalar.value + 0x20)) : scalar
    }
    if scalar == "\u{017F}" { return "s" }
    let lower = scalar.properties.lowercaseMapping.unicodeScalars
    return lower.count == 1 ? lower.first! : scalar
  }
}

/// Which of the pattern's classes a scalar falls in: `\p{L}`, `\p{N}`, `\s` (Unicode
/// White_Space, as `regex` defines it), or none of them.
private enum CharacterKind {
  case letter, number, whitespace, other

  init(_ scalar: Unicode.Scalar) {
    if scalar.isASCII {
      switch scalar.value {
      case 0x41...0x5A, 0x61...0x7A: self = .letter
      case 0x30...0x39: self = .number
      case 0x09...0x0D, 0x20: self = .whitespace
      default: self = .other
      }
      return
    }
    switch scalar.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: self = .letter
    case .decimalNumber, .letterNumber, .otherNumber: self = .number
    default: self = scalar.properties.isWhitespace ? .whitespace : .other
    }
  }
}
