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

  @Test("a plain shard is indexed, its images read from disk when decoded; a gzip shard is unpacked once, then the same")
  func plainShardsAreIndexedNotHeld() throws {
    let folder = try TemporaryFolder()
    let path = "\(folder.path)/00000.tar"
    try Self.shard(path, keys: ["a", "b", "c"])
    let plain = try TarShards.load([path])
    for record in plain.records {
      guard case .slice(_, let file, _, let length) = record.image else {
        Issue.record("\(record.id): image held in memory")
        continue
      }
      #expect(file == path && length > 0)
    }
    // The same shard gzipped (zlib's gzip format): same samples, same pixels.
    let gzip = try #require(["/usr/bin/gzip", "/bin/gzip"].first { FileManager.default.isExecutableFile(atPath: $0) })
    let process = try Process.run(URL(fileURLWithPath: gzip), arguments: ["-k", path])
    process.waitUntilExit()
    let gz = "\(path).gz"
    let unpack = "\(folder.path)/unpacked"
    let zipped = try TarShards.load([gz], unpackDirectory: unpack)
    #expect(zipped.records.map(\.captions) == plain.records.map(\.captions))
    #expect(zipped.records.map(\.id) == plain.records.map(\.id).map { $0.replacingOccurrences(of: "00000.tar/", with: "00000.tar.gz/") })
    let copies = try FileManager.default.contentsOfDirectory(atPath: unpack)
    #expect(copies.count == 1 && copies[0].hasPrefix("00000.tar-") && copies[0].hasSuffix(".tar"), "\(copies)")
    // The unpacked copy is the plain shard, byte for byte; images are slices of it, not in memory.
    #expect(FileManager.default.contentsEqual(atPath: "\(unpack)/\(copies[0])", andPath: path))
    for i in 0..<plain.count {
      guard case .slice(_, let file, _, _) = zipped.records[i].image else {
        Issue.record("gzip shard image held in memory")
        continue
      }
      #expect(file == "\(unpack)/\(copies[0])")
      #expect(try zipped.loadImage(at: i) == plain.loadImage(at: i))
    }
    // Loaded again, the copy is reused, not rewritten.
    let before = try FileManager.default.attributesOfItem(atPath: "\(unpack)/\(copies[0])")[.modificationDate] as? Date
    _ = try TarShards.load([gz], unpackDirectory: unpack)
    #expect(try FileManager.default.attributesOfItem(atPath: "\(unpack)/\(copies[0])")[.modificationDate] as? Date == before)
    // A damaged gzip stream is an error naming the shard, and leaves no copy behind.
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: gz)))
    try folder.write("cut.tar.gz", Array(bytes.prefix(bytes.count / 2)))
    let damaged = "\(folder.path)/cut.tar.gz"
    let error = dataError { _ = try TarShards.load([damaged], unpackDirectory: "\(folder.path)/unpacked-cut") }
    #expect(error?.kind == .unreadableFile && error?.file == damaged, "\(String(describing: error))")
    #expect(((try? FileManager.default.contentsOfDirectory(atPath: "\(folder.path)/unpacked-cut")) ?? []).isEmpty)
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

/// Our tar reader and writer against the system's `tar` (GNU tar on Debian), an independent
/// implementation: GNU long names, pax headers, gzip, and ustar's prefix split.
@Suite struct TarFormatTests {
  static let tar = ["/usr/bin/tar", "/bin/tar"].first { FileManager.default.isExecutableFile(atPath: $0) }

