//! Intensity windowing: clip to `[min, max]` and map linearly to `[-1, 1]` — the usual
//! CT preprocessing (a Hounsfield window) that also suits MRI with a fitting range.
//!
//! ```toml
//! window = { min = -1000.0, max = 1000.0 }   # CT default
//! ```

use serde::{Deserialize, Serialize};

use super::Volume;
use crate::error::DataError;

/// Clip to `[min, max]`, then `min → -1`, `max → 1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntensityWindow {
    pub min: f32,
    pub max: f32,
}

impl Default for IntensityWindow {
    /// A wide CT window: −1000 HU (air) to 1000 HU (dense bone).
    fn default() -> Self {
        IntensityWindow {
            min: -1000.0,
            max: 1000.0,
        }
    }
}

impl IntensityWindow {
    /// Fails unless both ends are finite and `min < max`.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.min.is_finite() && self.max.is_finite() && self.min < self.max {
            Ok(())
        } else {
            Err(DataError::Invalid(format!(
                "intensity window [{}, {}] must be finite with min < max",
                self.min, self.max
            )))
        }
    }

    /// One value, windowed.
    #[inline]
    pub fn map(&self, v: f32) -> f32 {
        let t = (v.clamp(self.min, self.max) - self.min) / (self.max - self.min);
        2.0 * t - 1.0
    }

    /// Window every voxel in place.
    pub fn apply(&self, volume: &mut Volume<f32>) -> Result<(), DataError> {
        self.validate()?;
        volume.data.iter_mut().for_each(|v| *v = self.map(*v));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_and_maps_to_minus_one_one() {
        let w = IntensityWindow::default();
        assert_eq!(w.map(-3000.0), -1.0);
        assert_eq!(w.map(-1000.0), -1.0);
        assert_eq!(w.map(0.0), 0.0);
        assert_eq!(w.map(500.0), 0.5);
        assert_eq!(w.map(1000.0), 1.0);
        assert_eq!(w.map(4000.0), 1.0);
    }

    #[test]
    fn invalid_windows_and_unknown_keys_are_refused() {
        assert!(IntensityWindow { min: 1.0, max: 1.0 }.validate().is_err());
        assert!(
            IntensityWindow {
                min: f32::NAN,
                max: 1.0
            }
            .validate()
            .is_err()
        );
        let e = serde_json::from_str::<IntensityWindow>(r#"{"min": 0, "max": 1, "mx": 2}"#).unwrap_err();
        assert!(e.to_string().contains("mx"), "{e}");
    }
}
