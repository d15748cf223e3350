import Foundation
import Testing

@testable import Reports

@Suite struct MeanStdTests {
  @Test func formatting() throws {
    // mean 0.55, std √((0.05² + 0.05²) / 1) = 0.0707
    #expect(try #require(MeanStd([0.50, 0.60])).formatted(scale: 100) == "55.0 ± 7.1")
    #expect(try #require(MeanStd([0.55])).formatted(scale: 100) == "55.0")
    #expect(MeanStd([0.55])?.std == nil)
    #expect(MeanStd([]) == nil)
    // 1, 2, 3, 4: mean 2.5, sample variance 5/3
    let four = try #require(MeanStd([1, 2, 3, 4]))
    #expect(four.mean == 2.5)
    #expect(abs(four.std! - (5.0 / 3).squareRoot()) < 1e-12)
    #expect(four.formatted(decimals: 2) == "2.50 ± 1.29")
  }
}

/// A teacher with one seed and two students with two seeds each, values chosen so every cell
/// can be worked out by hand.
private let teacher = RunSummary(
  name: "Teacher", method: "teacher", seed: 0, isTeacher: true,
  metrics: [
    MetricKey.i2tR1: 0.7, MetricKey.i2tR5: 0.8, MetricKey.i2tR10: 0.9,
    MetricKey.t2iR1: 0.7, MetricKey.t2iR5: 0.8, MetricKey.t2iR10: 0.9,  // mean recall 0.8
    MetricKey.hardNegativeAccuracy: 0.9,
  ],
  parameters: 149_620_737, flopsPerImage: 4.4e9, imagesPerSecond: 100)

private func student(_ name: String, seed: Int, i2tR1: Double, meanRecall: Double, speed: Double) -> RunSummary {
  RunSummary(
    name: name, method: name.lowercased(), seed: seed,
    metrics: [MetricKey.i2tR1: i2tR1, MetricKey.meanRecall: meanRecall, MetricKey.hardNegativeAccuracy: 0.8],
    parameters: 11_300_000, flopsPerImage: 3.5e8, imagesPerSecond: speed)
}

private let runs = [
  student("CMAPKD", seed: 0, i2tR1: 0.50, meanRecall: 0.60, speed: 320),
  teacher,  // listed second on purpose: the teacher row still comes first
  student("CMAPKD", seed: 1, i2tR1: 0.60, meanRecall: 0.68, speed: 340),
  student("KD", seed: 0, i2tR1: 0.40, meanRecall: 0.40, speed: 330),
]

@Suite struct MainTableTests {
  @Test func cells() throws {
    let table = MainTable(runs: runs).table()
    #expect(
      table.headers == [
        "Model", "Seeds", "I→T R@1", "I→T R@5", "I→T R@10", "T→I R@1", "T→I R@5", "T→I R@10", "Mean R", "Hard-neg acc",
        "Efficacy %", "Params", "FLOPs/img", "Speed-up",
      ])  // no run has zero-shot: that column is left out
    #expect(
      table.rows[0] == [
        "Teacher", "1", "70.0", "80.0", "90.0", "70.0", "80.0", "90.0", "80.0", "90.0", "100.0", "149.6M", "4.40G", "1.0×",
      ])
    // CMAPKD: mean recall 0.60, 0.68 → 64.0 ± 5.7; efficacy 75 %, 85 % → 80.0 ± 7.1;
    // speed (320 + 340) / 2 / 100 = 3.3×.
    #expect(
      table.rows[1] == [
        "CMAPKD", "2", "55.0 ± 7.1", "–", "–", "–", "–", "–", "64.0 ± 5.7", "80.0 ± 0.0", "80.0 ± 7.1", "11.3M", "350.0M", "3.3×",
      ])
    #expect(table.rows[2] == ["KD", "1", "40.0", "–", "–", "–", "–", "–", "40.0", "80.0", "50.0", "11.3M", "350.0M", "3.3×"])
  }

  @Test func markdown() {
    let lines = MainTable(runs: runs).markdown().split(separator: "\n")
    #expect(lines.count == 5)
    #expect(lines[0].hasPrefix("| Model | Seeds | I→T R@1 |"))
    #expect(lines[1] == "|---|" + String(repeating: "---:|", count: 13))
    #expect(lines[2].hasPrefix("| Teacher | 1 | 70.0 |"))
  }

  @Test func plainTextColumnsLineUp() {
    let text = MainTable(runs: runs).plainText()
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines.count == 5)
    // The last column is right-aligned, so every line ends at the same column…
    #expect(Set(lines.map(\.count)).count == 1, "\n\(text)")
    // …and each column's right edge is where the rule's dashes end.
    let rule = Array(lines[1])
    #expect(rule.allSatisfy { $0 == "-" || $0 == " " })
    let dashEnds = rule.indices.filter { rule[$0] == "-" && ($0 + 1 == rule.count || rule[$0 + 1] == " ") }
    #expect(dashEnds.count == 14)
    for line in lines.map(Array.init) where line != rule {
      for end in dashEnds.dropFirst() {  // the first column is left-aligned
        #expect(line[end] != " " && (end + 1 == line.count || line[end + 1] == " "), "column ending at \(end):\n\(text)")
      }
    }
  }

  @Test func withoutTeacherThereIsNoEfficacyOrSpeedup() {
    let table = MainTable(runs: runs.filter { !$0.isTeacher }).table()
    #expect(!table.headers.contains("Efficacy %"))
    #expect(!table.headers.contains("Speed-up"))
    #expect(table.rows.map { $0[0] } == ["CMAPKD", "KD"])
  }

  @Test func markdownEscapesPipes() {
    let table = TextTable(headers: ["a|b", "c"], rows: [["x", "1"]])
    #expect(table.markdown() == "| a\\|b | c |\n|---|---:|\n| x | 1 |\n")
  }
}

