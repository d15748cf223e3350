import Foundation
import Testing

@testable import Reports

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// What the tests need from a parsed SVG: the plot area and every polyline's points.
private final class SVGSummary: NSObject, XMLParserDelegate {
  var rootName: String?
  var plotArea: (x: Double, y: Double, width: Double, height: Double)?
  var polylines: [(name: String?, points: [(Double, Double)])] = []
  var texts: [String] = []
  private var currentSeries: String?
  private var textBuffer: String?

  func parser(
    _ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
    attributes: [String: String] = [:]
  ) {
    if rootName == nil { rootName = element }
    switch element {
    case "rect" where attributes["class"] == "plot-area":
      plotArea = (
        Double(attributes["x"]!)!, Double(attributes["y"]!)!, Double(attributes["width"]!)!, Double(attributes["height"]!)!
      )
    case "g" where attributes["class"] == "series": currentSeries = attributes["data-name"]
    case "polyline":
      let points = (attributes["points"] ?? "").split(separator: " ").map { pair in
        let xy = pair.split(separator: ",").map { Double($0)! }
        return (xy[0], xy[1])
      }
      polylines.append((currentSeries, points))
    case "text": textBuffer = ""
    default: break
    }
  }

  func parser(_ parser: XMLParser, foundCharacters string: String) { textBuffer? += string }

  func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
    if element == "text", let text = textBuffer {
      texts.append(text)
      textBuffer = nil
    }
    if element == "g" { currentSeries = nil }
  }
}

private func parse(_ svg: String) throws -> SVGSummary {
  let parser = XMLParser(data: Data(svg.utf8))
  let summary = SVGSummary()
  parser.delegate = summary
  let ok = parser.parse()
  #expect(ok, "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
  #expect(summary.rootName == "svg")
  return summary
}

private func expectInsidePlotArea(_ summary: SVGSummary) throws {
  let area = try #require(summary.plotArea)
  for line in summary.polylines {
    for (x, y) in line.points {
      #expect(x >= area.x - 1e-6 && x <= area.x + area.width + 1e-6, "\(line.name ?? "?"): x \(x) outside the plot area")
      #expect(y >= area.y - 1e-6 && y <= area.y + area.height + 1e-6, "\(line.name ?? "?"): y \(y) outside the plot area")
    }
  }
}

@Suite struct LineChartTests {
  @Test func seriesBecomePolylinesInsideThePlotArea() throws {
    let chart = LineChart(
      title: "Loss <total> & parts", yLabel: "loss",
      series: [
        ChartSeries(name: "with NaN", xs: [0, 1, 2, 3, 4, 5], ys: [5, 4, .nan, 2, 1.5, 1]),
        ChartSeries(name: "empty", xs: [], ys: []),
        ChartSeries(name: "single", xs: [2.5], ys: [3]),
        ChartSeries(name: "constant", xs: [0, 10, 20], ys: [2, 2, 2], dashed: true),
        ChartSeries(name: "NaN only", xs: [1, 2], ys: [.nan, .nan]),
        ChartSeries(name: "infinite x", xs: [.infinity, 4], ys: [1, 1]),
      ])
    let summary = try parse(chart.svg())
    #expect(summary.polylines.map(\.name) == ["with NaN", "single", "constant", "infinite x"])
    #expect(summary.polylines.map(\.points.count) == [5, 1, 3, 1])
    try expectInsidePlotArea(summary)
    #expect(summary.texts.contains("Loss <total> & parts"))
    #expect(summary.texts.contains("empty (no data)"))
    // Higher values are drawn higher up (smaller SVG y).
    let ys = summary.polylines[0].points.map(\.1)
    #expect(ys == ys.sorted())
  }

  @Test func constantSeriesAlone() throws {
    let summary = try parse(
      LineChart(title: "c", series: [ChartSeries(name: "flat", xs: [0, 1, 2], ys: [0.7, 0.7, 0.7])]).svg())
    let points = try #require(summary.polylines.first?.points)
    #expect(Set(points.map(\.1)).count == 1)
    try expectInsidePlotArea(summary)
  }

  @Test func singlePointAlone() throws {
    let summary = try parse(LineChart(title: "one", series: [ChartSeries(name: "p", xs: [100], ys: [0])]).svg())
    #expect(summary.polylines.map(\.points.count) == [1])
    try expectInsidePlotArea(summary)
  }

  @Test func emptyChart() throws {
    let summary = try parse(LineChart(title: "nothing", series: [ChartSeries(name: "a", xs: [], ys: [])]).svg())
    #expect(summary.polylines.isEmpty)
    #expect(summary.texts.contains("no data"))
    let none = try parse(LineChart(title: "no series", series: []).svg())
    #expect(none.polylines.isEmpty)
  }

  @Test func logScaleSkipsNonPositiveValues() throws {
    let chart = LineChart(
      title: "log", logY: true,
      series: [ChartSeries(name: "loss", xs: [0, 1, 2, 3, 4], ys: [10, 1, 0, -1, 0.001])])
    let summary = try parse(chart.svg())
    #expect(summary.polylines.map(\.points.count) == [3])
    try expectInsidePlotArea(summary)
    #expect(summary.texts.contains("10") && summary.texts.contains("0.001"))
    // Equal ratios are equal distances: 10 → 1 is one decade, 1 → 0.001 three.
    let y = summary.polylines[0].points.map(\.1)
    #expect(abs((y[2] - y[1]) - 3 * (y[1] - y[0])) < 0.05)
  }

  @Test func niceTicks() {
    let axis = Axis.linear([0.013, 0.87])
    #expect(axis.ticks.map(\.label) == ["0", "0.2", "0.4", "0.6", "0.8", "1.0"])
    #expect(axis.low == 0 && axis.high == 1)
    #expect(Axis.linear([0, 20_000]).ticks.map(\.label) == ["0", "5k", "10k", "15k", "20k"])
    #expect(Axis.linear([-3, 7]).ticks.map(\.label) == ["-4", "-2", "0", "2", "4", "6", "8"])
    #expect(Axis.linear([5, 5]).low < 5 && Axis.linear([5, 5]).high > 5)
  }

  @Test func levelWeightChartFromMetrics() throws {
    var records: [MetricRecord] = []
    for step in stride(from: 0, through: 1000, by: 100) {
      var values: [String: Double] = ["loss/total": 2 / Double(step + 1), "eval/mean_recall": Double(step) / 2000]
      for (i, level) in ["P2", "P3", "P4", "P5"].enumerated() { values["alsn/\(level)"] = 0.25 + 0.01 * Double(i) }
      for (i, level) in ["L1", "L2", "L3", "L4"].enumerated() { values["alsn/\(level)"] = 0.25 - 0.01 * Double(i) }
      records.append(MetricRecord(step: step, values: values))
    }
    let charts = ReportCharts.training(from: records)
    #expect(charts.map(\.fileName) == ["loss.svg", "eval.svg", "level_weights.svg"])
    #expect(charts[0].chart.logY)
    let levels = charts[2].chart
    #expect(levels.series.map(\.name) == ["P2", "P3", "P4", "P5", "L1", "L2", "L3", "L4"])
    #expect(levels.series.map(\.dashed) == [false, false, false, false, true, true, true, true])
    #expect(levels.series[0].color == levels.series[4].color)
    let summary = try parse(levels.svg())
    #expect(summary.polylines.count == 8)
    #expect(summary.polylines.allSatisfy { $0.points.count == 11 })
    try expectInsidePlotArea(summary)
  }
}
