import Data
import Foundation
import Testing

/// The generated captioned-scenes benchmark.
@Suite struct SceneTests {
  /// At 64 px, the size the pinned digests below were taken at.
  static func small(seed: UInt64 = 0) -> ScenesConfig {
    var config = ScenesConfig(seed: seed, imageSize: 64)
    config.train.count = 200
    config.val.count = 40
    config.test.count = 200
    config.zeroShotCount = 50
    return config
  }

  @Test func sameSeedSameBytesEverywhere() throws {
    let a = try ScenesDataset(Self.small(), split: .train)
    let b = try ScenesDataset(Self.small(), split: .train)
    for i in 0..<10 {
      #expect(a.image(at: i) == b.image(at: i))
      #expect(a.captions(at: i) == b.captions(at: i))
    }
    // Pinned: integer rendering and our own PRNG make these bytes the same on every machine.
    let digests = (0..<3).map { digest(a.image(at: $0).pixels) }
    #expect(digests == Self.pinnedDigests)
    // Sixty images cover every background kind, shape, colour and fill.
    let all = (0..<60).flatMap { a.image(at: $0).pixels }
    #expect(digest(all) == Self.pinnedDigestOf60)
    #expect(Set((0..<60).map { a.scene(at: $0).background.kind }).count == SceneBackground.Kind.allCases.count)
    #expect(a.captions(at: 0) == Self.pinnedCaptions)
  }

  static let pinnedDigests: [UInt64] = [15_702_262_002_941_015_864, 6_474_187_944_336_141_427, 9_107_121_857_184_695_942]
  static let pinnedDigestOf60: UInt64 = 1_451_093_096_945_720_158
  static let pinnedCaptions = [
    "a large red square and a small orange diamond", "a small orange diamond is below a large red square",
    "at the top, there is a large solid red square", "a small orange diamond is under a red square",
    "up close, the object at the top is a large red square in a solid color",
  ]

  @Test func seedAndSplitChangeTheContent() throws {
    let train = try ScenesDataset(Self.small(), split: .train)
    let other = try ScenesDataset(Self.small(seed: 1), split: .train)
    let test = try ScenesDataset(Self.small(), split: .test)
    #expect(train.image(at: 0) != other.image(at: 0))
    #expect(train.image(at: 0) != test.image(at: 0))
    #expect(train.sampleId(at: 0) != other.sampleId(at: 0))
    #expect(Set((0..<200).map { train.sampleId(at: $0) }).count == 200)
  }

  @Test func splitSizeDoesNotChangeItsSamples() throws {
    var bigger = Self.small()
    bigger.train.count = 500
    let a = try ScenesDataset(Self.small(), split: .train)
    let b = try ScenesDataset(bigger, split: .train)
    #expect(a.sample(at: 150) == b.sample(at: 150))
    #expect(a.sampleId(at: 150) == b.sampleId(at: 150))
  }

  @Test func vocabularyIsRichEnough() {
    #expect(ShapeKind.allCases.count >= 6)
    #expect(SceneColor.allCases.count >= 8)
    #expect(FillPattern.allCases == [.solid, .striped, .dotted])
    #expect(SizeClass.allCases.count == 2)
  }

  @Test func trainScenesVaryInEveryAttribute() throws {
    let train = try ScenesDataset(Self.small(), split: .train)
    let scenes = (0..<200).map { train.scene(at: $0) }
    let objects = scenes.flatMap(\.objects)
    #expect(Set(scenes.map(\.objects.count)) == [1, 2, 3, 4])
    #expect(Set(objects.map(\.shape)).count == ShapeKind.allCases.count)
    #expect(Set(objects.map(\.color)).count == SceneColor.allCases.count)
    #expect(Set(objects.map(\.fill)).count == 3)
    #expect(Set(objects.map(\.cell)).count == 9)
    #expect(Set(scenes.map(\.background.kind)).count == SceneBackground.Kind.allCases.count)
  }

