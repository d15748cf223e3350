import Foundation

/// A chart of a report and the file it is written to, next to `report.md`.
public struct ReportChart: Codable, Equatable, Sendable {
  /// A plain file name, e.g. `"loss.svg"`.
  public var fileName: String
  public var chart: LineChart

  public init(fileName: String, chart: LineChart) {
    self.fileName = fileName
    self.chart = chart
  }
}

/// Assembles `report.md`: the title, a summary of the runs (config, seed, steps, wall time),
/// the main table, the ablation table when there are ablation runs, and the charts, each
/// written as an SVG next to the report and linked from it.
///
/// ```swift
/// var report = ReportWriter(title: "CMAPKD on scenes", runs: summaries)
/// report.charts = ReportCharts.training(from: try MetricsLog.read("runs/a/metrics.jsonl"))
/// try report.write(to: "runs/a")          // runs/a/report.md, runs/a/loss.svg, …
/// ```
public struct ReportWriter: Codable, Equatable, Sendable {
  public var title: String
  /// Every run of the main table (teacher and students, all seeds).
  public var runs: [RunSummary]
  /// Ablation runs (with `variant` set); the section is left out when empty.
  public var ablation: [RunSummary]
  public var charts: [ReportChart]
  /// Free-form lines placed after the summary (e.g. the machine, the dataset).
  public var notes: [String]
  public var efficacyMetric: String

  public init(
    title: String, runs: [RunSummary], ablation: [RunSummary] = [], charts: [ReportChart] = [], notes: [String] = [],
    efficacyMetric: String = MetricKey.meanRecall
  ) {
    self.title = title
    self.runs = runs
    self.ablation = ablation
    self.charts = charts
    self.notes = notes
    self.efficacyMetric = efficacyMetric
  }

  /// The report's Markdown.
  public func markdown() -> String {
    var out = "# \(title)\n\n"
    let allRuns = runs + ablation.filter { run in !runs.contains(run) }
    if !allRuns.isEmpty {
      out += "## Runs\n\n"
      let summary = TextTable(
        headers: ["Run", "Method", "Variant", "Config", "Seed", "Steps", "Wall time"],
        rows: allRuns.map { run in
          [
            run.name, run.method, run.variant ?? Format.missing, run.config.map { "`\($0)`" } ?? Format.missing,
            String(run.seed), run.steps.map(String.init) ?? Format.missing, Format.duration(run.wallTimeSeconds),
          ]
        },
        rightAligned: [false, false, false, false, true, true, true])
      out += summary.markdown()
      let total = allRuns.compactMap(\.wallTimeSeconds).reduce(0, +)
      out += "\n\(allRuns.count) run\(allRuns.count == 1 ? "" : "s"), \(Format.duration(total)) of training in total.\n\n"
    }
    for note in notes { out += note + "\n\n" }
    if !runs.isEmpty {
      out += "## Main results\n\n"
      out += MainTable(runs: runs, efficacyMetric: efficacyMetric).markdown()
      out += "\n" + legend + "\n\n"
    }
    if !ablation.isEmpty {
      out += "## Ablations\n\n"
      out += AblationTable(runs: ablation, deltaMetric: efficacyMetric).markdown()
      out += "\nΔ: difference from the full method in percentage points.\n\n"
    }
    if !charts.isEmpty {
      out += "## Plots\n\n"
      for chart in charts {
        out += "![\(chart.chart.title)](\(chart.fileName))\n\n"
      }
    }
    return out
  }

  /// Writes `report.md` and every chart's SVG into `directory` (created if needed); returns
  /// the report's path.
  @discardableResult
  public func write(to directory: String) throws -> String {
    try makeDirectory(directory)
    let folder = URL(fileURLWithPath: directory)
    for chart in charts {
      guard !chart.fileName.isEmpty, !chart.fileName.contains("/") else {
        throw ReportsError("chart \"\(chart.chart.title)\": file name \"\(chart.fileName)\" must be a plain file name")
      }
      try chart.chart.write(to: folder.appendingPathComponent(chart.fileName).path)
    }
    let path = folder.appendingPathComponent("report.md").path
    try writeAtomically(Data(markdown().utf8), to: path)
    return path
  }

  private var legend: String {
    """
    Recalls and accuracies in %, mean ± std over seeds (sample std, n − 1; the mean alone for \
    one seed). Efficacy: the student's \(efficacyMetric) as a % of the teacher's. Speed-up: \
    image-encoder throughput over the teacher's.
    """
  }
}

/// The standard training charts of one run, from its metrics log. Scalars are picked by name:
/// `loss…` (e.g. `loss/total`, `loss/feature`) go to the loss chart (log-y when all positive),
/// `eval/…` (e.g. `eval/mean_recall`) to the evaluation chart, and `alsn/…` to the level-weight
/// chart, where names ending in `L1`…`L4` (language levels) are dashed and share colours with
/// the vision levels `P2`…`P5` in order.
public enum ReportCharts {
  public static func training(from records: [MetricRecord], titlePrefix: String = "") -> [ReportChart] {
    let keys = Set(records.flatMap(\.values.keys)).sorted()
    var charts: [ReportChart] = []

    let lossKeys = keys.filter { $0.hasPrefix("loss") }
    if !lossKeys.isEmpty {
      let series = lossKeys.map { ChartSeries.metric($0, in: records) }
      let positive = series.allSatisfy { $0.ys.allSatisfy { !$0.isFinite || $0 > 0 } }
      charts.append(
        ReportChart(
          fileName: "loss.svg",
          chart: LineChart(title: titlePrefix + "Training loss", yLabel: "loss", logY: positive, series: series)))
    }

    let evalKeys = keys.filter { $0.hasPrefix("eval/") }
    if !evalKeys.isEmpty {
      let series = evalKeys.map { ChartSeries.metric($0, in: records, name: String($0.dropFirst("eval/".count))) }
      charts.append(
        ReportChart(
          fileName: "eval.svg",
          chart: LineChart(title: titlePrefix + "Evaluation during training", yLabel: "value", series: series)))
    }

    let levelKeys = keys.filter { $0.hasPrefix("alsn/") }
    if !levelKeys.isEmpty {
      let vision = levelKeys.filter { !isLanguageLevel($0) }
      let language = levelKeys.filter(isLanguageLevel)
      func series(_ keys: [String], dashed: Bool) -> [ChartSeries] {
        keys.enumerated().map { index, key in
          var s = ChartSeries.metric(key, in: records, name: String(key.dropFirst("alsn/".count)), dashed: dashed)
          s.color = LineChart.palette[index % LineChart.palette.count]
          return s
        }
      }
      charts.append(
        ReportChart(
          fileName: "level_weights.svg",
          chart: LineChart(
            title: titlePrefix + "ALSN level weights", yLabel: "mean weight",
            series: series(vision, dashed: false) + series(language, dashed: true))))
    }
    return charts
  }

  private static func isLanguageLevel(_ key: String) -> Bool {
    let last = key.split(separator: "/").last ?? ""
    return last.count == 2 && last.hasPrefix("L") && last.last!.isNumber
  }
}
