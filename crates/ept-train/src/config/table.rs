//! Reading a config into one TOML table, and parsing that table as one run kind's config.
//! A file may start with `extends = "base.toml"` (relative to itself): tables are merged
//! key by key, the child winning; a tagged table of another variant (`[method]` with
//! another `method`, an optimizer of another `kind`) replaces the parent's whole. Then
//! `--set KEY=VALUE` overrides apply in order. Unknown keys are refused (by serde, and
//! by a round-trip check where serde cannot), so a typo is an error naming the key and
//! the file.

use std::path::Path;

use serde::Serialize;

use crate::error::TrainError;

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
