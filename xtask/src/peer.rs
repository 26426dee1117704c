//! The PyTorch side of `cargo xtask bench --peer / --compare`: installs the pinned peer
//! (`bench/peer/requirements.txt`: torch, timm) into `.venv-peer/` the first time it is
//! asked — never in CI, never otherwise; `$EPT_PEER_PYTHON` names an existing one instead —
//! runs `bench/peer/peer_bench.py` with the same groups, model, batch, repetitions,
//! threads and device (on a GPU also the same precision), and puts its JSON lines beside ours:
//! one table row per workload with both medians, the ratio ours / PyTorch and both peak
//! RSS figures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use ept_backend::{BackendKind, DeviceSpec, Precision};
use serde_json::Value;

/// The peer's Python: `$EPT_PEER_PYTHON` when set (a Python that already has torch and
/// timm, e.g. on a GPU machine with no network), else `.venv-peer/`, installing the
/// pinned environment there when it is missing.
pub fn python(root: &Path) -> anyhow::Result<PathBuf> {
    if let Some(python) = std::env::var_os("EPT_PEER_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let venv = root.join(".venv-peer");
    let python = venv.join("bin/python");
    if python.exists() {
        return Ok(python);
    }
    eprintln!("installing the PyTorch peer into {} (once)", venv.display());
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("running python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(root.join("bench/peer/requirements.txt"))
        .status()
        .context("running pip")?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&venv);
        bail!("pip install -r bench/peer/requirements.txt failed (the partial venv was removed)");
    }
    Ok(python)
}

/// What the peer is asked to run (the same settings as ours).
pub struct PeerRun<'a> {
    pub groups: &'a [&'a str],
    pub model: &'a str,
    pub batch: usize,
    pub reps: usize,
    pub threads: usize,
    pub quick: bool,
    /// Our device: the peer runs on the CPU for flex/ndarray, on the same GPU for cuda:N.
    pub spec: DeviceSpec,
    /// Our precision: the peer matches it on a GPU and stays f32 on a CPU (see `BenchArgs`).
    pub precision: Precision,
}

impl PeerRun<'_> {
    /// The peer's `--device` and `--precision` arguments.
    fn device_args(&self) -> [String; 4] {
        let (device, precision) = match self.spec.backend {
            BackendKind::Cuda => (
                format!("cuda:{}", self.spec.index),
                match self.precision {
                    Precision::F32 => "fp32",
                    Precision::Bf16 => "bf16",
                    Precision::F16 => "fp16",
                },
            ),
            _ => ("cpu".to_string(), "fp32"),
        };
        ["--device".into(), device, "--precision".into(), precision.into()]
    }
}

/// Run the peer; returns its JSON lines (also echoed to stdout).
pub fn run(root: &Path, peer: &PeerRun) -> anyhow::Result<Vec<Value>> {
    let groups: Vec<&str> = peer
        .groups
        .iter()
        .copied()
        .filter(|g| ["gemm", "vit", "layers", "methods", "ept_length"].contains(g))
        .collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let python = python(root)?;
    let mut command = Command::new(python);
    command
        .arg(root.join("bench/peer/peer_bench.py"))
        .args(["--json", "--isolate", "--groups", &groups.join(",")])
        .args(["--model", peer.model, "--batch", &peer.batch.to_string()])
        .args([
            "--reps",
            &peer.reps.to_string(),
            "--threads",
            &peer.threads.to_string(),
        ])
        .args(peer.device_args())
        .stderr(Stdio::inherit());
    if peer.quick {
        command.arg("--quick");
    }
    let output = command.output().context("running bench/peer/peer_bench.py")?;
    if !output.status.success() {
        bail!("bench/peer/peer_bench.py failed ({})", output.status);
    }
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for line in &lines {
        println!("{line}");
    }
    Ok(lines)
}

/// The PyTorch workload a line of ours is compared with: the same one, except that our
/// fast exact EPT has no PyTorch form and is held to PyTorch's literal (reference) EPT.
fn peer_key(line: &Value) -> (String, String) {
    let bench = line["bench"].as_str().unwrap_or_default().to_string();
    let method = line["method"].as_str().unwrap_or_default();
    let method = match method.strip_prefix("ept_L") {
        Some(length) => format!("ept_reference_L{length}"),
        None if method == "ept" => "ept_reference".to_string(),
        None => method.to_string(),
    };
    (bench, method)
}

fn key(line: &Value) -> (String, String) {
    (
        line["bench"].as_str().unwrap_or_default().to_string(),
        line["method"].as_str().unwrap_or_default().to_string(),
    )
}

/// One workload measured on both sides: its table name and the two lines.
struct Pair<'a> {
    name: String,
    ours: &'a Value,
    theirs: &'a Value,
}

