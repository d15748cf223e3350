import Foundation

/// A table of already-formatted cells, rendered as Markdown or as aligned plain text.
public struct TextTable: Equatable, Sendable {
  public var headers: [String]
  public var rows: [[String]]
  /// Per column; the first column (names) is usually left-aligned, numbers right-aligned.
  public var rightAligned: [Bool]

  public init(headers: [String], rows: [[String]], rightAligned: [Bool]? = nil) {
    precondition(rows.allSatisfy { $0.count == headers.count }, "TextTable: every row needs \(headers.count) cells")
    self.headers = headers
    self.rows = rows
    self.rightAligned = rightAligned ?? headers.indices.map { $0 > 0 }
  }

  /// A GitHub-flavoured Markdown table.
  public func markdown() -> String {
    func line(_ cells: [String]) -> String {
      "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
    }
    let rule = "|" + rightAligned.map { $0 ? "---:|" : "---|" }.joined()
    return ([line(headers), rule] + rows.map(line)).joined(separator: "\n") + "\n"
  }

  /// Columns padded to a common width, for a terminal.
  public func plainText() -> String {
    let widths = headers.indices.map { column in ([headers] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
      cells.indices.map { column -> String in
        let padding = String(repeating: " ", count: widths[column] - cells[column].count)
        return rightAligned[column] ? padding + cells[column] : cells[column] + padding
      }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
    }
    let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
    return ([line(headers), rule] + rows.map(line)).joined(separator: "\n") + "\n"
  }
}

/// The main results table: one row per model (the teacher first, then each student method),
/// values as mean ± std over seeds.
///
/// ```swift
/// let table = MainTable(runs: summaries)
/// print(table.plainText())
/// ```
public struct MainTable: Sendable {
  public struct Row: Equatable, Sendable {
    public var name: String
    public var isTeacher: Bool
    public var seeds: Int
    /// By `MetricKey`, over the seeds that report the metric.
    public var metrics: [String: MeanStd]
    /// The efficacy metric as a percentage of the teacher's mean, per seed (in [0, 1], 1 = 100 %).
    public var efficacy: MeanStd?
    public var parameters: Double?
    public var flopsPerImage: Double?
    /// Mean images/s over the teacher's mean images/s.
    public var speedup: Double?
  }

  public let rows: [Row]
  /// The metric efficacy compares with the teacher.
  public let efficacyMetric: String

  /// Groups `runs` by name (rows in order of first appearance, teachers first).
  public init(runs: [RunSummary], efficacyMetric: String = MetricKey.meanRecall) {
    self.efficacyMetric = efficacyMetric
    let byName = groupByName(runs)
    let groups = byName.filter { $0[0].isTeacher } + byName.filter { !$0[0].isTeacher }
    let teacherRuns = runs.filter(\.isTeacher)
    let teacherScore = MeanStd(teacherRuns.compactMap { $0.metric(efficacyMetric) })?.mean
    let teacherSpeed = MeanStd(teacherRuns.compactMap(\.imagesPerSecond))?.mean
    rows = groups.map { group in
      var metrics: [String: MeanStd] = [:]
      for key in MainTable.metricColumns.map(\.key) {
        metrics[key] = MeanStd(group.compactMap { $0.metric(key) })
      }
      let efficacy = teacherScore.flatMap { teacher in
        teacher > 0 ? MeanStd(group.compactMap { $0.metric(efficacyMetric) }.map { $0 / teacher }) : nil
      }
      let speed = MeanStd(group.compactMap(\.imagesPerSecond))?.mean
      return Row(
        name: group[0].name, isTeacher: group[0].isTeacher, seeds: group.count, metrics: metrics, efficacy: efficacy,
        parameters: MeanStd(group.compactMap { $0.parameters.map(Double.init) })?.mean,
        flopsPerImage: MeanStd(group.compactMap(\.flopsPerImage))?.mean,
        speedup: teacherSpeed.flatMap { teacher in speed.map { $0 / teacher } })
    }
  }

  static let metricColumns: [(key: String, header: String)] = [
    (MetricKey.i2tR1, "I→T R@1"), (MetricKey.i2tR5, "I→T R@5"), (MetricKey.i2tR10, "I→T R@10"),
    (MetricKey.t2iR1, "T→I R@1"), (MetricKey.t2iR5, "T→I R@5"), (MetricKey.t2iR10, "T→I R@10"),
    (MetricKey.meanRecall, "Mean R"), (MetricKey.zeroShotTop1, "ZS top-1"), (MetricKey.hardNegativeAccuracy, "Hard-neg acc"),
  ]

