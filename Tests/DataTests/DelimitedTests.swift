import Data
import Foundation
import Testing

@Suite struct DelimitedTests {
  static func images(_ folder: TemporaryFolder, _ names: [String]) throws {
    for (i, name) in names.enumerated() { try folder.write(name, PNG.encode(testImage(width: 6, height: 5, seed: i))) }
  }

  @Test func tsvWithoutHeaderGroupsCaptions() throws {
    let folder = try TemporaryFolder()
    try Self.images(folder, ["img/a.png", "img/b.png"])
    let file = try folder.write(
      "captions.tsv", "img/a.png\ta red circle\nimg/b.png\ta blue square\n\nimg/a.png\tsecond caption\n")
    let data = try DelimitedCaptions.load(file)
    #expect(data.count == 2)
    #expect(data.records[0].captions == ["a red circle", "second caption"])
    #expect(data.records[0].image == .file("\(folder.path)/img/a.png"))
    #expect(try data.loadImage(at: 1).width == 6)
  }

  @Test func csvWithHeaderAndQuoting() throws {
    let folder = try TemporaryFolder()
    try Self.images(folder, ["a.png", "b.png"])
    let text =
      "caption,filepath\r\n" + "\"a dog, a cat and \"\"friends\"\"\",a.png\r\n" + "\"two lines\nof caption\",b.png\r\n" + "\r\n"
    let data = try DelimitedCaptions.load(try folder.write("pairs.csv", text))
    #expect(data.records.map(\.captions) == [[#"a dog, a cat and "friends""#], ["two lines\nof caption"]])
    #expect(data.records.map(\.id) == ["a.png", "b.png"])
  }

  @Test func explicitColumnsAndDelimiter() throws {
    let folder = try TemporaryFolder()
    try Self.images(folder, ["x.png"])
    let file = try folder.write("list.txt", "id|image|title\n1|x.png|hello\n")
    let data = try DelimitedCaptions.load(
      file, options: DelimitedOptions(delimiter: "|", hasHeader: true, pathColumn: "image", captionColumn: "title"))
    #expect(data.captions(at: 0) == ["hello"])
  }

  @Test func malformedLineNamesFileAndLine() throws {
    let folder = try TemporaryFolder()
    try Self.images(folder, ["a.png", "b.png"])
    let file = try folder.write("c.csv", "a.png,fine\nb.png,a dog, unquoted\n")
    let error = dataError { _ = try DelimitedCaptions.load(file) }
    #expect(error?.description == "\(file):2: expected 2 fields, found 3 (quote captions that contain the delimiter)")
    let skipping = try DelimitedCaptions.load(file, policy: .skip)
    #expect(skipping.count == 1 && skipping.loadSkips.count == 1)
    let stray = try folder.write("d.csv", "a.png,fine\n\"b.png\"x,caption\n")
    #expect(
      dataError { _ = try DelimitedCaptions.load(stray) }?.description == "\(stray):2: unexpected text after a closing quote")
    let open = try folder.write("e.csv", "a.png,fine\nb.png,\"never closed\n")
    #expect(dataError { _ = try DelimitedCaptions.load(open) }?.line == 2)
    let empty = try folder.write("f.tsv", "a.png\t   \n")
    #expect(dataError { _ = try DelimitedCaptions.load(empty) }?.description == "\(empty):1: empty caption")
    let binary = try folder.write("g.tsv", [0x61, 0x2E, 0x70, 0x6E, 0x67, 0x09, 0xFF, 0xFE, 0x0A])
    #expect(dataError { _ = try DelimitedCaptions.load(binary) }?.message == "not valid UTF-8 text")
  }

  @Test func missingImageAndEmptyFile() throws {
    let folder = try TemporaryFolder()
    let file = try folder.write("c.tsv", "path\tcaption\nmissing.jpg\ta caption\n")
    let error = dataError { _ = try DelimitedCaptions.load(file) }
    #expect(error?.kind == .missingImage && error?.line == 2)
    let empty = try folder.write("empty.tsv", "path\tcaption\n")
    #expect(dataError { _ = try DelimitedCaptions.load(empty) }?.kind == .emptySplit)
    let noColumn = try folder.write("h.tsv", "path\ttext_en\nx.png\thi\n")
    #expect(dataError { _ = try DelimitedCaptions.load(noColumn) }?.kind == .missingField)
    let skipped = dataError { _ = try DelimitedCaptions.load(file, policy: .skip) }
    #expect(skipped?.kind == .emptySplit)
    #expect(skipped?.message.contains("1 skipped while loading") == true)
  }
}
