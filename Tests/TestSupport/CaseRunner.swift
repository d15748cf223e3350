import Torch

/// One op case's Swift implementation: inputs in fixture order → outputs in fixture order.
public typealias CaseBody = ([Tensor]) throws -> [Tensor]

/// Runs every case stored in `fixture` (keys `name/in{i}`, `name/out{i}`, `name/cot{i}`,
/// `name/grad{i}`, written by scripts/make_fixtures.py) through `bodies` and returns one
/// line per failure. A case in the file without a Swift body is a failure too, so no
/// reference value goes unchecked.
public func runCases(_ fixture: [String: Tensor], _ bodies: [String: CaseBody], rtol: Double = 1e-5, atol: Double = 1e-6)
  -> [String]
{
  let names = Set(
    fixture.keys.compactMap { key -> String? in
      let parts = key.split(separator: "/")
      return parts.count == 2 && parts[1].hasPrefix("out") ? String(parts[0]) : nil
    })
  var failures: [String] = []
  for name in names.sorted() {
    guard let body = bodies[name] else {
      failures.append("\(name): fixture case has no Swift implementation")
      continue
    }
    do {
      if let problem = try runCase(name, fixture, body, rtol: rtol, atol: atol) { failures.append("\(name): \(problem)") }
    } catch {
      failures.append("\(name): threw \(error)")
    }
  }
  for name in bodies.keys where !names.contains(name) {
    failures.append("\(name): Swift implementation has no fixture case (regenerate with make fixtures)")
  }
  return failures
}

private func runCase(_ name: String, _ fx: [String: Tensor], _ body: CaseBody, rtol: Double, atol: Double) throws -> String? {
  var inputs: [Tensor] = []
  while let t = fx["\(name)/in\(inputs.count)"] {
    let wantsGrad = fx["\(name)/grad\(inputs.count)"] != nil
    inputs.append(wantsGrad ? try t.clone().requiresGrad(true) : t)
  }
  let outputs = try body(inputs)
  var expectedCount = 0
  while fx["\(name)/out\(expectedCount)"] != nil { expectedCount += 1 }
  if outputs.count != expectedCount { return "\(outputs.count) outputs, expected \(expectedCount)" }
  var total: Tensor? = nil
  for (i, out) in outputs.enumerated() {
    if let problem = try mismatch(out, fx["\(name)/out\(i)"]!, rtol: rtol, atol: atol) { return "out\(i): \(problem)" }
    if let cot = fx["\(name)/cot\(i)"] {
      let term = try (out * cot).sum()
      total = try total.map { try $0 + term } ?? term
    }
  }
  guard let total else { return nil }
  try total.backward()
  for (i, input) in inputs.enumerated() {
    guard let expected = fx["\(name)/grad\(i)"] else { continue }
    guard let grad = try input.grad else { return "grad\(i): no gradient reached the input" }
    if let problem = try mismatch(grad, expected, rtol: rtol, atol: atol) { return "grad\(i): \(problem)" }
  }
  return nil
}