  @Test func captionsAreTrueVariedAndEnough() throws {
    let train = try ScenesDataset(Self.small(), split: .train)
    var templates = Set<String>()
    for i in 0..<100 {
      let sample = train.sample(at: i)
      #expect(sample.captions.count == 5)
      #expect(Set(sample.captions.map(\.text)).count >= 3, "\(sample.captions.map(\.text))")
      for caption in sample.captions {
        #expect(caption.spec.isTrue(for: sample.scene), "false caption: \(caption.text)")
        templates.insert(caption.text.split(separator: " ").prefix(2).joined(separator: " "))
      }
      let kinds = Set(
        sample.captions.map { caption -> String in
          switch caption.spec {
          case .listing: "listing"
          case .relation: "relation"
          case .detail: "detail"
          }
        })
      #expect(kinds.contains("listing") && kinds.contains("detail"))
      if sample.scene.objects.count >= 2 { #expect(kinds.contains("relation")) }
    }
    #expect(templates.count > 20)
  }

  @Test func contrastSetsShareWordsButNotCaptions() throws {
    let test = try ScenesDataset(Self.small(), split: .test)
    var distinctive = 0
    var total = 0
    for set in 0..<50 {
      let samples = (0..<4).map { test.sample(at: set * 4 + $0) }
      let bags = Set(samples.map { BagOfWordsBaseline.words(of: $0.scene) })
      #expect(bags.count == 1, "contrast set \(set) differs in its words")
      #expect(Set(samples.map(\.scene)).count == 4, "contrast set \(set) repeats a scene")
      for sample in samples {
        for caption in sample.captions {
          total += 1
          if samples.filter({ caption.spec.isTrue(for: $0.scene) }).count == 1 { distinctive += 1 }
        }
      }
    }
    #expect(Double(distinctive) / Double(total) > 0.97, "\(distinctive)/\(total) captions single out their image")
  }

  @Test func fiveMemberSetsAreAllDifferent() throws {
    var config = Self.small()
    config.test = SceneSplitConfig(count: 100, minObjects: 2, maxObjects: 4, contrastSetSize: 5, hardNegatives: true)
    let test = try ScenesDataset(config, split: .test)
    for set in 0..<20 {
      let scenes = (0..<5).map { test.scene(at: set * 5 + $0) }
      #expect(Set(scenes).count == 5)
      #expect(Set(scenes.map { BagOfWordsBaseline.words(of: $0) }).count == 1)
    }
    config.test.contrastSetSize = 6
    #expect(dataError { _ = try ScenesDataset(config, split: .test) }?.kind == .invalidArgument)
  }

  @Test func hardNegativesAreFalseAndOfEveryKind() throws {
    let test = try ScenesDataset(Self.small(), split: .test)
    var kinds: [HardNegative.Kind: Int] = [:]
    for i in 0..<100 {
      let sample = test.sample(at: i)
      #expect(!sample.hardNegatives.isEmpty)
      for negative in sample.hardNegatives {
        kinds[negative.kind, default: 0] += 1
        #expect(!negative.spec.isTrue(for: sample.scene), "true negative: \(negative.text)")
        #expect(!sample.captions.map(\.text).contains(negative.text))
      }
    }
    #expect(kinds.count == 3 && kinds.values.allSatisfy { $0 > 50 }, "\(kinds)")
    let train = try ScenesDataset(Self.small(), split: .train)
    #expect(train.sample(at: 0).hardNegatives.isEmpty)
  }

  @Test func bindingNegativeSwapsAttributesBetweenObjects() {
    let red = SceneObject(shape: .circle, color: .red, size: .large, fill: .solid, cell: GridCell(row: 1, column: 0))
    let blue = SceneObject(shape: .square, color: .blue, size: .small, fill: .striped, cell: GridCell(row: 1, column: 2))
    let scene = Scene(objects: [red, blue], background: SceneBackground(kind: .flat, base: [200, 200, 200]))
    let caption = CaptionSpec.listing([ObjectPhrase(shape: .circle, color: .red), ObjectPhrase(shape: .square, color: .blue)])
    let swapped = CaptionSpec.listing([ObjectPhrase(shape: .circle, color: .blue), ObjectPhrase(shape: .square, color: .red)])
    #expect(caption.isTrue(for: scene) && !swapped.isTrue(for: scene))
    let relation = CaptionSpec.relation(ObjectPhrase(shape: .circle), .leftOf, ObjectPhrase(shape: .square))
    #expect(relation.isTrue(for: scene))
    #expect(!CaptionSpec.relation(ObjectPhrase(shape: .circle), .rightOf, ObjectPhrase(shape: .square)).isTrue(for: scene))
    let style = CaptionStyle(template: 0, phraseForms: [0, 0])
    #expect(caption.text(style) == "a red circle and a blue square")
    #expect(swapped.text(style) == "a blue circle and a red square")
    #expect(relation.text(CaptionStyle(template: 0, phraseForms: [0, 0], inverted: true)) == "a square to the right of a circle")
    let detail = CaptionSpec.detail(ObjectPhrase(shape: .square, color: .blue, size: .small, fill: .striped, cell: blue.cell))
    #expect(detail.isTrue(for: scene))
    #expect(detail.text(CaptionStyle(template: 1, phraseForms: [2])) == "on the right, there is a small blue square with stripes")
    // A listing names every object: leaving one out is not a true listing.
    #expect(!CaptionSpec.listing([ObjectPhrase(shape: .circle)]).isTrue(for: scene))
  }

  @Test func bagOfWordsCannotSolveRetrieval() throws {
    let test = try ScenesDataset(Self.small(), split: .test)
    let bow = BagOfWordsBaseline.textToImage(test)
    let oracle = BagOfWordsBaseline.oracleTextToImage(test)
    #expect(bow.queries == 1000)
    // Each contrast set has four images with identical word bags: at best 1 in 4.
    #expect(bow.recallAt1 < 0.3, "bag-of-words R@1 \(bow.recallAt1)")
    #expect(oracle.recallAt1 > 0.8, "oracle R@1 \(oracle.recallAt1)")
    #expect(oracle.recallAt1 > bow.recallAt1 + 0.5)
  }

  @Test func imagesAreTheConfiguredSizeAndParallelMatchesSerial() throws {
    var config = Self.small()
    config.imageSize = 48
    let train = try ScenesDataset(config, split: .train)
    let parallel = train.images(0..<20, threads: 3)
    #expect(parallel == (0..<20).map { train.image(at: $0) })
    #expect(parallel[0].width == 48 && parallel[0].height == 48)
  }

  @Test func stripesAreFineDetail() throws {
    let striped = SceneObject(shape: .square, color: .blue, size: .large, fill: .striped, cell: GridCell(row: 1, column: 1))
    let background = SceneBackground(kind: .flat, base: [220, 220, 220])
    let stripedImage = SceneRenderer.render(Scene(objects: [striped], background: background), size: 64)
    // Inside the square the stripes alternate at full resolution …
    func brightness(_ image: RGBImage, _ x: Int, _ y: Int) -> Int {
      let p = image[x, y]
      return Int(p.r) + Int(p.g) + Int(p.b)
    }
    let row = (28..<36).map { brightness(stripedImage, $0, 32) }
    #expect(row.max()! - row.min()! > 150, "\(row)")
    // … and average out at a quarter of it: the interior is flat there.
    let small = Resampler.resize(stripedImage, width: 16, height: 16)
    let interior = (7..<9).flatMap { y in (7..<9).map { brightness(small, $0, y) } }
    #expect(interior.max()! - interior.min()! < 30, "\(interior)")
  }

  @Test func positionJitterScalesTheOffsetFromTheCellCentre() throws {
    // A small square pushed to its cell's lower-right limit, on a flat background at 48 px.
    let object = SceneObject(
      shape: .square, color: .black, size: .small, fill: .solid, cell: GridCell(row: 1, column: 1), slackX: 1000,
      slackY: 1000)
    let scene = Scene(objects: [object], background: SceneBackground(kind: .flat, base: [230, 230, 230]))
    func centroid(_ image: RGBImage) -> (x: Double, y: Double) {
      var (sx, sy, n) = (0.0, 0.0, 0.0)
      for y in 0..<image.height {
        for x in 0..<image.width {
          let darkness = Double(230 - Int(image[x, y].r))
          (sx, sy, n) = (sx + darkness * Double(x), sy + darkness * Double(y), n + darkness)
        }
      }
      return (sx / n + 0.5, sy / n + 0.5)  // pixel centres
    }
    let centred = centroid(SceneRenderer.render(scene, size: 48, jitterPermille: 0))
    let half = centroid(SceneRenderer.render(scene, size: 48, jitterPermille: 500))
    let full = centroid(SceneRenderer.render(scene, size: 48))
    #expect(abs(centred.x - 24) < 0.05 && abs(centred.y - 24) < 0.05, "\(centred)")
    #expect(full.x > 26 && full.y > 26, "a full push moves it well off centre: \(full)")
    #expect(abs((half.x - 24) - (full.x - 24) / 2) < 0.2, "half the jitter, half the offset: \(half) vs \(full)")

    // Only a non-default jitter changes the ids (and so the cache keys) and the pixels.
    var config = Self.small()
    let before = try ScenesDataset(config, split: .test)
    config.positionJitter = 0
    let after = try ScenesDataset(config, split: .test)
    #expect(before.fingerprint != after.fingerprint && before.sample(at: 3).captions == after.sample(at: 3).captions)
    #expect(before.image(at: 3) != after.image(at: 3))
    config.positionJitter = 1.5
    let error = dataError { _ = try ScenesDataset(config, split: .test) }
    #expect(error?.description.contains("position_jitter must be in [0, 1]") == true, "\(String(describing: error))")
  }

  @Test func zeroShotViewHasOneLabelledObject() throws {
    let view = try ZeroShotScenes(Self.small())
    #expect(ZeroShotScenes.classNames.count == ShapeKind.allCases.count * SceneColor.allCases.count)
    for i in 0..<view.count {
      let scene = view.scene(at: i)
      #expect(scene.objects.count == 1)
      let label = view.label(at: i)
      #expect(ZeroShotScenes.classNames[label.classIndex] == "\(label.color.rawValue) \(label.shape.rawValue)")
    }
    #expect(view.image(at: 3).width == 64)
  }

  @Test func configIsCodableAndValidated() throws {
    let config = Self.small(seed: 9)
    let data = try JSONEncoder().encode(config)
    #expect(try JSONDecoder().decode(ScenesConfig.self, from: data) == config)
    let partial = try JSONDecoder().decode(ScenesConfig.self, from: Data(#"{"seed": 3, "test": {"count": 12}}"#.utf8))
    #expect(partial.seed == 3 && partial.test.count == 12 && partial.test.contrastSetSize == 1 && partial.train.count == 20_000)
    let defaults = ScenesConfig()
    #expect(defaults.train.count >= 20_000 && defaults.test.count >= 1_000 && defaults.captionsPerImage >= 3)
    var empty = Self.small()
    empty.test.count = 0
    let error = dataError { _ = try ScenesDataset(empty, split: .test) }
    #expect(error?.kind == .emptySplit)
    #expect(error?.description == "ScenesConfig: test: count is 0: the split would be empty")
    var bad = Self.small()
    bad.val.minObjects = 1
    #expect(dataError { _ = try ScenesDataset(bad, split: .val) }?.kind == .invalidArgument)
  }
}
