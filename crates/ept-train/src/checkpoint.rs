//! Training checkpoints: after every epoch the run folder gets
//! `checkpoints/epoch-NNNN/` holding the method's tensors with their parameter ids
//! (`method.safetensors`), the optimizer state (`optimizer.bin`) and the loop position
//! (`state.json`). The folder is written as `.epoch-NNNN.tmp` and renamed when complete,
//! so a crash at any moment leaves the previous checkpoint loadable; older ones are
//! removed only after the new one is in place.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use ept_tuning::TunedVit;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Where the loop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainState {
    /// The last completed epoch (0-based).
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub step: usize,
    pub seed: u64,
}

fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// The newest complete checkpoint folder of a run, if any.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    let mut complete: Vec<PathBuf> = std::fs::read_dir(checkpoints_dir(run_dir))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("epoch-") && !n.ends_with(".tmp"))
                && p.join("state.json").is_file()
        })
        .collect();
    complete.sort();
    complete.pop()
}

/// A run folder held by this process, so that a second command training into it fails
/// instead of mixing two runs' files. The lock (on `.lock` in the folder) ends with the
/// process, however it ends.
#[derive(Debug)]
pub struct RunLock {
    _file: Option<std::fs::File>,
}

fn lock_run_dir(run_dir: &Path) -> Result<RunLock, TrainError> {
    let path = run_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| TrainError::write(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: Some(file) }),
        Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::run(
            run_dir,
            "another ept-cli process is training into this folder; wait for it to finish, or choose another output.dir",
        )),
        // A file system without locks (some network mounts): run unguarded.
        Err(std::fs::TryLockError::Error(_)) => Ok(RunLock { _file: None }),
    }
}

/// Create or check the run folder and hold it (see [`RunLock`]). Returns the checkpoint
/// to resume from (with `resume`).
pub fn prepare_run_dir(run_dir: &Path, resume: bool) -> Result<(Option<PathBuf>, RunLock), TrainError> {
    if resume && !run_dir.is_dir() {
        return Err(TrainError::run(
            run_dir,
            "--resume given, but there is no such run folder (check output.dir)",
        ));
    }
    let finished = ["method.safetensors", "body.safetensors"]
        .iter()
        .any(|f| run_dir.join(f).is_file());
    if finished && !resume {
        return Err(TrainError::run(
            run_dir,
            "holds a finished run; choose another output.dir (or, to train it further, raise \
             train.epochs and pass --resume)",
        ));
    }
    let is_run = checkpoints_dir(run_dir).is_dir() || run_dir.join("metrics.jsonl").is_file();
    if run_dir.join("config.toml").exists() && !is_run {
        return Err(TrainError::run(
            run_dir,
            "holds a config.toml but is not a run folder (a run writes its own config.toml \
             and report there): choose another output.dir",
        ));
    }
    std::fs::create_dir_all(checkpoints_dir(run_dir)).map_err(|e| TrainError::write(run_dir, e))?;
    let lock = lock_run_dir(run_dir)?;
    // A probe write: an unwritable or full disk is reported before any training happens.
    let probe = run_dir.join(".write-test");
    ept_backend::fs::write_atomic(&probe, b"ok").map_err(|e| TrainError::write(run_dir, e))?;
    let _ = std::fs::remove_file(&probe);
    let existing = latest(run_dir);
    let resume_from = match (existing, resume) {
        (Some(dir), true) => Ok(Some(dir)),
        (None, true) => Err(TrainError::run(
            run_dir,
            "--resume given, but the run folder has no checkpoint",
        )),
        (Some(_), false) => Err(TrainError::run(
            run_dir,
            "already holds a checkpoint; pass --resume to continue it, or choose another output.dir",
        )),
        (None, false) => Ok(None),
    }?;
    Ok((resume_from, lock))
}

