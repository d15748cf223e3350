/// How a spec is worded: which template, adjective order and synonyms. Keeping the wording
/// apart from the content lets a hard negative reuse the exact wording of its caption, so
/// the two differ only in the changed attribute, binding or relation.
public struct CaptionStyle: Equatable, Codable, Sendable {
  /// Index into the kind's templates.
  public var template: Int
  /// Per phrase: 0 "small striped red circle", 1 "small red striped circle",
  /// 2 "small red circle with stripes".
  public var phraseForms: [Int]
  /// Picks among synonyms for relations and regions.
  public var synonym: Int
  /// Relations only: say it from the second object ("B with A to its left").
  public var inverted: Bool

  public init(template: Int, phraseForms: [Int], synonym: Int = 0, inverted: Bool = false) {
    self.template = template
    self.phraseForms = phraseForms
    self.synonym = synonym
    self.inverted = inverted
  }
}

extension CaptionSpec {
  /// The spec in words (`phraseForms` needs one entry per phrase).
  public func text(_ style: CaptionStyle) -> String { CaptionText.render(self, style) }
}

/// Puts specs into words.
enum CaptionText {
  static let listingTemplates = 4
  static let relationTemplates = 4
  static let detailTemplates = 4

  static func render(_ spec: CaptionSpec, _ style: CaptionStyle) -> String {
    switch spec {
    case .listing(let phrases):
      let items = phrases.enumerated().map { withArticle(phrase($0.element, form: style.phraseForms[$0.offset], style)) }
      let list = joined(items)
      let n = phrases.count
      switch style.template % listingTemplates {
      case 0: return list
      case 1: return "a picture of \(list)"
      case 2: return "\(numberWord(n)) \(n == 1 ? "shape" : "shapes"): \(list)"
      default: return n == 1 ? "there is one object, \(list)" : "there are \(numberWord(n)) objects, \(list)"
      }
    case .relation(var a, var relation, var b):
      var forms = (style.phraseForms[0], style.phraseForms[1])
      if style.inverted {
        (a, b) = (b, a)
        relation = relation.inverse
        forms = (forms.1, forms.0)
      }
      let x = withArticle(phrase(a, form: forms.0, style))
      let y = withArticle(phrase(b, form: forms.1, style))
      let word = relationWords(relation, style.synonym)
      switch style.template % relationTemplates {
      case 0: return "\(x) \(word) \(y)"
      case 1: return "\(x) is \(word) \(y)"
      case 2: return "\(y) with \(x) \(relationSuffix(relation))"
      default: return "\(word) \(y) there is \(x)"
      }
    case .detail(let p):
      var bare = p
      bare.cell = nil
      let x = withArticle(phrase(bare, form: style.phraseForms[0], style))
      let place = p.cell.map { region($0, style.synonym) } ?? "in the picture"
      switch style.template % detailTemplates {
      case 0: return "\(x) \(place)"
      case 1: return "\(place), there is \(x)"
      case 2: return "the shape \(place) is \(x)"
      default: return "up close, the object \(place) is \(x)"
      }
    }
  }

  /// "small striped red circle" (no article), plus its place when the phrase has one.
  static func phrase(_ p: ObjectPhrase, form: Int, _ style: CaptionStyle) -> String {
    var words: [String] = []
    if let size = p.size { words.append(size.rawValue) }
    let fillAdjective = p.fill?.rawValue
    switch form % 3 {
    case 0:
      if let fillAdjective { words.append(fillAdjective) }
      if let color = p.color { words.append(color.rawValue) }
      words.append(p.shape.rawValue)
    case 1:
      if let color = p.color { words.append(color.rawValue) }
      if let fillAdjective { words.append(fillAdjective) }
      words.append(p.shape.rawValue)
    default:
      if let color = p.color { words.append(color.rawValue) }
      words.append(p.shape.rawValue)
      if let fill = p.fill { words.append(fillPhrase(fill)) }
    }
    if let cell = p.cell { words.append(region(cell, style.synonym)) }
    return words.joined(separator: " ")
  }

  static func fillPhrase(_ fill: FillPattern) -> String {
    switch fill {
    case .solid: "in a solid color"
    case .striped: "with stripes"
    case .dotted: "with dots"
    }
  }

  static func region(_ cell: GridCell, _ synonym: Int) -> String {
    let names: [[(String, String)]] = [
      [
        ("in the top left", "in the upper left corner"), ("at the top", "at the top center"),
        ("in the top right", "in the upper right corner"),
      ],
      [("on the left", "at the left side"), ("in the middle", "in the center"), ("on the right", "at the right side")],
      [
        ("in the bottom left", "in the lower left corner"), ("at the bottom", "at the bottom center"),
        ("in the bottom right", "in the lower right corner"),
      ],
    ]
    let pair = names[cell.row][cell.column]
    return synonym % 2 == 0 ? pair.0 : pair.1
  }

  static func relationWords(_ relation: Relation, _ synonym: Int) -> String {
    let options: (String, String) =
      switch relation {
      case .leftOf: ("to the left of", "left of")
      case .rightOf: ("to the right of", "right of")
      case .above: ("above", "over")
      case .below: ("below", "under")
      }
    return synonym % 2 == 0 ? options.0 : options.1
  }

  static func relationSuffix(_ relation: Relation) -> String {
    switch relation {
    case .leftOf: "to its left"
    case .rightOf: "to its right"
    case .above: "above it"
    case .below: "below it"
    }
  }

  static func numberWord(_ n: Int) -> String {
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][min(n, 9)]
  }

  static func withArticle(_ words: String) -> String {
    (words.first.map { "aeiou".contains($0) } ?? false ? "an " : "a ") + words
  }

  static func joined(_ items: [String]) -> String {
    guard items.count > 1 else { return items.first ?? "" }
    return items.dropLast().joined(separator: ", ") + " and " + items.last!
  }
}
