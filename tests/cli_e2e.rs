//! End-to-end tests of the `ept-cli` binary on the bundled real data (brain-MRI lobe
//! patches): train two epochs, interrupt after one and resume to the same loss curve,
//! evaluate and predict from the run folder, and clear errors for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ept-cli"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A scratch folder with a small config: ~15 patches to train, 39 to test.
fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ept-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = repo().join("datasets/brain_patches");
    // Every 80th patch, plus the first patch of each class that this leaves out.
    let all = std::fs::read_to_string(data.join("lobe_train.txt")).unwrap();
    let class_of = |line: &str| line.rsplit(' ').next().unwrap().to_string();
    let mut picked: Vec<&str> = all.lines().step_by(80).collect();
    for line in all.lines() {
        if !picked.iter().any(|p| class_of(p) == class_of(line)) {
            picked.push(line);
        }
    }
    let train: String = picked.iter().map(|l| format!("{l}\n")).collect();
    let test: String = std::fs::read_to_string(data.join("lobe_test.txt"))
        .unwrap()
        .lines()
        .step_by(14)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("train.txt"), train).unwrap();
    std::fs::write(dir.join("test.txt"), test).unwrap();
    let images = data.join("images");
    let config = format!(
        r#"[model]
name = "vit_micro_patch4_32"
[method]
method = "ept"
length = 4
[data]
train = {{ kind = "list", format = "class_index", num_classes = 7, list = "train.txt", images = "{images}" }}
test = {{ kind = "list", format = "class_index", num_classes = 7, list = "test.txt", images = "{images}" }}
pipeline = "resize"
workers = 2
[train]
epochs = 2
batch_size = 4
seed = 3
optimizer = {{ kind = "sgd", lr = 0.01, momentum = 0.9, weight_decay = 1e-4 }}
[output]
dir = "{out}"
"#,
        images = images.display(),
        out = dir.join("run").display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

/// Step losses from a run's metrics.jsonl.
fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn train_resume_eval_predict() {
    let (dir, config) = setup("full");
    let config = config.to_str().unwrap();
    let run = dir.join("run");

    let whole = cli(&["train", "--quiet", "--config", config]);
    assert!(whole.status.success(), "{}", text(&whole));
    let again = cli(&["train", "--quiet", "--config", config]);
    assert!(
        !again.status.success() && text(&again).contains("holds a finished run"),
        "{}",
        text(&again)
    );
    let uninterrupted = losses(&run);
    assert!(
        uninterrupted.len() >= 4 && uninterrupted.iter().all(|l| l.is_finite()),
        "{uninterrupted:?}"
    );
    for file in [
        "method.safetensors",
        "config.toml",
        "report.md",
        "reliability.png",
        "tsne.png",
        "pca_scatter.png",
    ] {
        assert!(run.join(file).is_file(), "run folder lacks {file}");
    }

    // The same run, interrupted after one epoch and resumed.
    let resumed_dir = dir.join("resumed");
    let set_out = format!("output.dir=\"{}\"", resumed_dir.display());
    let first = cli(&[
        "train",
        "--quiet",
        "--config",
        config,
        "--set",
        &set_out,
        "--stop-after",
        "1",
    ]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        !resumed_dir.join("method.safetensors").exists(),
        "a stopped run is not finished"
    );
    let early = cli(&["eval", "--run", resumed_dir.to_str().unwrap()]);
    assert!(
        !early.status.success()
            && text(&early).contains("has not finished training")
            && text(&early).contains("--resume"),
        "{}",
        text(&early)
    );
    let again = cli(&["train", "--quiet", "--config", config, "--set", &set_out]);
    assert!(
        !again.status.success() && text(&again).contains("--resume"),
        "{}",
        text(&again)
    );
    let second = cli(&[
        "train", "--quiet", "--config", config, "--set", &set_out, "--resume",
    ]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        losses(&resumed_dir),
        uninterrupted,
        "resumed run's losses differ from the uninterrupted run"
    );

    let eval = cli(&["eval", "--run", run.to_str().unwrap()]);
    assert!(eval.status.success(), "{}", text(&eval));
    let metrics: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let test_images = std::fs::read_to_string(dir.join("test.txt"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(metrics["images"].as_f64(), Some(test_images as f64), "{metrics}");
    // The run has no backbone checkpoint: eval rebuilds the same seeded random backbone
    // the run trained on, so it reproduces the run's own test result.
    let trained: serde_json::Value = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|v| v["event"] == "eval" && v["split"] == "test")
        .unwrap();
    for key in ["accuracy", "auc_macro"] {
        let (a, b) = (
            metrics[key].as_f64().unwrap(),
            trained["metrics"][key].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-6, "{key}: eval {a}, training {b}");
    }
    assert!(
        text(&eval).contains("backbone is randomly initialised"),
        "{}",
        text(&eval)
    );

    // Another list with the run's format: it keeps the run's num_classes (class_index
    // lists need it) and is evaluated the same way.
    let other = dir.join("other.txt");
    let first_lines: String = std::fs::read_to_string(dir.join("test.txt"))
        .unwrap()
        .lines()
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&other, first_lines).unwrap();
    let eval = cli(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--list",
        other.to_str().unwrap(),
    ]);
    assert!(eval.status.success(), "{}", text(&eval));
    let metrics: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(metrics["images"].as_f64(), Some(5.0), "{metrics}");

    // predict needs the run folder only, not the data it was trained on.
    std::fs::rename(dir.join("train.txt"), dir.join("train.moved")).unwrap();
    let image = repo().join("datasets/brain_patches/images/colin27_ax_z012_R_p0000.png");
    let predict = cli(&["predict", "--run", run.to_str().unwrap(), image.to_str().unwrap()]);
    assert!(predict.status.success(), "{}", text(&predict));
    std::fs::rename(dir.join("train.moved"), dir.join("train.txt")).unwrap();
    let out = String::from_utf8_lossy(&predict.stdout);
    let row: Vec<f64> = out
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(row.len(), 7);
    assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{out}");

    // An unreadable image among readable ones: their rows still come, the error names it.
    let bad = dir.join("bad.png");
    std::fs::write(&bad, b"not an image").unwrap();
    let mixed = cli(&[
        "predict",
        "--run",
        run.to_str().unwrap(),
        image.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert!(!mixed.status.success(), "{}", text(&mixed));
    assert_eq!(
        String::from_utf8_lossy(&mixed.stdout).lines().count(),
        2,
        "{}",
        text(&mixed)
    );
    assert!(
        text(&mixed).contains("1 of 2 images could not be read") && text(&mixed).contains("bad.png"),
        "{}",
        text(&mixed)
    );

    // export writes timm-named weights that `info` loads back; it never overwrites the
    // run's own files.
    let exported = dir.join("backbone.safetensors");
    let export = cli(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    assert!(export.status.success(), "{}", text(&export));
    let info = cli(&[
        "info",
        "--model",
        "vit_micro_patch4_32",
        "--checkpoint",
        exported.to_str().unwrap(),
    ]);
    assert!(info.status.success(), "{}", text(&info));
    let own = run.join("method.safetensors");
    let before = std::fs::read(&own).unwrap();
    let refused = cli(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        own.to_str().unwrap(),
    ]);
    assert!(
        !refused.status.success() && text(&refused).contains("would overwrite a file of the run"),
        "{}",
        text(&refused)
    );
    assert_eq!(std::fs::read(&own).unwrap(), before);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_are_clear_errors() {
    let (dir, config) = setup("bad");
    let config_text = std::fs::read_to_string(&config).unwrap();

    let typo = dir.join("typo.toml");
    std::fs::write(&typo, config_text.replace("batch_size", "batchsize")).unwrap();
    let out = cli(&["train", "--config", typo.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out).contains("batchsize"),
        "{}",
        text(&out)
    );

    let train = dir.join("train.txt");
    let mut lines = std::fs::read_to_string(&train).unwrap();
    lines.push_str("no_such_patch.png 3\n");
    std::fs::write(&train, lines).unwrap();
    let out = cli(&["train", "--config", config.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out).contains("no_such_patch.png"),
        "{}",
        text(&out)
    );
    assert!(
        !dir.join("run").exists(),
        "a run whose data does not load leaves no run folder behind"
    );
    // Nor does one whose backbone checkpoint does not load (a text file here).
    let bad_checkpoint = format!("model.checkpoint=\"{}\"", train.display());
    let out = cli(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--set",
        &bad_checkpoint,
    ]);
    assert!(
        !out.status.success() && text(&out).contains("train.txt") && !text(&out).contains("panicked"),
        "{}",
        text(&out)
    );
    assert!(
        !dir.join("run").exists(),
        "a run whose model does not load leaves no run folder behind"
    );

    let nan = dir.join("nan.toml");
    let fixed: String = std::fs::read_to_string(&train)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("no_such"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&train, fixed).unwrap();
    std::fs::write(&nan, config_text.replace("lr = 0.01", "lr = 1e30")).unwrap();
    let out = cli(&["train", "--quiet", "--config", nan.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out).contains("step"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("loss became"), "{}", text(&out));
    // It stopped in the first epoch, before any checkpoint: the advice is to start again,
    // and the same folder takes the corrected run.
    assert!(text(&out).contains("again without --resume"), "{}", text(&out));
    let out = cli(&["train", "--quiet", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::remove_dir_all(dir.join("run")).unwrap();

    // A test image that does not decode (found after training) and a test image that is
    // also a training image (a warning): the run stops with what to do.
    let bad_image = dir.join("bad.png");
    std::fs::write(&bad_image, b"not a png").unwrap();
    let first_train = std::fs::read_to_string(&train)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let test_list = std::fs::read_to_string(dir.join("test.txt")).unwrap();
    std::fs::write(
        dir.join("test_bad.txt"),
        format!("{test_list}{first_train}\n{} 0\n", bad_image.display()),
    )
    .unwrap();
    let test_bad = format!("data.test.list=\"{}\"", dir.join("test_bad.txt").display());
    let run_bad = format!("output.dir=\"{}\"", dir.join("run_bad").display());
    let out = cli(&[
        "train",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
        "--set",
        &test_bad,
        "--set",
        &run_bad,
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("bad.png") && text(&out).contains("continue with --resume"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("warning: 1 of the"), "{}", text(&out));
    // The same image in the training list stops the first epoch, before any checkpoint:
    // the advice is to start again, not to resume.
    std::fs::write(
        dir.join("train_bad.txt"),
        format!(
            "{}{} 0\n",
            std::fs::read_to_string(&train).unwrap(),
            bad_image.display()
        ),
    )
    .unwrap();
    let train_bad = format!("data.train.list=\"{}\"", dir.join("train_bad.txt").display());
    let run_bad2 = format!("output.dir=\"{}\"", dir.join("run_bad2").display());
    let out = cli(&[
        "train",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
        "--set",
        &train_bad,
        "--set",
        &run_bad2,
    ]);
    assert!(
        !out.status.success()
            && text(&out).contains("bad.png")
            && text(&out).contains("again without --resume"),
        "{}",
        text(&out)
    );

    // A training list without any image of class 6 (and 1).
    let lines = std::fs::read_to_string(dir.join("train.txt")).unwrap();
    let without: String = lines
        .lines()
        .filter(|l| !l.ends_with(" 6") && !l.ends_with(" 1"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("train_short.txt"), without).unwrap();
    let short = format!("data.train.list=\"{}\"", dir.join("train_short.txt").display());
    let out = cli(&["train", "--config", config.to_str().unwrap(), "--set", &short]);
    let message = text(&out);
    assert!(!out.status.success(), "{message}");
    assert!(
        message.contains("train_short.txt")
            && message.contains("no sample of class 1 (class1), 6 (class6) of 7"),
        "{message}"
    );

    let out = cli(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "output.dir=\"/proc/ept-cannot-write\"",
    ]);
    assert!(
        !out.status.success() && text(&out).contains("/proc/ept-cannot-write"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("panicked"), "{}", text(&out));

    // Inputs that used to reach a panic: each must be an error naming the key.
    let refused = |sets: &[&str], expect: &[&str]| {
        let mut args = vec!["train", "--quiet", "--config", config.to_str().unwrap()];
        for set in sets {
            args.extend(["--set", set]);
        }
        let out = cli(&args);
        let message = text(&out);
        assert!(
            !out.status.success() && !message.contains("panicked"),
            "{sets:?}: {message}"
        );
        for part in expect {
            assert!(
                message.contains(part),
                "{sets:?}: expected {part:?} in: {message}"
            );
        }
    };
    // A test list with other classes than the model's (its metrics indexed past the outputs).
    let three: String = std::fs::read_to_string(dir.join("test.txt"))
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(" 0") || l.ends_with(" 1") || l.ends_with(" 2"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("test3.txt"), three).unwrap();
    let test3 = format!("data.test.list=\"{}\"", dir.join("test3.txt").display());
    refused(
        &[&test3, "data.test.num_classes=3"],
        &["test3.txt", "data.test", "3 classes", "7 classes"],
    );
    refused(
        &["train.batch_size=0"],
        &[
            "train.batch_size must be at least 1",
            "config.toml (as changed by --set train.batch_size=0)",
        ],
    );
    // The command line's changes are named as typed, and only for errors in the values.
    let config_arg = config.to_str().unwrap();
    let out = cli(&["train", "--config", config_arg, "--batch-size", "0"]);
    assert!(
        text(&out).contains("config.toml (as changed by --batch-size 0): train.batch_size"),
        "{}",
        text(&out)
    );
    let absent = config_arg.replace("config.toml", "absent.toml");
    let out = cli(&["train", "--config", &absent, "--set", "train.epochs=1"]);
    assert!(
        !out.status.success() && text(&out).contains("absent.toml") && !text(&out).contains("changed by"),
        "{}",
        text(&out)
    );
    refused(&["model.image_size=4000000000"], &["too large"]);
    let out = cli(&[
        "--threads",
        "100000",
        "train",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success() && text(&out).contains("--threads 100000") && text(&out).contains("per core"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sample_then_sweep_is_resumable_and_writes_a_table() {
    let (dir, _config) = setup("sweep");
    let data = repo().join("datasets/brain_patches");
    let lists = dir.join("lists");
    let sample = cli(&[
        "sample",
        "--list",
        data.join("lobe_train.txt").to_str().unwrap(),
        "--images",
        data.join("images").to_str().unwrap(),
        "--format",
        "class_index",
        "--num-classes",
        "7",
        "--test",
        data.join("lobe_test.txt").to_str().unwrap(),
        "--shots",
        "1",
        "--seeds",
        "1..2",
        "--out",
        lists.to_str().unwrap(),
    ]);
    assert!(sample.status.success(), "{}", text(&sample));
    let names: Vec<String> = std::fs::read_dir(&lists)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let train_list = names
        .iter()
        .find(|n| n.contains("1-shot_train_exp1"))
        .unwrap_or_else(|| panic!("{names:?}"));
    let pattern = train_list
        .replace("exp1", "exp{seed}")
        .replace("1-shot", "{shots}-shot");
    let sweep = dir.join("sweep.toml");
    let write_sweep = |shots: &str, pattern: &str| {
        std::fs::write(&sweep, format!(
            "[sweep]\nmethods = [\"linear\", \"ept\"]\nshots = [{shots}]\nseeds = [1, 2]\noutput = {:?}\noverrides = [\"train.epochs=1\"]\n\
             [[sweep.datasets]]\nname = \"brain\"\nconfig = \"config.toml\"\ntrain_list = \"lists/{pattern}\"\n",
            dir.join("runs").display().to_string()
        )).unwrap();
    };
    // Lists are checked before any cell trains: a typo in a placeholder, a shot count
    // that was not drawn.
    for (shots, pattern, want) in [
        (
            "1",
            pattern.replace("{seed}", "{sed}"),
            "unknown placeholder {sed}",
        ),
        ("1, 3", pattern.clone(), "2 of the sweep's lists do not exist"),
    ] {
        write_sweep(shots, &pattern);
        let refused = cli(&["sweep", "--config", sweep.to_str().unwrap()]);
        assert!(
            !refused.status.success() && text(&refused).contains(want),
            "{}",
            text(&refused)
        );
        assert!(!dir.join("runs").exists(), "nothing trained");
    }
    write_sweep("1", &pattern);
    let first = cli(&["sweep", "--config", sweep.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));
    let table = std::fs::read_to_string(dir.join("runs/table.md")).unwrap();
    assert!(
        table.contains("| linear |") && table.contains("| ept |") && table.contains("±"),
        "{table}"
    );
    let log = dir.join("runs/brain/ept/1-shot/exp2/metrics.jsonl");
    let before = std::fs::read_to_string(&log).unwrap();
    let second = cli(&["sweep", "--config", sweep.to_str().unwrap()]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        before,
        "a finished cell was trained again"
    );
    assert_eq!(std::fs::read_to_string(dir.join("runs/table.md")).unwrap(), table);
    // The same sweep with other settings does not pass the old results off as new ones.
    let changed = cli(&[
        "sweep",
        "--config",
        sweep.to_str().unwrap(),
        "--set",
        "train.epochs=3",
    ]);
    assert!(
        !changed.status.success()
            && text(&changed).contains("finished with other settings")
            && text(&changed).contains("train.epochs: 1 → 3"),
        "{}",
        text(&changed)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A scratch setup (see [`setup`]) and the step losses of its config trained in one go
/// into `run/`.
fn uninterrupted_run(name: &str) -> (PathBuf, String, Vec<f64>) {
    let (dir, config) = setup(name);
    let config = config.to_str().unwrap().to_string();
    let whole = cli(&["train", "--quiet", "--config", &config]);
    assert!(whole.status.success(), "{}", text(&whole));
    let losses = losses(&dir.join("run"));
    (dir, config, losses)
}

#[test]
fn data_parallel_and_micro_batches_follow_the_single_device_curve() {
    let (dir, config, want) = uninterrupted_run("parallel");
    let config = config.as_str();
    let out = format!("output.dir=\"{}\"", dir.join("run_parallel").display());
    let parallel = cli(&[
        "--device",
        "cpu,cpu",
        "train",
        "--quiet",
        "--config",
        config,
        "--set",
        &out,
        "--set",
        "train.micro_batch_size=1",
    ]);
    assert!(parallel.status.success(), "{}", text(&parallel));
    let got = losses(&dir.join("run_parallel"));
    assert_eq!(want.len(), got.len());
    for (step, (a, b)) in want.iter().zip(&got).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "step {step}: {a} vs {b}"
        );
    }
    // Only training uses several devices; other commands say so.
    let refused = cli(&[
        "--devices",
        "cpu,cpu",
        "eval",
        "--run",
        dir.join("run").to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("give this command one device"),
        "{}",
        text(&refused)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The run folder's checkpoint names, temporary ones included.
fn checkpoint_names(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Unmounts a scratch tmpfs when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fill the file system holding `dir` until a write fails, then give back `room` bytes.
fn fill_leaving(dir: &Path, room: u64) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    let written = std::fs::metadata(&filler).unwrap().len();
    file.set_len(written.saturating_sub(room)).unwrap();
    filler
}

/// A run stopped by a full disk (a real one: a tmpfs filled up, when this machine lets
/// us mount; and always a file-size limit, which fails writes the same way) says so,
/// names the file, leaves the last good checkpoint and no temporary folder, and, once
/// there is space again, `--resume` finishes with the uninterrupted run's losses.
#[test]
fn a_full_disk_stops_cleanly_and_resume_continues_exactly() {
    let (dir, config, uninterrupted) = uninterrupted_run("fulldisk");
    let config = config.as_str();
    let first_epoch = |run: &Path| {
        let out = format!("output.dir=\"{}\"", run.display());
        let partial = cli(&[
            "train",
            "--quiet",
            "--config",
            config,
            "--set",
            &out,
            "--stop-after",
            "1",
        ]);
        assert!(partial.status.success(), "{}", text(&partial));
        assert_eq!(checkpoint_names(run), ["epoch-0000"]);
    };
    let resume = |run: &Path, wrapper: Option<&str>| {
        let out = format!("output.dir=\"{}\"", run.display());
        let args = ["train", "--quiet", "--config", config, "--set", &out, "--resume"];
        let mut command = match wrapper {
            // A shell that sets a limit, then runs the binary in its place.
            Some(script) => {
                let mut c = Command::new("bash");
                c.args(["-c", script, env!("CARGO_BIN_EXE_ept-cli")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_ept-cli")),
        };
        command.args(args).current_dir(repo()).output().unwrap()
    };
    let check_stopped = |run: &Path, output: &Output| {
        let message = text(output);
        assert!(!output.status.success(), "{message}");
        assert!(!message.contains("panicked"), "{message}");
        assert!(message.contains("the disk is full"), "{message}");
        assert_eq!(
            message.matches(&run.display().to_string()).count(),
            1,
            "names the file, once: {message}"
        );
        assert!(
            message.contains("checkpoint saved before this (if any) is intact"),
            "{message}"
        );
        assert_eq!(checkpoint_names(run), ["epoch-0000"], "{message}");
    };

    // A file-size limit of 1 KiB: the first write past it fails (the binary ignores the
    // SIGXFSZ that would otherwise kill it, so the write fails with EFBIG instead).
    let limited = dir.join("run_limited");
    first_epoch(&limited);
    let stopped = resume(&limited, Some("ulimit -f 1; exec \"$0\" \"$@\""));
    check_stopped(&limited, &stopped);
    let resumed = resume(&limited, None);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(losses(&limited), uninterrupted);

    // A real full file system, when mounting is allowed (root with CAP_SYS_ADMIN).
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&disk)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("full-disk part skipped: this machine does not allow mounting a tmpfs");
    } else {
        let _mount = Mount(disk.clone());
        let run = disk.join("run");
        first_epoch(&run);
        // Room for the epoch's log lines, not for a second checkpoint.
        let filler = fill_leaving(&disk, 4096);
        let stopped = resume(&run, None);
        check_stopped(&run, &stopped);
        std::fs::remove_file(filler).unwrap();
        let resumed = resume(&run, None);
        assert!(resumed.status.success(), "{}", text(&resumed));
        assert_eq!(losses(&run), uninterrupted);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A batch that does not fit in memory (an address-space limit of 1.5 GB; 16 images at
/// 224 px need a 1.7 GB attention tensor) ends with a message and `--batch-size` advice,
/// exit status 3, no abort. Run from the config's own folder with a bare file name.
#[test]
fn a_batch_too_large_for_memory_gets_batch_size_advice() {
    let (dir, _config) = setup("memory");
    let run = format!("output.dir=\"{}\"", dir.join("run").display());
    let output = Command::new("bash")
        .args([
            "-c",
            "ulimit -v 1500000; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_ept-cli"),
        ])
        .args([
            "train",
            "--quiet",
            "--config",
            "config.toml",
            "--batch-size",
            "16",
        ])
        .args(["--set", "model.image_size=224", "--set", &run])
        .current_dir(&dir)
        .output()
        .unwrap();
    let message = text(&output);
    assert_eq!(output.status.code(), Some(3), "{message}");
    assert!(
        message.contains("error: out of memory: could not allocate"),
        "{message}"
    );
    assert!(
        message.contains("batch size 16") && message.contains("--batch-size 8"),
        "{message}"
    );
    assert!(message.contains("train.micro_batch_size=8"), "{message}");
    assert!(
        !message.contains("panicked") && !message.contains("memory allocation of"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
