//! Loader throughput benchmark for `cargo xtask bench`: decoded + augmented images per
//! second through the real [`Loader`] (PNG decode → RandomResizedCrop to 224 → flip →
//! 3 channels → ImageNet normalisation → batch), on synthetic RGB PNGs written to a
//! temporary folder so the number does not depend on what data happens to be around.
//! The target: ≥ 4× what a ViT-B/16 training step consumes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ept_backend::Rng;
use image::{ImageBuffer, Rgb};

use crate::error::DataError;
use crate::loader::{Loader, LoaderOptions};
use crate::sample::{Sample, Target};
use crate::transform::Pipeline;

/// Benchmark settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderBenchOptions {
    /// Distinct images written (each is loaded once per epoch).
    pub images: usize,
    /// Side of the synthetic source images (MedFMC tiles are a few hundred to 2000+ px).
    pub source_size: usize,
    /// Output side (224 for ViT-B/16).
    pub size: usize,
    pub threads: usize,
    pub batch_size: usize,
    /// Timed epochs after one warm-up epoch.
    pub epochs: u64,
}

impl Default for LoaderBenchOptions {
    fn default() -> Self {
        LoaderBenchOptions {
            images: 64,
            source_size: 512,
            size: 224,
            threads: 2,
            batch_size: 8,
            epochs: 2,
        }
    }
}

/// A smooth random RGB image (gradients + noise), so PNG compression is realistic.
fn synthetic_png(side: usize, rng: &mut Rng) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    let (fx, fy) = (rng.uniform(0.01, 0.05), rng.uniform(0.01, 0.05));
    ImageBuffer::from_fn(side as u32, side as u32, |x, y| {
        let base = ((x as f64 * fx).sin() + (y as f64 * fy).cos()) * 60.0 + 128.0;
        let n = (rng.normal() * 12.0).clamp(-40.0, 40.0);
        let v = |o: f64| (base + n + o).clamp(0.0, 255.0) as u8;
        Rgb([v(0.0), v(-20.0), v(15.0)])
    })
}

/// Removes the temporary folder even on early return.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Decoded + augmented images per second through the training pipeline.
pub fn loader_throughput(opts: &LoaderBenchOptions) -> Result<f64, DataError> {
    if opts.images == 0 || opts.epochs == 0 || opts.source_size == 0 {
        return Err(DataError::Invalid(
            "loader bench: images, epochs and source_size must be positive".into(),
        ));
    }
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = TempDir(std::env::temp_dir().join(format!("ept-data-bench-{}-{run}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| DataError::io(&dir.0, e))?;
    let mut rng = Rng::new(2024);
    let mut samples = Vec::with_capacity(opts.images);
    for i in 0..opts.images {
        let path = dir.0.join(format!("img{i:04}.png"));
        synthetic_png(opts.source_size, &mut rng)
            .save(&path)
            .map_err(|e| DataError::Decode {
                path: path.clone(),
                message: e.to_string(),
            })?;
        samples.push(Sample {
            path,
            id: format!("img{i:04}.png"),
            target: Target::Single(i % 2),
            group: None,
        });
    }
    let loader = Loader::new(
        samples,
        2,
        Pipeline::medfmc_train(opts.size),
        LoaderOptions {
            batch_size: opts.batch_size.max(1),
            shuffle: true,
            drop_last: false,
            seed: 0,
            threads: opts.threads,
            prefetch: 2,
        },
    )?;
    let run_epoch = |epoch: u64| -> Result<usize, DataError> {
        let mut n = 0;
        for batch in loader.epoch(epoch) {
            n += batch?.len();
        }
        Ok(n)
    };
    run_epoch(0)?;
    let start = Instant::now();
    let mut n = 0;
    for epoch in 1..=opts.epochs {
        n += run_epoch(epoch)?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
