import Data
import Distillation
import Foundation
import Models
import Torch

/// One experiment, as written in `configs/*.yaml`. Every key may be omitted (defaults are the
/// demo's); unknown keys are errors (`ConfigLoader`).
///
/// ```yaml
/// name: cmapkd
/// seed: 0
/// output_dir: runs
/// teacher: {preset: scene-teacher, checkpoint: runs/teacher/checkpoints/best}
/// student: {preset: scene-student}
/// method: {name: cmapkd}
/// train: {steps: 600, batch_size: 64}
/// ```
public struct ExperimentConfig: Codable, Equatable, Sendable {
  public var name = "experiment"
  public var seed = 0
  /// Runs are written to `output_dir/name` unless `run_dir` says otherwise.
  public var outputDir = "runs"
  public var runDir: String?
  /// Where training and evaluation run: `auto` (CUDA when LibTorch's CUDA library loads, else
  /// the CPU), `cpu`, `cuda` or `cuda:N`.
  public var device = "auto"
  /// Mixed precision of the forward passes (LibTorch autocast): `fp32` (none), `bf16`, or
  /// `fp16` (with a dynamic loss scale). Weights, optimizer state, softmaxes and losses stay
  /// float32.
  public var precision = Precision.fp32
  /// LibTorch's deterministic algorithms (`Torch.setDeterministic`): a GPU run repeats bit for
  /// bit, somewhat slower; an op with no deterministic CUDA kernel stops the run, naming it.
  /// CPU runs on one machine repeat exactly either way.
  public var deterministic = false
  public var data = DataSection()
  public var teacher = ModelSection(preset: "scene-teacher")
  public var student = ModelSection(preset: "scene-student")
  /// Teachers besides `teacher`, for the methods that distil from several (`multiteacher`,
  /// `router`); the other methods ignore them. Each is a preset or config and a checkpoint.
  public var extraTeachers: [ModelSection] = []
  public var method = MethodConfig()
  /// Epochs per stage, read as proportions of the step budget (`train.steps`).
  public var schedule = ProgressiveSchedule(coarseEpochs: 1, mediumEpochs: 1, fineEpochs: 2, refinementEpochs: 0)
  public var optimizer = OptimizerSection()
  public var train = TrainSection()
  /// Teacher training (`cmapkd train-teacher`): its own step budget and learning rate.
  public var teacherTraining = TrainSection(steps: 1500, evalEvery: 500)
  public var teacherOptimizer = OptimizerSection(learningRate: 1e-3)
  public var cache = CacheSection()
  public var eval = EvalSection()

  enum CodingKeys: String, CodingKey {
    case name, seed, device, precision, deterministic, data, teacher, student, method, schedule, optimizer, train, cache, eval
    case extraTeachers = "extra_teachers"
    case outputDir = "output_dir", runDir = "run_dir", teacherTraining = "teacher_training", teacherOptimizer =
      "teacher_optimizer"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = ExperimentConfig()
    name = try c.decode(.name, default: d.name)
    seed = try c.decode(.seed, default: d.seed)
    outputDir = try c.decode(.outputDir, default: d.outputDir)
    runDir = try c.decodeIfPresent(String.self, forKey: .runDir)
    device = try c.decode(.device, default: d.device)
    precision = try c.decode(.precision, default: d.precision)
    deterministic = try c.decode(.deterministic, default: d.deterministic)
    data = try c.decode(.data, default: d.data)
    teacher = try c.decode(.teacher, default: d.teacher)
    student = try c.decode(.student, default: d.student)
    extraTeachers = try c.decode(.extraTeachers, default: d.extraTeachers)
    method = try c.decode(.method, default: d.method)
    schedule = try c.decode(.schedule, default: d.schedule)
    optimizer = try c.decode(.optimizer, default: d.optimizer)
    train = try c.decode(.train, default: d.train)
    teacherTraining = try c.decode(.teacherTraining, default: d.teacherTraining)
    teacherOptimizer = try c.decode(.teacherOptimizer, default: d.teacherOptimizer)
    cache = try c.decode(.cache, default: d.cache)
    eval = try c.decode(.eval, default: d.eval)
  }

