//! `cargo xtask make-brain-volumes` — builds `datasets/brain_volumes/` from the verbatim
//! Debian mricron-data files in `datasets/mricron/`: the Colin27 T1 (`ch2.nii.gz`) and the
//! AAL atlas (`aal.nii.gz` + `aal.nii.txt`) on the same 181×217×181 1 mm grid.
//!
//! AAL regions are grouped into 7 lobes by the leading digit of their 4-digit AAL code
//! (third column of `aal.nii.txt`). The Z range where AAL labels exist is cut into 10
//! contiguous axial slabs of equal thickness (the range is widened symmetrically to a
//! multiple of 10, inside the volume), each cropped in X/Y to the labels' bounding box
//! plus a 4-voxel margin. Every slab is written as a uint8 T1 image and a uint8 lobe map
//! whose affines carry the crop offset, plus `volumes.csv` and `classes.txt`. The
//! output is deterministic (gzip mtime 0).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use ept_data::volume::geometry::crop_window;
use ept_data::{NiftiDatatype, check_pair, read_label_map, read_volume, write_volume};

/// Lobe names in label order (0 is background).
pub const CLASSES: [&str; 8] = [
    "background",
    "frontal",
    "temporal",
    "parietal",
    "occipital",
    "limbic",
    "cerebellum",
    "subcortical",
];
const SLABS: usize = 10;
const MARGIN: usize = 4;

#[derive(Args)]
pub struct MakeBrainVolumesArgs {
    /// Folder with ch2.nii.gz, aal.nii.gz and aal.nii.txt.
    #[arg(long)]
    mricron: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// AAL code's leading digit → lobe label (1 frontal … 7 subcortical).
fn lobe_of_code(code: u32) -> Option<u16> {
    match code / 1000 {
        2 => Some(1),     // frontal
        3 | 8 => Some(2), // insula (3xxx) merged into temporal (8xxx)
        6 => Some(3),     // parietal
        5 => Some(4),     // occipital
        4 => Some(5),     // limbic
        9 => Some(6),     // cerebellum
        7 => Some(7),     // subcortical
        _ => None,
    }
}

/// `aal.nii.txt`: `index name code` per line → index → lobe.
fn read_aal_table(path: &Path) -> anyhow::Result<BTreeMap<u16, u16>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let parse = || -> Option<(u16, u16)> {
            let index = cols.first()?.parse().ok()?;
            let code = cols.get(2)?.parse().ok()?;
            Some((index, lobe_of_code(code)?))
        };
        let (index, lobe) =
            parse().with_context(|| format!("{}:{}: expected `index name code`", path.display(), i + 1))?;
        out.insert(index, lobe);
    }
    Ok(out)
}

pub fn run(args: &MakeBrainVolumesArgs) -> anyhow::Result<()> {
    let root = repo_root();
    let src = args
        .mricron
        .clone()
        .unwrap_or_else(|| root.join("datasets/mricron"));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("datasets/brain_volumes"));
    let t1 = read_volume(&src.join("ch2.nii.gz"))?;
    let aal = read_label_map(&src.join("aal.nii.gz"))?;
    check_pair(&t1, &aal)?;
    let table = read_aal_table(&src.join("aal.nii.txt"))?;
    let mut unknown = None;
    let lobes = aal.map(|&v| match v {
        0 => 0,
        v => *table.get(&v).unwrap_or_else(|| {
            unknown.get_or_insert(v);
            &0
        }),
    });
    if let Some(v) = unknown {
        bail!("aal.nii.gz has label {v}, which aal.nii.txt does not list");
    }

    // Bounding box of the labelled brain.
    let [nx, ny, nz] = lobes.dims;
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for x in 0..nx {
        for y in 0..ny {
            for z in 0..nz {
                if lobes.data[lobes.index(x, y, z)] > 0 {
                    for (k, c) in [x, y, z].into_iter().enumerate() {
                        lo[k] = lo[k].min(c);
                        hi[k] = hi[k].max(c);
                    }
                }
            }
        }
    }
    if lo[0] == usize::MAX {
        bail!("aal.nii.gz has no labelled voxel");
    }
    let extent = hi[2] - lo[2] + 1;
    let thick = extent.div_ceil(SLABS);
    if thick * SLABS > nz {
        bail!("{SLABS} slabs of {thick} voxels do not fit {nz} slices");
    }
    let z0 = lo[2]
        .saturating_sub((thick * SLABS - extent) / 2)
        .min(nz - thick * SLABS);
    let x0 = lo[0].saturating_sub(MARGIN);
    let y0 = lo[1].saturating_sub(MARGIN);
    let dims = [
        (hi[0] + MARGIN + 1).min(nx) - x0,
        (hi[1] + MARGIN + 1).min(ny) - y0,
        thick,
    ];
    println!(
        "labels span x {}..={}, y {}..={}, z {}..={}; {SLABS} slabs of {dims:?} from z = {z0}",
        lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]
    );

    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut csv = String::from("image,label\n");
    let mut table_md = String::from(
        "| slab | z (voxels) | frontal | temporal | parietal | occipital | limbic | cerebellum | subcortical | background |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in 0..SLABS {
        let start = [x0 as isize, y0 as isize, (z0 + s * thick) as isize];
        let img = crop_window(&t1, start, dims, 0.0)?;
        let lab = crop_window(&lobes, start, dims, 0)?;
        let (img_name, lab_name) = (
            format!("slab_{s:02}_t1.nii.gz"),
            format!("slab_{s:02}_lobes.nii.gz"),
        );
        write_volume(&out.join(&img_name), &img, NiftiDatatype::Uint8)?;
        write_volume(&out.join(&lab_name), &lab, NiftiDatatype::Uint8)?;
        csv.push_str(&format!("{img_name},{lab_name}\n"));
        let mut counts = [0usize; CLASSES.len()];
        lab.data.iter().for_each(|&v| counts[usize::from(v)] += 1);
        let z = z0 + s * thick;
        println!("slab {s:02} z {z}..{}: {:?}", z + thick - 1, counts);
        let cells: Vec<String> = counts[1..]
            .iter()
            .chain(&counts[..1])
            .map(|c| c.to_string())
            .collect();
        table_md.push_str(&format!(
            "| {s:02} | {z}–{} | {} |\n",
            z + thick - 1,
            cells.join(" | ")
        ));
    }
    write_text(&out.join("volumes.csv"), &csv)?;
    write_text(&out.join("classes.txt"), &(CLASSES.join("\n") + "\n"))?;
    println!("\n{table_md}");
    Ok(())
}

fn write_text(path: &Path, text: &str) -> anyhow::Result<()> {
    ept_backend::fs::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
