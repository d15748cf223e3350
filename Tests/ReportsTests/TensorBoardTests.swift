import Foundation
import TestSupport
import Testing

@testable import Reports

@Suite struct CRC32CTests {
  /// Vectors from RFC 3720 (iSCSI) appendix B.4 and the common check value.
  @Test func knownVectors() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([UInt8]()) == 0)
    #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
  }

  @Test func masking() {
    let crc: UInt32 = 0xE306_9283
    #expect(CRC32C.mask(crc) == ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
    #expect(CRC32C.mask(0) == 0xA282_EAD8)
  }
}

@Suite struct TFRecordTests {
  @Test func framingLayout() {
    let payload = Data("hello".utf8)
    let framed = TFRecord.frame(payload)
    #expect(framed.count == 8 + 4 + 5 + 4)
    #expect([UInt8](framed.prefix(8)) == [5, 0, 0, 0, 0, 0, 0, 0])
    let lengthCRC = framed[8..<12].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) }
    #expect(lengthCRC == CRC32C.maskedChecksum([5, 0, 0, 0, 0, 0, 0, 0] as [UInt8]))
    #expect(framed[12..<17] == payload)
  }

  @Test func roundTrip() throws {
    let path = try temporaryDirectory() + "/records.tfrecord"
    let payloads = [Data(), Data("a".utf8), Data((0..<1000).map { UInt8($0 % 251) }), Data("last".utf8)]
    do {
      let writer = try TFRecordWriter(path: path)
      for p in payloads { try writer.write(p) }
    }
    #expect(try TFRecord.read(path) == payloads)
  }

  @Test func corruptionAndTruncation() throws {
    let good = TFRecord.frame(Data("first".utf8)) + TFRecord.frame(Data("second".utf8))
    var flipped = good
    flipped[good.count - 6] ^= 0x01  // a byte of the second payload
    let error = try #require(throws: ReportsError.self) { try TFRecord.records(in: flipped, source: "x.tfrecord") }
    #expect(error.message.contains("x.tfrecord: record 1"), "\(error.message)")
    #expect(error.message.contains("data checksum mismatch"), "\(error.message)")

    let cut = good.prefix(good.count - 3)
    #expect(throws: ReportsError.self) { try TFRecord.records(in: cut) }
    #expect(try TFRecord.records(in: cut, allowTruncatedTail: true) == [Data("first".utf8)])
  }
}

@Suite struct TensorBoardTests {
  @Test func eventEncodingRoundTrip() throws {
    let event = TensorBoardEvent(
      wallTime: 1_700_000_000.123456, step: 123_456_789_012,
      scalars: [.init(tag: "loss/total", value: 0.5), .init(tag: "niveau/é", value: -3.25e-7)])
    #expect(try TensorBoardEvent.decode(event.encoded()) == event)
    let header = TensorBoardEvent(wallTime: 12.5, fileVersion: "brain.Event:2")
    #expect(try TensorBoardEvent.decode(header.encoded()) == header)
  }

  /// The bytes protoc would produce for `Event{wall_time: 1.5, step: 300, summary{value{tag: "a", simple_value: 2}}}`.
  @Test func encodingMatchesProtobufWireFormat() {
    let event = TensorBoardEvent(wallTime: 1.5, step: 300, scalars: [.init(tag: "a", value: 2)])
    let expected: [UInt8] =
      [0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F]  // field 1, fixed64: 1.5
      + [0x10, 0xAC, 0x02]  // field 2, varint: 300
      + [0x2A, 0x0A]  // field 5, 10 bytes: Summary
      + [0x0A, 0x08]  // Summary field 1, 8 bytes: Value
      + [0x0A, 0x01, 0x61]  // Value field 1: "a"
      + [0x15, 0, 0, 0, 0x40]  // Value field 2, fixed32: 2.0
    #expect([UInt8](event.encoded()) == expected)
  }

  @Test func writerFileLayout() throws {
    let directory = try temporaryDirectory()
    let writer = try TensorBoardWriter(directory: directory + "/tb", wallTime: 1_700_000_000.5, host: "my host/1")
    try writer.addScalar("loss", 1.5, step: 7, wallTime: 1_700_000_001)
    let name = URL(fileURLWithPath: writer.path).lastPathComponent
    #expect(name.hasPrefix("events.out.tfevents.1700000000.my_host_1."), "\(name)")
    let events = try TFRecord.read(writer.path).map(TensorBoardEvent.decode)
    #expect(events.count == 2)
    #expect(events[0] == TensorBoardEvent(wallTime: 1_700_000_000.5, fileVersion: "brain.Event:2"))
    #expect(events[1] == TensorBoardEvent(wallTime: 1_700_000_001, step: 7, scalars: [.init(tag: "loss", value: 1.5)]))
  }

  /// The real `tensorboard` package reads back every tag, step, value and wall time we wrote.
  @Test func tensorBoardReadsOurFile() throws {
    let directory = try temporaryDirectory()
    let writer = try TensorBoardWriter(directory: directory)
    var expected: [String: [(step: Int, value: Float, wallTime: Double)]] = [:]
    for step in stride(from: 0, through: 300, by: 25) {
      let time = 1_700_000_000 + Double(step) * 0.37
      let values = [
        "loss/total": 2.0 / (1.0 + Double(step) / 50), "loss/feature": 0.1 * sin(Double(step)), "lr": 3e-4 * Double(step + 1),
      ]
      try writer.addScalars(values, step: step, wallTime: time)
      for (tag, value) in values { expected[tag, default: []].append((step, Float(value), time)) }
      if step % 100 == 0 {
        try writer.addScalar("eval/mean_recall", 0.2 + Double(step) / 1000, step: step, wallTime: time)
        expected["eval/mean_recall", default: []].append((step, Float(0.2 + Double(step) / 1000), time))
      }
    }
    try writer.addScalar("big_step/é", 42, step: 5_000_000_000, wallTime: 1_800_000_000)
    expected["big_step/é"] = [(5_000_000_000, 42, 1_800_000_000)]

    let script = """
      import json, sys
      try:
          from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
      except ImportError as e:
          sys.exit(f"the tensorboard Python package is not installed in .venv ({e}); run: .venv/bin/pip install tensorboard")
      accumulator = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
      accumulator.Reload()
      tags = accumulator.Tags()["scalars"]
      print(json.dumps({
          "file_version": accumulator.file_version,
          "scalars": {t: [[e.step, e.value, e.wall_time] for e in accumulator.Scalars(t)] for t in tags},
      }))
      """
    let output: String
    do {
      output = try runPython(script, arguments: [writer.path])
    } catch {
      Issue.record("reading the event file with tensorboard failed: \(error)")
      return
    }
    let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
    #expect(json["file_version"] as? Double == 2)
    let scalars = try #require(json["scalars"] as? [String: [[Double]]])
    #expect(Set(scalars.keys) == Set(expected.keys))
    for (tag, points) in expected {
      let read = scalars[tag] ?? []
      #expect(read.count == points.count, "\(tag): \(read.count) events read, \(points.count) written")
      for (got, want) in zip(read, points) {
        #expect(Int(got[0]) == want.step, "\(tag)")
        #expect(Float(got[1]) == want.value, "\(tag) at step \(want.step): \(got[1]) vs \(want.value)")
        #expect(got[2] == want.wallTime, "\(tag) at step \(want.step): wall time \(got[2]) vs \(want.wallTime)")
      }
    }
  }
}