/// Prepare the run folder (see [`prepare_run_dir`]); a new run also gets the resolved
/// config as `config.toml` (a resumed one in [`continue_run`], once its checkpoint has
/// loaded). Returns the checkpoint to resume from, if any, and the folder's lock, to be
/// held while the run trains.
pub fn start_run(
    run_dir: &Path,
    resume: bool,
    config_toml: &str,
) -> Result<(Option<PathBuf>, RunLock), TrainError> {
    let (resume_from, lock) = prepare_run_dir(run_dir, resume)?;
    if resume_from.is_some() {
        check_same_kind(run_dir, config_toml)?;
    }
    if resume_from.is_none() {
        // A run that died before its first checkpoint starts over: drop its log.
        let _ = std::fs::remove_file(run_dir.join("metrics.jsonl"));
        write_config(run_dir, config_toml)?;
    }
    Ok((resume_from, lock))
}

/// A run is resumed by the command that started it: a classification, segmentation or
/// CPA pre-training checkpoint means nothing to the others' loaders.
fn check_same_kind(run_dir: &Path, config_toml: &str) -> Result<(), TrainError> {
    let kind = |text: &str| {
        let table = text.parse::<toml::Table>().unwrap_or_default();
        let task = table
            .get("task")
            .and_then(|t| t.as_str())
            .unwrap_or("classification")
            .to_string();
        (task, crate::config::command_for(&table))
    };
    let Ok(saved) = std::fs::read_to_string(run_dir.join("config.toml")) else {
        return Ok(());
    };
    let ((was, command), (now, _)) = (kind(&saved), kind(config_toml));
    if was == now {
        return Ok(());
    }
    Err(TrainError::run(
        run_dir,
        format!(
            "is a {was} run, and this is a {now} config: resume it with `ept-cli {command} --resume` and its own config"
        ),
    ))
}

/// A resumed run whose checkpoint of `epoch` loaded: its log loses what came after that
/// epoch, and `config.toml` becomes this resume's settings (the earlier ones kept when
/// they differ). A resume refused while loading leaves the run folder as it was.
pub fn continue_run(run_dir: &Path, epoch: usize, config_toml: &str) -> Result<(), TrainError> {
    truncate_log(&run_dir.join("metrics.jsonl"), epoch)?;
    keep_changed_config(run_dir, &run_dir.join("config.toml"), config_toml)?;
    write_config(run_dir, config_toml)
}

fn write_config(run_dir: &Path, config_toml: &str) -> Result<(), TrainError> {
    let path = run_dir.join("config.toml");
    ept_backend::fs::write_atomic(&path, config_toml.as_bytes()).map_err(|e| TrainError::write(&path, e))
}

/// A run resumed with other settings (say, a lower learning rate after a NaN stop) keeps
/// the config its earlier epochs ran under as `config.before-resume-<k>.toml`, and the
/// changed keys are reported on stderr, so the run folder still says how it was made.
fn keep_changed_config(run_dir: &Path, path: &Path, config_toml: &str) -> Result<(), TrainError> {
    let Ok(previous) = std::fs::read_to_string(path) else {
        return Ok(()); // no earlier config to compare with (written by an older version)
    };
    let changes = changed_settings(&previous, config_toml);
    if changes.is_empty() {
        return Ok(());
    }
    let kept = (1..)
        .map(|k| run_dir.join(format!("config.before-resume-{k}.toml")))
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| run_dir.join("config.before-resume.toml"));
    ept_backend::fs::write_atomic(&kept, previous.as_bytes()).map_err(|e| TrainError::write(&kept, e))?;
    eprintln!(
        "note: resuming with changed settings: {}; the earlier settings are kept in {}",
        changes.join(", "),
        kept.display()
    );
    Ok(())
}

/// `key: old → new` for every setting that differs between two resolved configs (TOML
/// text; empty when either does not parse).
pub fn changed_settings(old_toml: &str, new_toml: &str) -> Vec<String> {
    let mut changes = Vec::new();
    if let (Ok(old), Ok(new)) = (old_toml.parse::<toml::Table>(), new_toml.parse::<toml::Table>()) {
        changed_keys("", &old, &new, &mut changes);
    }
    changes
}

/// Whether two paths name the same file or folder: a run folder made by an older
/// binary may hold a path relative to where it ran, which this one stores absolute.
fn same_path(a: &str, b: &str) -> bool {
    let resolve = |p: &str| std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).ok();
    a == b || resolve(a).is_some_and(|a| Some(a) == resolve(b))
}

