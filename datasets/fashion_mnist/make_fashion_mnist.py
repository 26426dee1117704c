#!/usr/bin/env python3
"""Turn Debian's `dataset-fashion-mnist` IDX files into PNGs plus CSV label lists.

Source: `usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz` inside
dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb (Fashion-MNIST by Zalando
Research; Debian's copyright file: License: Expat). See README.md next to this file.

What it writes (into --out, default: <repo>/target/fashion_mnist):
  images/train/NNNNN.png   the first --train training images (default 20000), 28x28 8-bit grayscale
  images/test/NNNNN.png    the first --test test images (default 2000)
  train.csv, test.csv      header `path,label`; path relative to --out, label 0-9
  classes.txt              the 10 class names, one per line, in label order

The subset is the first N / M images in the files' own order: no random numbers are
drawn, and the same inputs give the same files byte for byte (with the pinned pillow).
Every IDX file is checked against the sha256 recorded below before it is used.
Requirements (numpy, pillow) are pinned in requirements.txt next to this file.
"""

import argparse
import gzip
import hashlib
import os
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGE = "dataset-fashion-mnist"
PACKAGE_VERSION = "0.0~git20200523.55506a9-1"
PACKAGE_DIR = "usr/share/datasets/fashion-mnist"

# sha256 observed in dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb
# ("gz": the file as shipped; "raw": its decompressed IDX bytes). The raw hash is the
# binding check (a repack may recompress the same data); the gz hash only warns.
EXPECTED_SHA256 = {
    "train-images-idx3-ubyte": {
        "gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "raw": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    },
    "train-labels-idx1-ubyte": {
        "gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "raw": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    },
    "t10k-images-idx3-ubyte": {
        "gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "raw": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    },
    "t10k-labels-idx1-ubyte": {
        "gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        "raw": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

SPLITS = {
    # split name: (IDX stem prefix, images in the full file)
    "train": ("train", 60000),
    "test": ("t10k", 10000),
}

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
SIDE = 28

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_NAME = re.compile(r"^\d{5}\.png$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_idx(src: Path, stem: str) -> bytes:
    """Read `stem` (or `stem.gz`) from src, check its sha256, return the raw IDX bytes."""
    expected = EXPECTED_SHA256[stem]
    gz_path, raw_path = src / f"{stem}.gz", src / stem
    if gz_path.is_file():
        packed = gz_path.read_bytes()
        got_gz = sha256(packed)
        if got_gz != expected["gz"]:
            print(f"  note: {gz_path.name} sha256 {got_gz} differs from the one recorded "
                  f"for {PACKAGE} {PACKAGE_VERSION}; checking the decompressed data",
                  file=sys.stderr)
        raw = gzip.decompress(packed)
        shown = gz_path
    elif raw_path.is_file():
        raw = raw_path.read_bytes()
        shown = raw_path
    else:
        sys.exit(f"error: neither {gz_path} nor {raw_path} exists")
    got = sha256(raw)
    if got != expected["raw"]:
        sys.exit(f"error: sha256 mismatch for {shown} (decompressed IDX)\n"
                 f"  expected {expected['raw']}\n  got      {got}")
    print(f"  sha256 ok  {shown}  ({len(raw):,} bytes IDX)")
    return raw


def parse_images(raw: bytes, count: int) -> np.ndarray:
    magic, n, rows, cols = np.frombuffer(raw, dtype=">u4", count=4, offset=0)
    if magic != IDX_IMAGES_MAGIC or (rows, cols) != (SIDE, SIDE) or n != count:
        sys.exit(f"error: unexpected image IDX header magic={magic} n={n} {rows}x{cols}")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, SIDE, SIDE)


def parse_labels(raw: bytes, count: int) -> np.ndarray:
    magic, n = np.frombuffer(raw, dtype=">u4", count=2, offset=0)
    if magic != IDX_LABELS_MAGIC or n != count:
        sys.exit(f"error: unexpected label IDX header magic={magic} n={n}")
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    if labels.shape != (count,) or labels.max() >= len(CLASSES):
        sys.exit("error: label IDX has the wrong length or a label out of range")
    return labels


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


def write_split(src: Path, out: Path, split: str, keep: int) -> np.ndarray:
    prefix, total = SPLITS[split]
    if not 0 <= keep <= total:
        sys.exit(f"error: --{split} must be between 0 and {total}, got {keep}")
    images = parse_images(read_idx(src, f"{prefix}-images-idx3-ubyte"), total)
    labels = parse_labels(read_idx(src, f"{prefix}-labels-idx1-ubyte"), total)

    img_dir = out / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    # Drop PNGs of ours left over from an earlier run with a larger count.
    for old in img_dir.iterdir():
        if PNG_NAME.match(old.name) and int(old.name[:5]) >= keep:
            old.unlink()

    rows = ["path,label"]
    for i in range(keep):
        rel = f"images/{split}/{i:05d}.png"
        Image.fromarray(np.ascontiguousarray(images[i])).save(out / rel, format="PNG")
        rows.append(f"{rel},{int(labels[i])}")
    # The CSV is written last: fetch.sh treats a CSV with the right line count as done.
    write_text_atomic(out / f"{split}.csv", "\n".join(rows) + "\n")
    return labels[:keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, required=True,
                    help=f"folder with the IDX files (`{PACKAGE_DIR}` of the unpacked package)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "target" / "fashion_mnist",
                    help="output folder (default: <repo>/target/fashion_mnist)")
    ap.add_argument("--train", type=int, default=20000, metavar="N",
                    help="keep the first N training images (default 20000, max 60000)")
    ap.add_argument("--test", type=int, default=2000, metavar="M",
                    help="keep the first M test images (default 2000, max 10000)")
    args = ap.parse_args()

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"reading IDX files from {args.src}")
    write_text_atomic(out / "classes.txt", "\n".join(CLASSES) + "\n")
    for split, keep in (("train", args.train), ("test", args.test)):
        labels = write_split(args.src, out, split, keep)
        hist = np.bincount(labels, minlength=len(CLASSES))
        print(f"  wrote {keep} {split} PNGs + {split}.csv; per class: "
              + " ".join(str(int(c)) for c in hist))
    print(f"done: {out}")


if __name__ == "__main__":
    main()
