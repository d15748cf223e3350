import Data
import Foundation
import Testing

@Suite struct CaptionFolderTests {
  @Test func readsImagesWithCaptionFiles() throws {
    let folder = try TemporaryFolder()
    try folder.write("b/cat.jpg", JPEG.encode(testImage(width: 12, height: 9)))
    try folder.write("b/cat.txt", "a cat on a mat\n\n  another caption  \n")
    try folder.write("a.png", PNG.encode(testImage(width: 5, height: 5)))
    try folder.write("a.txt", "a tiny picture")
    try folder.write("notes.md", "ignored")
    let data = try CaptionFolder.load(folder.path)
    #expect(data.records.map(\.id) == ["a.png", "b/cat.jpg"])
    #expect(data.captions(at: 1) == ["a cat on a mat", "another caption"])
    #expect(try data.loadImage(at: 1).height == 9)
  }

  @Test func missingAndMalformedCaptionFiles() throws {
    let folder = try TemporaryFolder()
    try folder.write("x.png", PNG.encode(testImage(width: 4, height: 4)))
    let error = dataError { _ = try CaptionFolder.load(folder.path) }
    #expect(error?.kind == .missingCaption)
    #expect(error?.description == "\(folder.path)/x.png: no caption file (expected x.txt)")
    let captions = try folder.write("x.txt", [0x6F, 0x6B, 0x0A] + [0x62, 0x00, 0x01, 0x0A])
    #expect(
      dataError { _ = try CaptionFolder.load(folder.path) }?.description
        == "\(captions):2: contains control characters (binary data?)")
    try folder.write("y.png", PNG.encode(testImage(width: 4, height: 4)))
    try folder.write("y.txt", "fine")
    let skipping = try CaptionFolder.load(folder.path, policy: .skip)
    #expect(skipping.records.map(\.id) == ["y.png"])
    #expect(skipping.loadSkips.countByKind[.malformedCaption] == 1)
    #expect(dataError { _ = try CaptionFolder.load("\(folder.path)/nope") }?.kind == .unreadableFile)
  }
}

@Suite struct TarShardTests {
  /// A shard in img2dataset's layout, with `extra` members appended.
  static func shard(_ path: String, keys: [String], extra: [(String, [UInt8])] = []) throws {
    let writer = try TarShardWriter(path)
    for (i, key) in keys.enumerated() {
      try writer.add("\(key).jpg", bytes: JPEG.encode(testImage(width: 10, height: 8, seed: i)))
      try writer.add("\(key).txt", bytes: Array("caption of \(key)".utf8))
      try writer.add("\(key).json", bytes: Array(#"{"key": "\#(key)"}"#.utf8))
    }
    for (name, bytes) in extra { try writer.add(name, bytes: bytes) }
    try writer.close()
  }

  @Test func readsPairsAcrossShards() throws {
    let folder = try TemporaryFolder()
    try Self.shard("\(folder.path)/00000.tar", keys: ["000000000", "000000001"])
    try Self.shard("\(folder.path)/00001.tar", keys: ["sub/000000002"])
    let data = try TarShards.load(["\(folder.path)/00000.tar", "\(folder.path)/00001.tar"])
    #expect(data.records.map(\.id) == ["00000.tar/000000000", "00000.tar/000000001", "00001.tar/sub/000000002"])
    #expect(data.captions(at: 2) == ["caption of sub/000000002"])
    #expect(try data.loadImage(at: 1) == JPEG.decode(JPEG.encode(testImage(width: 10, height: 8, seed: 1))))
  }

  @Test func unpairedMembersAreErrorsOrSkipped() throws {
    let folder = try TemporaryFolder()
    let path = "\(folder.path)/s.tar"
    try Self.shard(
      path, keys: ["a"], extra: [("b.jpg", JPEG.encode(testImage(width: 4, height: 4))), ("c.txt", Array("orphan".utf8))])
    let error = dataError { _ = try TarShards.load([path]) }
    #expect(error?.description == "\(path): b: image without a caption (b.txt)")
    let data = try TarShards.load([path], policy: .skip)
    #expect(data.count == 1)
    #expect(data.loadSkips.countByKind == [.missingCaption: 1, .missingImage: 1])
  }

  @Test func truncatedShardIsAnError() throws {
    let folder = try TemporaryFolder()
    let path = "\(folder.path)/t.tar"
    try Self.shard(path, keys: (0..<4).map { "k\($0)" })
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    try folder.write("t.tar", Array(bytes.prefix(bytes.count * 6 / 10)))
    let error = dataError { _ = try TarShards.load([path]) }
    #expect(error?.kind == .unreadableFile && error?.file == path)
    let partial = try TarShards.load([path], policy: .skip)
    #expect(partial.count >= 1 && partial.count < 4)
    #expect(partial.loadSkips.countByKind[.unreadableFile] == 1)
    try folder.write("junk.tar", Array("this is not a tar file at all".utf8))
    #expect(dataError { _ = try TarShards.load(["\(folder.path)/junk.tar"]) }?.kind == .unreadableFile)
  }

  @Test func corruptImageInsideAShardFailsAtDecode() throws {
    let folder = try TemporaryFolder()
    let path = "\(folder.path)/c.tar"
    let writer = try TarShardWriter(path)
    try writer.add("x.jpg", bytes: [0xFF, 0xD8, 0xFF, 0x00, 0x01])
    try writer.add("x.txt", bytes: Array("broken".utf8))
    try writer.close()
    let data = try TarShards.load([path])
    let error = dataError { _ = try data.loadImage(at: 0) }
    #expect(error?.kind == .undecodableImage)
    #expect(error?.file == "\(path)/x.jpg")
  }
}

@Suite struct DatasetConfigTests {
  @Test func opensEachFormatFromJSON() throws {
    let folder = try TemporaryFolder()
    try TarShardTests.shard("\(folder.path)/00000.tar", keys: ["a"])
    try TarShardTests.shard("\(folder.path)/00001.tar", keys: ["b"])
    try folder.write("pics/x.png", PNG.encode(testImage(width: 4, height: 4)))
    try folder.write("pics/x.txt", "a picture")
    try folder.write("pairs.tsv", "pics/x.png\ta picture\n")
    let configs = [
      #"{"format": "webdataset", "shards": ["\#(folder.path)/{00000..00001}.tar"]}"#,
      #"{"format": "folder", "path": "\#(folder.path)/pics"}"#,
      #"{"format": "delimited", "path": "\#(folder.path)/pairs.tsv"}"#,
      #"{"format": "scenes", "splits": ["val"], "scenes": {"val": {"count": 8, "min_objects": 2, "contrast_set_size": 4}}}"#,
    ]
    let counts = try configs.map { try JSONDecoder().decode(DatasetConfig.self, from: Data($0.utf8)).load().count }
    #expect(counts == [2, 1, 1, 8])
    #expect(try DatasetConfig.expandShards(["d/{008..011}.tar"]) == ["d/008.tar", "d/009.tar", "d/010.tar", "d/011.tar"])
    #expect(try DatasetConfig.expandShards([folder.path]) == ["\(folder.path)/00000.tar", "\(folder.path)/00001.tar"])
    let missing = dataError { _ = try DatasetConfig(format: .karpathy).load() }
    #expect(missing?.description == "DatasetConfig: path: karpathy needs 'path'")
  }
}