/// `key: old → new` for every leaf that differs between two TOML tables (dotted keys).
fn changed_keys(prefix: &str, old: &toml::Table, new: &toml::Table, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (old.get(key), new.get(key)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => changed_keys(&dotted, a, b, out),
            (Some(toml::Value::String(a)), Some(toml::Value::String(b)))
                if crate::config::is_path_key(key) && same_path(a, b) => {}
            (a, b) if a != b => {
                let show = |v: Option<&toml::Value>| v.map_or("(unset)".to_string(), ToString::to_string);
                out.push(format!("{dotted}: {} → {}", show(a), show(b)));
            }
            _ => {}
        }
    }
}

/// Write the checkpoint of the epoch just finished.
pub fn save(
    run_dir: &Path,
    model: &TunedVit,
    optim: &ModuleOptimizer,
    backbone: &str,
    state: &TrainState,
) -> Result<(), TrainError> {
    save_with(run_dir, optim, state, |file| {
        ept_tuning::checkpoint::save_method(model, backbone, file)?;
        Ok(())
    })
}

/// Write a checkpoint whose model file (`method.safetensors`) `write_model` writes.
pub fn save_with(
    run_dir: &Path,
    optim: &ModuleOptimizer,
    state: &TrainState,
    write_model: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let root = checkpoints_dir(run_dir);
    let name = format!("epoch-{:04}", state.epoch);
    let temp = root.join(format!(".{name}.tmp"));
    let done = root.join(&name);
    let _ = std::fs::remove_dir_all(&temp);
    let written = (|| {
        std::fs::create_dir_all(&temp).map_err(|e| TrainError::write(&temp, e))?;
        write_model(&temp.join("method.safetensors"))?;
        let bytes = optim
            .into_bytes()
            .map_err(|e| TrainError::run(&temp, format!("serialising the optimizer state: {e:?}")))?;
        ept_backend::fs::write_atomic(&temp.join("optimizer.bin"), &bytes)
            .map_err(|e| TrainError::write(&temp.join("optimizer.bin"), e))?;
        let state_json = serde_json::to_vec_pretty(state).unwrap_or_default();
        ept_backend::fs::write_atomic(&temp.join("state.json"), &state_json)
            .map_err(|e| TrainError::write(&temp.join("state.json"), e))
    })();
    if let Err(error) = written {
        // A half-written folder would only take the space a full disk lacks.
        let _ = std::fs::remove_dir_all(&temp);
        return Err(match error {
            TrainError::Write { .. } => error,
            other => TrainError::run(
                run_dir,
                format!("{other}. The last checkpoint saved before this (if any) is intact"),
            ),
        });
    }
    let _ = std::fs::remove_dir_all(&done);
    std::fs::rename(&temp, &done).map_err(|e| TrainError::write(&done, e))?;
    // Older checkpoints go only once the new one is complete.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path != done
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("epoch-"))
            {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
    Ok(())
}

/// Load a checkpoint folder into a freshly built model and optimizer.
pub fn load(
    dir: &Path,
    model: TunedVit,
    optim: ModuleOptimizer,
    backbone: &str,
) -> Result<(TunedVit, TrainState, ModuleOptimizer), TrainError> {
    load_with(dir, optim, |file| {
        Ok(ept_tuning::checkpoint::load_method(model, backbone, file)?.0)
    })
}

/// Read a checkpoint whose model file `read_model` loads into the model the optimizer
/// steps; returns that model, the loop position and the restored optimizer. The
/// optimizer state is checked against the loaded model's parameters first, so a file
/// that does not fit is an error here rather than a panic in the first step.
pub fn load_with<M: Module>(
    dir: &Path,
    optim: ModuleOptimizer,
    read_model: impl FnOnce(&Path) -> Result<M, TrainError>,
) -> Result<(M, TrainState, ModuleOptimizer), TrainError> {
    let state: TrainState = std::fs::read(dir.join("state.json"))
        .map_err(|e| TrainError::run(dir, format!("state.json: {e}")))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| TrainError::run(dir, format!("state.json: {e}")))
        })?;
    // The folder is named after the epoch its state.json records (see `save_with`).
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if folder != format!("epoch-{:04}", state.epoch) {
        return Err(TrainError::run(
            dir,
            format!(
                "state.json: epoch {} does not match the folder name {folder}",
                state.epoch
            ),
        ));
    }
    let model = read_model(&dir.join("method.safetensors"))?;
    let optim_file = dir.join("optimizer.bin");
    let bytes = std::fs::read(&optim_file).map_err(|e| TrainError::run(&optim_file, e))?;
    crate::optimizer_file::check_against(&optim_file, &model).map_err(|e| TrainError::run(&optim_file, e))?;
    let optim = optim
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| TrainError::run(&optim_file, format!("{e:?}")))?;
    Ok((model, state, optim))
}