  /// The folder this run writes to.
  public var resolvedRunDirectory: String { runDir ?? "\(outputDir)/\(name)" }

  /// The device `device` names; `auto` is CUDA device 0 when LibTorch's CUDA library loads and
  /// a GPU is present, else the CPU.
  /// - Parameter localRank: a data-parallel process's index on its machine: `auto` and `cuda`
  ///   then mean that process's own GPU, `cuda:<local rank>`.
  public func resolvedDevice(localRank: Int? = nil) throws -> Device {
    if device == "auto", !Torch.cudaAvailable { return .cpu }
    // `auto` with CUDA, and `cuda` in a data-parallel process: that process's own GPU, checked
    // like any named device.
    if device == "auto" || (device == "cuda" && localRank != nil) {
      var own = self
      own.device = "cuda:\(localRank ?? 0)"
      return try own.resolvedDevice()
    }
    let parsed: Device
    do { parsed = try Device(parsing: device) } catch {
      throw ConfigError("device: '\(device)' is not a device; use auto, cpu, cuda or cuda:N")
    }
    if case .cuda(let index) = parsed {
      if let reason = Torch.cudaUnavailableReason {
        throw ConfigError("device: \(device) asked for, but \(reason); use device: cpu or auto")
      }
      guard index < Torch.cudaDeviceCount else {
        throw ConfigError(
          "device: \(device) asked for, but only \(Torch.cudaDeviceCount) CUDA device(s) are visible (under device: auto or cuda each data-parallel process takes cuda:<local rank>; name one device, cuda:0, to share it)"
        )
      }
    }
    return parsed
  }
}

/// Mixed precision of training forward passes.
public enum Precision: String, Codable, Sendable, CaseIterable {
  case fp32, bf16, fp16

  /// The autocast dtype; nil for full precision.
  public var autocastType: DType? {
    switch self {
    case .fp32: nil
    case .bf16: .bfloat16
    case .fp16: .float16
    }
  }
}

/// Where the image–text pairs come from.
public struct DataSection: Codable, Equatable, Sendable {
  /// The embedded benchmark by default; `dataset` names files for real data (its splits are
  /// `train_splits` / `test_splits`).
  public var scenes = ScenesConfig()
  public var dataset: DatasetConfig?
  public var trainSplits = ["train"]
  public var valSplits = ["val"]
  public var testSplits = ["test"]
  public var workers = 2
  /// Distinct augmented views per sample: bounds the teacher cache (one entry per view).
  public var augmentationVariants = 4
  /// Shuffle the training split in blocks of this many consecutive samples (the generated
  /// benchmark's contrast sets, so each batch holds near-miss scenes); 1 = plain shuffle.
  public var shuffleGroup = 1
  public var augmentation = AugmentationConfig()
  /// CLIP BPE vocabulary (open_clip's `bpe_simple_vocab_16e6.txt.gz`); found in the project
  /// venv when omitted.
  public var vocabulary: String?

  enum CodingKeys: String, CodingKey {
    case scenes, dataset, workers, augmentation, vocabulary
    case trainSplits = "train_splits", valSplits = "val_splits", testSplits = "test_splits"
    case augmentationVariants = "augmentation_variants", shuffleGroup = "shuffle_group"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = DataSection()
    scenes = try c.decode(.scenes, default: d.scenes)
    dataset = try c.decodeIfPresent(DatasetConfig.self, forKey: .dataset)
    trainSplits = try c.decode(.trainSplits, default: d.trainSplits)
    valSplits = try c.decode(.valSplits, default: d.valSplits)
    testSplits = try c.decode(.testSplits, default: d.testSplits)
    workers = try c.decode(.workers, default: d.workers)
    augmentationVariants = try c.decode(.augmentationVariants, default: d.augmentationVariants)
    shuffleGroup = try c.decode(.shuffleGroup, default: d.shuffleGroup)
    augmentation = try c.decode(.augmentation, default: d.augmentation)
    vocabulary = try c.decodeIfPresent(String.self, forKey: .vocabulary)
  }
}

