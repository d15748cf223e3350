import Torch

/// Scores of every query row against every candidate column, row-major on the host.
///
/// Retrieval uses [images, captions], zero-shot [images, classes]. The metrics are computed in
/// Swift over this plain array, so they are pure functions a test can feed by hand.
///
/// ```swift
/// let s = try SimilarityMatrix([[0.9, 0.1], [0.2, 0.8]])
/// s[0, 1]                                          // 0.1
/// let t = try SimilarityMatrix(images.matmul(texts.transpose(0, 1)))   // [I, C] tensor
/// ```
public struct SimilarityMatrix: Equatable, Sendable {
  public let rows: Int
  public let columns: Int
  /// `rows × columns` scores, row-major.
  public let values: [Float]

  public init(rows: Int, columns: Int, values: [Float]) throws {
    guard rows >= 0, columns >= 0, values.count == rows * columns else {
      throw EvaluationError("similarity matrix: \(values.count) values do not fill \(rows) × \(columns)")
    }
    self.rows = rows
    self.columns = columns
    self.values = values
  }

  /// From nested rows (all the same length).
  public init(_ matrix: [[Float]]) throws {
    let columns = matrix.first?.count ?? 0
    guard matrix.allSatisfy({ $0.count == columns }) else {
      throw EvaluationError("similarity matrix: rows have different lengths \(Set(matrix.map(\.count)).sorted())")
    }
    try self.init(rows: matrix.count, columns: columns, values: matrix.flatMap { $0 })
  }

  /// Copies a [rows, columns] tensor of any floating dtype, on any device, to the host.
  public init(_ tensor: Tensor) throws {
    guard tensor.rank == 2 else {
      throw EvaluationError("similarity matrix: expected a [rows, columns] tensor, got shape \(tensor.shape)")
    }
    try self.init(
      rows: tensor.size(0), columns: tensor.size(1), values: tensor.to(.cpu, .float32).contiguous().toArray(Float.self))
  }

  public subscript(row: Int, column: Int) -> Float { values[row * columns + column] }
}

/// The ranking rule every metric here shares.
///
/// A query's rank is the number of wrong candidates placed ahead of its best correct one when
/// candidates are sorted by score, best first (0 = the correct candidate is first; recall at K
/// counts ranks below K). **Ties are broken against the query**: a wrong candidate that scores
/// exactly as high as the correct one is placed ahead of it. The rule is deterministic, does
/// not depend on the order of candidates, and gives a collapsed model (every score equal) the
/// worst rank rather than the luck of index order. A NaN score ranks below every number, so a
/// diverged model scores 0 instead of raising or passing.
enum Ranking {
  /// NaN sorts last.
  @inline(__always) static func key(_ score: Float) -> Float { score.isNaN ? -.infinity : score }

  /// Rank of each row query whose correct columns are `correct(row)`: wrong columns scoring
  /// at least the best correct column's score.
  static func rowRanks(_ s: SimilarityMatrix, correctColumns: [[Int]]) -> [Int] {
    s.values.withUnsafeBufferPointer { values in
      (0..<s.rows).map { row in
        let scores = UnsafeBufferPointer(rebasing: values[row * s.columns..<(row + 1) * s.columns])
        let best = correctColumns[row].map { key(scores[$0]) }.max()!
        var ahead = 0
        for column in 0..<s.columns where key(scores[column]) >= best { ahead += 1 }
        // Every correct column scoring `best` or more was counted too; none of them is wrong.
        return ahead - correctColumns[row].count { key(scores[$0]) >= best }
      }
    }
  }

  /// Rank of each column query whose one correct row is `correctRow[column]`.
  static func columnRanks(_ s: SimilarityMatrix, correctRow: [Int]) -> [Int] {
    s.values.withUnsafeBufferPointer { values in
      let target = (0..<s.columns).map { key(values[correctRow[$0] * s.columns + $0]) }
      var ahead = [Int](repeating: 0, count: s.columns)
      // Row by row, so the matrix is read in memory order.
      for row in 0..<s.rows {
        let base = row * s.columns
        for column in 0..<s.columns where key(values[base + column]) >= target[column] { ahead[column] += 1 }
      }
      return ahead.map { $0 - 1 }  // the correct row itself
    }
  }

  /// Fraction of ranks below `k`.
  static func recall(_ ranks: [Int], at k: Int) -> Double {
    ranks.isEmpty ? 0 : Double(ranks.count { $0 < k }) / Double(ranks.count)
  }
}
