import Foundation

/// One named line of a chart. Points with a NaN or infinite coordinate (and, on a log-y
/// chart, a non-positive y) are left out when drawing.
public struct ChartSeries: Codable, Equatable, Sendable {
  public var name: String
  public var xs: [Double]
  public var ys: [Double]
  /// Drawn dashed (e.g. the language levels next to the solid vision levels).
  public var dashed: Bool
  /// A CSS colour; nil picks the next colour of the palette.
  public var color: String?

  public init(name: String, xs: [Double], ys: [Double], dashed: Bool = false, color: String? = nil) {
    precondition(xs.count == ys.count, "ChartSeries \(name): \(xs.count) x values but \(ys.count) y values")
    self.name = name
    self.xs = xs
    self.ys = ys
    self.dashed = dashed
    self.color = color
  }

  public init(name: String, points: [(x: Double, y: Double)], dashed: Bool = false, color: String? = nil) {
    self.init(name: name, xs: points.map(\.x), ys: points.map(\.y), dashed: dashed, color: color)
  }

  /// The values of `key` against step, from the records that have it.
  public static func metric(_ key: String, in records: [MetricRecord], name: String? = nil, dashed: Bool = false)
    -> ChartSeries
  {
    let points = records.compactMap { record in record.values[key].map { (x: Double(record.step), y: $0) } }
    return ChartSeries(name: name ?? key, points: points, dashed: dashed)
  }
}

/// A line chart rendered as a standalone SVG document: axes with round-number ticks, axis
/// labels, a legend, optional log-scale y.
///
/// ```swift
/// let chart = LineChart(title: "Loss", xLabel: "step", yLabel: "loss", logY: true,
///                       series: [.metric("loss/total", in: records)])
/// try chart.write(to: "runs/a/loss.svg")
/// ```
public struct LineChart: Codable, Equatable, Sendable {
  public var title: String
  public var xLabel: String
  public var yLabel: String
  public var logY: Bool
  public var series: [ChartSeries]
  public var width: Double
  public var height: Double

  public init(
    title: String, xLabel: String = "step", yLabel: String = "", logY: Bool = false, series: [ChartSeries],
    width: Double = 720, height: Double = 420
  ) {
    self.title = title
    self.xLabel = xLabel
    self.yLabel = yLabel
    self.logY = logY
    self.series = series
    self.width = width
    self.height = height
  }