  /// The formatted cells; columns that no row has a value for are left out.
  public func table() -> TextTable {
    var columns: [(header: String, cells: [String?])] = [
      ("Model", rows.map { $0.name }), ("Seeds", rows.map { String($0.seeds) }),
    ]
    for (key, header) in Self.metricColumns {
      columns.append((header, rows.map { $0.metrics[key].map { Format.percent($0) } }))
    }
    columns.append(("Efficacy %", rows.map { $0.efficacy.map { Format.percent($0) } }))
    columns.append(("Params", rows.map { $0.parameters.map { Format.parameters($0) } }))
    columns.append(("FLOPs/img", rows.map { $0.flopsPerImage.map { Format.flops($0) } }))
    columns.append(("Speed-up", rows.map { $0.speedup.map { Format.speedup($0) } }))
    return assemble(columns)
  }

  public func markdown() -> String { table().markdown() }
  public func plainText() -> String { table().plainText() }
}

/// The ablation table: one row per `AblationVariant` (unknown variants after them), mean ± std
/// over seeds, and the difference of the main metric from the full method.
public struct AblationTable: Sendable {
  public struct Row: Equatable, Sendable {
    public var variant: String
    public var label: String
    public var seeds: Int
    public var metrics: [String: MeanStd]
    /// Mean of `deltaMetric` minus the full method's mean (fractions); nil for the full row.
    public var delta: Double?
  }

  public let rows: [Row]
  public let metrics: [String]
  public let deltaMetric: String

  /// Groups the `runs` that have a `variant` by variant.
  /// - Parameters:
  ///   - metrics: the metric columns, `MetricKey`s (columns no run reports are left out).
  ///   - deltaMetric: the metric of the Δ column.
  public init(
    runs: [RunSummary],
    metrics: [String] = [
      MetricKey.meanRecall, MetricKey.i2tR1, MetricKey.t2iR1, MetricKey.zeroShotTop1, MetricKey.hardNegativeAccuracy,
    ],
    deltaMetric: String = MetricKey.meanRecall
  ) {
    self.metrics = metrics
    self.deltaMetric = deltaMetric
    var groups: [String: [RunSummary]] = [:]
    var order: [String] = []
    for run in runs {
      guard let variant = run.variant else { continue }
      if groups[variant] == nil { order.append(variant) }
      groups[variant, default: []].append(run)
    }
    let known = AblationVariant.allCases.map(\.rawValue)
    order = known.filter { groups[$0] != nil } + order.filter { !known.contains($0) }
    let full = groups[AblationVariant.full.rawValue].flatMap { MeanStd($0.compactMap { $0.metric(deltaMetric) }) }
    rows = order.map { variant in
      let group = groups[variant]!
      var values: [String: MeanStd] = [:]
      for key in Set(metrics + [deltaMetric]) { values[key] = MeanStd(group.compactMap { $0.metric(key) }) }
      let delta =
        variant == AblationVariant.full.rawValue ? nil : full.flatMap { full in values[deltaMetric].map { $0.mean - full.mean } }
      return Row(
        variant: variant, label: AblationVariant(rawValue: variant)?.label ?? variant, seeds: group.count, metrics: values,
        delta: delta)
    }
  }

  /// The formatted cells; the Δ column is in percentage points.
  public func table() -> TextTable {
    var columns: [(header: String, cells: [String?])] = [
      ("Variant", rows.map { $0.label }), ("Seeds", rows.map { String($0.seeds) }),
    ]
    for key in metrics {
      let header = MainTable.metricColumns.first { $0.key == key }?.header ?? key
      columns.append((header, rows.map { $0.metrics[key].map { Format.percent($0) } }))
    }
    let deltaHeader = "Δ " + (MainTable.metricColumns.first { $0.key == deltaMetric }?.header ?? deltaMetric)
    columns.append(
      (deltaHeader, rows.map { $0.variant == AblationVariant.full.rawValue ? "0.0" : Format.delta($0.delta) }))
    return assemble(columns)
  }

  public func markdown() -> String { table().markdown() }
  public func plainText() -> String { table().plainText() }
}

/// Runs grouped by name, groups in order of first appearance.
private func groupByName(_ runs: [RunSummary]) -> [[RunSummary]] {
  var groups: [String: [RunSummary]] = [:]
  var order: [String] = []
  for run in runs {
    if groups[run.name] == nil { order.append(run.name) }
    groups[run.name, default: []].append(run)
  }
  return order.map { groups[$0]! }
}

/// A table from columns of optional cells: columns with no value at all are dropped, and
/// missing cells show as "–".
private func assemble(_ columns: [(header: String, cells: [String?])]) -> TextTable {
  let kept = columns.enumerated().filter { index, column in index == 0 || column.cells.contains { $0 != nil } }.map(\.element)
  let rowCount = kept.first?.cells.count ?? 0
  return TextTable(
    headers: kept.map(\.header),
    rows: (0..<rowCount).map { row in kept.map { $0.cells[row] ?? Format.missing } })
}