/// Drop log records after `epoch` (a run interrupted mid-epoch logged steps that the
/// resumed run repeats).
fn truncate_log(path: &Path, epoch: usize) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            // A line torn by a crash does not parse and goes too.
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
                v.get("epoch")
                    .and_then(|e| e.as_u64())
                    .is_none_or(|e| e as usize <= epoch)
            })
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    ept_backend::fs::write_atomic(path, out.as_bytes()).map_err(|e| TrainError::write(path, e))
}

#[cfg(test)]
mod tests {
    use super::{changed_settings, prepare_run_dir};

    #[test]
    fn a_run_folder_is_held_by_one_process_and_never_made_by_resume() {
        let root = std::env::temp_dir().join(format!("ept-run-lock-{}", std::process::id()));
        let run = root.join("run");
        let error = prepare_run_dir(&run, true).unwrap_err().to_string();
        assert!(error.contains("no such run folder"), "{error}");
        assert!(!run.exists(), "--resume into a missing folder creates nothing");

        let held = prepare_run_dir(&run, false).unwrap();
        let error = prepare_run_dir(&run, false).unwrap_err().to_string();
        assert!(error.contains("another ept-cli process"), "{error}");
        drop(held);
        prepare_run_dir(&run, false).unwrap();

        // A folder holding the user's own config is not taken over.
        let mine = root.join("mine");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("config.toml"), "# my settings\n").unwrap();
        let error = prepare_run_dir(&mine, false).unwrap_err().to_string();
        assert!(error.contains("not a run folder"), "{error}");
        assert_eq!(
            std::fs::read_to_string(mine.join("config.toml")).unwrap(),
            "# my settings\n"
        );

        // A finished run stays finished even with its checkpoints deleted to save space.
        let done = root.join("done");
        std::fs::create_dir_all(&done).unwrap();
        for file in ["config.toml", "metrics.jsonl", "method.safetensors"] {
            std::fs::write(done.join(file), "").unwrap();
        }
        let error = prepare_run_dir(&done, false).unwrap_err().to_string();
        assert!(error.contains("holds a finished run"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn changed_settings_names_each_key_and_compares_paths_by_what_they_name() {
        let old =
            "[train]\nepochs = 2\nseed = 1\n[output]\ndir = \"runs/a\"\n[data.train]\nlist = \"x.txt\"\n";
        let here = std::path::absolute(".").unwrap();
        let new = format!(
            "[train]\nepochs = 3\nseed = 1\nlr = 0.1\n[output]\ndir = \"{}\"\n[data.train]\nlist = \"{}\"\n",
            here.join("runs/a").display(),
            here.join("y.txt").display()
        );
        let changes = changed_settings(old, &new);
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(
            changes[0],
            format!(
                "data.train.list: \"x.txt\" → \"{}\"",
                here.join("y.txt").display()
            )
        );
        assert_eq!(changes[1], "train.epochs: 2 → 3");
        assert_eq!(changes[2], "train.lr: (unset) → 0.1");
        // A relative and an absolute path to the same place are the same setting; other
        // strings are compared as they are.
        assert!(
            changed_settings(
                "[a]\nlist = \"x.txt\"",
                &format!("[a]\nlist = \"{}\"", here.join("x.txt").display())
            )
            .is_empty()
        );
        assert_eq!(
            changed_settings("[a]\nname = \"x\"", "[a]\nname = \"./x\"").len(),
            1
        );
    }
}
