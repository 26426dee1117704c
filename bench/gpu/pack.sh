#!/usr/bin/env bash
# Builds the `cuda`-feature binaries here (no GPU or CUDA toolkit needed: cudarc loads the
# driver and NVRTC at run time) and packs the ones named, stripped, into
# .gpu-bin/bins.tar.xz for bench/gpu/on-device.sh. Names: xtask (the benchmark runner),
# ept-cli, or an integration test of ept-backbones / ept-tuning (vit_golden, method_golden,
# training_step, punet, punet_variants), whose golden checks cover every compiled-in
# backend. Stripped, each is 65-80 MB, ~10 MB in xz: the device tool carries 64 MiB per
# call with the working tree (~15 MB), so four fit (the default, 41 MB: what
# on-device.sh runs).
# Usage (repository root): bench/gpu/pack.sh [NAME...]
#   (default: xtask vit_golden method_golden ept-cli)
set -euo pipefail
names=${*:-xtask vit_golden method_golden ept-cli}
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}   # the device's CUDA (driver 580)
cargo build --release -p xtask -p ept-cli --features xtask/cuda,ept-cli/cuda
features=ept-backbones/cuda,ept-tuning/cuda,ept-backend/cuda
tests=$(cargo test --release --no-run -p ept-backbones -p ept-tuning --features "$features" \
    --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/tests" .gpu-bin
for name in $names; do
    case $name in
        xtask | ept-cli) cp "target/release/$name" "$stage/" ;;
        *)
            path=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$tests")
            [ -n "$path" ] || { echo "no test binary named $name" >&2; exit 1; }
            cp "$path" "$stage/tests/$name"
            ;;
    esac
done
find "$stage" -type f -exec strip {} +
tar -cf - -C "$stage" . | xz -T2 -6 > .gpu-bin/bins.tar.xz.tmp
mv .gpu-bin/bins.tar.xz.tmp .gpu-bin/bins.tar.xz
exclude=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$exclude")"
grep -qsx '/.gpu-bin/' "$exclude" || echo '/.gpu-bin/' >> "$exclude"
ls -l .gpu-bin/bins.tar.xz
