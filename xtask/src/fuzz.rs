//! `cargo xtask fuzz [--quick] [--seconds N] [--targets a,b]`: a mutation fuzzer for every
//! parser a user feeds (annotation lists, CSV, TOML configs, NIfTI `.nii`/`.nii.gz`,
//! PNG/JPEG, `.safetensors`, `.pth`, method checkpoints). cargo-fuzz needs a nightly
//! toolchain, which this project's machines do not have; this runs on stable: each target
//! starts from real seed files of the repository, mutates them (bit flips, random bytes,
//! truncation, duplicated and deleted ranges, splices of two seeds, interesting integers)
//! with a seeded RNG, and calls the parser under `catch_unwind`. Every parser must return
//! `Ok` or an error — a panic is a crash: the input is saved under
//! `target/fuzz-crashes/<target>/` and the command fails. It prints one JSON line per target
//! with the number of executions.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use ept_backend::rng::Rng;
use serde_json::json;

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// A short run (2 s per target), as the test suite's smoke check.
    #[arg(long)]
    quick: bool,
    /// Seconds per target (default 2 with --quick, else 60).
    #[arg(long)]
    seconds: Option<u64>,
    /// Comma-separated targets (default: all).
    #[arg(long)]
    targets: Option<String>,
    /// RNG seed of the mutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

type Parse = fn(&[u8], &Path);

struct Target {
    name: &'static str,
    /// Seed files, relative to the repository root.
    seeds: &'static [&'static str],
    /// File name the input is written to when the parser takes a path.
    file: &'static str,
    parse: Parse,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).expect("scratch folder is writable");
    path.to_path_buf()
}

fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "medfmc_list",
            seeds: &[
                "datasets/brain_patches/lobe_train.txt",
                "datasets/brain_patches/lobe_multi_test.txt",
            ],
            file: "list.txt",
            parse: |bytes, dir| {
                for syntax in [
                    ept_data::LabelSyntax::ClassIndex,
                    ept_data::LabelSyntax::CommaList,
                    ept_data::LabelSyntax::SpaceList,
                ] {
                    let format = ept_data::format::ListFormat {
                        syntax,
                        num_classes: 7,
                    };
                    let _ = ept_data::list::parse_list(bytes, &dir.join("list.txt"), dir, &format, false);
                }
            },
        },
        Target {
            name: "csv",
            seeds: &["datasets/brain_patches/patches.csv"],
            file: "list.csv",
            parse: |bytes, dir| {
                for multi_label in [false, true] {
                    let options = ept_data::csv::CsvOptions {
                        multi_label,
                        num_classes: None,
                        check_images: false,
                    };
                    let _ = ept_data::csv::parse_csv(bytes, &dir.join("list.csv"), dir, &options);
                }
            },
        },
        Target {
            name: "toml_config",
            seeds: &[
                "configs/demo/brain_lobes.toml",
                "configs/punet/brain_lobes.toml",
                "configs/cpa/brain_lobes.toml",
            ],
            file: "run.toml",
            parse: |bytes, dir| {
                let path = write(&dir.join("run.toml"), bytes);
                if let Ok(table) = ept_train::config::load_table(&path, &[]) {
                    let _ = ept_train::RunConfig::load(&path, &[]);
                    let _ = ept_train::seg::SegRunConfig::from_table(table.clone(), &path);
                    let _ = ept_pretrain::PretrainConfig::from_table(table, &path);
                }
            },
        },
        Target {
            name: "nifti_gz",
            seeds: &[
                "datasets/brain_volumes/slab_00_lobes.nii.gz",
                "datasets/brain_volumes/slab_09_lobes.nii.gz",
            ],
            file: "volume.nii.gz",
            parse: |bytes, dir| {
                let path = write(&dir.join("volume.nii.gz"), bytes);
                let _ = ept_data::read_volume(&path);
                let _ = ept_data::read_label_map(&path);
            },
        },
        Target {
            name: "nifti",
            seeds: &["target/fuzz-seeds/small.nii"],
            file: "volume.nii",
            parse: |bytes, dir| {
                let path = write(&dir.join("volume.nii"), bytes);
                let _ = ept_data::read_volume(&path);
                let _ = ept_data::read_label_map(&path);
            },
        },
        Target {
            name: "image",
            seeds: &["target/fuzz-seeds/patch.png", "target/fuzz-seeds/patch.jpg"],
            file: "image.png",
            parse: |bytes, dir| {
                let _ = ept_data::decode_bytes(bytes, &dir.join("image.png"));
            },
        },
        Target {
            name: "safetensors",
            seeds: &[
                "tests/fixtures/vit_tiny/weights_timm.safetensors",
                "tests/fixtures/methods/vp.safetensors",
            ],
            file: "weights.safetensors",
            parse: |bytes, dir| {
                let path = write(&dir.join("weights.safetensors"), bytes);
                let _ = ept_backbones::checkpoint::read_checkpoint(&path);
            },
        },
        Target {
            name: "pth",
            seeds: &[
                "tests/fixtures/vit_tiny/weights_timm.pth",
                "tests/fixtures/vit_tiny/weights_mmcls.pth",
            ],
            file: "weights.pth",
            parse: |bytes, dir| {
                let path = write(&dir.join("weights.pth"), bytes);
                let _ = ept_backbones::checkpoint::read_checkpoint(&path);
            },
        },
        Target {
            name: "method_checkpoint",
            seeds: &["target/fuzz-seeds/method.safetensors"],
            file: "method.safetensors",
            parse: |bytes, dir| {
                let path = write(&dir.join("method.safetensors"), bytes);
                let _ = ept_tuning::checkpoint::read_method_meta(&path);
                let _ = ept_backbones::checkpoint::store::read_module_tensors(bytes);
            },
        },
    ]
}

