//! Range checks of numeric settings: serde reads any number, so a negative learning
//! rate or a temperature of 0 is refused here, naming its key, instead of training
//! to a NaN or to a silently meaningless result.

use std::path::Path;

use super::OptimizerConfig;
use crate::error::TrainError;

/// The values a numeric setting may take (all finite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `> 0`
    Positive,
    /// `>= 0`
    NonNegative,
    /// `[0, 1]`
    Fraction,
    /// `[0, 1)`
    BelowOne,
}

impl Range {
    fn holds(self, value: f64) -> bool {
        value.is_finite()
            && match self {
                Range::Positive => value > 0.0,
                Range::NonNegative => value >= 0.0,
                Range::Fraction => (0.0..=1.0).contains(&value),
                Range::BelowOne => (0.0..1.0).contains(&value),
            }
    }

    fn describe(self) -> &'static str {
        match self {
            Range::Positive => "a finite number above 0",
            Range::NonNegative => "a finite number of at least 0",
            Range::Fraction => "between 0 and 1",
            Range::BelowOne => "at least 0 and below 1",
        }
    }
}

/// One setting to check: its dotted key, its value (`None` when unset) and its range.
pub type RangeCheck = (String, Option<f64>, Range);

/// The first setting outside its range, as a config error naming the key and `path`.
pub fn check_ranges(path: &Path, checks: impl IntoIterator<Item = RangeCheck>) -> Result<(), TrainError> {
    for (key, value, range) in checks {
        if let Some(value) = value
            && !range.holds(value)
        {
            return Err(TrainError::config(
                path,
                format!("{key} = {value} must be {}", range.describe()),
            ));
        }
    }
    Ok(())
}

/// The checks every `[train]` table shares: `train.optimizer` and `train.grad_clip_norm`.
pub fn optimizer_checks(optimizer: &OptimizerConfig, grad_clip_norm: Option<f32>) -> Vec<RangeCheck> {
    let mut checks = optimizer.range_checks("train.optimizer");
    checks.push((
        "train.grad_clip_norm".into(),
        grad_clip_norm.map(f64::from),
        Range::Positive,
    ));
    checks
}

impl OptimizerConfig {
    /// The optimizer's settings to check, under the key `prefix` (`train.optimizer`).
    pub fn range_checks(&self, prefix: &str) -> Vec<RangeCheck> {
        let key = |name: &str| format!("{prefix}.{name}");
        match self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => vec![
                (key("lr"), Some(*lr), Range::Positive),
                (key("momentum"), Some(*momentum), Range::BelowOne),
                (key("weight_decay"), Some(*weight_decay), Range::NonNegative),
            ],
            OptimizerConfig::Adamw { lr, weight_decay } => vec![
                (key("lr"), Some(*lr), Range::Positive),
                (key("weight_decay"), Some(*weight_decay), Range::NonNegative),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_range_refuses_what_it_excludes_and_names_the_key() {
        let path = Path::new("run.toml");
        let refused = |key: &str, value: f64, range: Range| {
            check_ranges(path, [(key.to_string(), Some(value), range)])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused("train.optimizer.lr", -1.0, Range::Positive),
            "config run.toml: train.optimizer.lr = -1 must be a finite number above 0"
        );
        assert!(refused("a", 0.0, Range::Positive).contains("a = 0"));
        assert!(refused("a", f64::NAN, Range::NonNegative).contains("a = NaN"));
        assert!(refused("a", 1.5, Range::Fraction).contains("between 0 and 1"));
        assert!(refused("a", 1.0, Range::BelowOne).contains("below 1"));
        for (value, range) in [
            (1e-9, Range::Positive),
            (0.0, Range::NonNegative),
            (1.0, Range::Fraction),
            (0.0, Range::BelowOne),
        ] {
            check_ranges(path, [("a".to_string(), Some(value), range)]).unwrap();
        }
        check_ranges(path, [("a".to_string(), None, Range::Positive)]).unwrap();
    }
}
