/// Config structs decode from partial JSON/YAML: a missing key keeps the default value.
/// (Synthesised `Decodable` would reject a file that leaves any field out.)
extension KeyedDecodingContainer {
  func decode<T: Decodable>(_ key: Key, default value: T) throws -> T {
    try decodeIfPresent(T.self, forKey: key) ?? value
  }
}
