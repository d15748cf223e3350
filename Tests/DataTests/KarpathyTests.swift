import Data
import Foundation
import Testing

@Suite struct KarpathyTests {
  /// A COCO-layout folder: images under `val2014/`, one JSON index.
  static func coco(_ folder: TemporaryFolder, images: [String: String] = [:]) throws -> String {
    for i in 0..<3 { try folder.write("val2014/img\(i).jpg", JPEG.encode(testImage(width: 20, height: 16, seed: i))) }
    let json = """
      {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "img0.jpg", "split": "test", "imgid": 0,
         "sentences": [{"raw": "A red bus.", "tokens": ["a"]}, {"raw": " Two dogs on grass. "}]},
        {"filepath": "val2014", "filename": "img1.jpg", "split": "restval", "sentences": [{"raw": "A cat."}]},
        {"filepath": "val2014", "filename": "img2.jpg", "split": "train", "sentences": [{"raw": "A kite."}]}
      ]}
      """
    return try folder.write("dataset_coco.json", images["json"] ?? json)
  }

  @Test func readsSplitsCaptionsAndImages() throws {
    let folder = try TemporaryFolder()
    let index = try Self.coco(folder)
    let test = try KarpathyJSON.load(index, imageRoot: folder.path, splits: ["test"])
    #expect(test.count == 1)
    #expect(test.sampleId(at: 0) == "val2014/img0.jpg")
    #expect(test.captions(at: 0) == ["A red bus.", "Two dogs on grass."])
    #expect(try test.loadImage(at: 0).width == 20)
    let train = try KarpathyJSON.load(index, imageRoot: folder.path, splits: ["train", "restval"])
    #expect(train.records.map(\.id) == ["val2014/img1.jpg", "val2014/img2.jpg"])
  }

  @Test func flickrLayoutHasNoFilepath() throws {
    let folder = try TemporaryFolder()
    try folder.write("images/1000092795.jpg", JPEG.encode(testImage(width: 8, height: 8)))
    let index = try folder.write(
      "dataset_flickr30k.json",
      #"{"images": [{"filename": "1000092795.jpg", "split": "val", "sentences": [{"raw": "Two young guys."}]}]}"#)
    let val = try KarpathyJSON.load(index, imageRoot: "\(folder.path)/images", splits: ["val"])
    #expect(val.sampleId(at: 0) == "1000092795.jpg")
  }

  @Test func missingFieldNamesTheKeyPath() throws {
    let folder = try TemporaryFolder()
    let json = #"{"images": [{"filename": "a.jpg", "split": "test", "sentences": [{"raw": "ok"}, {"tokens": []}]}]}"#
    let index = try Self.coco(folder, images: ["json": json])
    let error = dataError { _ = try KarpathyJSON.load(index, imageRoot: folder.path, splits: ["test"]) }
    #expect(error?.kind == .missingField)
    #expect(error?.description == "\(index): images[0].sentences[1]: missing key 'raw'")
    let wrongType = try folder.write("bad.json", #"{"images": [{"filename": 7, "split": "test", "sentences": []}]}"#)
    #expect(
      dataError { _ = try KarpathyJSON.load(wrongType, imageRoot: folder.path, splits: ["test"]) }?.description
        == "\(wrongType): images[0].filename: expected a string, found a number")
    let noImages = try folder.write("none.json", #"{"dataset": "coco"}"#)
    #expect(dataError { _ = try KarpathyJSON.load(noImages, imageRoot: "", splits: ["test"]) }?.key == "images")
    let broken = try folder.write("broken.json", #"{"images": ["#)
    #expect(
      dataError { _ = try KarpathyJSON.load(broken, imageRoot: "", splits: ["test"]) }?.message.hasPrefix("not valid JSON")
        == true)
  }

  @Test func missingImageFailsOrIsSkipped() throws {
    let folder = try TemporaryFolder()
    let index = try Self.coco(folder)
    try FileManager.default.removeItem(atPath: "\(folder.path)/val2014/img1.jpg")
    let error = dataError { _ = try KarpathyJSON.load(index, imageRoot: folder.path, splits: ["train", "restval"]) }
    #expect(error?.kind == .missingImage)
    #expect(error?.key == "images[1]")
    #expect(error?.message == "image not found: \(folder.path)/val2014/img1.jpg")
    let skipped = try KarpathyJSON.load(index, imageRoot: folder.path, splits: ["train", "restval"], policy: .skip)
    #expect(skipped.count == 1)
    #expect(skipped.loadSkips.count == 1 && skipped.loadSkips.countByKind[.missingImage] == 1)
  }

  @Test func emptySplitListsTheSplitsPresent() throws {
    let folder = try TemporaryFolder()
    let index = try Self.coco(folder)
    let error = dataError { _ = try KarpathyJSON.load(index, imageRoot: folder.path, splits: ["val"]) }
    #expect(error?.kind == .emptySplit)
    #expect(error?.message == #"no images with split ["val"] (splits present: restval 1, test 1, train 1)"#)
  }
}