@Suite struct AblationTableTests {
  private func run(_ variant: AblationVariant, seed: Int, _ meanRecall: Double) -> RunSummary {
    RunSummary(
      name: "CMAPKD", method: "cmapkd", seed: seed, variant: variant.rawValue,
      metrics: [MetricKey.meanRecall: meanRecall, MetricKey.i2tR1: meanRecall - 0.1])
  }

  @Test func rowsInOrderWithDeltas() throws {
    let runs = [
      run(.oneStage, seed: 0, 0.66),
      run(.noVisualPyramid, seed: 0, 0.60), run(.noVisualPyramid, seed: 1, 0.62),
      run(.full, seed: 0, 0.60), run(.full, seed: 1, 0.70),
    ]
    let table = AblationTable(runs: runs).table()
    #expect(table.headers == ["Variant", "Seeds", "Mean R", "I→T R@1", "Δ Mean R"])
    #expect(table.rows[0] == ["Full CMAPKD (progressive)", "2", "65.0 ± 7.1", "55.0 ± 7.1", "0.0"])
    // 0.61 − 0.65 = −4.0 points; 0.66 − 0.65 = +1.0
    #expect(table.rows[1] == ["w/o visual pyramid", "2", "61.0 ± 1.4", "51.0 ± 1.4", "-4.0"])
    #expect(table.rows[2] == ["One-stage (not progressive)", "1", "66.0", "56.0", "+1.0"])
  }

  @Test func withoutFullRunDeltasAreMissing() {
    let table = AblationTable(runs: [run(.noAdaptiveSelection, seed: 0, 0.5)]).table()
    #expect(table.rows == [["w/o adaptive selection", "1", "50.0", "40.0", "–"]])
  }

  @Test func unknownVariantsKeepTheirName() {
    let custom = RunSummary(name: "x", method: "cmapkd", variant: "no_bridge", metrics: [MetricKey.meanRecall: 0.5])
    let table = AblationTable(runs: [custom, run(.full, seed: 0, 0.6)]).table()
    #expect(table.rows.map { $0[0] } == ["Full CMAPKD (progressive)", "no_bridge"])
    #expect(table.rows[1].last == "-10.0")
  }
}

@Suite struct ReportWriterTests {
  @Test func writesReportAndPlots() throws {
    let directory = try temporaryDirectory() + "/report"
    var summaries = runs
    summaries[0].config = "configs/scenes-cmapkd.yaml"
    summaries[0].wallTimeSeconds = 3723
    summaries[0].steps = 2000
    let ablation = [
      RunSummary(name: "CMAPKD", method: "cmapkd", variant: "full", metrics: [MetricKey.meanRecall: 0.6], wallTimeSeconds: 60),
      RunSummary(
        name: "CMAPKD w/o pyramid", method: "cmapkd", variant: "no_visual_pyramid", metrics: [MetricKey.meanRecall: 0.5]),
    ]
    let records = (0..<5).map { MetricRecord(step: $0 * 10, values: ["loss/total": 1 / Double($0 + 1), "alsn/P2": 0.25]) }
    let writer = ReportWriter(
      title: "CMAPKD on scenes", runs: summaries, ablation: ablation, charts: ReportCharts.training(from: records),
      notes: ["Dataset: generated scenes."])
    let path = try writer.write(to: directory)
    #expect(path == directory + "/report.md")
    let report = try readText(path)
    #expect(report.hasPrefix("# CMAPKD on scenes\n"))
    for section in ["## Runs", "## Main results", "## Ablations", "## Plots", "Dataset: generated scenes."] {
      #expect(report.contains(section), "missing \(section)")
    }
    #expect(report.contains("| CMAPKD | cmapkd | – | `configs/scenes-cmapkd.yaml` | 0 | 2000 | 1h 02m 03s |"))
    #expect(report.contains("6 runs, 1h 03m 03s of training in total."))
    #expect(report.contains(MainTable(runs: summaries).markdown()))
    #expect(report.contains("| w/o visual pyramid | 1 | 50.0 | -10.0 |"))
    #expect(report.contains("![Training loss](loss.svg)"))
    #expect(report.contains("![ALSN level weights](level_weights.svg)"))
    let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    #expect(files == ["level_weights.svg", "loss.svg", "report.md"])
  }

  @Test func noAblationSectionWithoutAblationRuns() {
    let report = ReportWriter(title: "t", runs: runs).markdown()
    #expect(!report.contains("## Ablations"))
    #expect(!report.contains("## Plots"))
  }

  @Test func chartFileNameMustBePlain() throws {
    let writer = ReportWriter(
      title: "t", runs: [], charts: [ReportChart(fileName: "../x.svg", chart: LineChart(title: "x", series: []))])
    #expect(throws: ReportsError.self) { try writer.write(to: try temporaryDirectory()) }
  }

  @Test func runSummaryDecodesFromMinimalJSON() throws {
    let json = #"{"name": "Teacher", "method": "teacher", "metrics": {"i2t_r1": 0.5}, "parameters": 1000}"#
    let run = try JSONDecoder().decode(RunSummary.self, from: Data(json.utf8))
    #expect(run.isTeacher && run.seed == 0 && run.metrics == [MetricKey.i2tR1: 0.5] && run.parameters == 1000)
    let back = try JSONDecoder().decode(RunSummary.self, from: JSONEncoder().encode(run))
    #expect(back == run)
  }
}
