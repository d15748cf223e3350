/// A collection of images with captions, whatever it is stored in.
///
/// Every loader (Karpathy JSON, CSV/TSV, caption folders, tar shards) and the generated
/// scenes conform; the batch loader needs nothing else.
public protocol ImageTextDataset: Sendable {
  /// Names the dataset in messages, e.g. `dataset_coco.json (test)`.
  var name: String { get }
  var count: Int { get }
  /// An identifier that stays the same across runs, shuffles and machines (a path relative
  /// to the dataset root, a shard key, a generated index). Feature caches key on it.
  func sampleId(at index: Int) -> String
  /// The sample's captions; never empty.
  func captions(at index: Int) -> [String]
  /// Decodes (or renders) the image. Throws `DataError` naming the file.
  func loadImage(at index: Int) throws -> RGBImage
  /// A false caption worded like caption `caption` of the sample (a near miss: an attribute
  /// changed, attributes swapped between objects, a relation flipped), chosen by `key`; nil
  /// when the dataset has none. Training with these as extra negatives is NegCLIP's recipe.
  func hardNegative(at index: Int, caption: Int, key: UInt64) -> String?
  /// What feature caches key the dataset on (sample ids are unique only within one dataset):
  /// its `name` unless the dataset knows a stabler identity.
  var cacheIdentity: String { get }
}

extension ImageTextDataset {
  /// Datasets of real captions have no known-false captions.
  public func hardNegative(at index: Int, caption: Int, key: UInt64) -> String? { nil }

  public var cacheIdentity: String { name }

  /// A 64-bit key of `sampleId(at:)`, for tensors and file names.
  public func sampleKey(at index: Int) -> UInt64 { StableHash.string(sampleId(at: index)) }
}
