//! End-to-end tests of segmentation runs through `ept-cli train` on the bundled real
//! volumes (datasets/brain_volumes), with a tiny PUNet: a run writes its report, NIfTI
//! predictions on the source grid and overlays; an interrupted run resumed from its
//! checkpoint repeats the uninterrupted loss curve exactly; bad configs and corrupt
//! NIfTI files give clear errors naming the key or the file.

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

/// Run `args` with `--set set`: it must fail with a message containing `expect`, not panic.
fn assert_refused(args: &[&str], set: &str, expect: &str) {
    let mut args = args.to_vec();
    args.extend(["--quiet", "--set", set]);
    let out = cli(&args);
    let message = text(&out);
    assert!(
        !out.status.success() && !message.contains("panicked"),
        "{set}: {message}"
    );
    assert!(
        message.contains(expect),
        "{set}: expected {expect:?} in: {message}"
    );
}

/// A scratch folder with a tiny segmentation config over the first `volumes` slabs.
fn setup(name: &str, volumes: usize, method: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ept-seg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = repo().join("datasets/brain_volumes");
    let list: String = std::fs::read_to_string(data.join("volumes.csv"))
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(i, _)| *i <= volumes)
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                let (image, label) = l.split_once(',').unwrap();
                format!("{},{}\n", data.join(image).display(), data.join(label).display())
            }
        })
        .collect();
    std::fs::write(dir.join("volumes.csv"), list).unwrap();
    let config = format!(
        r#"task = "segmentation"
[model.punet]
channels = [8, 16, 16]
heads = 2
window = [4, 4, 1]
tokens_per_class = 2
class_slots = 8
[method]
method = "{method}"
[data]
classes = [1, 3]
[data.source]
list = "volumes.csv"
classes = "{classes}"
spacing = [4.0, 4.0, 3.0]
window = {{ min = 0.0, max = 255.0 }}
seed = 1
[data.sampling]
shape = {{ kind = "slice2d", size = [24, 24] }}
samples_per_volume = 2
[train]
epochs = 2
batch_size = 2
optimizer = {{ kind = "adamw", lr = 1e-3 }}
[output]
dir = "{run}"
"#,
        classes = data.join("classes.txt").display(),
        run = dir.join("run").display()
    );
    let path = dir.join("seg.toml");
    std::fs::write(&path, config).unwrap();
    (dir, path)
}

fn losses(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"event\":\"step\""))
        .map(str::to_string)
        .collect()
}