/// A model: a preset by name, or a config file; optionally weights to load.
public struct ModelSection: Codable, Equatable, Sendable {
  /// `tiny`, `scene-teacher`, `scene-teacher-b`, `scene-student`, `vit-b-32`, `vit-b-16`, `vit-s-16`, `vit-l-14`.
  public var preset: String?
  /// A Hugging Face `config.json` (overrides `preset`).
  public var config: String?
  /// Weights: a run's checkpoint folder, or a Hugging Face model folder.
  public var checkpoint: String?

  public init(preset: String? = nil, config: String? = nil, checkpoint: String? = nil) {
    self.preset = preset
    self.config = config
    self.checkpoint = checkpoint
  }
}

public struct OptimizerSection: Codable, Equatable, Sendable {
  public var learningRate = 5e-4
  public var minLearningRate = 1e-5
  public var weightDecay = 0.1
  public var beta1 = 0.9
  public var beta2 = 0.98
  public var eps = 1e-6
  /// Fraction of the steps spent warming up linearly.
  public var warmupFraction = 0.05
  /// Global gradient-norm clip; 0 disables.
  public var clipNorm = 1.0

  enum CodingKeys: String, CodingKey {
    case learningRate = "lr", minLearningRate = "min_lr", weightDecay = "weight_decay", beta1, beta2, eps
    case warmupFraction = "warmup_fraction", clipNorm = "clip_norm"
  }

  public init(learningRate: Double = 5e-4) { self.learningRate = learningRate }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = OptimizerSection()
    learningRate = try c.decode(.learningRate, default: d.learningRate)
    minLearningRate = try c.decode(.minLearningRate, default: d.minLearningRate)
    weightDecay = try c.decode(.weightDecay, default: d.weightDecay)
    beta1 = try c.decode(.beta1, default: d.beta1)
    beta2 = try c.decode(.beta2, default: d.beta2)
    eps = try c.decode(.eps, default: d.eps)
    warmupFraction = try c.decode(.warmupFraction, default: d.warmupFraction)
    clipNorm = try c.decode(.clipNorm, default: d.clipNorm)
  }
}

public struct TrainSection: Codable, Equatable, Sendable {
  /// The step budget; every method gets the same.
  public var steps = 600
  public var batchSize = 64
  /// Evaluate (validation subset) every N steps and at the end; 0 = only at the end.
  public var evalEvery = 200
  public var logEvery = 10
  /// Checkpoint every N steps and at the end.
  public var checkpointEvery = 100
  /// Checkpoints kept besides the best.
  public var keepLast = 2
  /// LibTorch intra-op threads (0 = LibTorch's default).
  public var threads = 0
  /// Teacher training only: one hard-negative caption per sample as an extra image→text
  /// negative (NegCLIP), so in-batch contrast also teaches binding and relations.
  public var hardNegatives = false
  /// Micro-batches per optimizer step: each step's `batch_size` samples are split into this
  /// many micro-batches whose gradients add up (contrastive negatives are per micro-batch).
  public var accumulationSteps = 1
  /// Train on only the first N samples of the training split (0 = all of it): students
  /// distilled on a subset of what the teacher saw (configs/lowdata.yaml) keep the teacher,
  /// its key and its feature cache.
  public var samples = 0

  enum CodingKeys: String, CodingKey {
    case steps, threads, samples, hardNegatives = "hard_negatives", accumulationSteps = "accumulation_steps"
    case batchSize = "batch_size", evalEvery = "eval_every", logEvery = "log_every", checkpointEvery = "checkpoint_every"
    case keepLast = "keep_last"
  }

