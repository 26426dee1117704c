//! `ept-cli train` for segmentation configs (`task = "segmentation"`): run a PUNet
//! adaptation and print the Dice table.

use ept_backend::DeviceSpec;
use ept_train::TrainOptions;
use ept_train::seg::{SegRunConfig, train_segmentation};

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |d| format!("{:.2}", 100.0 * d))
}

pub fn train(config: &SegRunConfig, device: &DeviceSpec, options: &TrainOptions) -> anyhow::Result<()> {
    let summary = train_segmentation(config, device, options)?;
    println!(
        "run {}: {}, {} trainable of {} parameters ({}), {:.1} s",
        summary.run_dir.display(),
        crate::epochs(summary.epochs_done),
        summary.trainable_params,
        summary.total_params,
        config.method.name(),
        summary.seconds
    );
    for (split, result) in [
        ("val (untrained)", &summary.val_before),
        ("val", &summary.val),
        ("test", &summary.test),
    ] {
        if let Some(r) = result {
            let per_class: Vec<String> = r.per_class.iter().map(|d| pct(*d)).collect();
            println!(
                "{split}: mean Dice {} % (per class: {})",
                pct(r.mean_dice),
                per_class.join(", ")
            );
        }
    }
    println!("report: {}", summary.run_dir.join("report.md").display());
    Ok(())
}
