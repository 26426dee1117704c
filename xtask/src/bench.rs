//! End-to-end benchmarks. Each measurement is timed `reps` times after one warm-up and
//! reported by its median, as one JSON line:
//! `{"bench", "backend", "batch", "median_s", "images_per_s", ...}`.
//! Timings are synchronised with the device before the clock stops.

use std::time::Instant;

use anyhow::Context;
use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use clap::Args;
use ept_backbones::VitConfig;
use ept_backend::DeviceSpec;
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    /// Fewer repetitions (the whole run stays under about a minute on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Print only JSON lines (default also prints a human summary to stderr).
    #[arg(long)]
    json: bool,
    /// Backends to run, comma-separated (flex, ndarray, cuda[:N]).
    #[arg(long, default_value = "flex")]
    devices: String,
    /// Model to benchmark.
    #[arg(long, default_value = "vit_base_patch16_224")]
    model: String,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    batch: usize,
}

/// Median wall time of `reps` runs of `f` after one warm-up run.
fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn report(args: &BenchArgs, line: serde_json::Value) {
    println!("{line}");
    if !args.json {
        eprintln!(
            "  {:<28} {:<8} batch {:>3}  {:>8.3} s  {:>8.2} images/s",
            line["bench"].as_str().unwrap_or(""),
            line["backend"].as_str().unwrap_or(""),
            line["batch"],
            line["median_s"].as_f64().unwrap_or(0.0),
            line["images_per_s"].as_f64().unwrap_or(0.0)
        );
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let reps = if args.quick { 3 } else { 10 };
    let threads = rayon_threads();
    for spec in args.devices.split(',') {
        let spec: DeviceSpec = spec.parse()?;
        vit_benches(args, &spec, reps, threads).with_context(|| format!("benchmarks on {spec}"))?;
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// ViT forward (inference) and forward + backward to the input with a frozen model.
fn vit_benches(args: &BenchArgs, spec: &DeviceSpec, reps: usize, threads: usize) -> anyhow::Result<()> {
    let config = VitConfig::from_name(&args.model)?;
    let size = config.img_size;
    let batch = args.batch;
    let line = |bench: &str, seconds: f64| {
        json!({
            "bench": bench, "model": config.name, "backend": spec.to_string(), "batch": batch,
            "image_size": size, "threads": threads, "median_s": seconds,
            "images_per_s": batch as f64 / seconds, "impl": "ept",
        })
    };

    let device = spec.device();
    let model = config.init(&device)?;
    let images = Tensor::<4>::random([batch, 3, size, size], Distribution::Default, &device);
    let seconds = median_seconds(reps, || {
        let logits = model.forward(images.clone());
        let _ = logits.into_data();
    });
    report(args, line("vit_forward", seconds));
    drop(model);

    let device = spec.autodiff_device();
    let model = config.init(&device)?.no_grad();
    let images = Tensor::<4>::random([batch, 3, size, size], Distribution::Default, &device);
    let seconds = median_seconds(reps, || {
        let input = images.clone().require_grad();
        let loss = model.forward(input.clone()).sum();
        let grads = loss.backward();
        let grad = input.grad(&grads).expect("input requires grad");
        let _ = grad.into_data();
    });
    report(args, line("vit_forward_backward_input", seconds));
    Ok(())
}
