//! Loss curves of a pre-training run (`loss_curves.png`): total, segmentation and
//! weighted CPA loss per step, each scaled to its own maximum so all three are visible.

use std::path::Path;

use ept_train::TrainError;
use ept_train::plot::Canvas;

pub fn write_loss_curves(log: &Path, png: &Path) -> Result<(), TrainError> {
    let text = std::fs::read_to_string(log).map_err(|e| TrainError::run(log, e))?;
    let mut series: [Vec<f64>; 3] = Default::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["event"] != "step" {
            continue;
        }
        for (s, key) in series.iter_mut().zip(["loss", "seg", "cpa"]) {
            s.push(v[key].as_f64().unwrap_or(f64::NAN));
        }
    }
    let mut canvas = Canvas::new(
        640,
        360,
        "CPA PRE-TRAINING: LOSS / MAX (BLACK TOTAL, BLUE SEG, RED CPA)",
    );
    let colours = [[0, 0, 0], [30, 90, 200], [200, 40, 40]];
    for (s, colour) in series.iter().zip(colours) {
        let max = s
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::MIN_POSITIVE, f64::max);
        let n = s.len().max(2) - 1;
        for (i, pair) in s.windows(2).enumerate() {
            canvas.line(
                i as f64 / n as f64,
                pair[0] / max,
                (i + 1) as f64 / n as f64,
                pair[1] / max,
                colour,
            );
        }
    }
    canvas.axes("STEP", "LOSS");
    canvas.save(png).map_err(|e| TrainError::run(png, e))
}
