//! Run configuration of a classification run: the types a TOML config deserializes to.
//! How a file becomes one table ([`load_table`]: `extends`, relative paths, `--set`
//! overrides) and how that table is checked and parsed ([`parse_as`]: the `task`, keys
//! nothing reads) is in `table.rs`; segmentation and CPA pre-training configs use both.

use std::path::{Path, PathBuf};

use ept_data::DataSource;
use ept_tuning::MethodConfig;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

mod ranges;
mod table;

pub use ranges::{Range, RangeCheck, check_ranges, optimizer_checks};

pub(crate) use table::is_path_key;
pub use table::{command_for, is_segmentation, load_table, parse_as};

/// Everything a training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub method: MethodConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub output: OutputConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// timm-style name, e.g. `vit_base_patch16_224`.
    pub name: String,
    /// Pretrained weights (timm/mmcls `.safetensors`/`.pth`); without them the backbone is random.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// Input size; default the name's size. Position embeddings are interpolated.
    #[serde(default)]
    pub image_size: Option<usize>,
}

/// Image pipelines by name (see `ept_data::Pipeline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineName {
    /// MedFMC/EPT: RandomResizedCrop + flip for training; squash-resize for evaluation.
    #[default]
    Medfmc,
    /// Training as `medfmc`; evaluation by shorter-side resize + centre crop (timm).
    CenterCrop,
    /// Resize to the input size (+ horizontal flip when training): small images whose
    /// whole field of view matters (patches, 28-px digits and garments).
    Resize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub train: DataSource,
    #[serde(default)]
    pub val: Option<DataSource>,
    #[serde(default)]
    pub test: Option<DataSource>,
    #[serde(default)]
    pub pipeline: PipelineName,
    /// Decoding threads (default: available cores).
    #[serde(default)]
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    #[serde(default)]
    pub seed: u64,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub grad_clip_norm: Option<f32>,
    /// Learning rate of the classification head when it should differ from the
    /// optimizer's (a second parameter group; follows the same schedule).
    #[serde(default)]
    pub head_lr: Option<f64>,
    /// Evaluate on the validation list every this many epochs (0 = never).
    #[serde(default = "one")]
    pub eval_every: usize,
    /// Run each batch as micro-batches of at most this many images and sum their
    /// gradients (accumulation): the memory of the small batch, the update of the large.
    #[serde(default)]
    pub micro_batch_size: Option<std::num::NonZeroUsize>,
}

fn one() -> usize {
    1
}

/// Optimizer and base learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    Adamw {
        lr: f64,
        #[serde(default = "adamw_decay")]
        weight_decay: f64,
    },
}

fn adamw_decay() -> f64 {
    1e-2
}

/// As a report states it: `SGD (lr 0.05, momentum 0.9, weight decay 0.0001)`.
impl std::fmt::Display for OptimizerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => write!(
                f,
                "SGD (lr {lr}, momentum {momentum}, weight decay {weight_decay})"
            ),
            OptimizerConfig::Adamw { lr, weight_decay } => {
                write!(f, "AdamW (lr {lr}, weight decay {weight_decay})")
            }
        }
    }
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adamw { lr, .. } => *lr,
        }
    }
}

/// Learning-rate schedule over optimizer steps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    Constant,
    /// Linear warm-up then cosine decay to `min_lr` (mmcls CosineAnnealing, by step).
    #[default]
    Cosine,
    CosineWarmup {
        warmup_steps: usize,
        #[serde(default)]
        min_lr: f64,
    },
    /// OneCycle (Smith): rise to the base rate over `pct_start` of the steps, cosine down.
    OneCycle {
        #[serde(default = "pct_start")]
        pct_start: f64,
    },
}

fn pct_start() -> f64 {
    0.3
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Run folder: resolved config, metrics.jsonl, checkpoints, report.
    pub dir: PathBuf,
}

impl RunConfig {
    /// Load a config file (with `extends`), then apply `key.path=value` overrides.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, TrainError> {
        RunConfig::from_table(load_table(path, overrides)?, path)
    }

    /// Parse a table [`load_table`] read from `path`.
    pub fn from_table(table: toml::Table, path: &Path) -> Result<Self, TrainError> {
        let config: RunConfig = parse_as(table, path, "classification")?;
        if config.train.batch_size == 0 {
            return Err(TrainError::config(path, "train.batch_size must be at least 1"));
        }
        if config.train.epochs == 0 {
            return Err(TrainError::config(path, "train.epochs must be at least 1"));
        }
        let train = &config.train;
        let mut checks = optimizer_checks(&train.optimizer, train.grad_clip_norm);
        checks.push(("train.head_lr".into(), train.head_lr, Range::Positive));
        check_ranges(path, checks)?;
        Ok(config)
    }

    /// The resolved config as TOML (written into the run folder).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const BASE: &str = r#"
