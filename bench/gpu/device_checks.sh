#!/usr/bin/env bash
# The GPU session's one prepared script (issue 14), for the device machine, which has PyTorch
# but no Swift. Here first: `make bundle`; then run this there with `carry: ["bundle"]`:
#   bash bench/gpu/device_checks.sh
# It unpacks the bundle, trains the quick demo on CUDA in bf16 (placement: every tensor on the
# GPU, or the run fails on a device mismatch), then runs the GPU step benchmark (bf16 and fp32,
# Swift vs PyTorch eager, MFU). Results go to $OUT (the device tool brings them back).
# The timeouts (200 + 75 + 270 s) keep the whole script inside one 600 s device command; every
# step writes its results as it goes, so a step that runs out of time loses only itself.
set -euo pipefail
out=${OUT:-$PWD/bench/out/device}
mkdir -p "$out"
[[ -f bundle/cmapkd-bundle.tar.gz ]] || { echo "no bundle/cmapkd-bundle.tar.gz: run make bundle first" >&2; exit 1; }
work=$(mktemp -d)
tar -C "$work" -xzf bundle/cmapkd-bundle.tar.gz
cd "$work/cmapkd-bundle"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt" || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' | tee -a "$out/gpu.txt"
# If libtorch_cuda.so cannot load, the libraries it misses (cmapkd's error quotes the loader too).
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
ldd "$torch_lib/libtorch_cuda.so" | grep "not found" | tee -a "$out/gpu.txt" || true

echo "== demo --quick on cuda, bf16" | tee "$out/demo_cuda.log"
start=$(date +%s)
timeout "${DEMO_TIMEOUT:-200}" ./cmapkd demo --quick --set device=cuda --set precision=bf16 >> "$out/demo_cuda.log" 2>&1 \
  && echo "demo ok in $(( $(date +%s) - start )) s" | tee -a "$out/demo_cuda.log" \
  || echo "demo FAILED or timed out after $(( $(date +%s) - start )) s" | tee -a "$out/demo_cuda.log"
grep -E "device|CMAPKD|Teacher|rror" "$out/demo_cuda.log" | head -30 || true
cp runs/demo-quick/report.md "$out/demo_report.md" 2>/dev/null || true

echo "== 2 data-parallel processes on the one GPU (Gloo, staged through host memory)" | tee "$out/dp_cuda.log"
timeout "${DP_TIMEOUT:-75}" ./cmapkd launch --nproc 2 distill --config configs/demo.yaml --config configs/demo-quick.yaml \
  --method kd --set device=cuda:0 --set train.steps=20 --set run_dir="$work/dp" >> "$out/dp_cuda.log" 2>&1 \
  && echo "data-parallel ok" | tee -a "$out/dp_cuda.log" || echo "data-parallel FAILED" | tee -a "$out/dp_cuda.log"
tail -5 "$out/dp_cuda.log"

echo "== GPU step benchmark"
PYTHONUNBUFFERED=1 timeout "${BENCH_TIMEOUT:-270}" python3 -u bench/gpu/bench_gpu.py --swift-binary ./distillbench --out "$out" 2>&1 \
  | grep -v "Loading weights" | tee "$out/bench_gpu.log" || true
