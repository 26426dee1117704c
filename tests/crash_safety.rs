//! Crash safety: a training process killed with SIGKILL at random moments — during
//! steps, evaluation or checkpoint writes — never leaves a run that cannot continue: when
//! a checkpoint exists, it loads and `--resume` finishes the run; when none exists yet, a
//! fresh start works. Trials and outcomes are printed (`--nocapture`).

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A tiny segmentation run over 5 real slabs: ~0.1 s per epoch, a checkpoint per epoch.
fn config(dir: &Path) -> PathBuf {
    let data = repo().join("datasets/brain_volumes");
    let list: String = std::fs::read_to_string(data.join("volumes.csv"))
        .unwrap()
        .lines()
        .take(6)
        .enumerate()
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
    let text = format!(
        r#"task = "segmentation"
[model.punet]
channels = [8, 16]
heads = 2
window = [4, 4, 1]
tokens_per_class = 2
class_slots = 4
[method]
method = "prompting"
[data]
classes = [1]
[data.source]
list = "volumes.csv"
classes = "{classes}"
spacing = [4.0, 4.0, 3.0]
window = {{ min = 0.0, max = 255.0 }}
[data.sampling]
shape = {{ kind = "slice2d", size = [16, 16] }}
[train]
epochs = 12
batch_size = 2
eval_every = 4
optimizer = {{ kind = "adamw", lr = 1e-3 }}
[eval]
write_predictions = false
[output]
dir = "{run}"
"#,
        classes = data.join("classes.txt").display(),
        run = dir.join("run").display()
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn train(config: &Path, resume: bool) -> std::process::Output {
    let mut args = vec!["train", "--quiet", "--config", config.to_str().unwrap()];
    if resume {
        args.push("--resume");
    }
    Command::new(env!("CARGO_BIN_EXE_ept-cli"))
        .args(&args)
        .output()
        .unwrap()
}

#[test]
fn sigkill_at_random_moments_never_loses_the_run() {
    let dir = std::env::temp_dir().join(format!("ept-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = config(&dir);
    // How long an uninterrupted run takes sets the range of kill times.
    let started = Instant::now();
    let full = train(&config, false);
    assert!(full.status.success(), "{}", String::from_utf8_lossy(&full.stderr));
    let span = started.elapsed().as_millis().max(50) as u64;
    let trials = 24;
    let (mut with_checkpoint, mut fresh, mut lost) = (0, 0, 0);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..trials {
        std::fs::remove_dir_all(dir.join("run")).unwrap();
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = (state >> 33) % span;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ept-cli"))
            .args(["train", "--quiet", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let has_checkpoint = std::fs::read_dir(dir.join("run/checkpoints"))
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("epoch-")
                        && e.path().join("state.json").is_file()
                })
            })
            .unwrap_or(false);
        let finish = train(&config, has_checkpoint);
        if !finish.status.success() {
            lost += 1;
            eprintln!(
                "lost after {delay} ms: {}",
                String::from_utf8_lossy(&finish.stderr)
            );
        } else if has_checkpoint {
            with_checkpoint += 1;
        } else {
            fresh += 1;
        }
    }
    eprintln!(
        "{trials} kills: {with_checkpoint} resumed from a checkpoint, {fresh} restarted (killed before the first), {lost} lost"
    );
    assert_eq!(lost, 0);
    assert!(
        with_checkpoint > 0,
        "no kill landed after a checkpoint; the run took {span} ms"
    );
    std::fs::remove_dir_all(&dir).ok();
}