[model]
name = "vit_base_patch16_224"
[method]
method = "ept"
length = 100
[data]
train = { kind = "list", list = "train.txt", images = "images", format = "colon" }
[train]
epochs = 20
batch_size = 4
optimizer = { kind = "sgd", lr = 6e-4, momentum = 0.9, weight_decay = 1e-4 }
[output]
dir = "runs/base"
"#;

    #[test]
    fn extends_merges_and_replaces_a_changed_method() {
        let dir = std::env::temp_dir().join(format!("ept-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "base.toml", BASE);
        let child = write(
            &dir,
            "child.toml",
            "extends = \"base.toml\"\n[train]\nepochs = 3\n[method]\nmethod = \"linear\"\n",
        );
        let config =
            RunConfig::load(&child, &["method.method=\"vpt\"".into(), "train.seed=7".into()]).unwrap();
        assert_eq!(config.train.epochs, 3);
        assert_eq!(config.train.batch_size, 4);
        assert_eq!(config.train.seed, 7);
        assert!(
            matches!(config.method, MethodConfig::Vpt { .. }),
            "{:?}",
            config.method
        );
        let DataSource::List { list, .. } = &config.data.train else {
            panic!()
        };
        assert_eq!(list, &dir.join("train.txt"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_method_override_starts_the_method_afresh_and_paths_are_from_here() {
        let dir = std::env::temp_dir().join(format!("ept-config-set-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = write(&dir, "base.toml", BASE);
        // The file's `length = 100` is EPT's; LoRA has no such option.
        let lora = RunConfig::load(&base, &["method.method=\"lora\"".into()]).unwrap();
        assert!(
            matches!(lora.method, MethodConfig::Lora { rank: 8, .. }),
            "{:?}",
            lora.method
        );
        // Options given with the new method apply, whatever their order on the line.
        let vpt = RunConfig::load(
            &base,
            &["method.length=10".into(), "method.method=\"vpt\"".into()],
        )
        .unwrap();
        assert!(
            matches!(vpt.method, MethodConfig::Vpt { length: 10, .. }),
            "{:?}",
            vpt.method
        );
        // A later change of variant keeps what earlier overrides set: here LoRA gets
        // VPT's `length` and says so, instead of one override silently losing.
        let both = [
            "method={ method = \"vpt\", length = 5 }".into(),
            "method.method=\"lora\"".into(),
        ];
        let err = RunConfig::load(&base, &both).unwrap_err().to_string();
        assert!(err.contains("length"), "{err}");
        // The same holds for every tagged table: another optimizer kind starts afresh.
        let adamw = [
            "train.optimizer.kind=\"adamw\"".into(),
            "train.optimizer.lr=0.001".into(),
        ];
        let adamw = RunConfig::load(&base, &adamw).unwrap();
        assert_eq!(
            adamw.train.optimizer,
            OptimizerConfig::Adamw {
                lr: 0.001,
                weight_decay: adamw_decay()
            }
        );
        // Keys of a table set whole count as given, nested ones included: a later
        // change of its variant keeps them (and names them if the new one lacks them).
        let nested = [
            "data={ train = { kind = \"list\", list = \"t.txt\", images = \"I\", format = \"colon\" } }"
                .into(),
            "data.train.kind=\"csv\"".into(),
        ];
        let err = RunConfig::load(&base, &nested).unwrap_err().to_string();
        assert!(err.contains("list") || err.contains("images"), "{err}");
        // Naming the file's own method keeps its options.
        let ept = RunConfig::load(&base, &["method.method=\"ept\"".into()]).unwrap();
        assert!(
            matches!(ept.method, MethodConfig::Ept(ref e) if e.length == 100),
            "{:?}",
            ept.method
        );
        // A relative path on the command line is relative to the working directory.
        let set = RunConfig::load(&base, &["data.train.list=\"lists/few.txt\"".into()]).unwrap();
        let DataSource::List { list, .. } = &set.data.train else {
            panic!()
        };
        assert_eq!(list, &std::path::absolute("lists/few.txt").unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_key_nothing_reads_is_an_error_even_for_methods_without_options() {
        let dir = std::env::temp_dir().join(format!("ept-config-unread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = write(&dir, "base.toml", BASE);
        for method in ["linear", "full", "bitfit", "mlp3"] {
            let set = [format!("method={{ method = \"{method}\", foo = 5 }}")];
            let err = RunConfig::load(&base, &set).unwrap_err().to_string();
            assert!(
                err.contains("`method.foo`") && err.contains("base.toml"),
                "{method}: {err}"
            );
            let set = [format!("method={{ method = \"{method}\" }}")];
            RunConfig::load(&base, &set).unwrap();
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_default_task_may_be_named_and_other_tasks_name_their_command() {
        let dir = std::env::temp_dir().join(format!("ept-config-task-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let named = write(&dir, "named.toml", &format!("task = \"classification\"\n{BASE}"));
        RunConfig::load(&named, &[]).unwrap();
        let other = write(&dir, "other.toml", &format!("task = \"pretrain\"\n{BASE}"));
        let err = RunConfig::load(&other, &[]).unwrap_err().to_string();
        assert!(err.contains("ept-cli pretrain"), "{err}");
        let typo = write(&dir, "typo.toml", &format!("task = \"segmentaion\"\n{BASE}"));
        let err = RunConfig::load(&typo, &[]).unwrap_err().to_string();
        assert!(
            err.contains("is not one of") && err.contains("\"segmentation\""),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn output_dir_is_from_the_working_directory_and_stored_absolute() {
        let dir = std::env::temp_dir().join(format!("ept-config-outdir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = write(&dir, "run.toml", BASE);
        let here = std::path::absolute(".").unwrap();
        for overrides in [vec![], vec!["output.dir=\"elsewhere/run\"".to_string()]] {
            let config = RunConfig::load(&path, &overrides).unwrap();
            let given = if overrides.is_empty() {
                "runs/base"
            } else {
                "elsewhere/run"
            };
            assert_eq!(config.output.dir, here.join(given), "{overrides:?}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn typo_names_the_key_and_the_file() {
        let dir = std::env::temp_dir().join(format!("ept-config-typo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = write(&dir, "bad.toml", &BASE.replace("batch_size", "batchsize"));
        let err = RunConfig::load(&path, &[]).unwrap_err().to_string();
        assert!(err.contains("batchsize") && err.contains("bad.toml"), "{err}");
        // On one line, the key first (toml puts it on a line of its own after the message).
        assert!(
            err.contains("bad.toml: `train`: unknown field `batchsize`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let err = RunConfig::load(&path.with_file_name("absent.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.toml"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
