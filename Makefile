# CMAPKD — every target bootstraps what it needs (idempotent, quiet when done).
SWIFT ?= swift
BOOTSTRAP := scripts/bootstrap.sh
export PYTHONDONTWRITEBYTECODE := 1

## make demo: the whole comparison on the embedded benchmark — teacher, every method, report.
## make demo-quick: the same at smoke-test size (about 3 minutes).
.PHONY: bench-gpu bundle compare compare-lowdata demo demo-quick test build release bootstrap bootstrap-reference fixtures check-live bench bench-distill bench-data format clean

## make test: the whole suite in debug, then again optimised, where Swift may release a
## temporary before a C call that uses its handle (what the lifetime tests guard). CI runs this.
## -enable-testing: a few suites use `@testable import`, which an optimised build refuses without it.
## --no-parallel: some tests check LibTorch's process-wide generator (seeded dropout against
## PyTorch, reseeding), which tests running alongside would draw from.
test: bootstrap
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel
	$(SWIFT) build -c release --build-tests -Xswiftc -enable-testing
	$(SWIFT) test -c release --skip-build --no-parallel -Xswiftc -enable-testing

demo: bootstrap
	$(SWIFT) build -c release --product cmapkd
	"$$($(SWIFT) build -c release --show-bin-path)/cmapkd" demo $(DEMO_ARGS)

demo-quick: bootstrap
	$(SWIFT) build -c release --product cmapkd
	"$$($(SWIFT) build -c release --show-bin-path)/cmapkd" demo --quick $(DEMO_ARGS)

## make compare: every method × seeds 0, 1, 2 and every ablation × seeds 0, 1, 2 from the demo's
## teacher and cache (configs/compare.yaml), then docs/results.md. COMPARE_ARGS="--part methods"
## or "--part ablations" runs one half; finished runs are reused, killed ones resume.
compare: bootstrap
	$(SWIFT) build -c release --product cmapkd
	"$$($(SWIFT) build -c release --show-bin-path)/cmapkd" compare --config configs/demo.yaml --config configs/compare.yaml --seeds 0,1,2 $(COMPARE_ARGS)

## make compare-lowdata: the same with every student on the first 2000 of the teacher's 20000
## training scenes (configs/lowdata.yaml), DSMD added, then docs/results-lowdata.md.
compare-lowdata: bootstrap
	$(SWIFT) build -c release --product cmapkd
	"$$($(SWIFT) build -c release --show-bin-path)/cmapkd" compare --config configs/demo.yaml --config configs/compare.yaml --config configs/lowdata.yaml --seeds 0,1,2 --part all --methods none,clipkd,tinyclip,dsmd,cmapkd --ablations full,no_affinity,mlp_adapters,fd_embedding,bridge_terms,no_adaptive_selection,no_visual_pyramid,no_language_hierarchy --root runs/lowdata --out docs/results-lowdata.md $(COMPARE_ARGS)

build: bootstrap
	$(SWIFT) build

release: bootstrap
	$(SWIFT) build -c release

bootstrap:
	@$(BOOTSTRAP) engine

bootstrap-reference:
	@$(BOOTSTRAP) reference

## make fixtures: regenerate the PyTorch reference values the tests compare against
fixtures: bootstrap-reference
	@for script in scripts/fixtures/*.py; do echo "== $$script"; .venv/bin/python $$script || exit 1; done

## make check-live: regenerate every fixture with the reference stack, then run the suite with
## the live Python cross-checks enabled (saved models loaded back in transformers / open_clip)
check-live: fixtures
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel
	git status --short -- Tests Sources/Tokenizers/Text

## make bench: Swift vs PyTorch eager, same machine, same thread count, alternated
bench: bootstrap-reference
	$(SWIFT) build -c release --product TorchBench
	.venv/bin/python bench/run_bench.py --swift-binary "$$($(SWIFT) build -c release --show-bin-path)/TorchBench"

## make bundle: cmapkd for a PyTorch machine without Swift (bundle/cmapkd-bundle.tar.gz, < 54 MiB):
## the static binary, the few libraries torch machines lack, a launcher that finds torch; then
## checks that the unpacked bundle runs `cmapkd demo --quick` without Swift and that its GPU
## benchmark script runs on CPU (the reference tier's transformers; BUNDLE_CHECK=0 skips)
bundle: bootstrap-reference
	scripts/bundle.sh

## make bench-distill: one CMAPKD step at the scene sizes: teacher live vs warm cache, selector
## cost, then Swift vs PyTorch eager from the same weights
bench-distill: bootstrap-reference
	$(SWIFT) build -c release --product DistillBench
	"$$($(SWIFT) build -c release --show-bin-path)/DistillBench" cache
	.venv/bin/python bench/distill_step.py --swift-binary "$$($(SWIFT) build -c release --show-bin-path)/DistillBench"

## make bench-gpu: a real-size step on a GPU (ViT-B/16 -> ViT-S/16, 224 px, batch 256, bf16 then
## fp32), Swift vs PyTorch eager, and MFU; says so and stops where there is no CUDA device.
## On a machine without Swift: make bundle here, then in the bundle
## `python3 bench/gpu/bench_gpu.py --swift-binary ./distillbench`.
bench-gpu: bootstrap-reference
	$(SWIFT) build -c release --product DistillBench
	.venv/bin/python bench/gpu/bench_gpu.py --swift-binary "$$($(SWIFT) build -c release --show-bin-path)/DistillBench" $(BENCH_GPU_ARGS)

## make bench-data: data pipeline (decode + CLIP preprocess + batch), Swift vs PIL + torchvision
## DataLoader; then the scene benchmark's generator speed and bag-of-words R@1
bench-data: bootstrap-reference
	$(SWIFT) build -c release --product DataBench
	.venv/bin/python bench/data/run_data_bench.py --swift-binary "$$($(SWIFT) build -c release --show-bin-path)/DataBench"
	"$$($(SWIFT) build -c release --show-bin-path)/DataBench" scenes

format:
	$(SWIFT) format --in-place --recursive Sources Tests bench Package.swift

clean:
	rm -rf .build
