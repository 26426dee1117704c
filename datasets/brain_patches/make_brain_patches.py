#!/usr/bin/env python3
"""Cut the bundled `brain_patches` few-shot data set out of Debian's `mricron-data`.

Source: the Colin27 T1 MRI (`ch2.nii.gz`), its skull-stripped copy (`ch2bet.nii.gz`,
used only as a brain mask) and the AAL atlas drawn on that very brain (`aal.nii.gz`,
`aal.nii.txt`), all from `usr/share/mricron/templates/` of mricron-data
1.2.20211006+dfsg-4 (BSD-3-Clause). See `datasets/README.md` for provenance.

What it writes (into --out, default: the folder of this script):
  images/colin27_ax_zZZZ_H_pNNNN.png  axial 32x32 8-bit grayscale patches
  lobe_train.txt, lobe_test.txt        single-label lists, MedFMC colon style (`name.png 3`)
  lobe_multi_train.txt, lobe_multi_test.txt
                                        multi-label lists, MedFMC endo style (`name.png 1 0 0 1 0 0 0`)
  classes.txt                           the 7 lobe names, one per line, in label order
  patches.csv                           per-patch metadata (position, split, lobe fractions)
and, with --copy-sources DIR, copies ch2.nii.gz, aal.nii.gz and aal.nii.txt there.

Everything is deterministic: no random numbers are drawn. Requirements are pinned in
requirements.txt next to this file.
"""

import argparse
import csv
import hashlib
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

# sha256 of the inputs inside mricron-data_1.2.20211006+dfsg-4_all.deb.
EXPECTED_SHA256 = {
    "ch2.nii.gz": "a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309",
    "ch2bet.nii.gz": "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1",
    "aal.nii.gz": "b512dcd3f36b77f56be7a9a038134096e66314b7e8c31d25875b96bcf6991454",
    "aal.nii.txt": "1788d6556a9ec056de9867b2382cf1ce1b51b87ae4cfd9cd25de48ae4dde709e",
}

# Label order of the data set. Insula (AAL codes 3xxx, 2 regions) is merged into
# temporal: as a class of its own it would be the majority lobe of only ~12 patches.
LOBES = ["frontal", "temporal", "parietal", "occipital", "limbic", "cerebellum", "subcortical"]

# AAL's own 4-digit region codes (third column of aal.nii.txt) group regions by their
# leading digit; we map each digit to a lobe.
CODE_DIGIT_TO_LOBE = {
    2: "frontal",  # precentral, frontal gyri, rolandic operculum, SMA, olfactory, rectus
    3: "temporal",  # insula (merged, see above)
    4: "limbic",  # cingulum, hippocampus, parahippocampal, amygdala
    5: "occipital",  # calcarine, cuneus, lingual, occipital gyri, fusiform
    6: "parietal",  # postcentral, parietal gyri, supramarginal, angular, precuneus, paracentral
    7: "subcortical",  # caudate, putamen, pallidum, thalamus
    8: "temporal",  # heschl, temporal gyri and poles
    9: "cerebellum",  # cerebellar hemispheres and vermis
}

