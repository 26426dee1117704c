//! `cargo xtask` — project automation. `cargo xtask bench [--quick] [--json] [--compare]`
//! runs the benchmarks and prints one JSON object per measurement (see `bench`; the
//! PyTorch peer beside them: `peer`);
//! `cargo xtask make-brain-volumes` builds `datasets/brain_volumes/` (see `brain_volumes`);
//! `cargo xtask fuzz [--quick]` fuzzes the parsers (see `fuzz`).

mod bench;
mod bench_layers;
mod bench_punet;
mod brain_volumes;
mod fuzz;
mod isa;
mod peer;

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
    /// Build datasets/brain_volumes/ (10 labelled axial slabs) from datasets/mricron/.
    MakeBrainVolumes(brain_volumes::MakeBrainVolumesArgs),
    /// Mutation-fuzz every user-facing parser (`--quick`: 2 s per target).
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(args) => bench::run(&args),
        Command::MakeBrainVolumes(args) => brain_volumes::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
    }
}
