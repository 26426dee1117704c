//! `ept-cli` — the command-line front end of ept.
//!
//! Subcommands live in their own modules; this file only parses arguments, applies the
//! global run settings (device, threads, matmul precision) and turns errors into one
//! readable paragraph and a non-zero exit code.

mod demo;
mod info;
mod pretrain;
mod sample;
mod segment;
mod sweep;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ept_backend::DeviceSpec;

/// A failed allocation ends with a message and `--batch-size` advice, not an abort.
#[global_allocator]
static ALLOCATOR: ept_backend::memory::ReportingAllocator = ept_backend::memory::ReportingAllocator;

#[derive(Parser, Debug)]
#[command(
    name = "ept-cli",
    version,
    about = "Parameter-efficient tuning of frozen vision models for medical images"
)]
struct Cli {
    /// Tensor backend: cpu | flex | ndarray | cuda[:N]. A comma list (`cuda:0,cuda:1`) is
    /// for `train` and `sweep`: classification runs then share every batch between the
    /// devices (data-parallel).
    #[arg(long, visible_alias = "devices", global = true, default_value = "flex")]
    device: String,
    /// CPU worker threads (default: all cores)
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Compute precision of matrix products: f32 | bf16 | f16. Weights, prompts and
    /// gradients stay f32; bf16/f16 round each matmul's operands (flex backend only).
    #[arg(long, global = true, default_value = "f32")]
    precision: ept_backend::Precision,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The demo (also what runs without arguments): few-shot Linear vs VPT vs EPT on real MRI patches.
    Demo(demo::DemoArgs),
    /// Describe a model: architecture, parameter counts, checkpoint keys loaded.
    Info(info::InfoArgs),
    /// Write few-shot annotation lists (K per class by group, several seeds); no tensor
    /// work, so the device, thread and precision options do not apply.
    Sample(sample::SampleArgs),
    /// Train a tuning method as a TOML config describes (resumable).
    Train(train::TrainArgs),
    /// Evaluate a finished run on its test list (or another list).
    Eval(train::EvalArgs),
    /// Class probabilities for images, from a finished run.
    Predict(train::PredictArgs),
    /// Write a finished run's backbone as a timm-named .safetensors file.
    Export(train::ExportArgs),
    /// Self-supervised pre-training of a PUNet body (CPA), as a TOML config describes.
    Pretrain(train::TrainArgs),
    /// Run a grid of data sets × methods × shots × samplings; write a Table-1-style summary.
    Sweep(sweep::SweepArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let devices = cli
        .device
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<DeviceSpec>, _>>()?;
    for device in &devices {
        device.check_available()?;
    }
    let device = &devices[0];
    if let Some(threads) = cli.threads {
        ept_backend::set_cpu_threads(threads).map_err(|e| anyhow::anyhow!("--threads {threads}: {e}"))?;
    }
    ept_backend::set_precision(cli.precision, device.backend)?;
    let command = cli.command.unwrap_or(Command::Demo(demo::DemoArgs::default()));
    if devices.len() > 1 && !matches!(command, Command::Train(_) | Command::Sweep(_)) {
        anyhow::bail!(
            "--device {}: several devices are used by `train` and `sweep` (data-parallel \
             classification runs); give this command one device",
            cli.device
        );
    }
    match command {
        Command::Demo(args) => demo::run(&args, device),
        Command::Info(args) => info::run(&args, device),
        Command::Sample(args) => sample::run(&args),
        Command::Train(args) => train::train(&args, &devices),
        Command::Eval(args) => train::eval(&args, device),
        Command::Predict(args) => train::predict(&args, device),
        Command::Export(args) => train::export(&args, device),
        Command::Sweep(args) => sweep::run(&args, &devices),
        Command::Pretrain(args) => pretrain::run(&args, device),
    }
}

fn main() -> ExitCode {
    ept_backend::memory::keep_tensor_buffers();
    ept_backend::fs::report_file_size_limit();
    ept_backend::runtime::read_backend_env();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            ept_backend::progress::end_line();
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// "1 epoch", "3 epochs".
fn epochs(n: usize) -> String {
    format!("{n} epoch{}", if n == 1 { "" } else { "s" })
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message
/// already holds (errors that print their source, e.g. `path: io error`, would repeat it).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.is_empty() {
            text = cause;
        } else if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}