  /// matplotlib's "tab10" colours.
  public static let palette = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  ]

  /// Writes `svg()` to `path` atomically.
  public func write(to path: String) throws {
    try writeAtomically(Data(svg().utf8), to: path)
  }

  /// The chart as an SVG document. The plot area is the `<rect class="plot-area">`; each
  /// series with at least one drawable point is a `<polyline class="series">` inside it
  /// (plus a dot when it has a single point).
  public func svg() -> String {
    let drawable = series.map { s in
      zip(s.xs, s.ys).filter { x, y in x.isFinite && y.isFinite && (!logY || y > 0) }.map { (x: $0, y: logY ? log10($1) : $1) }
    }
    let allPoints = drawable.flatMap { $0 }
    let xAxis = Axis.linear(allPoints.map(\.x))
    let yAxis = logY ? Axis.logarithmic(allPoints.map(\.y)) : Axis.linear(allPoints.map(\.y))

    let legendNames = zip(series, drawable).map { s, points in s.name + (points.isEmpty ? " (no data)" : "") }
    let legendWidth = series.isEmpty ? 0 : 44 + 7.5 * Double(legendNames.map(\.count).max() ?? 0)
    let left = 72.0, right = 16 + legendWidth, top = 36.0, bottom = 52.0
    let plotWidth = max(width - left - right, 10), plotHeight = max(height - top - bottom, 10)
    func px(_ x: Double) -> Double { left + (x - xAxis.low) / (xAxis.high - xAxis.low) * plotWidth }
    func py(_ y: Double) -> Double { top + plotHeight - (y - yAxis.low) / (yAxis.high - yAxis.low) * plotHeight }

    var svg = """
      <?xml version="1.0" encoding="UTF-8"?>
      <svg xmlns="http://www.w3.org/2000/svg" width="\(n(width))" height="\(n(height))" \
      viewBox="0 0 \(n(width)) \(n(height))" font-family="sans-serif" font-size="12">
      <rect width="\(n(width))" height="\(n(height))" fill="white"/>
      <text class="title" x="\(n(left + plotWidth / 2))" y="22" text-anchor="middle" font-size="15">\(xmlEscape(title))</text>
      <rect class="plot-area" x="\(n(left))" y="\(n(top))" width="\(n(plotWidth))" height="\(n(plotHeight))" \
      fill="none" stroke="#999"/>

      """
    svg += "<g class=\"x-axis\" text-anchor=\"middle\">\n"
    for tick in xAxis.ticks {
      let x = px(tick.value)
      svg += "<line x1=\"\(n(x))\" y1=\"\(n(top))\" x2=\"\(n(x))\" y2=\"\(n(top + plotHeight))\" stroke=\"#eee\"/>"
      svg += "<text x=\"\(n(x))\" y=\"\(n(top + plotHeight + 16))\">\(xmlEscape(tick.label))</text>\n"
    }
    svg += "</g>\n<g class=\"y-axis\" text-anchor=\"end\">\n"
    for tick in yAxis.ticks {
      let y = py(tick.value)
      svg += "<line x1=\"\(n(left))\" y1=\"\(n(y))\" x2=\"\(n(left + plotWidth))\" y2=\"\(n(y))\" stroke=\"#eee\"/>"
      svg += "<text x=\"\(n(left - 6))\" y=\"\(n(y + 4))\">\(xmlEscape(tick.label))</text>\n"
    }
    svg += "</g>\n"
    svg += "<text class=\"x-label\" x=\"\(n(left + plotWidth / 2))\" y=\"\(n(height - 12))\" text-anchor=\"middle\">"
    svg += "\(xmlEscape(xLabel))</text>\n"
    let yLabelY = top + plotHeight / 2
    svg +=
      "<text class=\"y-label\" x=\"16\" y=\"\(n(yLabelY))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(n(yLabelY)))\">"
    svg += "\(xmlEscape(yLabel + (logY ? " (log scale)" : "")))</text>\n"
    if allPoints.isEmpty {
      svg += "<text class=\"no-data\" x=\"\(n(left + plotWidth / 2))\" y=\"\(n(top + plotHeight / 2))\" "
      svg += "text-anchor=\"middle\" fill=\"#999\">no data</text>\n"
    }

    var legend = "<g class=\"legend\">\n"
    for (index, (s, points)) in zip(series, drawable).enumerated() {
      let color = xmlEscape(s.color ?? Self.palette[index % Self.palette.count])
      let dash = s.dashed ? " stroke-dasharray=\"6 3\"" : ""
      if !points.isEmpty {
        svg += "<g class=\"series\" data-name=\"\(xmlEscape(s.name))\">\n"
        let coordinates = points.map { "\(n(px($0.x))),\(n(py($0.y)))" }.joined(separator: " ")
        svg +=
          "<polyline class=\"series\" points=\"\(coordinates)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"\(dash)/>\n"
        if points.count == 1 {
          svg += "<circle cx=\"\(n(px(points[0].x)))\" cy=\"\(n(py(points[0].y)))\" r=\"3\" fill=\"\(color)\"/>\n"
        }
        svg += "</g>\n"
      }
      let ly = top + 8 + 18 * Double(index)
      let lx = left + plotWidth + 12
      legend +=
        "<line x1=\"\(n(lx))\" y1=\"\(n(ly))\" x2=\"\(n(lx + 24))\" y2=\"\(n(ly))\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>"
      legend += "<text x=\"\(n(lx + 30))\" y=\"\(n(ly + 4))\">\(xmlEscape(legendNames[index]))</text>\n"
    }
    svg += legend + "</g>\n</svg>\n"
    return svg
  }
}

