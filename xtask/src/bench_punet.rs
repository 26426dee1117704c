//! `cargo xtask bench --groups punet`: one PUNet 2-D training step (reference
//! architecture, batch 4, 224 × 224 slices, focal loss, AdamW) for `prompting` (frozen
//! body, one class's prompts train) and `full`, as JSON lines like the ViT benches.

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use ept_backbones::unet::PunetConfig;
use ept_backend::DeviceSpec;
use ept_train::seg::loss::focal_loss;
use ept_tuning::{SegMethodConfig, TunedPunet};
use serde_json::json;

const BATCH: usize = 4;
const SIZE: usize = 224;

/// Median seconds of one training step of `method`.
fn step_seconds(spec: &DeviceSpec, method: &SegMethodConfig, reps: usize) -> anyhow::Result<f64> {
    let device = spec.autodiff_device();
    let config = PunetConfig {
        head: method.head(),
        ..PunetConfig::reference_2d()
    };
    let punet = config.init(&device).map_err(anyhow::Error::msg)?;
    let mut model = Some(TunedPunet::new(punet, method, vec![1], &device)?);
    let images = Tensor::<5>::random([BATCH, 1, SIZE, SIZE, 1], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<i64> = (0..BATCH * SIZE * SIZE)
        .map(|i| (i / SIZE).is_multiple_of(3) as i64)
        .collect();
    let labels = Tensor::<4, Int>::from_data(TensorData::new(labels, [BATCH, SIZE, SIZE, 1]), &device);
    let mut optim = AdamWConfig::new().with_weight_decay(1e-2).init();
    Ok(super::bench::median_seconds(reps, || {
        let current = model.take().expect("model present between steps");
        let loss = focal_loss(current.forward(images.clone()), labels.clone(), 4.0);
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        let next = optim.step(1e-3, current, grads);
        // Read one trained value back so the step has finished when the clock stops.
        let _ = next
            .punet
            .head_prompts
            .as_ref()
            .map(|p| p.slots[1].val().into_data());
        model = Some(next);
    }))
}

pub fn punet_benches(spec: &DeviceSpec, reps: usize, threads: usize, json_only: bool) -> anyhow::Result<()> {
    for method in [SegMethodConfig::Prompting, SegMethodConfig::Full] {
        let seconds = step_seconds(spec, &method, reps)?;
        let line = json!({"bench": "punet_train_step", "model": "punet_2d_reference", "method": method.name(),
            "backend": spec.to_string(), "batch": BATCH, "image_size": SIZE, "threads": threads,
            "median_s": seconds, "images_per_s": BATCH as f64 / seconds, "impl": "ept"});
        println!("{line}");
        if !json_only {
            eprintln!(
                "  punet_train_step {:<14} {:<8} batch {BATCH}  {seconds:>8.3} s  {:>8.2} slices/s",
                method.name(),
                spec.to_string(),
                BATCH as f64 / seconds
            );
        }
    }
    Ok(())
}
