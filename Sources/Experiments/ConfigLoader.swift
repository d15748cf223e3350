import Foundation
import Yams

/// A config problem, naming the file (and line) and the key.
public struct ConfigError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// Loads experiment configs from YAML: several files merged in order (later keys win), then
/// `--set a.b=value` overrides, decoded into a `Codable` type.
///
/// Unknown keys and wrong types are errors naming the key and where it was set
/// (`configs/demo.yaml:12`, or `--set train.steps`). Unknown keys are found by encoding the
/// decoded value again: a key the input has but the encoding lacks was never read.
///
/// ```swift
/// let config = try ConfigLoader.load(ExperimentConfig.self, files: ["configs/demo.yaml"], overrides: ["train.steps=100"])
/// ```
public enum ConfigLoader {
  public static func load<T: Codable>(_ type: T.Type, files: [String], overrides: [String] = []) throws -> T {
    var merged = Node.mapping(Node.Mapping([]))
    var origin: [String: String] = [:]
    for file in files {
      let node = try parse(file: file)
      guard node.mapping != nil else { throw ConfigError("\(file): the top level must be a mapping of keys") }
      merge(node, into: &merged, path: [], file: file, origin: &origin)
    }
    for override in overrides {
      let (path, value) = try parse(override: override)
      set(value, at: path, in: &merged)
      markOrigin(value, path: path, origin: &origin) { _ in "--set \(path.joined(separator: "."))" }
    }
    let value: T
    do {
      value = try YAMLDecoder().decode(T.self, from: merged)
    } catch let error as DecodingError {
      throw describe(error, origin: origin)
    }
    let reencoded = try Yams.compose(yaml: YAMLEncoder().encode(value)) ?? Node.mapping(Node.Mapping([]))
    if let unknown = unknownKey(in: merged, known: reencoded, path: []) {
      let key = unknown.joined(separator: ".")
      let allowed = knownKeys(reencoded, at: Array(unknown.dropLast()))
      throw ConfigError(
        "\(origin[key] ?? "config"): unknown key '\(key)'"
          + (allowed.isEmpty ? "" : " (known here: \(allowed.joined(separator: ", ")))"))
    }
    return value
  }

  /// The resolved config as YAML, to save in the run folder.
  public static func yaml<T: Encodable>(_ value: T) throws -> String { try YAMLEncoder().encode(value) }

  // MARK: - Parsing

  /// Whether `file` exists on disk or is one of the program's built-in configs/ files.
  public static func exists(_ file: String) -> Bool {
    FileManager.default.fileExists(atPath: file) || BuiltInConfigs.files[file] != nil
  }

  static func parse(file: String) throws -> Node {
    let text: String
    if !FileManager.default.fileExists(atPath: file), let builtIn = BuiltInConfigs.files[file] {
      // Outside the checkout, `configs/…` paths resolve to the copies built into the program.
      text = builtIn
    } else {
      guard FileManager.default.fileExists(atPath: file) else { throw ConfigError("config file not found: \(file)") }
      do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
        throw ConfigError("\(file): cannot read as UTF-8 text (\(error.localizedDescription))")
      }
    }
    do {
      return try Yams.compose(yaml: text) ?? Node.mapping(Node.Mapping([]))
    } catch let error as YamlError {
      throw ConfigError("\(file): invalid YAML: \(error)")
    }
  }

  static func parse(override: String) throws -> ([String], Node) {
    guard let eq = override.firstIndex(of: "=") else {
      throw ConfigError("--set '\(override)': expected key.path=value")
    }
    let path = override[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    guard !path.isEmpty, path.allSatisfy({ !$0.isEmpty }) else { throw ConfigError("--set '\(override)': empty key") }
    let text = String(override[override.index(after: eq)...])
    do {
      return (path, try Yams.compose(yaml: text) ?? Node("", Tag(.null)))
    } catch {
      throw ConfigError("--set \(path.joined(separator: ".")): value '\(text)' is not valid YAML")
    }
  }

  // MARK: - Merging

  static func merge(_ node: Node, into target: inout Node, path: [String], file: String, origin: inout [String: String]) {
    guard let mapping = node.mapping, var result = target.mapping else {
      target = node
      return
    }
    for (key, value) in mapping {
      let name = key.string ?? "\(key)"
      if value.mapping != nil, var child = result[key], child.mapping != nil {
        merge(value, into: &child, path: path + [name], file: file, origin: &origin)
        result[key] = child
      } else {
        result[key] = value
        markOrigin(value, path: path + [name], origin: &origin) { line in "\(file)\(line.map { ":\($0)" } ?? "")" }
      }
      origin[(path + [name]).joined(separator: ".")] = "\(file)\(key.mark.map { ":\($0.line)" } ?? "")"
    }
    target = .mapping(result)
  }

  /// Records where `node` and every key under it were set.
  static func markOrigin(_ node: Node, path: [String], origin: inout [String: String], describe: (Int?) -> String) {
    origin[path.joined(separator: ".")] = describe(node.mark?.line)
    for (key, value) in node.mapping ?? Node.Mapping([]) {
      let name = key.string ?? "\(key)"
      markOrigin(value, path: path + [name], origin: &origin, describe: describe)
      origin[(path + [name]).joined(separator: ".")] = describe(key.mark?.line)
    }
  }

  static func set(_ value: Node, at path: [String], in node: inout Node) {
    guard let first = path.first else {
      node = value
      return
    }
    var mapping = node.mapping ?? Node.Mapping([])
    var child = mapping[first] ?? Node.mapping(Node.Mapping([]))
    set(value, at: Array(path.dropFirst()), in: &child)
    mapping[first] = child
    node = .mapping(mapping)
  }

  // MARK: - Checking

  static func unknownKey(in input: Node, known: Node, path: [String]) -> [String]? {
    guard let mapping = input.mapping else { return nil }
    let knownMapping = known.mapping
    for (key, value) in mapping {
      let name = key.string ?? "\(key)"
      if value.null != nil { continue }  // an explicit null leaves an optional unset
      guard let match = knownMapping?[name] else { return path + [name] }
      if let found = unknownKey(in: value, known: match, path: path + [name]) { return found }
    }
    return nil
  }

  static func knownKeys(_ node: Node, at path: [String]) -> [String] {
    var current: Node? = node
    for key in path { current = current?.mapping?[key] }
    return current?.mapping?.keys.compactMap(\.string).sorted() ?? []
  }

  static func describe(_ error: DecodingError, origin: [String: String]) -> ConfigError {
    func key(_ path: [CodingKey]) -> String {
      path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(
        of: ".[", with: "[")
    }
    func place(_ path: [CodingKey]) -> String {
      var keys = path.filter { $0.intValue == nil }.map(\.stringValue)
      while !keys.isEmpty {
        if let found = origin[keys.joined(separator: ".")] { return found }
        keys.removeLast()
      }
      return "config"
    }
    switch error {
    case .typeMismatch(let type, let context):
      return ConfigError("\(place(context.codingPath)): key '\(key(context.codingPath))' has the wrong type: expected \(type)")
    case .valueNotFound(let type, let context):
      return ConfigError("\(place(context.codingPath)): key '\(key(context.codingPath))' needs a value of type \(type)")
    case .keyNotFound(let missing, let context):
      let path = context.codingPath + [missing]
      return ConfigError("\(place(context.codingPath)): required key '\(key(path))' is missing")
    case .dataCorrupted(let context):
      return ConfigError("\(place(context.codingPath)): key '\(key(context.codingPath))': \(context.debugDescription)")
    @unknown default:
      return ConfigError("config: \(error)")
    }
  }
}
