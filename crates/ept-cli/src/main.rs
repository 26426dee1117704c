//! `ept-cli` — the command-line front end of ept.
//!
//! Subcommands live in their own modules; this file only parses arguments, applies the
//! global run settings (device, threads) and turns errors into one readable paragraph
//! and a non-zero exit code.

mod info;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ept_backend::DeviceSpec;

#[derive(Parser, Debug)]
#[command(
    name = "ept-cli",
    version,
    about = "Parameter-efficient tuning of frozen vision models for medical images"
)]
struct Cli {
    /// Tensor backend: cpu | flex | ndarray | cuda[:N]
    #[arg(long, global = true, default_value = "flex")]
    device: String,
    /// CPU worker threads (default: all cores)
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Describe a model: architecture, parameter counts, checkpoint keys loaded.
    Info(info::InfoArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let device: DeviceSpec = cli.device.parse()?;
    if let Some(threads) = cli.threads {
        ept_backend::set_cpu_threads(threads).map_err(anyhow::Error::msg)?;
    }
    match cli.command.unwrap_or(Command::Info(info::InfoArgs::default())) {
        Command::Info(args) => info::run(&args, &device),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
