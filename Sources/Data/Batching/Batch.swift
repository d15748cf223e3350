import Torch

/// A batch of image–caption pairs, with what identifies each sample.
///
/// `sampleIds` and `augmentationKeys` together name exactly what the model saw: the same
/// id and key always give the same pixels, which is what a teacher-feature cache keys on.
public struct Batch {
  /// `[B, 3, H, W]` float32, normalized.
  public let images: Tensor
  /// `[B, contextLength]` int64 token ids, padded.
  public let tokens: Tensor
  /// `[B, contextLength]` int64, 1 for real tokens and 0 for padding.
  public let attentionMask: Tensor
  /// Dataset indices of the samples.
  public let indices: [Int]
  public let sampleIds: [String]
  /// 0 for the evaluation view (evaluation, or training with augmentation off); otherwise
  /// the key that fixes the augmented view.
  public let augmentationKeys: [UInt64]
  /// Which of each sample's captions was used, and its text.
  public let captionIndices: [Int]
  public let captions: [String]
  /// Where this batch is in the stream.
  public let position: LoaderPosition
  /// With `LoaderConfig.hardNegatives`: `[M, contextLength]` token ids and mask of the hard
  /// negatives of the M ≤ B samples that have one (nil when none has).
  public var negativeTokens: Tensor? = nil
  public var negativeMask: Tensor? = nil
  /// The negatives' texts and the batch row each was made for.
  public var negativeCaptions: [String] = []
  public var negativeOwners: [Int] = []

  /// Samples in the batch (smaller than the batch size only at an epoch's end without
  /// `dropLast`, or when samples were skipped).
  public var count: Int { indices.count }
}
