//! `cargo xtask` — project automation. `cargo xtask bench [--quick] [--json]` runs the
//! benchmarks and prints one JSON object per measurement (see `bench`).

mod bench;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmarks (end-to-end step timings).
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(&args),
    }
}
