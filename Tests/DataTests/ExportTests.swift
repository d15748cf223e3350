import Data
import Foundation
import Testing

@Suite struct ExportTests {
  @Test func exportedScenesReadBackThroughKarpathyJSON() throws {
    var config = SceneTests.small()
    config.train.count = 6
    config.test.count = 8
    config.imageSize = 32
    let train = try ScenesDataset(config, split: .train)
    let test = try ScenesDataset(config, split: .test)
    let folder = try TemporaryFolder()
    try ScenesExport.write([train, test], to: folder.path)

    let index = "\(folder.path)/\(ScenesExport.indexName)"
    let loaded = try KarpathyJSON.load(index, imageRoot: folder.path, splits: ["test"])
    #expect(loaded.count == 8)
    for i in 0..<8 {
      #expect(loaded.sampleId(at: i) == String(format: "test/%06d.png", i))
      #expect(loaded.captions(at: i) == test.captions(at: i))
      #expect(try loaded.loadImage(at: i) == test.image(at: i))  // PNG is lossless
    }
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: index))) as! [String: Any]
    let images = json["images"] as! [[String: Any]]
    #expect(images.count == 14)
    #expect((images[6]["hard_negatives"] as? [Any])?.isEmpty == false)
    #expect(images[0]["hard_negatives"] == nil)
  }

  @Test func jpegExportIsCloseToTheRendering() throws {
    var config = SceneTests.small()
    config.train.count = 2
    let train = try ScenesDataset(config, split: .train)
    let folder = try TemporaryFolder()
    try ScenesExport.write([train], to: folder.path, format: .jpeg(quality: 95))
    let image = try ImageFile.load("\(folder.path)/train/000001.jpg")
    let original = train.image(at: 1)
    var total = 0
    for (a, b) in zip(image.pixels, original.pixels) { total += abs(Int(a) - Int(b)) }
    #expect(Double(total) / Double(original.pixels.count) < 6)
  }
}
