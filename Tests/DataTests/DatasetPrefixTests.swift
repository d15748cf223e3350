import Data
import Foundation
import Testing

/// `DatasetPrefix`: the first N samples of a dataset, as `train.samples` trains on them.
@Suite struct DatasetPrefixTests {
  @Test func isTheFirstSamplesUnchanged() throws {
    let full = try ScenesDataset(SceneTests.small(), split: .train)
    let prefix = try DatasetPrefix(full, count: 30)
    #expect(prefix.count == 30)
    #expect(prefix.name.contains("first 30 of 200"))
    for i in [0, 7, 29] {
      #expect(prefix.sampleId(at: i) == full.sampleId(at: i))
      #expect(prefix.captions(at: i) == full.captions(at: i))
      #expect(try prefix.loadImage(at: i) == full.loadImage(at: i))
      #expect(prefix.hardNegative(at: i, caption: 1, key: 5) == full.hardNegative(at: i, caption: 1, key: 5))
    }
    #expect(prefix.hardNegative(at: 3, caption: 0, key: 9) != nil)
  }

  @Test func aCountOutsideTheDatasetIsRefused() throws {
    let full = try ScenesDataset(SceneTests.small(), split: .train)
    #expect(throws: DataError.self) { try DatasetPrefix(full, count: 201) }
    #expect(throws: DataError.self) { try DatasetPrefix(full, count: 0) }
    #expect(try DatasetPrefix(full, count: 200).count == 200)
  }
}