PATCH = 32  # patch side, voxels (1 mm)
STRIDE = 16  # in-plane stride, voxels
Z_STEP = 3  # axial slices are taken every 3 mm
MIN_BRAIN = 0.5  # a patch must be at least half brain
MIN_LABELLED = 0.1  # ... and at least 10 % AAL-labelled (grey matter) voxels
MULTI_FRACTION = 0.1  # multi-label: every lobe covering >= 10 % of the patch (plus the majority lobe)
SLAB_MM = 24  # split unit: axial slabs of 24 mm
SPLIT_PATTERN = ("train", "train", "test")  # slab k goes to SPLIT_PATTERN[k % 3]
GAP_MM = 3  # slices closer than this (inclusive) to a train/test slab boundary are dropped
MIDLINE_X = 90  # voxel index of x = 0 mm (affine offset -90 mm): left < 90 <= right


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_inputs(templates: Path, check: bool):
    for name, digest in EXPECTED_SHA256.items():
        path = templates / name
        if not path.is_file():
            sys.exit(f"missing {path}: pass --templates <dir>/usr/share/mricron/templates")
        if check and sha256(path) != digest:
            sys.exit(f"{path}: sha256 differs from mricron-data 1.2.20211006+dfsg-4 (use --no-check to override)")
    t1 = nib.load(templates / "ch2.nii.gz")
    bet = nib.load(templates / "ch2bet.nii.gz")
    aal = nib.load(templates / "aal.nii.gz")
    for img in (bet, aal):
        if img.shape != t1.shape or not np.allclose(img.affine, t1.affine):
            sys.exit("ch2, ch2bet and aal must share one grid")
    if nib.aff2axcodes(t1.affine) != ("R", "A", "S"):
        sys.exit("expected RAS orientation")
    lut = np.full(256, -1, np.int16)
    for line in (templates / "aal.nii.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            index, _name, code = int(parts[0]), parts[1], int(parts[2])
            lut[index] = LOBES.index(CODE_DIGIT_TO_LOBE[code // 1000])
    volume = np.asarray(t1.dataobj).astype(np.uint8)
    lobe = lut[np.asarray(aal.dataobj).astype(np.int64)]
    brain = (np.asarray(bet.dataobj) > 0) | (lobe >= 0)
    return volume, lobe, brain


def split_of(z: int):
    """Split of axial slice z (voxel index = mm), or None inside a gap."""
    slab = z // SLAB_MM
    split = SPLIT_PATTERN[slab % len(SPLIT_PATTERN)]
    for boundary_slab in (slab, slab + 1):
        boundary = boundary_slab * SLAB_MM
        before = SPLIT_PATTERN[(boundary_slab - 1) % len(SPLIT_PATTERN)]
        after = SPLIT_PATTERN[boundary_slab % len(SPLIT_PATTERN)]
        if before != after and abs(z - boundary) <= GAP_MM:
            return None
    return split


def to_png(patch_xy: np.ndarray) -> Image.Image:
    # array is [x, y]; image rows run anterior (top) to posterior, columns patient left
    # to right as x increases (neurological convention).
    return Image.fromarray(np.ascontiguousarray(patch_xy.T[::-1, :]), mode="L")


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--templates", type=Path, required=True, help="usr/share/mricron/templates of the unpacked package")
    parser.add_argument("--out", type=Path, default=here)
    parser.add_argument("--copy-sources", type=Path, default=None, help="also copy ch2/aal files into this folder")
    parser.add_argument("--no-check", action="store_true", help="skip the sha256 check of the inputs")
    args = parser.parse_args()

    volume, lobe, brain = load_inputs(args.templates, not args.no_check)
    nx, ny, nz = volume.shape
    out = args.out
    images = out / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)

    rows = []
    for z in range(0, nz, Z_STEP):
        split = split_of(z)
        if split is None:
            continue
        counters = {"L": 0, "R": 0}
        for y0 in range(0, ny - PATCH + 1, STRIDE):
            for x0 in range(0, nx - PATCH + 1, STRIDE):
                window = (slice(x0, x0 + PATCH), slice(y0, y0 + PATCH), z)
                if brain[window].mean() < MIN_BRAIN:
                    continue
                lobes = lobe[window]
                counts = np.bincount(lobes[lobes >= 0], minlength=len(LOBES))
                if counts.sum() < MIN_LABELLED * PATCH * PATCH:
                    continue
                majority = int(counts.argmax())
                multi = (counts >= MULTI_FRACTION * PATCH * PATCH).astype(int)
                multi[majority] = 1
                hemi = "L" if x0 + PATCH // 2 < MIDLINE_X else "R"
                # first 18 characters = group (hemisphere of one axial slice): endo-style
                # prefix grouping; stripping the trailing `pNNNN.png` gives the same
                # group (colon-style slide grouping).
                group = f"colin27_ax_z{z:03d}_{hemi}_"
                assert len(group) == 18
                name = f"{group}p{counters[hemi]:04d}.png"
                counters[hemi] += 1
                to_png(volume[window]).save(images / name, optimize=True)
                rows.append(
                    dict(
                        name=name,
                        split=split,
                        group=group[:-1],
                        z=z,
                        x0=x0,
                        y0=y0,
                        hemisphere=hemi,
                        label=majority,
                        multi=" ".join(str(v) for v in multi),
                        brain_fraction=round(float(brain[window].mean()), 4),
                        **{f"frac_{n}": round(float(c) / (PATCH * PATCH), 4) for n, c in zip(LOBES, counts)},
                    )
                )

    for split in ("train", "test"):
        chosen = [r for r in rows if r["split"] == split]
        (out / f"lobe_{split}.txt").write_text("".join(f"{r['name']} {r['label']}\n" for r in chosen))
        (out / f"lobe_multi_{split}.txt").write_text("".join(f"{r['name']} {r['multi']}\n" for r in chosen))
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in LOBES))
    with open(out / "patches.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    if args.copy_sources is not None:
        args.copy_sources.mkdir(parents=True, exist_ok=True)
        for name in ("ch2.nii.gz", "aal.nii.gz", "aal.nii.txt"):
            shutil.copyfile(args.templates / name, args.copy_sources / name)

    for split in ("train", "test"):
        chosen = [r for r in rows if r["split"] == split]
        per_class = [sum(r["label"] == c for r in chosen) for c in range(len(LOBES))]
        groups = [len({r["group"] for r in chosen if r["label"] == c}) for c in range(len(LOBES))]
        print(f"{split}: {len(chosen)} patches; per class {per_class}; groups per class {groups}")


if __name__ == "__main__":
    main()
