//! Learning-rate schedules as pure functions of the optimizer step, so a resumed run
//! recomputes exactly the rates of an uninterrupted one.

use std::f64::consts::PI;

use crate::config::ScheduleConfig;

/// Learning rate at `step` (0-based) of `total` steps for base rate `base`.
pub fn learning_rate(schedule: &ScheduleConfig, base: f64, step: usize, total: usize) -> f64 {
    let total = total.max(1);
    let cosine =
        |progress: f64, low: f64| low + 0.5 * (base - low) * (1.0 + (PI * progress.clamp(0.0, 1.0)).cos());
    match schedule {
        ScheduleConfig::Constant => base,
        ScheduleConfig::Cosine => cosine(step as f64 / total as f64, 0.0),
        ScheduleConfig::CosineWarmup { warmup_steps, min_lr } => {
            if step < *warmup_steps {
                base * (step + 1) as f64 / *warmup_steps as f64
            } else {
                let span = (total - warmup_steps.min(&total)).max(1);
                cosine((step - warmup_steps) as f64 / span as f64, *min_lr)
            }
        }
        ScheduleConfig::OneCycle { pct_start } => {
            // torch OneCycleLR defaults: start at base/25, end at base/(25·1e4), cosine annealing.
            let peak_step = ((total as f64 * pct_start) as usize).max(1);
            let (initial, last) = (base / 25.0, base / 25.0 / 1e4);
            if step < peak_step {
                let p = step as f64 / peak_step as f64;
                initial + 0.5 * (base - initial) * (1.0 - (PI * p).cos())
            } else {
                let p = (step - peak_step) as f64 / (total - peak_step).max(1) as f64;
                last + 0.5 * (base - last) * (1.0 + (PI * p.min(1.0)).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_the_schedules() {
        let cos = ScheduleConfig::Cosine;
        assert_eq!(learning_rate(&cos, 1.0, 0, 10), 1.0);
        assert!((learning_rate(&cos, 1.0, 5, 10) - 0.5).abs() < 1e-12);
        let warm = ScheduleConfig::CosineWarmup {
            warmup_steps: 4,
            min_lr: 0.0,
        };
        assert!((learning_rate(&warm, 1.0, 1, 20) - 0.5).abs() < 1e-12);
        let one = ScheduleConfig::OneCycle { pct_start: 0.3 };
        assert!((learning_rate(&one, 1.0, 30, 100) - 1.0).abs() < 1e-12);
        assert!(learning_rate(&one, 1.0, 99, 100) < 0.01);
    }
}
