import Data
import Experiments
import Foundation
import TestSupport

/// A fresh temporary folder.
func temporaryFolder(_ name: String) throws -> String {
  try Scratch.folder(name)
}

/// An experiment at test size: tiny towers, 32-px scenes, a few dozen steps.
func tinyExperiment(root: String) -> ExperimentConfig {
  var c = ExperimentConfig()
  c.name = "tiny"
  c.outputDir = root
  var scenes = ScenesConfig(seed: 0, imageSize: 32)
  scenes.train.count = 64
  scenes.val = .evaluation(count: 16)
  scenes.test = .evaluation(count: 16)
  scenes.zeroShotCount = 16
  c.data.scenes = scenes
  c.data.workers = 1
  c.teacher = ModelSection(preset: "tiny", checkpoint: "\(root)/teacher")
  c.student = ModelSection(preset: "tiny")
  c.teacherTraining = TrainSection(steps: 6, evalEvery: 0)
  c.teacherTraining.batchSize = 8
  c.train = TrainSection(steps: 20, evalEvery: 10)
  c.train.batchSize = 8
  c.train.checkpointEvery = 5
  c.train.logEvery = 1
  c.train.keepLast = 10
  // One LibTorch thread: tiny models only lose to OpenMP's thread start-up and spinning.
  c.train.threads = 1
  c.teacherTraining.threads = 1
  c.cache.directory = "\(root)/cache"
  c.eval.duringTrainingImages = 16
  c.eval.testImages = 16
  c.eval.efficiency = true
  c.eval.timingRuns = 1
  return c
}

/// The `cmapkd` executable built next to the test bundle.
var cmapkdExecutable: String {
  let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  for candidate in [bundle.appendingPathComponent("cmapkd").path, "\(packageRoot)/.build/debug/cmapkd"]
  where FileManager.default.isExecutableFile(atPath: candidate) {
    return candidate
  }
  return bundle.appendingPathComponent("cmapkd").path
}

struct CommandResult {
  var status: Int32
  var reason: Process.TerminationReason
  var stdout: String
  var stderr: String
}

/// Runs `cmapkd` in the package root; `killWhen` is polled while it runs and, when it returns
/// true, the process is killed with SIGKILL.
func runCLI(_ arguments: [String], in directory: String = packageRoot, killWhen: (() -> Bool)? = nil) throws -> CommandResult {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: cmapkdExecutable)
  process.arguments = arguments
  process.currentDirectoryURL = URL(fileURLWithPath: directory)
  let outFile = try temporaryFolder("out") + "/io"
  FileManager.default.createFile(atPath: outFile + ".out", contents: nil)
  FileManager.default.createFile(atPath: outFile + ".err", contents: nil)
  process.standardOutput = FileHandle(forWritingAtPath: outFile + ".out")
  process.standardError = FileHandle(forWritingAtPath: outFile + ".err")
  try process.run()
  if let killWhen {
    while process.isRunning {
      if killWhen() {
        kill(process.processIdentifier, SIGKILL)
        break
      }
      usleep(2_000)
    }
  }
  process.waitUntilExit()
  return CommandResult(
    status: process.terminationStatus, reason: process.terminationReason,
    stdout: (try? String(contentsOfFile: outFile + ".out", encoding: .utf8)) ?? "",
    stderr: (try? String(contentsOfFile: outFile + ".err", encoding: .utf8)) ?? "")
}

func write(_ text: String, to path: String) throws {
  try text.write(toFile: path, atomically: true, encoding: .utf8)
}
