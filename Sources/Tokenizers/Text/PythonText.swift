/// The few Python `str` operations the reference tokenizers are built from, on Unicode scalars.
///
/// Python strings are sequences of code points, so these work on `[Unicode.Scalar]`: Swift's
/// `Character` would merge a letter with its combining marks, and Swift's `String` compares
/// canonically equivalent texts as equal, where Python compares code points.
///
/// ```swift
/// let words = PythonText.split(Array("  a\u{3000}b ".unicodeScalars))  // ["a", "b"]
/// ```
enum PythonText {
  /// `text.split()`: the runs between whitespace (`str.isspace()`), none of them empty.
  ///
  /// - Parameters:
  ///   - text: the scalars to split.
  static func split(_ text: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
    text.split { $0.isPythonWhitespace }.map(Array.init)
  }

  /// `" ".join(text.split())`: whitespace runs become one space, none at either end.
  ///
  /// - Parameters:
  ///   - text: the scalars to clean.
  static func collapsingWhitespace(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var result: [Unicode.Scalar] = []
    result.reserveCapacity(text.count)
    var pendingSpace = false
    for scalar in text {
      if scalar.isPythonWhitespace {
        pendingSpace = !result.isEmpty
      } else {
        if pendingSpace { result.append(" ") }
        pendingSpace = false
        result.append(scalar)
      }
    }
    return result
  }

  /// `text.lower()`: Unicode full lower-case mapping (`İ` becomes `i̇`), and capital sigma
  /// becomes final `ς` at the end of a word, which Swift's `lowercased()` does not do.
  ///
  /// - Parameters:
  ///   - text: the scalars to lower-case.
  static func lowercased(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var result: [Unicode.Scalar] = []
    result.reserveCapacity(text.count)
    for (index, scalar) in text.enumerated() {
      if scalar.isASCII {
        let value = scalar.value
        result.append((0x41...0x5A).contains(value) ? Unicode.Scalar(UInt8(value + 0x20)) : scalar)
      } else if scalar == "\u{03A3}" {
        result.append(isFinalSigma(at: index, in: text) ? "\u{03C2}" : "\u{03C3}")
      } else {
        result += scalar.properties.lowercaseMapping.unicodeScalars
      }
    }
    return result
  }

  /// Unicode's Final_Sigma condition as CPython tests it: a cased letter before (skipping
  /// case-ignorable ones) and no cased letter after (skipping case-ignorable ones).
  private static func isFinalSigma(at index: Int, in text: [Unicode.Scalar]) -> Bool {
    let before = text[..<index].last { !$0.properties.isCaseIgnorable }
    guard let before, before.properties.isCased else { return false }
    let after = text[(index + 1)...].first { !$0.properties.isCaseIgnorable }
    return !(after?.properties.isCased ?? false)
  }
}

extension Unicode.Scalar {
  /// Python's `str.isspace()`: the Unicode White_Space property, plus U+001C–U+001F, which
  /// Python counts as whitespace because their bidirectional class is a separator.
  var isPythonWhitespace: Bool {
    properties.isWhitespace || (0x1C...0x1F).contains(value)
  }
}