/// Our lines that have a peer line, in our order, each with the peer's.
fn pairs<'a>(ours: &'a [Value], peer: &'a [Value]) -> Vec<Pair<'a>> {
    ours.iter()
        .filter_map(|line| {
            let wanted = peer_key(line);
            let theirs = peer.iter().find(|p| key(p) == wanted)?;
            let (bench, method) = key(line);
            let name = if method.is_empty() {
                bench
            } else {
                format!("{bench} {method}")
            };
            let name = if wanted.1 != method {
                format!("{name} (vs {})", wanted.1)
            } else {
                name
            };
            Some(Pair {
                name,
                ours: line,
                theirs,
            })
        })
        .collect()
}

fn seconds(line: &Value) -> Option<f64> {
    line["median_s"].as_f64()
}

/// The side-by-side table (markdown) of our lines against the peer's.
pub fn compare_table(ours: &[Value], peer: &[Value]) -> String {
    let mut out = String::from(
        "| workload | ours (s) | PyTorch (s) | ours / PyTorch | ours peak RSS (MB) | PyTorch peak RSS (MB) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for pair in pairs(ours, peer) {
        let (Some(a), Some(b)) = (seconds(pair.ours), seconds(pair.theirs)) else {
            continue;
        };
        let rss = |v: &Value| {
            v["max_rss_mb"]
                .as_f64()
                .map_or("–".to_string(), |m| format!("{m:.0}"))
        };
        out.push_str(&format!(
            "| {} | {a:.3} | {b:.3} | {:.2} | {} | {} |\n",
            pair.name,
            a / b,
            rss(pair.ours),
            rss(pair.theirs)
        ));
    }
    out
}

/// Several rounds of ours-then-peer (`--rounds`), one ratio per round and workload: each
/// round's ratio is a side-by-side measurement of its own, and their median is robust to
/// a machine whose speed drifts over the minutes a round takes.
pub fn rounds_table(rounds: &[(Vec<Value>, Vec<Value>)]) -> String {
    let mut out = String::from(
        "| workload | ours / PyTorch, each round | median | min | max |\n| --- | --- | ---: | ---: | ---: |\n",
    );
    let Some((first_ours, first_peer)) = rounds.first() else {
        return out;
    };
    for pair in pairs(first_ours, first_peer) {
        let mut ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|(ours, peer)| {
                let pair = pairs(ours, peer).into_iter().find(|p| p.name == pair.name)?;
                Some(seconds(pair.ours)? / seconds(pair.theirs)?)
            })
            .collect();
        if ratios.is_empty() {
            continue;
        }
        let each = ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        let median = if n % 2 == 1 {
            ratios[n / 2]
        } else {
            (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
        };
        out.push_str(&format!(
            "| {} | {each} | {median:.2} | {:.2} | {:.2} |\n",
            pair.name,
            ratios[0],
            ratios[n - 1]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_pair_fast_ept_with_the_reference_form() {
        let ours = vec![
            json!({"bench": "vit_forward", "median_s": 2.0, "max_rss_mb": 900.0}),
            json!({"bench": "train_step", "method": "ept", "median_s": 3.0}),
            json!({"bench": "ept_length", "method": "ept_L1000", "median_s": 1.0}),
            json!({"bench": "train_step", "method": "lora", "median_s": 1.0}),
        ];
        let peer = vec![
            json!({"bench": "vit_forward", "median_s": 1.0, "max_rss_mb": 1200.0}),
            json!({"bench": "train_step", "method": "ept_reference", "median_s": 2.0}),
            json!({"bench": "ept_length", "method": "ept_reference_L1000", "median_s": 4.0}),
        ];
        let table = compare_table(&ours, &peer);
        assert!(
            table.contains("| vit_forward | 2.000 | 1.000 | 2.00 | 900 | 1200 |"),
            "{table}"
        );
        assert!(
            table.contains("| train_step ept (vs ept_reference) | 3.000 | 2.000 | 1.50 |"),
            "{table}"
        );
        assert!(
            table.contains("| ept_length ept_L1000 (vs ept_reference_L1000) | 1.000 | 4.000 | 0.25 |"),
            "{table}"
        );
        assert!(!table.contains("lora"), "no peer line, no row: {table}");
    }

    #[test]
    fn rounds_table_takes_the_median_of_each_rounds_own_ratio() {
        let round = |ours_s: f64, peer_s: f64| {
            (
                vec![json!({"bench": "train_step", "method": "ept", "median_s": ours_s})],
                vec![json!({"bench": "train_step", "method": "ept_reference", "median_s": peer_s})],
            )
        };
        // Per-round ratios 0.80, 1.00, 0.90 (round 2: the machine slowed down for both).
        let rounds = [round(1.6, 2.0), round(3.0, 3.0), round(1.8, 2.0)];
        let table = rounds_table(&rounds);
        assert!(
            table.contains("| train_step ept (vs ept_reference) | 0.80, 1.00, 0.90 | 0.90 | 0.80 | 1.00 |"),
            "{table}"
        );
        let even = rounds_table(&rounds[..2]);
        assert!(even.contains("| 0.80, 1.00 | 0.90 | 0.80 | 1.00 |"), "{even}");
    }
}
