//! `ept-cli sweep --config configs/sweep_medfmc.toml`: the paper's Table 1 grid —
//! data sets × methods × shots × samplings. Every cell is an ordinary run folder, so the
//! sweep is resumable: finished runs are read back, interrupted ones continue from their
//! checkpoint. The result is a markdown table of mean ± std over samplings with an
//! average column and the change against Linear, written next to the runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ept_backend::DeviceSpec;
use ept_train::{RunConfig, TrainOptions};
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Sweep description (TOML)
    #[arg(long)]
    pub config: PathBuf,
    /// Extra overrides applied to every run, e.g. `--set train.epochs=2`
    #[arg(long = "set")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    sweep: Sweep,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sweep {
    /// Method names (each with its default options; refine with `overrides`).
    methods: Vec<String>,
    shots: Vec<usize>,
    seeds: Vec<u64>,
    /// Root folder of the runs and the table.
    output: PathBuf,
    /// Overrides applied to every run (`"train.epochs=20"`).
    #[serde(default)]
    overrides: Vec<String>,
    datasets: Vec<SweepData>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepData {
    name: String,
    /// Run config of this data set (relative to the sweep file).
    config: PathBuf,
    /// Training list pattern with `{shots}` and `{seed}` (relative to the sweep file).
    train_list: String,
    /// Optional validation list pattern.
    #[serde(default)]
    val_list: Option<String>,
}

fn fill(pattern: &str, shots: usize, seed: u64) -> String {
    pattern
        .replace("{shots}", &shots.to_string())
        .replace("{seed}", &seed.to_string())
}

/// Check every data set's list patterns before any cell trains: placeholders other than
/// `{shots}` and `{seed}`, a training pattern without one the grid varies (every cell
/// would train on the same list), and lists that do not exist, all named at once.
fn check_lists(sweep: &Sweep, base: &Path, file: &Path) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    for data in &sweep.datasets {
        let patterns = std::iter::once(("train_list", &data.train_list))
            .chain(data.val_list.as_ref().map(|v| ("val_list", v)));
        for (key, pattern) in patterns {
            let rest = pattern.replace("{shots}", "").replace("{seed}", "");
            if let Some(start) = rest.find('{') {
                let name: String = rest[start..].chars().take_while(|&c| c != '}').collect();
                let unknown = format!("{name}}}");
                anyhow::bail!(
                    "{}: dataset {:?} {key} = {pattern:?}: unknown placeholder {unknown} (the patterns take {{shots}} and {{seed}})",
                    file.display(),
                    data.name
                );
            }
            // One validation list for every cell is an ordinary set-up; one training list is not.
            for (placeholder, varies) in [
                ("{shots}", sweep.shots.len() > 1),
                ("{seed}", sweep.seeds.len() > 1),
            ] {
                if key == "train_list" && varies && !pattern.contains(placeholder) {
                    anyhow::bail!(
                        "{}: dataset {:?} {key} = {pattern:?} has no {placeholder}, so every cell would train on the same list",
                        file.display(),
                        data.name
                    );
                }
            }
            for &shots in &sweep.shots {
                for &seed in &sweep.seeds {
                    let path = base.join(fill(pattern, shots, seed));
                    if !path.is_file() {
                        missing.push(path.display().to_string());
                    }
                }
            }
        }
    }
    if let Some(first) = missing.first() {
        anyhow::bail!(
            "{}: {} of the sweep's lists do not exist, e.g. {first} (draw them with `ept-cli sample`)",
            file.display(),
            missing.len()
        );
    }
    Ok(())
}

/// A path string from the sweep file, as a TOML string literal resolved against `base`.
fn path_value(base: &Path, pattern: &str, shots: usize, seed: u64) -> String {
    let path = base.join(fill(pattern, shots, seed));
    format!("{:?}", path.display().to_string())
}

/// The primary test metric of a finished run folder, if it finished.
fn finished_metric(run: &Path) -> Option<(String, f64)> {
    if !run.join("method.safetensors").is_file() {
        return None;
    }
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).ok()?;
    log.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["event"] != "eval" || v["split"] != "test" {
            return None;
        }
        ["mAP", "accuracy"]
            .iter()
            .find_map(|k| v["metrics"][*k].as_f64().map(|x| (k.to_string(), x)))
    })
}

