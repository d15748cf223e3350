/// Python's `html.unescape`, which the CLIP tokenizer runs twice over every caption.
public enum HTML {
  /// `text` with every HTML character reference replaced, exactly as Python's `html.unescape`
  /// does it: all 2,231 HTML5 named references (and the legacy ones that may omit `;`, matched
  /// by longest prefix, so `&notit;` is `¬it;`), decimal and hexadecimal numeric references,
  /// Windows-1252 replacements for `&#128;`–`&#159;`, U+FFFD for surrogates and numbers past
  /// U+10FFFF, and nothing for the code points HTML forbids.
  ///
  /// Known limit: Python refuses decimal references longer than 4,300 digits (its integer
  /// parsing limit) by raising; this returns U+FFFD for them, as for any other too-large number.
  ///
  /// ```swift
  /// HTML.unescape("fish &amp; chips &#x2014; &eacute;t&eacute;")  // "fish & chips — été"
  /// ```
  /// - Parameters:
  ///   - text: the text to unescape.
  public static func unescape(_ text: String) -> String {
    var result = String.UnicodeScalarView()
    result.append(contentsOf: unescape(Array(text.unicodeScalars)))
    return String(result)
  }

  /// `unescape(_:)` on scalars, which is how the tokenizers hold text.
  static func unescape(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard text.contains("&") else { return text }
    var result: [Unicode.Scalar] = []
    result.reserveCapacity(text.count)
    var index = 0
    while index < text.count {
      if text[index] == "&", let (replacement, end) = reference(startingAt: index + 1, in: text) {
        result += replacement
        index = end
      } else {
        result.append(text[index])
        index += 1
      }
    }
    return result
  }

  /// The longest name Python's reference pattern reads after `&` (`[^\t\n\f <&#;]{1,32}`).
  private static let maximumNameLength = 32

  /// Matches Python's `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` just after an
  /// `&`, and returns what the match becomes and where it ends; nil where nothing matches.
  private static func reference(startingAt start: Int, in text: [Unicode.Scalar]) -> ([Unicode.Scalar], Int)? {
    guard start < text.count else { return nil }
    if text[start] == "#" { return numericReference(startingAt: start + 1, in: text) }
    var end = start
    while end < text.count, end - start < maximumNameLength, !isNameTerminator(text[end]) { end += 1 }
    guard end > start else { return nil }
    if end < text.count, text[end] == ";" { end += 1 }
    return (namedReference(text[start..<end]), end)
  }

  private static func isNameTerminator(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "\t", "\n", "\u{0C}", " ", "<", "&", "#", ";": true
    default: false
    }
  }

  /// `#[0-9]+;?` or `#[xX][0-9a-fA-F]+;?`, starting after the `#`.
  private static func numericReference(startingAt start: Int, in text: [Unicode.Scalar]) -> ([Unicode.Scalar], Int)? {
    var index = start
    var radix: UInt32 = 10
    if index < text.count, text[index] == "x" || text[index] == "X" {
      radix = 16
      index += 1
    }
    let digitsStart = index
    // Saturate: every number past U+10FFFF is replaced the same way.
    var value: UInt32 = 0
    while index < text.count, let digit = digitValue(text[index], radix: radix) {
      value = min(value * radix + digit, 0x11_0000)
      index += 1
    }
    guard index > digitsStart else { return nil }
    if index < text.count, text[index] == ";" { index += 1 }
    return (numericReplacement(value), index)
  }

  /// ASCII digits only: Python's pattern says `[0-9]` and `[0-9a-fA-F]`, not `\d`.
  private static func digitValue(_ scalar: Unicode.Scalar, radix: UInt32) -> UInt32? {
    let digit: UInt32
    switch scalar.value {
    case 0x30...0x39: digit = scalar.value - 0x30
    case 0x41...0x46: digit = scalar.value - 0x41 + 10
    case 0x61...0x66: digit = scalar.value - 0x61 + 10
    default: return nil
    }
    return digit < radix ? digit : nil
  }

  private static func numericReplacement(_ value: UInt32) -> [Unicode.Scalar] {
    if let replaced = htmlReplacedCharacterReferences[value] { return [Unicode.Scalar(replaced)!] }
    guard let scalar = Unicode.Scalar(value) else { return ["\u{FFFD}"] }  // surrogate or past U+10FFFF
    if htmlDeletedCodePoints.contains(where: { $0.contains(value) }) { return [] }
    return [scalar]
  }

  /// A name as Python resolves it: the whole name, else its longest known prefix of at least
  /// two characters followed by the rest, else the text unchanged.
  private static func namedReference(_ name: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
    // Every entity name is ASCII, and only ASCII strings compare the same in Swift as in Python
    // (Swift would let the Kelvin sign match "K"), so look up ASCII prefixes only.
    let asciiCount = name.prefix(while: \.isASCII).count
    for length in stride(from: asciiCount, through: 2, by: -1) {
      let prefix = String(String.UnicodeScalarView(name.prefix(length)))
      if let replacement = namedEntities[prefix] { return replacement + name.dropFirst(length) }
    }
    return ["&"] + name
  }

  /// `htmlNamedEntityLines` parsed once: name → the scalars it stands for.
  private static let namedEntities: [String: [Unicode.Scalar]] = {
    var table: [String: [Unicode.Scalar]] = [:]
    for line in htmlNamedEntityLines.split(separator: "\n") {
      let fields = line.split(separator: " ")
      table[String(fields[0])] = fields.dropFirst().map { Unicode.Scalar(UInt32($0, radix: 16)!)! }
    }
    return table
  }()
}
