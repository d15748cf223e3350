import Foundation
import TestSupport
import Testing

@testable import Reports

@Suite struct MetricsLogTests {
  @Test func roundTrip() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    let records = [
      MetricRecord(step: 0, epoch: 0, time: 0.25, values: ["loss/total": 2.5, "lr": 1e-5]),
      MetricRecord(step: 10, epoch: 0, time: 3.0, values: ["loss/total": 1.0000000000000002, "grad_norm": .infinity]),
      MetricRecord(step: 20, epoch: 1, time: 6.5, values: ["loss/total": -0.0, "eval/mean_recall": 0.5]),
      MetricRecord(step: 30, values: ["weird \"key\"\n": 3]),
    ]
    do {
      let log = try MetricsLog(path: path)
      for record in records { try log.write(record) }
    }
    #expect(try MetricsLog.read(path) == records)
    let lines = try readText(path).split(separator: "\n")
    #expect(lines.count == 4)
    #expect(lines[0] == #"{"epoch": 0, "loss/total": 2.5, "lr": 1e-05, "step": 0, "time": 0.25}"#)
  }

  @Test func nonFiniteValuesRoundTrip() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    let log = try MetricsLog(path: path)
    try log.write(step: 1, ["loss": .nan, "up": .infinity, "down": -.infinity])
    let back = try MetricsLog.read(path)
    #expect(back.count == 1)
    #expect(back[0].values["loss"]!.isNaN)
    #expect(back[0].values["up"] == .infinity)
    #expect(back[0].values["down"] == -.infinity)
  }

  @Test func reservedKeyIsAnError() throws {
    let log = try MetricsLog(path: try temporaryDirectory() + "/metrics.jsonl")
    #expect(throws: ReportsError.self) { try log.write(step: 1, ["step": 2]) }
  }

  /// Python's json module reads every line, including its NaN/Infinity spellings.
  @Test func pythonReadsTheLog() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    let log = try MetricsLog(path: path)
    try log.write(step: 1, epoch: 0, time: 0.5, ["loss": 0.75, "nan": .nan])
    try log.write(step: 2, epoch: 0, time: 1.5, ["loss": 0.25])
    let out = try runPython(
      """
      import json, math, sys
      rows = [json.loads(line) for line in open(sys.argv[1])]
      assert math.isnan(rows[0]["nan"])
      print(sum(r["loss"] for r in rows), [r["step"] for r in rows], list(rows[0].keys()))
      """, arguments: [path])
    #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "1.0 [1, 2] ['epoch', 'loss', 'nan', 'step', 'time']")
  }

  @Test func truncatedLastLineIsTolerated() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    do {
      let log = try MetricsLog(path: path)
      try log.write(step: 1, ["loss": 1])
      try log.write(step: 2, ["loss": 0.5])
    }
    try appendText(#"{"loss": 0.25, "st"#, to: path)  // the write a crash cut short
    #expect(try MetricsLog.read(path).map(\.step) == [1, 2])

    // Reopening cuts the partial line, so the next record starts on its own line.
    do {
      let log = try MetricsLog(path: path)
      try log.write(step: 3, ["loss": 0.25])
    }
    #expect(try MetricsLog.read(path).map(\.step) == [1, 2, 3])
    #expect(try readText(path).split(separator: "\n").count == 3)
  }

  @Test func completeLastLineWithoutNewlineIsKept() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    try writeText(#"{"step": 1, "loss": 2.0}"#, to: path)
    #expect(try MetricsLog.read(path).map(\.step) == [1])
    let log = try MetricsLog(path: path)
    try log.write(step: 2, ["loss": 1])
    #expect(try MetricsLog.read(path).map(\.step) == [1, 2])
  }

  @Test func malformedLineIsReportedWithItsNumber() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    let text = """
      {"step": 1, "loss": 1.0}
      {"step": 2, "loss": }
      {"step": 3, "loss": 0.5}

      """
    try writeText(text, to: path)
    let error = try #require(throws: ReportsError.self) { try MetricsLog.read(path) }
    #expect(error.message.hasPrefix("\(path):2: "), "\(error.message)")
    #expect(error.message.contains("\"loss\""), "\(error.message)")

    // A broken last line that did get its newline was written whole: corrupt, not cut short.
    try writeText("{\"step\": 1}\n{\"step\": \"x\"}\n", to: path)
    let last = try #require(throws: ReportsError.self) { try MetricsLog.read(path) }
    #expect(last.message.hasPrefix("\(path):2: "), "\(last.message)")

    try writeText("{\"step\": 1.5}\n", to: path)
    let fractional = try #require(throws: ReportsError.self) { try MetricsLog.read(path) }
    #expect(fractional.message.contains("\"step\" must be an integer"), "\(fractional.message)")

    try writeText("{\"loss\": 1}\n", to: path)
    let noStep = try #require(throws: ReportsError.self) { try MetricsLog.read(path) }
    #expect(noStep.message == "\(path):1: record has no \"step\"")
  }

  @Test func truncateToStep() throws {
    let directory = try temporaryDirectory()
    let path = directory + "/metrics.jsonl"
    do {
      let log = try MetricsLog(path: path)
      for step in 1...10 { try log.write(step: step, time: Double(step), ["loss": 1 / Double(step)]) }
    }
    let original = try readText(path).split(separator: "\n")
    try MetricsLog.truncate(path, afterStep: 5)
    #expect(try MetricsLog.read(path).map(\.step) == [1, 2, 3, 4, 5])
    #expect(try readText(path).split(separator: "\n") == Array(original.prefix(5)))  // lines kept byte for byte

    // A resumed run drops what was logged after its checkpoint, then appends.
    do {
      let log = try MetricsLog(path: path, resumingAfterStep: 3)
      try log.write(step: 4, ["loss": 9])
    }
    let resumed = try MetricsLog.read(path)
    #expect(resumed.map(\.step) == [1, 2, 3, 4])
    #expect(resumed.last?.values["loss"] == 9)
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["metrics.jsonl"])  // no temporary left
  }
}
