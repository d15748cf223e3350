// Benchmark worker: a small transformer language model training step (forward, backward,
// AdamW) in Swift, driven by bench/run_bench.py, which runs the same model in PyTorch eager
// and alternates the two. Protocol on stdin/stdout, one command per line:
//   steps N   → runs N timed steps; prints "times t1 … tN" (seconds) and "loss L" (last step)
//   quit
import Foundation
import Torch
import TorchNN
import TorchOptim

final class Block: Module {
  let ln1: LayerNorm
  let attn: MultiHeadAttention
  let ln2: LayerNorm
  let mlp: MLP

  init(width: Int, heads: Int) throws {
    ln1 = try LayerNorm(width)
    attn = try MultiHeadAttention(embedDim: width, numHeads: heads)
    ln2 = try LayerNorm(width)
    mlp = try MLP(width, hidden: 4 * width, activation: .gelu)
    super.init()
  }

  func callAsFunction(_ x: Tensor) throws -> Tensor {
    let h = try x + attn(ln1(x), isCausal: true)
    return try h + mlp(ln2(h))
  }
}

final class LanguageModel: Module {
  let tokEmb: Embedding
  let posEmb: Tensor
  let blocks: [Block]
  let lnF: LayerNorm
  let head: Linear

  init(vocab: Int, context: Int, width: Int, heads: Int, layers: Int) throws {
    tokEmb = try Embedding(vocab, width)
    posEmb = try parameter(Init.normal([context, width], std: 0.02))
    blocks = try (0..<layers).map { _ in try Block(width: width, heads: heads) }
    lnF = try LayerNorm(width)
    head = try Linear(width, vocab)
    super.init()
  }

  /// tokens [B, T] → logits [B, T, V]
  func callAsFunction(_ tokens: Tensor) throws -> Tensor {
    var h = try tokEmb(tokens) + posEmb.narrow(dim: 0, start: 0, length: tokens.size(1))
    for block in blocks { h = try block(h) }
    return try head(lnF(h))
  }
}

/// Prints a protocol line and flushes at once: the driver waits on each line.
func send(_ line: String) {
  FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
  FileHandle.standardError.write(Data("TorchBench: \(message)\n".utf8))
  exit(1)
}

func option(_ name: String) -> String? {
  let args = CommandLine.arguments
  guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
  return args[i + 1]
}

func main() throws {
  guard let weights = option("--weights") else { fail("usage: TorchBench --weights FILE [--threads N]") }
  if let threads = option("--threads").flatMap(Int.init) { Torch.numThreads = threads }
  let file = try SafeTensors.load(weights)
  guard let config = file["config"], let tokens = file["batch/tokens"], let targets = file["batch/targets"] else {
    fail("\(weights): missing config or batch tensors")
  }
  let c = try config.toArray(Int64.self).map(Int.init)  // vocab, context, width, heads, layers
  let model = try LanguageModel(vocab: c[0], context: c[1], width: c[2], heads: c[3], layers: c[4])
  var state: [String: Tensor] = [:]
  for (key, t) in file where key.hasPrefix("model/") { state[String(key.dropFirst(6))] = t }
  try model.loadStateDict(state)
  let optimizer = try AdamW(model.parameters(), learningRate: 1e-4, weightDecay: 0.01)
  let flatTargets = try targets.reshape([-1])

  func step() throws -> Double {
    let logits = try model(tokens)
    let loss = try Functional.crossEntropy(logits.reshape([-1, c[0]]), flatTargets)
    try loss.backward()
    try optimizer.step()
    try optimizer.zeroGrad()
    return try loss.item()
  }

  send("ready threads=\(Torch.numThreads) params=\(model.parameterCount())")
  while let line = readLine() {
    let parts = line.split(separator: " ")
    if parts.first == "quit" { break }
    guard parts.count == 2, parts[0] == "steps", let n = Int(parts[1]) else { fail("unknown command '\(line)'") }
    var times: [Double] = []
    var loss = 0.0
    for _ in 0..<n {
      let start = DispatchTime.now().uptimeNanoseconds
      loss = try step()
      times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    send("times " + times.map { String($0) }.joined(separator: " "))
    send("loss \(loss)")
  }
}

do { try main() } catch { fail("\(error)") }
