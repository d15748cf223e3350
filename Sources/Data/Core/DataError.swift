// Error policy for the data pipeline (the Torch target's policy, applied to data):
//
// * Everything that reads files, parses captions or decodes images `throws DataError`, which
//   names the file and, where it has one, the line (text formats) or key path (JSON), so a
//   message reads like `captions.tsv:17: expected 2 fields (path, caption), found 1`.
// * Whether a bad sample stops the run is the caller's choice (`ErrorPolicy`): `fail` (the
//   default) throws the first error; `skip` drops the sample, counts it in a `SkipLog`, and the
//   loader reports the total at the end (`SkipReport`).
// * Errors about the whole dataset (an empty split, an unreadable index file) always throw,
//   whatever the policy: there is nothing left to skip to.

/// A data problem: what went wrong and where (file, and line or key when known).
public struct DataError: Error, CustomStringConvertible, Equatable, Sendable {
  /// What kind of problem, for callers that count or filter errors.
  public enum Kind: String, Codable, Sendable, CaseIterable {
    case missingImage, undecodableImage, missingCaption, malformedCaption, missingField
    case emptySplit, unreadableFile, invalidArgument
  }

  public let kind: Kind
  /// The file (or shard member, e.g. `shard-000.tar/0042.jpg`) the problem is in.
  public let file: String
  /// 1-based line of a text file, when the problem is on one line.
  public let line: Int?
  /// Key path in a JSON file (`images[3].sentences[0].raw`) or a sample key in a shard.
  public let key: String?
  /// What is wrong and, where useful, what to do about it.
  public let message: String

  public init(_ kind: Kind, file: String, line: Int? = nil, key: String? = nil, _ message: String) {
    self.kind = kind
    self.file = file
    self.line = line
    self.key = key
    self.message = message
  }

  /// `file:line: message`, or `file: key: message`.
  public var description: String {
    var location = file
    if let line { location += ":\(line)" }
    if let key { location += ": \(key)" }
    return "\(location): \(message)"
  }
}

/// What to do with a sample that cannot be read.
public enum ErrorPolicy: String, Codable, Sendable {
  /// Throw the first error (default: a silently shrinking dataset hides real bugs).
  case fail
  /// Drop the sample, count it, and report the count when asked (`SkipReport`).
  case skip
}