pub fn run(args: &SweepArgs, devices: &[DeviceSpec]) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let raw: toml::Table =
        toml::from_str(&text).with_context(|| format!("sweep config {}", args.config.display()))?;
    if !raw.contains_key("sweep") {
        let command = ept_train::config::command_for(&raw);
        anyhow::bail!(
            "{}: not a sweep config (it has no [sweep] table); run it with `ept-cli {command} --config`",
            args.config.display()
        );
    }
    let file: SweepFile = raw
        .try_into()
        .with_context(|| format!("sweep config {}", args.config.display()))?;
    let sweep = file.sweep;
    let base = args.config.parent().unwrap_or(Path::new("."));
    check_lists(&sweep, base, &args.config)?;
    // results[(dataset, shots)][method] = values over seeds
    let mut results: BTreeMap<(String, usize), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut metric_names = BTreeMap::new();
    for data in &sweep.datasets {
        for method in &sweep.methods {
            for &shots in &sweep.shots {
                for &seed in &sweep.seeds {
                    let run_dir = sweep
                        .output
                        .join(&data.name)
                        .join(method)
                        .join(format!("{shots}-shot"))
                        .join(format!("exp{seed}"));
                    let mut overrides = vec![
                        format!("method={{ method = {method:?} }}"),
                        format!(
                            "data.train.list={}",
                            path_value(base, &data.train_list, shots, seed)
                        ),
                        format!("output.dir={:?}", run_dir.display().to_string()),
                    ];
                    if let Some(val) = &data.val_list {
                        overrides.push(format!("data.val.list={}", path_value(base, val, shots, seed)));
                    }
                    overrides.extend(sweep.overrides.iter().cloned());
                    overrides.extend(args.overrides.iter().cloned());
                    let config = RunConfig::load(&base.join(&data.config), &overrides)?;
                    let value = match finished_metric(&run_dir) {
                        Some(found) => {
                            // A finished run counts only if it was made with these settings.
                            let made_with =
                                std::fs::read_to_string(run_dir.join("config.toml")).unwrap_or_default();
                            let changes =
                                ept_train::checkpoint::changed_settings(&made_with, &config.to_toml());
                            if !changes.is_empty() {
                                anyhow::bail!(
                                    "{} finished with other settings than this sweep asks for ({}): \
                                     delete that folder to train it again, or give the sweep another output",
                                    run_dir.display(),
                                    changes.join(", ")
                                );
                            }
                            found
                        }
                        None => {
                            let resume = ept_train::checkpoint::latest(&run_dir).is_some();
                            eprintln!(
                                "sweep: {} {method} {shots}-shot exp{seed}{}",
                                data.name,
                                if resume { " (resuming)" } else { "" }
                            );
                            let options = TrainOptions {
                                resume,
                                stop_after_epochs: None,
                                quiet: true,
                                devices: devices.to_vec(),
                            };
                            ept_train::train(&config, &devices[0], &options)?;
                            finished_metric(&run_dir)
                                .with_context(|| format!("{} has no test result", run_dir.display()))?
                        }
                    };
                    metric_names.insert(data.name.clone(), value.0);
                    results
                        .entry((data.name.clone(), shots))
                        .or_default()
                        .entry(method.clone())
                        .or_default()
                        .push(value.1);
                }
            }
        }
    }
    let table = table(&sweep, &results, &metric_names);
    println!("{table}");
    let path = sweep.output.join("table.md");
    ept_backend::fs::write_atomic(&path, table.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!("table: {}", path.display());
    Ok(())
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

fn table(
    sweep: &Sweep,
    results: &BTreeMap<(String, usize), BTreeMap<String, Vec<f64>>>,
    metric_names: &BTreeMap<String, String>,
) -> String {
    let columns: Vec<(String, usize)> = sweep
        .datasets
        .iter()
        .flat_map(|d| sweep.shots.iter().map(move |&s| (d.name.clone(), s)))
        .collect();
    let mut out = String::from("| method |");
    for (data, shots) in &columns {
        let metric = metric_names.get(data).map_or("", String::as_str);
        let _ = write!(out, " {data} {shots}-shot ({metric}) |");
    }
    out.push_str(" average | vs linear |\n| --- |");
    out.push_str(&" ---: |".repeat(columns.len() + 2));
    out.push('\n');
    let average = |method: &str| -> f64 {
        let means: Vec<f64> = columns
            .iter()
            .filter_map(|c| results.get(c)?.get(method).map(|v| mean_std(v).0))
            .collect();
        means.iter().sum::<f64>() / means.len().max(1) as f64
    };
    let linear = sweep
        .methods
        .iter()
        .any(|m| m == "linear")
        .then(|| average("linear"));
    for method in &sweep.methods {
        let _ = write!(out, "| {method} |");
        for column in &columns {
            match results.get(column).and_then(|r| r.get(method)) {
                Some(values) => {
                    let (mean, std) = mean_std(values);
                    let _ = write!(out, " {mean:.2} ± {std:.2} |");
                }
                None => out.push_str(" – |"),
            }
        }
        let avg = average(method);
        let versus = linear.map_or("–".to_string(), |l| format!("{:+.2}", avg - l));
        let _ = writeln!(out, " {avg:.2} | {versus} |");
    }
    let _ = writeln!(
        out,
        "\nmean ± std over samplings {:?}; metric per data set as the paper reports it.",
        sweep.seeds
    );
    out
}