/// An axis range with round-number ticks; values are in drawing units (log10 of y on a log axis).
struct Axis {
  var low: Double
  var high: Double
  var ticks: [(value: Double, label: String)]

  /// The 1-2-5 step that gives about `count` intervals over `span`.
  static func niceStep(_ span: Double, count: Double = 5) -> Double {
    let raw = span / count
    let magnitude = pow(10, floor(log10(raw)))
    let fraction = raw / magnitude
    return (fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10) * magnitude
  }

  static func linear(_ values: [Double]) -> Axis {
    guard var low = values.min(), var high = values.max() else {
      return linear([0, 1])
    }
    if low == high {  // a constant series: centre it in a small range
      let pad = low == 0 ? 1 : abs(low) * 0.1
      low -= pad
      high += pad
    }
    let step = niceStep(high - low)
    let first = (low / step).rounded(.down), last = (high / step).rounded(.up)
    let thousands = step >= 1000 && max(abs(first), abs(last)) * step >= 1e4
    let ticks = stride(from: first, through: last, by: 1).map { k in
      (value: k * step, label: tickLabel(k * step, step: step, thousands: thousands))
    }
    return Axis(low: first * step, high: last * step, ticks: ticks)
  }

  /// `exponents` are log10 of the values; ticks sit on powers of ten.
  static func logarithmic(_ exponents: [Double]) -> Axis {
    guard let low = exponents.min(), let high = exponents.max() else { return logarithmic([0, 1]) }
    let first = low.rounded(.down)
    var last = high.rounded(.up)
    if last == first { last += 1 }
    let every = max(1, ((last - first) / 6).rounded(.up))
    let ticks = stride(from: first, through: last, by: every).map { k in
      (value: k, label: -3 <= k && k <= 4 ? tickLabel(pow(10, k), step: pow(10, min(k, 0))) : "1e\(Int(k))")
    }
    return Axis(low: first, high: last, ticks: ticks)
  }

  /// A tick value written with as many decimals as the step needs; `thousands` writes `20k`.
  static func tickLabel(_ value: Double, step: Double, thousands: Bool = false) -> String {
    if abs(value) < step * 1e-6 { return "0" }
    if thousands {
      return decimal(value / 1000, decimals: max(0, Int(-floor(log10(step / 1000))))) + "k"
    }
    if step < 1e-4 || abs(value) >= 1e7 { return String(format: "%.2g", value) }
    return decimal(value, decimals: max(0, Int(-floor(log10(step) + 1e-9))))
  }
}

/// `value` with `decimals` decimals, never "-0".
func decimal(_ value: Double, decimals: Int) -> String {
  let text = String(format: "%.\(decimals)f", value)
  return text.hasPrefix("-") && text.dropFirst().allSatisfy { $0 == "0" || $0 == "." } ? String(text.dropFirst()) : text
}

/// A coordinate for SVG (2 decimals, trailing zeros dropped).
private func n(_ value: Double) -> String {
  var text = decimal(value, decimals: 2)
  if text.contains(".") {
    while text.hasSuffix("0") { text.removeLast() }
    if text.hasSuffix(".") { text.removeLast() }
  }
  return text
}

/// `text` with XML's special characters escaped.
func xmlEscape(_ text: String) -> String {
  var out = ""
  for c in text {
    switch c {
    case "&": out += "&amp;"
    case "<": out += "&lt;"
    case ">": out += "&gt;"
    case "\"": out += "&quot;"
    case "'": out += "&apos;"
    case _ where c.unicodeScalars.allSatisfy({ $0.value < 0x20 }): out += " "  // not allowed in XML 1.0
    default: out.append(c)
    }
  }
  return out
}
