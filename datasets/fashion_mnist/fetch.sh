#!/usr/bin/env bash
# Fetch Fashion-MNIST from Debian's `dataset-fashion-mnist` package and turn the first
# N training / M test images into PNGs plus CSV label lists (see README.md here).
#
#   bash datasets/fashion_mnist/fetch.sh [N [M [OUT]]]
#
# N: training images to keep (default 20000, max 60000); M: test images (default 2000,
# max 10000); OUT: output folder (default <repo>/target/fashion_mnist).
# Environment: FMNIST_VENV  Python venv to use/create (default /work/venv-fmnist)
#              FMNIST_DEB   use this .deb instead of downloading one
# Re-runnable: does nothing when OUT already holds N train and M test images and CSVs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
n_train="${1:-20000}"
n_test="${2:-2000}"
out="${3:-$repo/target/fashion_mnist}"
venv="${FMNIST_VENV:-/work/venv-fmnist}"
pkg=dataset-fashion-mnist
idx_dir=usr/share/datasets/fashion-mnist

for v in "$n_train" "$n_test"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "fetch.sh: N and M must be whole numbers, got '$v'" >&2; exit 2; }
done
(( n_train <= 60000 && n_test <= 10000 )) || { echo "fetch.sh: N <= 60000 and M <= 10000" >&2; exit 2; }

count_pngs() { # folder -> number of NNNNN.png files in it
  if [[ -d "$1" ]]; then
    find "$1" -maxdepth 1 -type f -name '[0-9][0-9][0-9][0-9][0-9].png' | wc -l
  else
    echo 0
  fi
}
csv_rows() { # file -> number of lines, 0 if missing
  if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi
}
complete() {
  [[ -f "$out/classes.txt" && "$(csv_rows "$out/classes.txt")" -eq 10 ]] &&
    [[ "$(csv_rows "$out/train.csv")" -eq $((n_train + 1)) ]] &&
    [[ "$(csv_rows "$out/test.csv")" -eq $((n_test + 1)) ]] &&
    [[ "$(count_pngs "$out/images/train")" -eq "$n_train" ]] &&
    [[ "$(count_pngs "$out/images/test")" -eq "$n_test" ]]
}

if complete; then
  echo "fashion_mnist: $out already holds $n_train train + $n_test test images; nothing to do"
  exit 0
fi

# --- Python venv with the pinned numpy + pillow -------------------------------------
want_np="$(sed -n 's/^numpy==//p' "$here/requirements.txt")"
want_pil="$(sed -n 's/^pillow==//p' "$here/requirements.txt")"
have="$("$venv/bin/python" -c 'import numpy, PIL; print(numpy.__version__, PIL.__version__)' 2>/dev/null || true)"
if [[ "$have" != "$want_np $want_pil" ]]; then
  echo "fashion_mnist: setting up venv $venv (numpy $want_np, pillow $want_pil)"
  py="$(command -v python3.11 || command -v python3)"
  [[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
else
  echo "fashion_mnist: using venv $venv (numpy $want_np, pillow $want_pil)"
fi

# --- the Debian package ---------------------------------------------------------------
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]] && command -v sudo >/dev/null; then sudo_cmd=(sudo); fi

if [[ -n "${FMNIST_DEB:-}" ]]; then
  deb="$(cd "$(dirname "$FMNIST_DEB")" && pwd)/$(basename "$FMNIST_DEB")"
  echo "fashion_mnist: using $deb"
else
  # Let apt's unprivileged _apt user write into the download folder (avoids its warning).
  if [[ "$(id -u)" -eq 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
  if ! apt-cache show "$pkg" >/dev/null 2>&1; then
    echo "fashion_mnist: $pkg not in apt's lists; running apt-get update"
    "${sudo_cmd[@]}" apt-get update -qq
  fi
  echo "fashion_mnist: apt-get download $pkg"
  if ! (cd "$tmp" && apt-get download -q "$pkg"); then
    echo "fashion_mnist: download failed; running apt-get update and trying again"
    "${sudo_cmd[@]}" apt-get update -qq
    (cd "$tmp" && apt-get download -q "$pkg")
  fi
  deb="$(find "$tmp" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)"
  [[ -n "$deb" ]] || { echo "fashion_mnist: no .deb after apt-get download" >&2; exit 1; }
fi
echo "fashion_mnist: package $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)," \
  "$(basename "$deb"), sha256 $(sha256sum "$deb" | cut -d' ' -f1)"

dpkg -x "$deb" "$tmp/root"
src="$tmp/root/$idx_dir"
[[ -d "$src" ]] || { echo "fashion_mnist: $idx_dir not found in $(basename "$deb")" >&2; exit 1; }
echo "fashion_mnist: IDX files in the package:"
(cd "$tmp/root" && find "$idx_dir" -type f | sort | sed 's/^/  \//')

# --- PNGs + CSVs --------------------------------------------------------------------
"$venv/bin/python" "$here/make_fashion_mnist.py" --src "$src" --out "$out" \
  --train "$n_train" --test "$n_test"

complete || { echo "fashion_mnist: output check failed in $out" >&2; exit 1; }
echo "fashion_mnist: $out holds $n_train train + $n_test test PNGs, train.csv, test.csv, classes.txt"
