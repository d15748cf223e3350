import Distillation
import Foundation
import Testing
import Torch

/// The data-parallel rule for batch-coupled losses: each rank gathers every rank's embeddings
/// (with gradients) and computes the loss of the whole batch; the mean over ranks of the
/// gradients reaching each rank's own rows is the single-process gradient of those rows.
@Suite("Losses over the gathered global batch", .serialized)
struct GlobalBatchLossTests {
  final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: (loss: Double, imageGrad: [Float], textGrad: [Float])] = [:]
    private var errors: [String] = []
    func set(_ rank: Int, _ value: (Double, [Float], [Float])) { lock.withLock { values[rank] = value } }
    func fail(_ message: String) { lock.withLock { errors.append(message) } }
    var all: [Int: (loss: Double, imageGrad: [Float], textGrad: [Float])] { lock.withLock { values } }
    var failures: [String] { lock.withLock { errors } }
  }

  @Test("CLIP, sample-relation and per-sample losses of 2 ranks × 4 rows match one process on the 8 rows, values and gradients")
  func gatheredLossesMatchTheSingleProcessReference() throws {
    let generator = try Generator(seed: 11)
    let images = try Tensor.randn([8, 6], generator: generator), texts = try Tensor.randn([8, 6], generator: generator)
    let teacherImages = try Tensor.randn([8, 6], generator: generator), teacherTexts = try Tensor.randn([8, 6], generator: generator)
    let scale = try Tensor.scalar(log(1 / 0.07))
    /// CLIP's task loss plus a batch-coupled distillation term (student vs teacher similarity
    /// distributions over the batch) plus a per-sample one: all three kinds a method mixes.
    func loss(_ i: Tensor, _ t: Tensor, _ ti: Tensor, _ tt: Tensor) throws -> Tensor {
      let relation = try Losses.sampleRelation(student: [i, t], teacher: [ti, tt]).sum()!
      let perSample = try (i - ti).square().mean()
      return try Losses.clip(images: i, texts: t, logitScale: scale) + relation + perSample
    }

    // The reference: one process, the whole batch.
    let i = try images.clone().requiresGrad(true), t = try texts.clone().requiresGrad(true)
    let reference = try loss(i, t, teacherImages, teacherTexts)
    try reference.backward()
    let (referenceImageGrad, referenceTextGrad) = (try #require(try i.grad), try #require(try t.grad))

    // Tensors are not Sendable; each thread only reads these.
    struct Shared: @unchecked Sendable {
      let images, texts, teacherImages, teacherTexts: Tensor
      let loss: (Tensor, Tensor, Tensor, Tensor) throws -> Tensor
    }
    let shared = Shared(images: images, texts: texts, teacherImages: teacherImages, teacherTexts: teacherTexts, loss: loss)
    let port = try ProcessGroup.freePort()
    let results = Results()
    let done = DispatchGroup()
    for rank in 0..<2 {
      done.enter()
      Thread.detachNewThread {
        defer { done.leave() }
        do {
          let (images, texts, teacherImages, teacherTexts, loss) = (
            shared.images, shared.texts, shared.teacherImages, shared.teacherTexts, shared.loss
          )
          let group = try ProcessGroup(host: "127.0.0.1", port: port, rank: rank, worldSize: 2, timeout: 60)
          let rows = try group.share(ofRows: 8)
          let localImages = try images.narrow(dim: 0, start: rows.lowerBound, length: 4).clone().requiresGrad(true)
          let localTexts = try texts.narrow(dim: 0, start: rows.lowerBound, length: 4).clone().requiresGrad(true)
          let teacherI = try group.allGather(teacherImages.narrow(dim: 0, start: rows.lowerBound, length: 4).contiguous())
          let teacherT = try group.allGather(teacherTexts.narrow(dim: 0, start: rows.lowerBound, length: 4).contiguous())
          let value = try loss(group.allGather(localImages), group.allGather(localTexts), teacherI, teacherT)
          try value.backward()
          // What the trainer does: the mean over ranks of each rank's gradient.
          let imageGrad = try #require(try localImages.grad) / 2, textGrad = try #require(try localTexts.grad) / 2
          results.set(rank, (try value.item(), try imageGrad.toArray(Float.self), try textGrad.toArray(Float.self)))
        } catch { results.fail("rank \(rank): \(error)") }
      }
    }
    #expect(done.wait(timeout: .now() + 120) == .success)
    for failure in results.failures { Issue.record(Comment(rawValue: failure)) }
    let all = results.all
    #expect(all.count == 2)
    for (rank, value) in all {
      #expect(abs(value.loss - (try reference.item())) < 1e-5, "rank \(rank): loss \(value.loss)")
      let expectedImage = try referenceImageGrad.narrow(dim: 0, start: 4 * rank, length: 4).toArray(Float.self)
      let expectedText = try referenceTextGrad.narrow(dim: 0, start: 4 * rank, length: 4).toArray(Float.self)
      #expect(zip(value.imageGrad, expectedImage).allSatisfy { abs($0 - $1) < 1e-6 }, "rank \(rank) image gradient")
      #expect(zip(value.textGrad, expectedText).allSatisfy { abs($0 - $1) < 1e-6 }, "rank \(rank) text gradient")
    }
  }
}
