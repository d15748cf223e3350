import Data
import Evaluation
import Foundation
import Models
import Tokenizers
import Torch

/// Evaluations inside a run: retrieval on a validation subset during training, and the full
/// evaluation on the test split at the end (retrieval, hard negatives and zero-shot on the
/// embedded benchmark; efficiency).
final class RunEvaluator {
  let config: ExperimentConfig
  let tokenizer: any TextTokenizer
  let preprocess: PreprocessConfig
  private var validationSet: (any ImageTextDataset)?

  init(config: ExperimentConfig, model: CLIPConfig, tokenizer: any TextTokenizer) throws {
    self.config = config
    self.tokenizer = tokenizer
    preprocess = try RunSetup.preprocessor(config.data, model: model).config
  }

  func evaluator(_ model: CLIPModel, limit: Int) throws -> Evaluator {
    try Evaluator(
      model: model, tokenizer: tokenizer,
      options: EvaluationOptions(batchSize: 256, numWorkers: max(config.data.workers, 1), maxImages: limit > 0 ? limit : nil),
      preprocess: preprocess)
  }

  /// Retrieval on the first `eval.during_training_images` validation images (all their captions).
  func validation(_ model: CLIPModel) throws -> [String: Double] {
    if validationSet == nil { validationSet = try RunSetup.dataset(config.data, splits: config.data.valSplits) }
    return Self.flatten(
      EvaluationResult(retrieval: try evaluator(model, limit: config.eval.duringTrainingImages).retrieval(validationSet!)))
  }

  struct Final {
    var metrics: [String: Double]
    var parameters: Int?
    var flopsPerImage: Double?
    var flopsPerCaption: Double?
    var imagesPerSecond: Double?
    var detail: EvaluationResult?
  }

  /// The final evaluation on the test split.
  func final(_ model: CLIPModel) throws -> Final {
    let test = try RunSetup.dataset(config.data, splits: config.data.testSplits)
    let evaluator = try evaluator(model, limit: config.eval.testImages)
    var result: EvaluationResult
    if let scenes = test as? ScenesDataset {
      let (retrieval, hard, contrastSets) = try evaluator.scenes(scenes)
      result = EvaluationResult(
        retrieval: retrieval, hardNegatives: config.eval.hardNegatives ? hard : nil, contrastSets: contrastSets)
      if config.eval.zeroShot, config.data.dataset == nil {
        result.zeroShot = try evaluator.zeroShot(try ZeroShotScenes(config.data.scenes))
      }
    } else {
      result = EvaluationResult(retrieval: try evaluator.retrieval(test))
    }
    if let folder = config.eval.zeroShotDataset {
      result.zeroShot = try evaluator.zeroShot(
        ClassFolders(root: folder.path, classNames: folder.classNames),
        prompts: try folder.templates.map { try PromptTemplates(file: $0) } ?? .clip)
    }
    if config.eval.efficiency {
      result.efficiency = try Efficiency.measure(
        model, options: EfficiencyOptions(warmup: 2, runs: max(config.eval.timingRuns, 1), throughputBatchSize: 64))
    }
    let efficiency = result.efficiency
    return Final(
      metrics: Self.flatten(result), parameters: ParameterCounts(model).total,
      flopsPerImage: Double(FlopCounter.image(model.config).total),
      flopsPerCaption: Double(FlopCounter.caption(model.config).total),
      imagesPerSecond: efficiency?.image.itemsPerSecond, detail: result)
  }

  /// The report's metric names (`Reports.MetricKey`) from an evaluation result.
  static func flatten(_ result: EvaluationResult) -> [String: Double] {
    var m: [String: Double] = [:]
    if let r = result.retrieval {
      m["i2t_r1"] = r.imageToText.r1
      m["i2t_r5"] = r.imageToText.r5
      m["i2t_r10"] = r.imageToText.r10
      m["t2i_r1"] = r.textToImage.r1
      m["t2i_r5"] = r.textToImage.r5
      m["t2i_r10"] = r.textToImage.r10
      m["mean_recall"] = r.meanRecall
    }
    if let h = result.hardNegatives {
      m["hard_negative_acc"] = h.pairwise.accuracy
      for (kind, accuracy) in h.byKind { m["hard_negative_\(kind)"] = accuracy.accuracy }
    }
    if let c = result.contrastSets {
      m["t2i_set_r1"] = c.setR1
      m["t2i_within_set_r1"] = c.withinSetR1
    }
    if let z = result.zeroShot {
      m["zeroshot_top1"] = z.top1
      m["zeroshot_top5"] = z.top5
      m["zeroshot_classes"] = Double(z.classes)
    }
    return m
  }
}
