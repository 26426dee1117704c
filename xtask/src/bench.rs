//! End-to-end benchmarks. Each measurement is timed `reps` times after one warm-up and
//! reported by its median, as one JSON line:
//! `{"bench", "backend", "batch", "median_s", "images_per_s", ...}` (plus `"method"`
//! for training steps). Every timed closure ends by reading a result back to the host,
//! so lazy backends have finished the work when the clock stops.
//!
//! Groups: `isa` (single-core peak of the AVX-512 f32/bf16/f16 multiply-add
//! instructions, see `isa`), `gemm` (one 2048³ f32 matrix product: the backend's raw GEMM speed),
//! `vit` (forward; forward + backward to the input), `layers` (each component of
//! one ViT block on its own, see `bench_layers`), `methods` (one SGD
//! training step per tuning method, and `none_fwd_bwd`: the same frozen backbone's
//! forward + backward to the token activations with no method — the yardstick prompt
//! methods are held to), `ept_length` (EPT steps at L = 1, 10, 100, 1000), `loader`
//! (decoded + augmented images/s). Every line carries `max_rss_mb`, the peak resident
//! memory during that measurement. `--peer` / `--compare` run the PyTorch peer beside
//! (see `peer`); `--rounds N` repeats ours-then-peer N times and, with `--compare`, adds a
//! table of each round's ratio and their median.

use std::time::Instant;

use anyhow::Context;
use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig};
use burn::tensor::{Distribution, Int, Tensor, TensorData, loss::cross_entropy_with_logits};
use clap::Args;
use ept_backbones::{VitConfig, VitHooks};
use ept_backend::DeviceSpec;
use ept_tuning::{EptConfig, MethodConfig, TunedVit};
use serde_json::{Value, json};

/// Every benchmark group, in the order they run.
const GROUPS: [&str; 8] = [
    "isa",
    "gemm",
    "vit",
    "layers",
    "methods",
    "ept_length",
    "loader",
    "punet",
];

#[derive(Args)]
pub struct BenchArgs {
    /// Fewer repetitions and methods (about a minute per group on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Print only JSON lines (default also prints a human summary to stderr).
    #[arg(long)]
    json: bool,
    /// Backends to run, comma-separated (flex, ndarray, cuda[:N]).
    #[arg(long, default_value = "flex")]
    devices: String,
    /// Benchmark groups to run, comma-separated: isa, gemm, vit, layers, methods,
    /// ept_length, loader, punet
    /// (default: all; with --quick only vit, which finishes in about a minute).
    #[arg(long)]
    groups: Option<String>,
    /// Model to benchmark.
    #[arg(long, default_value = "vit_base_patch16_224")]
    model: String,
    /// Batch size.
    #[arg(long, default_value_t = 8)]
    pub(crate) batch: usize,
    /// Timed repetitions per measurement (after one warm-up); default 2 with --quick, else 5.
    #[arg(long)]
    reps: Option<usize>,
    /// Also run the PyTorch peer (bench/peer/; installed into .venv-peer/ on first use)
    /// with the same groups, model, batch, repetitions and threads.
    #[arg(long)]
    peer: bool,
    /// Run the peer and print a side-by-side table with ratios (implies --peer).
    #[arg(long)]
    compare: bool,
    /// Repeat ours-then-peer this many times; with --compare, a table of each round's
    /// ratio and their median follows the per-round tables (robust to a machine whose
    /// speed drifts during the run). Peak RSS: read round 1's; later rounds' include what
    /// the allocator kept from earlier rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Matmul compute precision of ept's side: f32, bf16 or f16 (f32 master tensors;
    /// see ept_backend::precision). On a CPU the peer runs f32, the targets' yardstick;
    /// on a GPU it runs the same precision (autocast), as the GPU target asks.
    #[arg(long, default_value = "f32")]
    precision: ept_backend::Precision,
}

/// Median wall time of `reps` runs of `f` after one warm-up run.
pub(crate) fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    reset_peak_rss();
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

/// Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak resident memory since the last reset, in MB (Linux only).
pub(crate) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Shared facts of one benchmark run, stamped on every line.
pub(crate) struct Run<'a> {
    pub(crate) args: &'a BenchArgs,
    pub(crate) spec: DeviceSpec,
    pub(crate) config: VitConfig,
    pub(crate) reps: usize,
    threads: usize,
    /// Every line reported, for `--compare`.
    lines: std::cell::RefCell<Vec<Value>>,
}

