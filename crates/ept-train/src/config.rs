//! Run configuration read from TOML. A file may start with `extends = "base.toml"`
//! (relative to itself): tables are merged key by key, the child winning; a tagged table
//! of another variant (`[method]` with another `method`, an optimizer of another `kind`)
//! replaces the parent's whole. Unknown keys are refused (by serde, and by a round-trip
//! check where serde cannot), so a typo is an error naming the key and the file.

use std::path::{Path, PathBuf};

use ept_data::DataSource;
use ept_tuning::MethodConfig;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

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

/// The key that says which variant a table is: `method` in `[method]`, `kind` in the
/// other tagged tables (`train.optimizer`, `train.schedule`, `data.train`, …). A table
/// whose tag changes is a different variant with its own options.
fn tag_key(table_name: &str) -> &'static str {
    if table_name == "method" { "method" } else { "kind" }
}

/// Merge `child` into `parent` (tables recursively; the child's values win; a child
/// table of another variant replaces the parent's whole).
fn merge(parent: &mut toml::Table, child: toml::Table) {
    for (key, value) in child {
        match (parent.get_mut(&key), value) {
            (Some(toml::Value::Table(p)), toml::Value::Table(c)) => {
                let tag = tag_key(&key);
                if c.contains_key(tag) && p.get(tag) != c.get(tag) {
                    *p = c;
                } else {
                    merge(p, c);
                }
            }
            (_, value) => {
                parent.insert(key, value);
            }
        }
    }
}

/// Read a TOML file with its `extends` chain as one table; relative paths inside the
/// data and model sections are resolved against the file that wrote them.
fn read_table(path: &Path, depth: usize) -> Result<toml::Table, TrainError> {
    if depth > 8 {
        return Err(TrainError::config(
            path,
            "`extends` chain is deeper than 8 files (a cycle?)",
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::config(path, e))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| TrainError::config(path, e))?;
    // Absolute, so that the resolved config written into a run folder reads back the same.
    // `Path::new("run.toml").parent()` is `Some("")`, which `absolute` refuses.
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let base_dir =
        std::path::absolute(parent.unwrap_or(Path::new("."))).map_err(|e| TrainError::config(path, e))?;
    let base_dir = base_dir.as_path();
    resolve_paths(&mut table, base_dir);
    match table.remove("extends") {
        None => Ok(table),
        Some(toml::Value::String(parent)) => {
            let mut base = read_table(&base_dir.join(parent), depth + 1)?;
            merge(&mut base, table);
            Ok(base)
        }
        Some(_) => Err(TrainError::config(path, "`extends` must be a file name string")),
    }
}

/// Keys whose string values are file paths, made absolute-from-the-file here.
const PATH_KEYS: [&str; 6] = ["list", "images", "file", "root", "classes", "checkpoint"];

/// Whether a config key holds a path: one of [`PATH_KEYS`], or `dir` (`output.dir`).
pub(crate) fn is_path_key(key: &str) -> bool {
    PATH_KEYS.contains(&key) || key == "dir"
}

fn resolve_paths(table: &mut toml::Table, base: &Path) {
    for (key, value) in table.iter_mut() {
        match value {
            toml::Value::Table(inner) if key != "output" => resolve_paths(inner, base),
            toml::Value::String(s) if PATH_KEYS.contains(&key.as_str()) && Path::new(s).is_relative() => {
                *s = base.join(&*s).to_string_lossy().into_owned();
            }
            _ => {}
        }
    }
}

/// Read a config file with its `extends` chain, relative paths made absolute, and the
/// `KEY=VALUE` overrides applied in order — the table every run kind deserializes.
/// Paths given in overrides are relative to the working directory (where the command
/// line was typed). An override that changes a table's variant (`method.method`,
/// `train.optimizer.kind`, …) starts that table afresh, as `extends` does, keeping only
/// what earlier overrides put there.
pub fn load_table(path: &Path, overrides: &[String]) -> Result<toml::Table, TrainError> {
    let mut table = read_table(path, 0)?;
    let here = std::path::absolute(".").map_err(|e| TrainError::config(path, e))?;
    let mut given = Given::new();
    for item in overrides {
        apply_override(&mut table, item, &here, &mut given).map_err(|e| TrainError::config(path, e))?;
    }
    // `output.dir` is relative to the working directory, in a file too; the run's
    // `config.toml` says where the run was written.
    if let Some(toml::Value::String(dir)) = table
        .get_mut("output")
        .and_then(toml::Value::as_table_mut)
        .and_then(|output| output.get_mut("dir"))
        && Path::new(dir).is_relative()
    {
        *dir = here.join(&*dir).to_string_lossy().into_owned();
    }
    Ok(table)
}

/// The keys that overrides have set so far, by the dotted path of their table.
type Given = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// Record every key of a table an override set whole, nested tables included.
fn record_table(given: &mut Given, path: &str, table: &toml::Table) {
    given.insert(path.to_string(), table.keys().cloned().collect());
    for (key, value) in table {
        if let toml::Value::Table(inner) = value {
            record_table(given, &format!("{path}.{key}"), inner);
        }
    }
}

/// Whether a loaded table describes a segmentation run (`task = "segmentation"`).
pub fn is_segmentation(table: &toml::Table) -> bool {
    table.get("task").and_then(|t| t.as_str()) == Some("segmentation")
}

/// The run kinds a config's `task` key can name, with the command that runs each.
const TASKS: [(&str, &str); 3] = [
    ("classification", "train"),
    ("segmentation", "train"),
    ("pretrain", "pretrain"),
];

/// The run kind a config describes (`"classification"` without a `task` key), or why
/// its `task` is not one.
fn task_of(table: &toml::Table) -> Result<&'static str, String> {
    let Some(value) = table.get("task") else {
        return Ok("classification");
    };
    TASKS
        .iter()
        .map(|(task, _)| *task)
        .find(|task| value.as_str() == Some(task))
        .ok_or_else(|| {
            let known: Vec<String> = TASKS.iter().map(|(t, _)| format!("{t:?}")).collect();
            format!("task = {value} is not one of {}", known.join(", "))
        })
}

