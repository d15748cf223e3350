#!/usr/bin/env bash
# `make bundle`: cmapkd for a machine that has PyTorch but no Swift toolchain (a GPU box).
#
# Writes bundle/cmapkd-bundle.tar.gz (must stay under 54 MiB: the device tool carries at most
# 64 MiB in all, the bundle with the working tree's tracked files, about 8 MiB):
#   cmapkd, distillbench    launchers: find LibTorch ($LIBTORCH, else python3's torch), run bin/…
#   bin/cmapkd              the program, Swift runtime and Foundation linked in statically, stripped
#   bin/DistillBench        the Swift side of the step benchmarks (bench/gpu/bench_gpu.py)
#   lib/                    the shared libraries it needs that a PyTorch machine lacks (JPEG, PNG, zlib)
#   share/                  open_clip's BPE vocabulary (the scene benchmark's tokenizer)
#   configs/ bench/         the demo's configs; the GPU benchmark (python3 bench/gpu/bench_gpu.py
#                           --swift-binary ./distillbench)
# then checks it: unpacked in a temporary folder, with no Swift on PATH and only the bundle's
# and torch's libraries to load, `./cmapkd demo --quick` must run to the end.
#
# BUNDLE_CHECK=0 skips the check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
limit=$((54 << 20))

echo "bundle: building the static binaries (.build-bundle)"
flags=(-c release --static-swift-stdlib --scratch-path .build-bundle -Xlinker -s)
swift build "${flags[@]}" --product cmapkd
swift build "${flags[@]}" --product DistillBench
bin=$(swift build "${flags[@]}" --show-bin-path)
binary=$bin/cmapkd

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dir=$stage/cmapkd-bundle
mkdir -p "$dir/bin" "$dir/lib" "$dir/share"
cp "$binary" "$bin/DistillBench" "$dir/bin/"
strip "$dir/bin/cmapkd" "$dir/bin/DistillBench" 2>/dev/null || true

# The system libraries it links that a PyTorch machine does not have; libc, libstdc++ and
# friends are everywhere torch runs, LibTorch comes from that machine's torch.
for lib in $(ldd "$binary" | awk '/=>/ { print $3 }'); do
  case "$(basename "$lib")" in
    libturbojpeg.so*|libjpeg.so*|libpng16.so*|libz.so*) cp -L "$lib" "$dir/lib/" ;;
  esac
done
if ldd "$binary" | grep -q "/swift/"; then
  echo "bundle: the binary still loads Swift runtime libraries:" >&2
  ldd "$binary" | grep "/swift/" >&2
  exit 1
fi

vocab=$(ls .venv/lib/python*/site-packages/open_clip/bpe_simple_vocab_16e6.txt.gz 2>/dev/null | head -1 || true)
[[ -n "$vocab" ]] || { echo "bundle: open_clip's vocabulary not found; run make bootstrap" >&2; exit 1; }
cp "$vocab" "$dir/share/"
cp -r configs "$dir/"
mkdir -p "$dir/bench"
cp -r bench/gpu bench/distill_step.py bench/alternate.py "$dir/bench/"

cat > "$dir/launch" <<'LAUNCHER'
#!/usr/bin/env bash
# Runs a bundled program (bin/NAME, NAME being how this launcher was called) against this
# machine's LibTorch: $LIBTORCH (a folder with lib/), else the torch package of python3.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
torch=${LIBTORCH:-}
if [[ -z "$torch" ]]; then
  torch=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null) || {
    echo "cmapkd: no LibTorch: set LIBTORCH to a folder with lib/libtorch_cpu.so, or install torch for python3" >&2
    exit 1
  }
fi
[[ -f "$torch/lib/libtorch_cpu.so" ]] || { echo "cmapkd: $torch/lib/libtorch_cpu.so not found (LIBTORCH)" >&2; exit 1; }
export LD_LIBRARY_PATH="$here/lib:$torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CMAPKD_VOCABULARY=${CMAPKD_VOCABULARY:-$here/share/bpe_simple_vocab_16e6.txt.gz}
case "$(basename "$0")" in
  distillbench) program=DistillBench ;;
  *) program=cmapkd ;;
esac
exec "$here/bin/$program" "$@"
LAUNCHER
chmod +x "$dir/launch"
ln -s launch "$dir/cmapkd"
ln -s launch "$dir/distillbench"

mkdir -p bundle
tar -C "$stage" -czf bundle/cmapkd-bundle.tar.gz cmapkd-bundle
size=$(stat -c %s bundle/cmapkd-bundle.tar.gz)
echo "bundle: bundle/cmapkd-bundle.tar.gz $((size >> 20)) MiB (binary $(( $(stat -c %s "$dir/bin/cmapkd") >> 20 )) MiB unpacked)"
(( size < limit )) || { echo "bundle: over the 54 MiB limit" >&2; exit 1; }

[[ "${BUNDLE_CHECK:-1}" == 1 ]] || exit 0
echo "bundle: checking it runs 'cmapkd demo --quick' without Swift"
check=$(mktemp -d)
trap 'rm -rf "$stage" "$check"' EXIT
tar -C "$check" -xzf bundle/cmapkd-bundle.tar.gz
torch=$(ls -d "$root"/.venv/lib/python*/site-packages/torch | head -1)
(
  cd "$check/cmapkd-bundle"
  # No Swift toolchain on PATH, no inherited library path: only the bundle's and torch's libraries.
  env -i HOME="$check" PATH=/usr/bin:/bin LIBTORCH="$torch" ./cmapkd demo --quick > "$check/demo.log" 2>&1
) || { tail -30 "$check/demo.log" >&2; echo "bundle: the check failed" >&2; exit 1; }
grep -q "CMAPKD" "$check/demo.log" || { tail -30 "$check/demo.log" >&2; echo "bundle: no results table" >&2; exit 1; }
tail -15 "$check/demo.log"
echo "bundle: checking the GPU benchmark's script and worker at smoke-test size on the CPU"
(
  cd "$check/cmapkd-bundle"
  env -i HOME="$check" PATH=/usr/bin:/bin LIBTORCH="$torch" "$root/.venv/bin/python" bench/gpu/bench_gpu.py \
    --swift-binary ./distillbench --device cpu --teacher scene-teacher --student scene-student --batch 8 --quick \
    --out "$check/out" > "$check/bench.log" 2>&1
) || { tail -30 "$check/bench.log" >&2; echo "bundle: the benchmark check failed" >&2; exit 1; }
grep "ratio\|first-step" "$check/bench.log"
echo "bundle: check passed"