impl Run<'_> {
    pub(crate) fn report(&self, bench: &str, method: Option<&str>, seconds: f64) {
        let mut line = json!({
            "bench": bench, "model": self.config.name, "backend": self.spec.to_string(),
            "batch": self.args.batch, "image_size": self.config.img_size, "threads": self.threads,
            "median_s": seconds, "images_per_s": self.args.batch as f64 / seconds, "impl": "ept",
            "precision": self.args.precision.to_string(),
        });
        if let Value::Object(map) = &mut line {
            if let Some(method) = method {
                map.insert("method".into(), json!(method));
            }
            if let Some(mb) = peak_rss_mb() {
                map.insert("max_rss_mb".into(), json!(mb));
            }
        }
        println!("{line}");
        self.lines.borrow_mut().push(line.clone());
        if !self.args.json {
            eprintln!(
                "  {:<28} {:<28} {:<8} batch {:>3}  {:>8.3} s  {:>8.2} images/s",
                bench,
                method.unwrap_or(""),
                self.spec.to_string(),
                self.args.batch,
                seconds,
                self.args.batch as f64 / seconds
            );
        }
    }

    fn images(&self, device: &burn::tensor::Device) -> Tensor<4> {
        let size = self.config.img_size;
        Tensor::random([self.args.batch, 3, size, size], Distribution::Default, device)
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    // As ept-cli does: measure with the allocator settings users run with.
    ept_backend::memory::keep_tensor_buffers();
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let groups = args.groups.clone().unwrap_or_else(|| {
        if args.quick {
            "vit".to_string()
        } else {
            "vit,methods,ept_length".to_string()
        }
    });
    let groups: Vec<&str> = groups.split(',').map(str::trim).collect();
    for group in &groups {
        if !GROUPS.contains(group) {
            anyhow::bail!(
                "unknown benchmark group '{group}': expected {}",
                GROUPS.join(", ")
            );
        }
    }
    if groups.contains(&"isa") {
        crate::isa::isa_bench(args.json);
    }
    if groups.contains(&"loader") {
        loader_bench(args, threads)?;
    }
    let reps = args.reps.unwrap_or(if args.quick { 2 } else { 5 });
    for spec in args.devices.split(',') {
        let spec: DeviceSpec = spec.parse()?;
        spec.check_available()?;
        ept_backend::set_precision(args.precision, spec.backend)?;
        if groups.iter().all(|g| ["loader", "isa"].contains(g)) {
            break;
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let peer_run = crate::peer::PeerRun {
            groups: &groups,
            model: &args.model,
            batch: args.batch,
            reps,
            threads,
            quick: args.quick,
            spec,
            precision: args.precision,
        };
        let mut rounds = Vec::new();
        for round in 1..=args.rounds {
            let label = if args.rounds > 1 {
                format!(", round {round} of {}", args.rounds)
            } else {
                String::new()
            };
            let ours = run_groups(args, spec, &groups, reps, threads)?;
            if args.peer || args.compare {
                let theirs = crate::peer::run(&root, &peer_run)?;
                if args.compare {
                    eprintln!("\n{spec}{label}:\n{}", crate::peer::compare_table(&ours, &theirs));
                }
                rounds.push((ours, theirs));
            }
        }
        if args.compare && args.rounds > 1 {
            eprintln!(
                "\n{spec}, {} rounds:\n{}",
                args.rounds,
                crate::peer::rounds_table(&rounds)
            );
        }
    }
    Ok(())
}

/// One pass of ours over the model groups on `spec`: the JSON lines it reported.
fn run_groups(
    args: &BenchArgs,
    spec: DeviceSpec,
    groups: &[&str],
    reps: usize,
    threads: usize,
) -> anyhow::Result<Vec<Value>> {
    let run = Run {
        args,
        spec,
        config: VitConfig::from_name(&args.model)?,
        reps,
        threads,
        lines: Default::default(),
    };
    let context = || format!("benchmarks on {spec}");
    if groups.contains(&"gemm") {
        gemm_bench(&run);
    }
    if groups.contains(&"vit") {
        vit_benches(&run).with_context(context)?;
    }
    if groups.contains(&"layers") {
        crate::bench_layers::layer_benches(&run).with_context(context)?;
    }
    if groups.contains(&"methods") {
        method_benches(&run).with_context(context)?;
    }
    if groups.contains(&"ept_length") {
        ept_length_benches(&run).with_context(context)?;
    }
    if groups.contains(&"punet") {
        crate::bench_punet::punet_benches(&spec, run.reps, threads, args.json).with_context(context)?;
    }
    Ok(run.lines.into_inner())
}

/// Decoded + augmented images per second at 224 px (synthetic 512-px PNGs through the
/// MedFMC training pipeline), compared with what a ViT-B/16 training step consumes.
fn loader_bench(args: &BenchArgs, threads: usize) -> anyhow::Result<()> {
    let options = ept_data::bench::LoaderBenchOptions {
        threads,
        ..Default::default()
    };
    let images_per_s = ept_data::bench::loader_throughput(&options)?;
    let line = json!({"bench": "loader", "backend": "host", "batch": options.batch_size,
        "image_size": options.size, "threads": threads, "images_per_s": images_per_s,
        "median_s": options.batch_size as f64 / images_per_s, "impl": "ept"});
    println!("{line}");
    if !args.json {
        eprintln!("  loader (decode + augment, {threads} threads)   {images_per_s:>8.1} images/s");
    }
    Ok(())
}

/// Side of the square matrices of the `gemm` group.
const GEMM_SIDE: usize = 2048;

/// One `2048 × 2048 · 2048 × 2048` f32 matrix product: the backend's raw GEMM speed, the
/// ceiling every ViT number below is held against (at `--precision`, like every matmul).
fn gemm_bench(run: &Run) {
    let device = run.spec.device();
    let square = || Tensor::<2>::random([GEMM_SIDE, GEMM_SIDE], Distribution::Default, &device);
    let (a, b) = (square(), square());
    let seconds = median_seconds(run.reps.max(3), || {
        let _ = a.clone().matmul(b.clone()).into_data();
    });
    let gflops = 2.0 * (GEMM_SIDE as f64).powi(3) / seconds / 1e9;
    let line = json!({"bench": "sgemm_2048", "backend": run.spec.to_string(), "threads": run.threads,
        "median_s": seconds, "gflops": gflops, "impl": "ept", "precision": run.args.precision.to_string()});
    println!("{line}");
    run.lines.borrow_mut().push(line);
    if !run.args.json {
        eprintln!(
            "  sgemm 2048³ ({} threads)  {seconds:>8.4} s  {gflops:>7.1} GFLOP/s",
            run.threads
        );
    }
}

/// ViT forward (inference) and forward + backward to the input with a frozen model.
fn vit_benches(run: &Run) -> anyhow::Result<()> {
    let device = run.spec.device();
    let model = run.config.init(&device)?;
    let images = run.images(&device);
    let seconds = median_seconds(run.reps, || {
        let _ = model.forward(images.clone()).into_data();
    });
    run.report("vit_forward", None, seconds);
    drop(model);

    let device = run.spec.autodiff_device();
    let model = run.config.init(&device)?.no_grad();
    let images = run.images(&device);
    let seconds = median_seconds(run.reps, || {
        let input = images.clone().require_grad();
        let grads = model.forward(input.clone()).sum().backward();
        let _ = input.grad(&grads).map(|g| g.into_data());
    });
    run.report("vit_forward_backward_input", None, seconds);
    Ok(())
}

/// Marks the tokens entering block 0 as requiring a gradient: the backward pass then
/// runs through every block, as it must for any prompt method, and stops there.
struct TokenGradients;

impl VitHooks for TokenGradients {
    fn block_input(&self, block: usize, tokens: Tensor<3>) -> Tensor<3> {
        if block == 0 {
            tokens.detach().require_grad()
        } else {
            tokens
        }
    }
}

/// One optimizer step of `model` on a random batch: forward, cross-entropy, backward, SGD.
fn step_seconds(run: &Run, method: &MethodConfig) -> anyhow::Result<f64> {
    let device = run.spec.autodiff_device();
    let classes = 2;
    let mut model = Some(TunedVit::new(
        run.config.init(&device)?,
        method,
        classes,
        &device,
    )?);
    let images = run.images(&device);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new(
            (0..run.args.batch as i64).map(|i| i % 2).collect::<Vec<_>>(),
            [run.args.batch],
        ),
        &device,
    );
    let targets = labels.one_hot(classes).float();
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_momentum(0.9)))
        .with_weight_decay(Some(WeightDecayConfig::new(1e-4)))
        .init();
    Ok(median_seconds(run.reps, || {
        let current = model.take().expect("model present between steps");
        let loss = cross_entropy_with_logits(current.forward(images.clone()), targets.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        let next = optim.step(6e-4, current, grads);
        // Read one trained value back so the step has finished when the clock stops.
        let _ = next.head.layers[0].bias.as_ref().map(|b| b.val().into_data());
        model = Some(next);
    }))
}

