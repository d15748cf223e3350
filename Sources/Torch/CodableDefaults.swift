/// Config types across the package decode JSON/YAML in which every field may be omitted;
/// this reads a field or falls back to its default.
extension KeyedDecodingContainer {
  package func decode<T: Decodable>(_ key: Key, default fallback: T) throws -> T {
    try decodeIfPresent(T.self, forKey: key) ?? fallback
  }
}
