import Data
import Distillation
import Foundation
import Models
import Pyramid
import Tokenizers
import Torch

/// The teacher's features for training batches: read from the on-disk cache when it has them,
/// else computed by the frozen teacher (and stored). An image's features are stored once per
/// (sample, augmented view) and a caption's once per (sample, caption), so runs with the same
/// seed — every method of a comparison — share them, and no image is stored once per caption.
final class TeacherFeatureSource {
  let teacher: CLIPModel
  let pyramid: PyramidConfig
  let cache: TeacherCache?

  init(teacher: CLIPModel, config: ExperimentConfig, trainSet: any ImageTextDataset, preprocessor: ImagePreprocessor) throws {
    self.teacher = teacher
    pyramid = config.method.cmapkd.pyramid
    guard config.cache.enabled else {
      cache = nil
      return
    }
    // The key covers what the features depend on: teacher weights, pyramid, preprocessing,
    // the dataset's identity (sample ids are only unique within one dataset) and text length.
    let datasetIdentity = trainSet.cacheIdentity
    let description =
      "\(preprocessor.config.fingerprint)|\(datasetIdentity)|context \(teacher.config.textConfig.maxPositionEmbeddings)|variants \(config.data.augmentationVariants)"
    let storage: DType = config.cache.float16 ? .float16 : .float32
    let fingerprint = try TeacherCache.fingerprint(
      teacher: teacher, preprocessing: description, pyramid: pyramid, storage: storage)
    cache = try TeacherCache(
      root: config.cache.directory, fingerprint: fingerprint, description: description,
      maxBytes: Int64(config.cache.budgetMB) << 20,
      storage: storage, log: { FileHandle.standardError.write(Data("teacher cache: \($0)\n".utf8)) })
  }

  /// The cache's keys of each half of a batch: an image's features depend on the sample and
  /// its augmented view, a caption's on the sample and which caption.
  static func keys(_ batch: Batch) -> (image: [String], text: [String]) {
    (
      (0..<batch.count).map { "\(batch.sampleIds[$0])|\(batch.augmentationKeys[$0])" },
      (0..<batch.count).map { "\(batch.sampleIds[$0])|\(batch.captionIndices[$0])" }
    )
  }

  /// The features of `batch` on `device` (the teacher's): `pixels`, `ids` and `mask` are the
  /// batch's tensors already there.
  func features(for batch: Batch, pixels: Tensor, ids: Tensor, mask: Tensor, device: Device) throws -> TeacherFeatures {
    guard let cache else {
      return try TeacherFeatures.compute(teacher: teacher, pixels: pixels, ids: ids, attentionMask: mask, pyramid: pyramid)
    }
    let keys = Self.keys(batch)
    return try cache.features(
      teacher: teacher, pixels: pixels, ids: ids, attentionMask: mask, imageKeys: keys.image, textKeys: keys.text,
      pyramid: pyramid, device: device)
  }

  /// A fixed batch of validation pairs with the teacher's features: the held-out signal of the
  /// ALSN's selector training (never a training batch).
  func heldOutBatch(config: ExperimentConfig, tokenizer: any TextTokenizer, preprocessor: ImagePreprocessor, batchSize: Int)
    throws -> DistillBatch?
  {
    // CMAPKD's selector learns from it, also under `dtokd`'s balancing, and so does the RL router.
    let method = config.method
    let cmapkd = method.name == "cmapkd" || (method.name == "dtokd" && method.dtokd.base == "cmapkd")
    let rlRouter = (method.name == "router" || (method.name == "dtokd" && method.dtokd.base == "router")) && method.router.kind == .rl
    let multiOnCMAPKD = Methods.multiTeacherNames.contains(method.name) && method.multiteacher.base == "cmapkd"
    guard cmapkd || rlRouter || multiOnCMAPKD else {
      return nil
    }
    let val = try RunSetup.dataset(config.data, splits: config.data.valSplits)
    var loaderConfig = LoaderConfig.evaluation(batchSize: min(batchSize, val.count), numWorkers: 1)
    loaderConfig.seed = UInt64(config.seed)
    let loader = try BatchLoader(dataset: val, tokenizer: tokenizer, preprocessor: preprocessor, config: loaderConfig)
    guard let batch = try loader.batch(at: LoaderPosition()) else { return nil }
    let device = teacher.logitScale.device
    let (pixels, ids, mask) = (try batch.images.to(device), try batch.tokens.to(device), try batch.attentionMask.to(device))
    let teacherFeatures = try TeacherFeatures.compute(teacher: teacher, pixels: pixels, ids: ids, attentionMask: mask, pyramid: pyramid)
    return DistillBatch(pixels: pixels, ids: ids, attentionMask: mask, teacher: teacherFeatures)
  }
}
