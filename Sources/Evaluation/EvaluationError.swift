// Error policy for evaluation (the Torch target's policy, applied here): inputs that cannot be
// evaluated (a mapping that names a missing image, an image without captions, a tokenizer
// longer than the text tower) throw `EvaluationError` saying what to change; LibTorch failures
// arrive as `TorchError` and data problems as `DataError`, unchanged.

/// An evaluation input that cannot work, with what to change.
public struct EvaluationError: Error, CustomStringConvertible, Equatable, Sendable {
  public let description: String
  public init(_ description: String) { self.description = description }
}
