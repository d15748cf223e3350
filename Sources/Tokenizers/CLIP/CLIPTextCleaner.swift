/// open_clip's default caption cleaning (`_clean_lower`) without its first step, ftfy:
/// HTML references unescaped twice (captions scraped from the web are often escaped twice, so
/// `&amp;amp;` is meant as `&`), whitespace runs collapsed to one space and trimmed, then
/// lower-cased as Python lower-cases.
///
/// ftfy repairs mojibake (`Ã©` → `é`), normalises to NFC, replaces curly quotes and removes
/// control characters; on text that needs none of that the result is open_clip's exactly.
///
/// ```swift
/// CLIPTextCleaner.clean("  Fish &amp;amp;\tCHIPS ")  // "fish & chips" (as scalars)
/// ```
enum CLIPTextCleaner {
  /// The cleaned text.
  ///
  /// - Parameters:
  ///   - text: a caption as given.
  static func clean(_ text: String) -> [Unicode.Scalar] {
    let unescaped = HTML.unescape(HTML.unescape(Array(text.unicodeScalars)))
    return PythonText.lowercased(PythonText.collapsingWhitespace(unescaped))
  }
}
