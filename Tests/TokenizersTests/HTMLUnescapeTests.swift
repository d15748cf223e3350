import Testing
import Tokenizers

/// `HTML.unescape` against what Python's `html.unescape` returns for each input.
@Suite struct HTMLUnescapeTests {
  @Test(arguments: [
    ("fish &amp; chips", "fish & chips"),
    ("&amp;amp;", "&amp;"),  // one pass only
    ("&lt;b&gt;", "<b>"),
    ("&eacute;t&eacute;", "été"),
    ("&copy 2024", "© 2024"),  // a legacy name needs no `;`
    ("&notit;", "¬it;"),  // longest known prefix, then the rest
    ("&ampxyz", "&xyz"),
    ("&ltx", "<x"),
    ("&CounterClockwiseContourIntegral;", "∳"),
    ("&fjlig;", "fj"),  // two code points
    ("&unknown;", "&unknown;"),
    ("&Kappa; &\u{212A}appa;", "Κ &\u{212A}appa;"),  // the Kelvin sign is not K
    ("&#65;&#x42;&#X43&#0068", "ABCD"),
    ("&#128;&#x9F;", "€Ÿ"),  // Windows-1252
    ("&#0;&#xD800;&#1114112;&#99999999999999999999;", "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
    ("a&#1;b&#xFFFE;c&#x7F;d", "abcd"),  // forbidden code points vanish
    ("&#13;", "\r"),
    ("&#;&#x;&;& amp;&", "&#;&#x;&;& amp;&"),
    ("&#x1F600;", "😀"),
    ("", ""),
  ])
  func matchesPython(input: String, expected: String) {
    #expect(HTML.unescape(input).unicodeScalars.elementsEqual(expected.unicodeScalars))
  }
}