  public init(steps: Int = 600, evalEvery: Int = 200) {
    self.steps = steps
    self.evalEvery = evalEvery
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = TrainSection()
    steps = try c.decode(.steps, default: d.steps)
    batchSize = try c.decode(.batchSize, default: d.batchSize)
    evalEvery = try c.decode(.evalEvery, default: d.evalEvery)
    logEvery = try c.decode(.logEvery, default: d.logEvery)
    checkpointEvery = try c.decode(.checkpointEvery, default: d.checkpointEvery)
    keepLast = try c.decode(.keepLast, default: d.keepLast)
    accumulationSteps = try c.decode(.accumulationSteps, default: d.accumulationSteps)
    threads = try c.decode(.threads, default: d.threads)
    hardNegatives = try c.decode(.hardNegatives, default: d.hardNegatives)
    samples = try c.decode(.samples, default: d.samples)
  }
}

public struct CacheSection: Codable, Equatable, Sendable {
  public var enabled = true
  /// Shared by every run with the same teacher and preprocessing (the key says so).
  public var directory = "runs/cache"
  public var budgetMB = 4096
  public var float16 = false

  enum CodingKeys: String, CodingKey {
    case enabled, directory, budgetMB = "budget_mb", float16
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = CacheSection()
    enabled = try c.decode(.enabled, default: d.enabled)
    directory = try c.decode(.directory, default: d.directory)
    budgetMB = try c.decode(.budgetMB, default: d.budgetMB)
    float16 = try c.decode(.float16, default: d.float16)
  }
}

public struct EvalSection: Codable, Equatable, Sendable {
  /// Images of the validation split used for evaluation during training (0 = all).
  public var duringTrainingImages = 256
  /// Images of the test split for the final evaluation (0 = all).
  public var testImages = 0
  public var zeroShot = true
  public var hardNegatives = true
  public var efficiency = true
  /// Timed runs for latency/throughput.
  public var timingRuns = 5
  /// The metric that picks the best checkpoint.
  public var bestMetric = "mean_recall"
  /// Zero-shot classification on an image folder (one subfolder per class) in the final
  /// evaluation, instead of the embedded benchmark's zero-shot set.
  public var zeroShotDataset: ZeroShotDatasetSection?

  enum CodingKeys: String, CodingKey {
    case duringTrainingImages = "during_training_images", testImages = "test_images", zeroShot = "zero_shot"
    case hardNegatives = "hard_negatives", efficiency, timingRuns = "timing_runs", bestMetric = "best_metric"
    case zeroShotDataset = "zero_shot_dataset"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = EvalSection()
    duringTrainingImages = try c.decode(.duringTrainingImages, default: d.duringTrainingImages)
    testImages = try c.decode(.testImages, default: d.testImages)
    zeroShot = try c.decode(.zeroShot, default: d.zeroShot)
    hardNegatives = try c.decode(.hardNegatives, default: d.hardNegatives)
    efficiency = try c.decode(.efficiency, default: d.efficiency)
    timingRuns = try c.decode(.timingRuns, default: d.timingRuns)
    bestMetric = try c.decode(.bestMetric, default: d.bestMetric)
    zeroShotDataset = try c.decodeIfPresent(ZeroShotDatasetSection.self, forKey: .zeroShotDataset)
  }
}

/// `eval.zero_shot_dataset`: an image-classification folder and how to prompt for its classes.
public struct ZeroShotDatasetSection: Codable, Equatable, Sendable {
  /// One subfolder of images per class.
  public var path: String
  /// One class name per line in sorted folder order; default: the folder names (`_` → space).
  public var classNames: String?
  /// One prompt template per line with `{}` for the class name; default: CLIP's 7-template set.
  public var templates: String?

  enum CodingKeys: String, CodingKey {
    case path, templates, classNames = "class_names"
  }
}