fn method_benches(run: &Run) -> anyhow::Result<()> {
    // The yardstick: frozen backbone forward + backward to activations, no method.
    let device = run.spec.autodiff_device();
    let backbone = run.config.init(&device)?.no_grad();
    let images = run.images(&device);
    let seconds = median_seconds(run.reps, || {
        let features = backbone.forward_cls_with(images.clone(), &TokenGradients);
        let grads = features.sum().backward();
        drop(grads);
        // Nothing is read back here: wait for a GPU's queue before the clock stops.
        let _ = device.sync();
    });
    run.report("train_step", Some("none_fwd_bwd"), seconds);
    drop(backbone);

    let methods = if run.args.quick {
        vec![MethodConfig::Linear, MethodConfig::Ept(EptConfig::default())]
    } else {
        let mut all = MethodConfig::all_defaults();
        all.push(MethodConfig::EptReference(EptConfig::default()));
        all
    };
    for method in methods {
        let seconds = step_seconds(run, &method)?;
        run.report("train_step", Some(method.name()), seconds);
    }
    Ok(())
}

fn ept_length_benches(run: &Run) -> anyhow::Result<()> {
    let lengths: &[usize] = if run.args.quick {
        &[1, 1000]
    } else {
        &[1, 10, 100, 1000]
    };
    for &length in lengths {
        for reference in [false, true] {
            if run.args.quick && reference {
                continue;
            }
            let config = EptConfig {
                length,
                ..EptConfig::default()
            };
            let method = if reference {
                MethodConfig::EptReference(config)
            } else {
                MethodConfig::Ept(config)
            };
            let seconds = step_seconds(run, &method)?;
            run.report(
                "ept_length",
                Some(&format!("{}_L{length}", method.name())),
                seconds,
            );
        }
    }
    Ok(())
}