  func run(_ arguments: [String], in directory: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Self.tar!)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "tar \(arguments)")
    return String(decoding: data, as: UTF8.self)
  }

  /// Members with a long path (over ustar's 100-byte name field), an empty file and one spanning blocks.
  var members: [(String, [UInt8])] {
    [
      ("a.txt", Array("first".utf8)),
      ("deep/" + String(repeating: "d", count: 90) + "/" + String(repeating: "n", count: 40) + ".txt", Array("long".utf8)),
      ("empty.txt", []),
      ("big.bin", (0..<1300).map { UInt8($0 % 251) }),
    ]
  }

  @Test("reads what GNU tar writes: gnu and pax formats, plain and gzip", .enabled(if: tar != nil))
  func readsSystemTar() throws {
    let folder = try TemporaryFolder()
    for (name, bytes) in members {
      let url = URL(fileURLWithPath: "\(folder.path)/src/\(name)")
      try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try Data(bytes).write(to: url)
    }
    let names = members.map(\.0)
    for (archive, flags) in [("gnu.tar", ["--format=gnu", "-cf"]), ("pax.tar", ["--format=pax", "-cf"]), ("z.tar.gz", ["-czf"])] {
      _ = try run(flags + ["../\(archive)"] + names, in: "\(folder.path)/src")
      let reader = try TarReader("\(folder.path)/\(archive)")
      var read: [(String, [UInt8])] = []
      while let m = try reader.next() { read.append((m.name, m.bytes)) }
      #expect(read.map(\.0) == names, "\(archive)")
      #expect(read.map(\.1) == members.map(\.1), "\(archive)")
    }
  }

  @Test("GNU tar lists and extracts what TarWriter writes, long names included", .enabled(if: tar != nil))
  func systemTarReadsOurs() throws {
    let folder = try TemporaryFolder()
    let writer = try TarWriter("\(folder.path)/ours.tar")
    for (name, bytes) in members { try writer.add(name, bytes: bytes) }
    try writer.close()
    let listed = try run(["-tf", "ours.tar"], in: folder.path).split(separator: "\n").map(String.init)
    #expect(listed == members.map(\.0))
    try FileManager.default.createDirectory(atPath: "\(folder.path)/out", withIntermediateDirectories: true)
    _ = try run(["-xf", "../ours.tar"], in: "\(folder.path)/out")
    for (name, bytes) in members {
      #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder.path)/out/\(name)"))) == bytes, "\(name)")
    }
  }

  @Test("a damaged header and a zstd shard are clear errors")
  func errors() throws {
    let folder = try TemporaryFolder()
    let writer = try TarWriter("\(folder.path)/t.tar")
    try writer.add("a.txt", bytes: Array("x".utf8))
    try writer.close()
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder.path)/t.tar")))
    bytes[0] ^= 0x20  // the name changes, the checksum no longer matches
    try folder.write("bad.tar", bytes)
    let error = dataError { _ = try TarReader("\(folder.path)/bad.tar").next() }
    #expect(error?.kind == .unreadableFile && error?.description.contains("bad header checksum") == true, "\(String(describing: error))")
    try folder.write("z.tar.zst", [0x28, 0xB5, 0x2F, 0xFD, 0, 0, 0, 0])
    let zstd = dataError { _ = try TarReader("\(folder.path)/z.tar.zst") }
    #expect(zstd?.description.contains("zstd-compressed") == true, "\(String(describing: zstd))")
  }
}

@Suite struct ClassFoldersTests {
  @Test("classes are the sorted subfolders, named by folder (underscores as spaces) or by a names file")
  func classes() throws {
    let folder = try TemporaryFolder()
    try folder.write("set/red_circle/1.jpg", JPEG.encode(testImage(width: 8, height: 8, seed: 1)))
    try folder.write("set/red_circle/2.png", PNG.encode(testImage(width: 8, height: 8, seed: 2)))
    try folder.write("set/blue/a.jpg", JPEG.encode(testImage(width: 8, height: 8, seed: 3)))
    try folder.write("set/blue/notes.txt", "not an image")
    let set = try ClassFolders(root: "\(folder.path)/set")
    #expect(set.classNames == ["blue", "red circle"])
    #expect(set.count == 3 && (0..<3).map(set.label(at:)) == [0, 1, 1])
    #expect((0..<3).map(set.sampleId(at:)) == ["blue/a.jpg", "red_circle/1.jpg", "red_circle/2.png"])
    #expect(try set.loadImage(at: 2).width == 8)
    let names = try folder.write("names.txt", "a blue thing\nthe red circle\n")
    #expect(try ClassFolders(root: "\(folder.path)/set", classNames: names).classNames == ["a blue thing", "the red circle"])
    let short = try folder.write("short.txt", "only one\n")
    let error = dataError { _ = try ClassFolders(root: "\(folder.path)/set", classNames: short) }
    #expect(error?.description.contains("1 class names for 2 class folders") == true, "\(String(describing: error))")
    #expect(dataError { _ = try ClassFolders(root: "\(folder.path)/nope") }?.kind == .unreadableFile)
  }
}
