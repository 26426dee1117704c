#!/usr/bin/env bash
# Runs on a lent GPU machine (the workplace's `device` tool), which has CUDA, PyTorch and
# timm but no Rust toolchain and no network: unpacks the `cuda`-feature build that
# bench/gpu/pack.sh made here and carried along in .gpu-bin/, then
#   1. runs the golden-parity test binaries (each checks every backend compiled in, so
#      flex, ndarray and cuda against the same PyTorch/timm files),
#   2. runs the README's demo on cuda:0, and
#   3. runs `xtask bench` on cuda:0 with the given arguments (`--compare`: PyTorch eager
#      CUDA in the same run).
# Usage (from the repository root, on the device): bench/gpu/on-device.sh [bench args...]
# EPT_GPU_STAGES=tests,demo,bench (the default) picks the stages.
# Logs go to $OUT (the device tool brings that folder back) or ./gpu-out.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out" /tmp/ept-gpu
# The binaries were built in /work/main: their fixture paths (CARGO_MANIFEST_DIR) point there.
if [ "$(readlink -f /work/main)" != "$(pwd -P)" ]; then
    mkdir -p /work && rm -rf /work/main && ln -s "$(pwd -P)" /work/main
fi
tar -xJf .gpu-bin/bins.tar.xz -C /tmp/ept-gpu || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/machine.txt"
python3 -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__, "cuda", torch.version.cuda)' | tee -a "$out/machine.txt"
nproc | tee -a "$out/machine.txt"
stages=${EPT_GPU_STAGES:-tests,demo,bench}
if [[ $stages == *tests* ]]; then
    for test in /tmp/ept-gpu/tests/*; do
        echo "== $(basename "$test")"
        timeout "${EPT_GPU_TEST_TIMEOUT:-200}" "$test" --test-threads 1 2>&1 | tail -25
    done 2>&1 | tee "$out/tests.log"
fi
if [[ $stages == *demo* ]]; then
    # The README's demo, on the GPU: accuracies to hold against the CPU run's.
    { time timeout "${EPT_GPU_DEMO_TIMEOUT:-150}" /tmp/ept-gpu/ept-cli --device cuda:0 demo; } 2>&1 | tail -30 | tee "$out/demo.log"
fi
if [[ $stages == *bench* ]]; then
    export EPT_PEER_PYTHON=python3
    /tmp/ept-gpu/xtask bench --devices cuda:0 "$@" 2>&1 | tee "$out/bench.log"
fi