#[test]
fn train_writes_report_predictions_and_overlays_and_resume_is_exact() {
    let (dir, config) = setup("run", 5, "prompting");
    let config = config.to_str().unwrap();
    let out = cli(&["train", "--config", config, "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    let run = dir.join("run");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("frontal") && report.contains("parietal"),
        "{report}"
    );
    assert!(text(&out).contains("mean Dice"), "{}", text(&out));
    // 5 volumes → split 4/0/1 (rounded): one test prediction on the source grid
    let predictions: Vec<PathBuf> = std::fs::read_dir(run.join("predictions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(predictions.len(), 1, "{predictions:?}");
    let prediction = ept_data::read_label_map(&predictions[0]).unwrap();
    assert_eq!(
        prediction.dims,
        [154, 188, 15],
        "predictions are written on the source grid"
    );
    assert!(prediction.data.iter().all(|&v| v == 0 || v == 1 || v == 3));
    assert_eq!(std::fs::read_dir(run.join("overlays")).unwrap().count(), 1);
    // The classification-run commands say what they take.
    let eval = cli(&["eval", "--run", run.to_str().unwrap()]);
    assert!(
        !eval.status.success() && text(&eval).contains("is a segmentation run"),
        "{}",
        text(&eval)
    );
    assert!(run.join("method.safetensors").is_file());

    // interrupted after one epoch, then resumed: the same steps with the same losses
    let (dir2, config2) = setup("resume", 5, "prompting");
    let config2 = config2.to_str().unwrap();
    let first = cli(&["train", "--config", config2, "--quiet", "--stop-after", "1"]);
    assert!(first.status.success(), "{}", text(&first));
    // resuming into another architecture names the field that differs
    assert_refused(
        &["train", "--config", config2, "--resume"],
        "model.punet.tokens_per_class=3",
        "model.punet.tokens_per_class: 2 in the file, 3 in the model",
    );
    assert!(
        !dir2.join("run/config.before-resume-1.toml").exists(),
        "a refused resume changes nothing"
    );
    let again = cli(&["train", "--config", config2, "--quiet"]);
    assert!(
        !again.status.success() && text(&again).contains("--resume"),
        "{}",
        text(&again)
    );
    let resumed = cli(&["train", "--config", config2, "--quiet", "--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(losses(&run), losses(&dir2.join("run")));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&dir2).ok();
}

#[test]
fn bad_config_and_corrupt_volume_are_named() {
    let (dir, config) = setup("bad", 2, "fixed");
    let text_config = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text_config.replace("samples_per_volume", "samples_per_vol"),
    )
    .unwrap();
    let out = cli(&["train", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("samples_per_vol"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));

    std::fs::write(&config, &text_config).unwrap();
    let out = cli(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "data.classes=[9]",
    ]);
    assert!(
        !out.status.success() && text(&out).contains("data.classes"),
        "{}",
        text(&out)
    );

    // Architecture values that used to reach a panic (remainder by zero, a convolution
    // shape assertion) or a misleading NaN stop, and a crop shape the network cannot take.
    for (set, expect) in [
        ("model.punet.heads=0", "heads must be ≥ 1"),
        ("model.punet.in_channels=2", "model.punet.in_channels = 2"),
        ("model.punet.bias_dim=0", "bias_dim must be ≥ 1"),
        ("model.punet.spatial_dims=3", "model.punet.spatial_dims = 3"),
        // Settings refused before the run folder is made.
        ("data.classes=[2,2]", "data.classes names class 2 twice"),
        (
            "model.punet.class_slots=3",
            "set model.punet.class_slots to at least",
        ),
        (
            "train.optimizer.lr=-1",
            "train.optimizer.lr = -1 must be a finite number above 0",
        ),
        ("train.focal_gamma=-2", "train.focal_gamma = -2"),
        ("data.sampling.p_fg=2", "data.sampling: p_fg 2 must be in [0, 1]"),
    ] {
        assert_refused(&["train", "--config", config.to_str().unwrap()], set, expect);
    }

    // Two volumes split 2/0/0: the run would not be evaluated, and says so.
    let out = cli(&[
        "train",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "model.punet.class_slots=3",
    ]);
    assert!(
        text(&out).contains("warning: the split leaves no validation or test volume (all 2 for training)"),
        "{}",
        text(&out)
    );

    // a truncated .nii.gz in the list
    let source = repo().join("datasets/brain_volumes/slab_03_t1.nii.gz");
    let bytes = std::fs::read(&source).unwrap();
    let broken = dir.join("broken_t1.nii.gz");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let list = std::fs::read_to_string(dir.join("volumes.csv")).unwrap();
    let first_image = list
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        dir.join("volumes.csv"),
        list.replace(&first_image, broken.to_str().unwrap()),
    )
    .unwrap();
    let out = cli(&["train", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("broken_t1.nii.gz"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    std::fs::remove_dir_all(&dir).ok();
}

/// `ept-cli pretrain` (CPA) on the real slabs with a tiny PUNet: it writes loss curves
/// and a body file, the run resumes, and a segmentation run loads that body frozen.
#[test]
fn pretrain_writes_a_body_that_train_loads() {
    let (dir, seg_config) = setup("cpa", 4, "prompting");
    let data = repo().join("datasets/brain_volumes");
    let config = format!(
        r#"task = "pretrain"
[model.punet]
channels = [8, 16, 16]
heads = 2
window = [4, 4, 1]
tokens_per_class = 2
class_slots = 8
[data]
teacher_size = [32, 32]
student_sizes = [[24, 24], [16, 16]]
[data.source]
list = "volumes.csv"
classes = "{classes}"
spacing = [4.0, 4.0, 3.0]
window = {{ min = 0.0, max = 255.0 }}
[cpa]
base_classes = [1, 3]
fwhm = 32.0
[train]
epochs = 2
batch_size = 2
lr_body = 1e-3
lr_prompts = 1e-2
[output]
dir = "{run}"
"#,
        classes = data.join("classes.txt").display(),
        run = dir.join("cpa").display()
    );
    let path = dir.join("cpa.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();
    let first = cli(&["pretrain", "--config", path, "--quiet", "--stop-after", "1"]);
    assert!(first.status.success(), "{}", text(&first));
    let resumed = cli(&["pretrain", "--config", path, "--quiet", "--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let body = dir.join("cpa/body.safetensors");
    assert!(body.is_file() && dir.join("cpa/loss_curves.png").is_file());
    let eval = cli(&["eval", "--run", dir.join("cpa").to_str().unwrap()]);
    assert!(
        !eval.status.success() && text(&eval).contains("is a CPA pre-training run"),
        "{}",
        text(&eval)
    );
    // Resuming it with the segmentation command names the command that can.
    let out_dir = format!("output.dir=\"{}\"", dir.join("cpa").display());
    let wrong = cli(&[
        "train",
        "--quiet",
        "--config",
        seg_config.to_str().unwrap(),
        "--set",
        &out_dir,
        "--resume",
    ]);
    assert!(
        !wrong.status.success() && text(&wrong).contains("is a pretrain run, and this is a segmentation config: resume it with `ept-cli pretrain --resume`"),
        "{}",
        text(&wrong)
    );
    let steps = std::fs::read_to_string(dir.join("cpa/metrics.jsonl"))
        .unwrap()
        .matches("\"event\":\"step\"")
        .count();
    assert!(steps >= 2, "{steps}");

    let out = cli(&[
        "train",
        "--config",
        seg_config.to_str().unwrap(),
        "--quiet",
        "--set",
        &format!("model.checkpoint=\"{}\"", body.display()),
        "--set",
        "data.classes=[2]",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let start = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    assert!(
        !start.contains("randomly initialised"),
        "the body must come from the file: {start}"
    );
    // pre-training takes 2-D slices of one channel
    for (set, expect) in [
        ("model.punet.spatial_dims=3", "model.punet.spatial_dims = 3"),
        ("model.punet.in_channels=3", "model.punet.in_channels = 3"),
    ] {
        assert_refused(&["pretrain", "--config", path], set, expect);
    }
    // a typo in a CPA key is named
    let bad = std::fs::read_to_string(dir.join("cpa.toml"))
        .unwrap()
        .replace("base_classes", "base_class");
    std::fs::write(dir.join("cpa.toml"), bad).unwrap();
    let out = cli(&["pretrain", "--config", path]);
    assert!(
        !out.status.success() && text(&out).contains("base_class"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The 3-D network through the same pipeline: patches, 3-D sliding windows, NIfTI out.
#[test]
fn three_d_patches_train_and_predict() {
    let (dir, config) = setup("3d", 5, "full");
    let text_config = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[model.punet]\n", "[model.punet]\nspatial_dims = 3\n")
        .replace("window = [4, 4, 1]", "window = [4, 4, 2]")
        .replace(
            r#"shape = { kind = "slice2d", size = [24, 24] }"#,
            r#"shape = { kind = "patch3d", size = [16, 16, 4] }"#,
        );
    std::fs::write(&config, text_config).unwrap();
    let out = cli(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--quiet",
        "--set",
        "train.epochs=1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let predictions: Vec<PathBuf> = std::fs::read_dir(dir.join("run/predictions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(predictions.len(), 1);
    assert_eq!(
        ept_data::read_label_map(&predictions[0]).unwrap().dims,
        [154, 188, 15]
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A NaN loss stops the run with its step and leaves the last good checkpoint loadable:
/// resuming with a sane learning rate finishes the run.
#[test]
fn nan_stop_keeps_the_last_checkpoint() {
    let (dir, config) = setup("nan", 5, "prompting");
    let config = config.to_str().unwrap();
    let good = cli(&["train", "--config", config, "--quiet", "--stop-after", "1"]);
    assert!(good.status.success(), "{}", text(&good));
    let bad = cli(&[
        "train",
        "--config",
        config,
        "--quiet",
        "--resume",
        "--set",
        "train.optimizer.lr=1e30",
    ]);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(
        text(&bad).contains("loss became") && text(&bad).contains("step"),
        "{}",
        text(&bad)
    );
    assert!(!text(&bad).contains("panicked"), "{}", text(&bad));
    // The changed setting is reported, and the earlier config kept beside the new one.
    assert!(
        text(&bad).contains("train.optimizer.lr: 0.001 → 1000000000000000000000000000000.0"),
        "{}",
        text(&bad)
    );
    let before = std::fs::read_to_string(dir.join("run/config.before-resume-1.toml")).unwrap();
    assert!(before.contains("lr = 0.001"), "{before}");
    let resumed = cli(&["train", "--config", config, "--quiet", "--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(dir.join("run/config.before-resume-2.toml").is_file());
    assert!(dir.join("run/report.md").is_file());
    std::fs::remove_dir_all(&dir).ok();
}
