/// A seeded pseudo-random stream (xoshiro256**) whose output is the same on every machine and
/// Swift version.
///
/// The standard library's `random(in:using:)` algorithms are not promised to stay the same
/// across releases, so every draw the data pipeline makes goes through the methods here
/// (integer arithmetic only; `unit()` is exact in binary64).
///
/// ```swift
/// var random = SeededRandom(seed: 42)
/// let side = random.int(below: 6)          // 0...5
/// random.shuffle(&indices)
/// ```
public struct SeededRandom: Sendable, Equatable, Codable {
  private var s0, s1, s2, s3: UInt64

  /// Seeds the four state words from SplitMix64, as the xoshiro authors recommend.
  public init(seed: UInt64) {
    var mixer = SplitMix64(state: seed)
    s0 = mixer.next()
    s1 = mixer.next()
    s2 = mixer.next()
    s3 = mixer.next()
  }

  /// A stream for one item of a larger whole: `SeededRandom(seed, 7, 123)` is independent of
  /// `SeededRandom(seed, 7, 124)`, and each can be made without drawing the others first.
  public init(_ parts: UInt64...) {
    self.init(seed: StableHash.combine(parts))
  }

  public mutating func next() -> UInt64 {
    let result = rotateLeft(s1 &* 5, 7) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotateLeft(s3, 45)
    return result
  }

  /// Uniform in 0..<bound (bound > 0), unbiased (Lemire's multiply-and-reject).
  public mutating func int(below bound: Int) -> Int {
    precondition(bound > 0, "SeededRandom.int(below:) needs a positive bound")
    let n = UInt64(bound)
    var product = next().multipliedFullWidth(by: n)
    if product.low < n {
      let threshold = (0 &- n) % n
      while product.low < threshold { product = next().multipliedFullWidth(by: n) }
    }
    return Int(product.high)
  }

  /// Uniform in `range` (inclusive).
  public mutating func int(in range: ClosedRange<Int>) -> Int {
    range.lowerBound + int(below: range.count)
  }

  /// Uniform in [0, 1), with 53 random bits.
  public mutating func unit() -> Double {
    Double(next() >> 11) * 0x1p-53
  }

  /// Uniform in [low, high).
  public mutating func uniform(_ low: Double, _ high: Double) -> Double {
    low + (high - low) * unit()
  }

  /// True with probability `probability`.
  public mutating func chance(_ probability: Double) -> Bool { unit() < probability }

  /// One element, uniformly.
  public mutating func pick<C: RandomAccessCollection>(_ items: C) -> C.Element where C.Index == Int {
    items[items.startIndex + int(below: items.count)]
  }

  /// Fisher–Yates, in place.
  public mutating func shuffle<T>(_ items: inout [T]) {
    guard items.count > 1 else { return }
    for i in stride(from: items.count - 1, to: 0, by: -1) {
      items.swapAt(i, int(below: i + 1))
    }
  }

  private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

/// SplitMix64: seeds xoshiro and mixes hash inputs.
public struct SplitMix64: Sendable {
  public var state: UInt64

  public init(state: UInt64) { self.state = state }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    return Self.mix(state)
  }

  /// The SplitMix64 finalizer: a bijective, well-spread mix of one word.
  public static func mix(_ value: UInt64) -> UInt64 {
    var z = value
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// Hashes that are the same in every process and on every machine. (Swift's `Hasher` is
/// seeded per process, so it cannot key a cache on disk or seed a stream.)
public enum StableHash {
  /// Mixes a sequence of words into one.
  public static func combine(_ parts: [UInt64]) -> UInt64 {
    var h: UInt64 = 0x6A09_E667_F3BC_C909
    for part in parts { h = SplitMix64.mix(h ^ SplitMix64.mix(part &+ 0x9E37_79B9_7F4A_7C15)) }
    return h
  }

  public static func combine(_ parts: UInt64...) -> UInt64 { combine(parts) }

  /// FNV-1a over the UTF-8 bytes, then mixed (FNV alone spreads short strings poorly).
  public static func string(_ text: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
    return SplitMix64.mix(h)
  }
}
