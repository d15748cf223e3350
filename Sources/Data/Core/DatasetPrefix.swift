/// The first `count` samples of a dataset, unchanged: the same ids, captions, images and hard
/// negatives. Students distilled on a subset of what the teacher saw (`train.samples`) read
/// the teacher's cached features of those samples from the full set's cache.
public struct DatasetPrefix: ImageTextDataset {
  public let base: any ImageTextDataset
  public let count: Int

  /// Throws when `count` is not in 1...base.count, naming the dataset.
  public init(_ base: any ImageTextDataset, count: Int) throws {
    guard count >= 1, count <= base.count else {
      throw DataError(.invalidArgument, file: base.name, "asked for its first \(count) samples, but it has \(base.count)")
    }
    self.base = base
    self.count = count
  }

  public var name: String { "\(base.name), first \(count) of \(base.count)" }
  /// The full set's: the prefix's rows are its rows, so they share its feature cache.
  public var cacheIdentity: String { base.cacheIdentity }
  public func sampleId(at index: Int) -> String { base.sampleId(at: index) }
  public func captions(at index: Int) -> [String] { base.captions(at: index) }
  public func loadImage(at index: Int) throws -> RGBImage { try base.loadImage(at: index) }
  public func hardNegative(at index: Int, caption: Int, key: UInt64) -> String? {
    base.hardNegative(at: index, caption: caption, key: key)
  }
}