/// The `ept-cli` command that runs a config: `sweep` for a `[sweep]` file, else the
/// command of its `task` (`train` when the task is unknown).
pub fn command_for(table: &toml::Table) -> &'static str {
    if table.contains_key("sweep") {
        return "sweep";
    }
    let task = task_of(table).unwrap_or("classification");
    TASKS
        .iter()
        .find(|(t, _)| *t == task)
        .map_or("train", |(_, command)| *command)
}

/// Deserialize a loaded table as the config of a `task` run, checking that the file is
/// one (and naming the command that runs it otherwise) and that every key it holds is
/// read: serde ignores unknown keys where it cannot deny them (a method without options,
/// such as `linear`), so a key that does not survive a round trip is reported here.
pub fn parse_as<T: serde::de::DeserializeOwned + Serialize>(
    table: toml::Table,
    path: &Path,
    task: &str,
) -> Result<T, TrainError> {
    if table.contains_key("sweep") {
        return Err(TrainError::config(
            path,
            "this is a sweep config ([sweep]); run it with `ept-cli sweep --config`",
        ));
    }
    let found = task_of(&table).map_err(|e| TrainError::config(path, e))?;
    if found != task {
        let command = command_for(&table);
        return Err(TrainError::config(
            path,
            format!(
                "this is a {found} config (task = {found:?}), not a {task} one; run it with `ept-cli {command}`"
            ),
        ));
    }
    let mut table = table;
    if task == "classification" {
        // The default kind may be named; the classification config has no such field.
        table.remove("task");
    }
    let config = T::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| TrainError::config(path, one_line(&e)))?;
    let read_back = toml::Table::try_from(&config).map_err(|e| TrainError::config(path, e))?;
    match unread_key(&table, &read_back) {
        Some(key) => Err(TrainError::config(
            path,
            format!("unknown key `{key}` (nothing reads it: a typo, or an option of another variant?)"),
        )),
        None => Ok(config),
    }
}

/// A deserialization error as "`key.path`: what is wrong" (toml writes the key on a
/// line of its own after the message).
fn one_line(error: &toml::de::Error) -> String {
    let text = error.to_string();
    let message = error.message().trim_end();
    let keys = text
        .trim_end()
        .strip_prefix(message)
        .and_then(|rest| rest.trim().strip_prefix("in `"))
        .and_then(|rest| rest.strip_suffix('`'));
    match keys {
        Some(keys) => format!("`{keys}`: {message}"),
        None => text.trim_end().replace('\n', " "),
    }
}

/// The dotted path of the first key of `given` that `parsed` lacks (tables only).
fn unread_key(given: &toml::Table, parsed: &toml::Table) -> Option<String> {
    given
        .iter()
        .find_map(|(key, value)| match (value, parsed.get(key)) {
            (_, None) => Some(key.clone()),
            (toml::Value::Table(inner), Some(toml::Value::Table(back))) => {
                unread_key(inner, back).map(|rest| format!("{key}.{rest}"))
            }
            _ => None,
        })
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
        Ok(config)
    }

    /// The resolved config as TOML (written into the run folder).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// `train.epochs=2` / `method.length=10` / `output.dir="runs/x"`; relative paths in the
/// value are resolved against `base`; `given` records what overrides set (see
/// [`load_table`]).
fn apply_override(table: &mut toml::Table, item: &str, base: &Path, given: &mut Given) -> Result<(), String> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| format!("override '{item}' is not KEY=VALUE"))?;
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.trim().split('.').collect();
    let (last, parents) = parts.split_last().expect("split yields at least one part");
    // Resolved as if the value sat in a file in `base`.
    let mut holder = toml::Table::from_iter([(last.to_string(), value)]);
    resolve_paths(&mut holder, base);
    let mut node = table;
    for part in parents {
        node = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("override '{item}': '{part}' is not a table"))?;
    }
    let value = holder.remove(*last).expect("inserted above");
    let table_path = parents.join(".");
    let set_here = given.entry(table_path.clone()).or_default();
    let is_tag = parents.last().is_some_and(|name| *last == tag_key(name));
    if is_tag && node.get(*last) != Some(&value) {
        node.retain(|key, _| set_here.contains(key));
    }
    set_here.insert(last.to_string());
    let inner = if table_path.is_empty() {
        last.to_string()
    } else {
        format!("{table_path}.{last}")
    };
    // Whatever was recorded below this key is replaced along with its value.
    given.retain(|path, _| path != &inner && !path.starts_with(&format!("{inner}.")));
    if let toml::Value::Table(whole) = &value {
        record_table(given, &inner, whole);
    }
    node.insert(last.to_string(), value);
    Ok(())
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
