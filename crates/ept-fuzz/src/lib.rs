//! The fuzz targets of ept: one entry per parser a user feeds — MedFMC annotation lists,
//! CSV lists, TOML run configs, NIfTI `.nii` and `.nii.gz`, PNG/JPEG through our
//! decoder, `.safetensors`, `.pth` (zip and legacy pickle), method checkpoints. Each takes
//! arbitrary bytes and must return (an error is fine); a panic is a crash. Two drivers use
//! them: `cargo xtask fuzz` (a seeded mutation fuzzer on the stable toolchain, part of the
//! test command) and `fuzz/` (cargo-fuzz / libFuzzer with coverage feedback, nightly).
//! Crashing inputs found by either are kept under `fuzz/regressions/<target>/` and replayed
//! by this crate's tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A parser entry point: the input bytes and a scratch folder for parsers that read a path.
pub type Parse = fn(&[u8], &Path);

pub struct Target {
    pub name: &'static str,
    /// Seed files, relative to the repository root.
    pub seeds: &'static [&'static str],
    pub parse: Parse,
}

/// The repository root (seed files are relative to it).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).expect("scratch folder is writable");
    path.to_path_buf()
}

/// Every target, in a fixed order.
pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "medfmc_list",
            seeds: &[
                "datasets/brain_patches/lobe_train.txt",
                "datasets/brain_patches/lobe_multi_test.txt",
            ],
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
            parse: |bytes, dir| {
                let path = write(&dir.join("run.toml"), bytes);
                // Parsed, then checked as far as a run checks before building a model.
                if let Ok(table) = ept_train::config::load_table(&path, &[]) {
                    if let Ok(config) = ept_train::RunConfig::load(&path, &[]) {
                        let _ = ept_train::engine::vit_config(&config);
                    }
                    if let Ok(config) = ept_train::seg::SegRunConfig::from_table(table.clone(), &path) {
                        let _ = config.model.punet.validate();
                    }
                    if let Ok(config) = ept_pretrain::PretrainConfig::from_table(table, &path) {
                        let _ = config.model.punet.validate();
                    }
                }
            },
        },
        Target {
            name: "nifti_gz",
            seeds: &[
                "datasets/brain_volumes/slab_00_lobes.nii.gz",
                "datasets/brain_volumes/slab_09_lobes.nii.gz",
            ],
            parse: |bytes, dir| {
                let path = write(&dir.join("volume.nii.gz"), bytes);
                let _ = ept_data::read_volume(&path);
                let _ = ept_data::read_label_map(&path);
            },
        },
        Target {
            name: "nifti",
            seeds: &["target/fuzz-seeds/small.nii"],
            parse: |bytes, dir| {
                let path = write(&dir.join("volume.nii"), bytes);
                let _ = ept_data::read_volume(&path);
                let _ = ept_data::read_label_map(&path);
            },
        },
        Target {
            name: "image",
            seeds: &["target/fuzz-seeds/patch.png", "target/fuzz-seeds/patch.jpg"],
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
            parse: |bytes, dir| load_into_tiny_vit(&write(&dir.join("weights.safetensors"), bytes)),
        },
        Target {
            name: "pth",
            seeds: &[
                "tests/fixtures/vit_tiny/weights_timm.pth",
                "tests/fixtures/vit_tiny/weights_mmcls.pth",
            ],
            parse: |bytes, dir| load_into_tiny_vit(&write(&dir.join("weights.pth"), bytes)),
        },
        Target {
            name: "method_checkpoint",
            seeds: &["target/fuzz-seeds/method.safetensors"],
            parse: |bytes, dir| {
                let path = write(&dir.join("method.safetensors"), bytes);
                let _ = ept_tuning::checkpoint::read_method_meta(&path);
                let _ = ept_backbones::checkpoint::store::read_module_tensors(bytes);
            },
        },
    ]
}

/// Read a backbone checkpoint, then load it into a ViT shaped like the seed fixtures'
/// (`tests/fixtures/vit_tiny`, 32 px) but at 48 px, so that a well-formed file also
/// takes the position-table resampling path — what `--checkpoint` does.
fn load_into_tiny_vit(path: &Path) {
    if ept_backbones::checkpoint::read_checkpoint(path).is_err() {
        return;
    }
    let config = ept_backbones::VitConfig::golden_tiny(48);
    if let Ok(mut vit) = config.init(&burn::tensor::Device::flex()) {
        let _ = vit.load_checkpoint(path, &config.name);
    }
}

/// Seeds that are made rather than committed: a small `.nii`, a PNG and a JPEG of a real
/// patch, and a method checkpoint of a tiny ViT.
pub fn make_seeds(root: &Path) -> anyhow::Result<()> {
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

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    targets().into_iter().find(|t| t.name == name)
}

/// A scratch folder private to this process, for parsers that read a path.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ept-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temp folder is writable");
        dir
    })
}

/// Run target `name` on `bytes` (the libFuzzer entry points call this).
pub fn run(name: &str, bytes: &[u8]) {
    let target = target(name).unwrap_or_else(|| panic!("unknown fuzz target {name}"));
    (target.parse)(bytes, scratch());
}
