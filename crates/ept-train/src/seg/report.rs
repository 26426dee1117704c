//! `report.md` of a segmentation run: the method, trainable parameters, and Dice per
//! class and overall — validation before training, after training, and on the test split.

use std::fmt::Write;
use std::path::Path;

use super::config::SegRunConfig;
use super::evaluate::SegEvalResult;
use crate::error::TrainError;

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |d| format!("{:.2}", 100.0 * d))
}

#[allow(clippy::too_many_arguments)]
pub fn write_seg_report(
    run_dir: &Path,
    config: &SegRunConfig,
    class_names: &[String],
    classes: &[usize],
    (trainable, total): (usize, usize),
    val_before: Option<&SegEvalResult>,
    val: Option<&SegEvalResult>,
    test: Option<&SegEvalResult>,
) -> Result<(), TrainError> {
    let mut md = String::new();
    let _ = writeln!(md, "# Segmentation run: {}\n", config.method.name());
    let _ = writeln!(
        md,
        "Trainable parameters: {trainable} of {total} ({:.3} %). Classes: {}.\n",
        100.0 * trainable as f64 / total.max(1) as f64,
        classes
            .iter()
            .map(|c| class_names[*c].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "Dice (%), per-volume, mean over volumes where the class is present:\n"
    );
    let _ = write!(md, "| split | mean |");
    for c in classes {
        let _ = write!(md, " {} |", class_names[*c]);
    }
    let _ = write!(md, "\n| --- | ---: |");
    for _ in classes {
        let _ = write!(md, " ---: |");
    }
    md.push('\n');
    for (name, result) in [("val, untrained", val_before), ("val", val), ("test", test)] {
        if let Some(r) = result {
            let _ = write!(md, "| {name} | {} |", pct(r.mean_dice));
            for d in &r.per_class {
                let _ = write!(md, " {} |", pct(*d));
            }
            md.push('\n');
        }
    }
    if test.is_some() {
        let _ = writeln!(
            md,
            "\nTest predictions: `predictions/*.nii.gz` (source grid and header); overlays: `overlays/*.png` (image | truth | prediction)."
        );
    }
    let path = run_dir.join("report.md");
    ept_backend::fs::write_atomic(&path, md.as_bytes()).map_err(|e| TrainError::write(&path, e))
}