/// Seeds that are made rather than committed: a small `.nii`, a PNG and a JPEG of a real
/// patch, and a method checkpoint of a tiny ViT.
fn make_seeds(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("target/fuzz-seeds");
    std::fs::create_dir_all(&dir)?;
    let slab = ept_data::read_label_map(&root.join("datasets/brain_volumes/slab_05_lobes.nii.gz"))?;
    let small: Vec<u8> = (0..8 * 8 * 2)
        .map(|i| slab.data[i * 97 % slab.data.len()] as u8)
        .collect();
    let mut volume = slab.map(|v| *v as f32);
    volume.dims = [8, 8, 2];
    volume.data = small.iter().map(|v| *v as f32).collect();
    ept_data::write_volume(&dir.join("small.nii"), &volume, ept_data::NiftiDatatype::Uint8)?;
    let first = std::fs::read_dir(root.join("datasets/brain_patches/images"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .ok_or_else(|| anyhow::anyhow!("no PNG under datasets/brain_patches/images"))?;
    std::fs::copy(&first, dir.join("patch.png"))?;
    image::open(&first)?.to_luma8().save(dir.join("patch.jpg"))?;
    let device = burn::tensor::Device::flex();
    let config = ept_backbones::VitConfig::from_name("vit_micro_patch4_32")?;
    let vit = config.init(&device)?;
    let method = ept_tuning::MethodConfig::Vp { pad: 2 };
    let model = ept_tuning::TunedVit::new(vit, &method, 3, &device)?;
    ept_tuning::checkpoint::save_method(&model, &config.name, &dir.join("method.safetensors"))?;
    Ok(())
}

/// One mutation of `input` (another seed available for splicing).
fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = out.len().max(1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.below(256) as u8;
            }
            2 => out.truncate(rng.below(len)),
            3 if !out.is_empty() => {
                let (a, b) = (rng.below(out.len()), rng.below(out.len()));
                let (a, b) = (a.min(b), a.max(b).min(a + 64));
                let chunk = out[a..b].to_vec();
                let at = rng.below(out.len());
                out.splice(at..at, chunk);
            }
            4 if !out.is_empty() => {
                let a = rng.below(out.len());
                let b = (a + 1 + rng.below(16)).min(out.len());
                out.drain(a..b);
            }
            5 if !other.is_empty() => {
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            6 if out.len() >= 4 => {
                const INTERESTING: [u32; 8] = [0, 1, 0x7f, 0xff, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 348];
                let i = rng.below(out.len() - 3);
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                out[i..i + 4].copy_from_slice(&v);
            }
            _ => {
                let at = rng.below(out.len() + 1);
                let extra: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.below(256) as u8).collect();
                out.splice(at..at, extra);
            }
        }
    }
    out
}

pub fn run(args: &FuzzArgs) -> anyhow::Result<()> {
    let root = repo().canonicalize()?;
    make_seeds(&root)?;
    let seconds = args.seconds.unwrap_or(if args.quick { 2 } else { 60 });
    let wanted: Option<Vec<String>> = args
        .targets
        .as_ref()
        .map(|t| t.split(',').map(|s| s.trim().to_string()).collect());
    let all = targets();
    if let Some(w) = &wanted
        && let Some(bad) = w.iter().find(|n| !all.iter().any(|t| t.name == n.as_str()))
    {
        anyhow::bail!(
            "unknown fuzz target '{bad}': {}",
            all.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        );
    }
    // Panics are the signal; keep their messages off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let scratch = std::env::temp_dir().join(format!("ept-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut crashes_total = 0;
    for target in all
        .iter()
        .filter(|t| wanted.as_ref().is_none_or(|w| w.iter().any(|n| n == t.name)))
    {
        let seeds: Vec<Vec<u8>> = target
            .seeds
            .iter()
            .map(|s| std::fs::read(root.join(s)).map_err(|e| anyhow::anyhow!("seed {s}: {e}")))
            .collect::<Result<_, _>>()?;
        let mut rng =
            Rng::new(args.seed).fork(target.name.len() as u64 * 7919 + target.name.as_bytes()[0] as u64);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let (mut executions, mut crashes) = (0u64, 0u64);
        let crash_dir = root.join("target/fuzz-crashes").join(target.name);
        // The unmutated seeds first: they must parse without panicking too.
        let mut queue: Vec<Vec<u8>> = seeds.clone();
        while Instant::now() < deadline || !queue.is_empty() {
            let input = match queue.pop() {
                Some(seed) => seed,
                None => {
                    let base = &seeds[rng.below(seeds.len())];
                    let other = &seeds[rng.below(seeds.len())];
                    mutate(base, other, &mut rng)
                }
            };
            let _ = target.file;
            let outcome = catch_unwind(AssertUnwindSafe(|| (target.parse)(&input, &scratch)));
            executions += 1;
            if outcome.is_err() {
                crashes += 1;
                std::fs::create_dir_all(&crash_dir)?;
                let name = format!("crash-{:016x}", fxhash(&input));
                std::fs::write(crash_dir.join(name), &input)?;
            }
        }
        crashes_total += crashes;
        println!(
            "{}",
            json!({"target": target.name, "seconds": seconds, "executions": executions, "crashes": crashes})
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let _ = std::panic::take_hook();
    if crashes_total > 0 {
        anyhow::bail!("{crashes_total} crashing inputs saved under target/fuzz-crashes/");
    }
    Ok(())
}

/// A small stable hash to name crash files.
fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
