// swift-tools-version:6.1
import Foundation
import PackageDescription

/// LibTorch is found in one place: `$LIBTORCH` (a directory with `include/` and `lib/`, e.g. an
/// unpacked libtorch zip or a site-packages `torch/` folder), else the project venv that
/// `scripts/bootstrap.sh` creates (`.venv/lib/python3.X/site-packages/torch`).
func findLibTorch() -> String? {
  if let explicit = ProcessInfo.processInfo.environment["LIBTORCH"], !explicit.isEmpty {
    return explicit
  }
  let venvLib = Context.packageDirectory + "/.venv/lib"
  let pythons = (try? FileManager.default.contentsOfDirectory(atPath: venvLib)) ?? []
  for python in pythons.sorted() where python.hasPrefix("python") {
    let candidate = "\(venvLib)/\(python)/site-packages/torch"
    if FileManager.default.fileExists(atPath: candidate + "/lib/libtorch_cpu.so") {
      return candidate
    }
  }
  return nil
}

let libtorch = findLibTorch()
let cxxFlags: [String]
let linkFlags: [String]
if let libtorch {
  cxxFlags = [
    "-std=c++17", "-D_GLIBCXX_USE_CXX11_ABI=1", "-O2",
    "-isystem", "\(libtorch)/include",
    "-isystem", "\(libtorch)/include/torch/csrc/api/include",
  ]
  linkFlags = ["-L\(libtorch)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(libtorch)/lib"]
} else {
  // The shim's first line turns this into a readable build error.
  cxxFlags = ["-DCTORCH_LIBTORCH_NOT_FOUND"]
  linkFlags = []
}

let package = Package(
  name: "CMAPKD",
  platforms: [.macOS(.v14)],
  products: [
    .library(name: "Torch", targets: ["Torch"]),
    .library(name: "TorchNN", targets: ["TorchNN"]),
    .library(name: "TorchOptim", targets: ["TorchOptim"]),
    .library(name: "Tokenizers", targets: ["Tokenizers"]),
    .library(name: "Data", targets: ["Data"]),
    .library(name: "Models", targets: ["Models"]),
    .library(name: "Pyramid", targets: ["Pyramid"]),
    .library(name: "Distillation", targets: ["Distillation"]),
    .library(name: "Evaluation", targets: ["Evaluation"]),
    .library(name: "Reports", targets: ["Reports"]),
    .library(name: "Experiments", targets: ["Experiments"]),
    .executable(name: "cmapkd", targets: ["cmapkd"]),
  ],
  dependencies: [
    // From the machine's local package mirror.
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
  ],
  targets: [
    .target(
      name: "CTorch",
      cxxSettings: [.unsafeFlags(cxxFlags)],
      linkerSettings: [
        .linkedLibrary("torch_cpu"), .linkedLibrary("c10"), .linkedLibrary("dl"),
        .unsafeFlags(linkFlags),
      ]
    ),
    .target(name: "SafeFiles", dependencies: []),
    .target(name: "Torch", dependencies: ["CTorch", "SafeFiles"]),
    .target(name: "TorchNN", dependencies: ["Torch"]),
    .target(name: "TorchOptim", dependencies: ["Torch"]),
    // Debian's libraries, installed by scripts/bootstrap.sh.
    .systemLibrary(name: "CTurboJPEG", providers: [.apt(["libturbojpeg0-dev"])]),
    .systemLibrary(name: "CPNG", providers: [.apt(["libpng-dev"])]),
    .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
    .target(name: "Tokenizers", dependencies: ["CZlib"]),
    .target(name: "Data", dependencies: ["Torch", "Tokenizers", "CTurboJPEG", "CPNG", "CZlib", "SafeFiles"]),
    .target(name: "Models", dependencies: ["Torch", "TorchNN", "SafeFiles"]),
    .target(name: "Pyramid", dependencies: ["Torch", "TorchNN", "Models"]),
    .target(name: "Distillation", dependencies: ["Torch", "TorchNN", "TorchOptim", "Models", "Pyramid", "SafeFiles"]),
    .target(name: "Evaluation", dependencies: ["Torch", "TorchNN", "Models", "Data", "Tokenizers"]),
    .target(name: "Reports", dependencies: ["SafeFiles"]),
    .target(
      name: "Experiments",
      dependencies: [
        "Torch", "TorchNN", "TorchOptim", "Tokenizers", "Data", "Models", "Pyramid", "Distillation", "Evaluation", "Reports",
        "SafeFiles", .product(name: "Yams", package: "Yams"),
      ]),
    .executableTarget(
      name: "cmapkd", dependencies: ["Experiments", "Distillation", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    .executableTarget(
      name: "DistillBench", dependencies: ["Torch", "TorchNN", "TorchOptim", "Models", "Pyramid", "Distillation"],
      path: "bench/DistillBench"),
    .executableTarget(name: "DataBench", dependencies: ["Data", "Tokenizers", "Torch"], path: "bench/data/DataBench"),
    .executableTarget(
      name: "TorchBench",
      dependencies: ["Torch", "TorchNN", "TorchOptim"],
      path: "bench/TorchBench"
    ),
    // Shared by the test targets: fixture loading and tolerance checks.
    .target(name: "TestSupport", dependencies: ["Torch"], path: "Tests/TestSupport"),
    .testTarget(name: "TorchTests", dependencies: ["Torch", "SafeFiles", "TestSupport"], exclude: ["Fixtures"]),
    .testTarget(name: "TorchNNTests", dependencies: ["Torch", "TorchNN", "TestSupport"], exclude: ["Fixtures"]),
    .testTarget(name: "TorchOptimTests", dependencies: ["Torch", "TorchNN", "TorchOptim", "TestSupport"], exclude: ["Fixtures"]),
    .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "TestSupport"], exclude: ["Fixtures"]),
    .testTarget(name: "DataTests", dependencies: ["Data", "Torch", "Tokenizers", "TestSupport"], exclude: ["Fixtures"]),
    .testTarget(name: "ModelsTests", dependencies: ["Models", "Torch", "TorchNN", "TestSupport"], exclude: ["Fixtures"]),
    .testTarget(
      name: "PyramidTests", dependencies: ["Pyramid", "Models", "Torch", "TorchNN", "TestSupport"]),
    .testTarget(
      name: "DistillationTests",
      dependencies: ["Distillation", "Pyramid", "Models", "Torch", "TorchNN", "TorchOptim", "TestSupport"],
      exclude: ["Fixtures"]),
    .testTarget(
      name: "EvaluationTests", dependencies: ["Evaluation", "Models", "Data", "Tokenizers", "Torch", "TorchNN", "TestSupport"],
      exclude: ["Fixtures"]),
    .testTarget(name: "ReportsTests", dependencies: ["Reports", "TestSupport"]),
    .testTarget(
      name: "ExperimentsTests",
      dependencies: [
        "Experiments", "Distillation", "Models", "Data", "Torch", "TorchNN", "TorchOptim", "Reports", "Evaluation", "TestSupport",
      ]),
  ],
  cxxLanguageStandard: .cxx17
)
