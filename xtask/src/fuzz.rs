//! `cargo xtask fuzz [--quick] [--seconds N] [--targets a,b]`: a mutation fuzzer for every
//! parser a user feeds (annotation lists, CSV, TOML configs, NIfTI `.nii`/`.nii.gz`,
//! PNG/JPEG, `.safetensors`, `.pth`, method checkpoints — the targets of `ept-fuzz`) on the
//! stable toolchain; `fuzz/` runs the same targets under cargo-fuzz/libFuzzer where a
//! nightly toolchain is available. Each target starts from real seed files of the repository, mutates them (bit flips, random bytes,
//! truncation, duplicated and deleted ranges, splices of two seeds, interesting integers)
//! with a seeded RNG, and calls the parser under `catch_unwind`. Every parser must return
//! `Ok` or an error — a panic is a crash: the input is saved under
//! `target/fuzz-crashes/<target>/` and the command fails. It prints one JSON line per target
//! with the number of executions.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use clap::Args;
use ept_backend::rng::Rng;
use ept_fuzz::{make_seeds, repo, scratch, targets};
use serde_json::json;

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// A short run (2 s per target), as the test suite's smoke check.
    #[arg(long)]
    quick: bool,
    /// Seconds per target (default 2 with --quick, else 60).
    #[arg(long)]
    seconds: Option<u64>,
    /// Comma-separated targets (default: all).
    #[arg(long)]
    targets: Option<String>,
    /// RNG seed of the mutations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// One mutation of `input` (another seed available for splicing).
fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = out.len().max(1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.below(256) as u8;
            }
            2 => out.truncate(rng.below(len)),
            3 if !out.is_empty() => {
                let (a, b) = (rng.below(out.len()), rng.below(out.len()));
                let (a, b) = (a.min(b), a.max(b).min(a + 64));
                let chunk = out[a..b].to_vec();
                let at = rng.below(out.len());
                out.splice(at..at, chunk);
            }
            4 if !out.is_empty() => {
                let a = rng.below(out.len());
                let b = (a + 1 + rng.below(16)).min(out.len());
                out.drain(a..b);
            }
            5 if !other.is_empty() => {
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            6 if out.len() >= 4 => {
                const INTERESTING: [u32; 8] = [0, 1, 0x7f, 0xff, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 348];
                let i = rng.below(out.len() - 3);
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                out[i..i + 4].copy_from_slice(&v);
            }
            _ => {
                let at = rng.below(out.len() + 1);
                let extra: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.below(256) as u8).collect();
                out.splice(at..at, extra);
            }
        }
    }
    out
}

pub fn run(args: &FuzzArgs) -> anyhow::Result<()> {
    let root = repo().canonicalize()?;
    make_seeds(&root)?;
    let seconds = args.seconds.unwrap_or(if args.quick { 2 } else { 60 });
    let wanted: Option<Vec<String>> = args
        .targets
        .as_ref()
        .map(|t| t.split(',').map(|s| s.trim().to_string()).collect());
    let all = targets();
    if let Some(w) = &wanted
        && let Some(bad) = w.iter().find(|n| !all.iter().any(|t| t.name == n.as_str()))
    {
        anyhow::bail!(
            "unknown fuzz target '{bad}': {}",
            all.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        );
    }
    // Panics are the signal; keep their messages off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let scratch = scratch();
    let mut crashes_total = 0;
    for target in all
        .iter()
        .filter(|t| wanted.as_ref().is_none_or(|w| w.iter().any(|n| n == t.name)))
    {
        let seeds: Vec<Vec<u8>> = target
            .seeds
            .iter()
            .map(|s| std::fs::read(root.join(s)).map_err(|e| anyhow::anyhow!("seed {s}: {e}")))
            .collect::<Result<_, _>>()?;
        let mut rng =
            Rng::new(args.seed).fork(target.name.len() as u64 * 7919 + target.name.as_bytes()[0] as u64);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let (mut executions, mut crashes) = (0u64, 0u64);
        let crash_dir = root.join("target/fuzz-crashes").join(target.name);
        // The unmutated seeds first: they must parse without panicking too.
        let mut queue: Vec<Vec<u8>> = seeds.clone();
        while Instant::now() < deadline || !queue.is_empty() {
            let input = match queue.pop() {
                Some(seed) => seed,
                None => {
                    let base = &seeds[rng.below(seeds.len())];
                    let other = &seeds[rng.below(seeds.len())];
                    mutate(base, other, &mut rng)
                }
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| (target.parse)(&input, scratch)));
            executions += 1;
            if outcome.is_err() {
                crashes += 1;
                std::fs::create_dir_all(&crash_dir)?;
                let name = format!("crash-{:016x}", fxhash(&input));
                std::fs::write(crash_dir.join(name), &input)?;
            }
        }
        crashes_total += crashes;
        println!(
            "{}",
            json!({"target": target.name, "seconds": seconds, "executions": executions, "crashes": crashes})
        );
    }
    let _ = std::fs::remove_dir_all(scratch);
    let _ = std::panic::take_hook();
    if crashes_total > 0 {
        anyhow::bail!("{crashes_total} crashing inputs saved under target/fuzz-crashes/");
    }
    Ok(())
}

/// A small stable hash to name crash files.
fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
