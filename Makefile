# CMAPKD — every target bootstraps what it needs (idempotent, quiet when done).
SWIFT ?= swift
BOOTSTRAP := scripts/bootstrap.sh
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: test build release bootstrap bootstrap-reference fixtures bench format clean

## make test: the whole suite in debug, then again optimised, where Swift may release a
## temporary before a C call that uses its handle (what the lifetime tests guard). CI runs this.
test: bootstrap
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build

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

## make bench: Swift vs PyTorch eager, same machine, same thread count, alternated
bench: bootstrap-reference
	$(SWIFT) build -c release --product TorchBench
	.venv/bin/python bench/run_bench.py --swift-binary "$$($(SWIFT) build -c release --show-bin-path)/TorchBench"

format:
	$(SWIFT) format --in-place --recursive Sources Tests bench Package.swift

clean:
	rm -rf .build
