//! The EMA teacher: after every student step, each teacher parameter becomes
//! `τ · θ_teacher + (1 − τ) · θ_student`, with separate τ for the prompt parameters
//! (pools and image→prompt biases) and the body. BatchNorm running statistics are not
//! averaged (as the reference: the teacher keeps its own).

use std::collections::HashMap;

use burn::tensor::TensorData;
use burn_store::{ModuleSnapshot, bridge};
use ept_backbones::unet::Punet;
pub use ept_backbones::unet::is_prompt_path;

fn is_buffer(path: &str) -> bool {
    path.ends_with(".running_mean") || path.ends_with(".running_var")
}

/// EMA rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmaRates {
    pub body: f64,
    pub prompts: f64,
}

/// The teacher after one EMA update towards `student` (same architecture).
pub fn ema_update(mut teacher: Punet, student: &Punet, rates: EmaRates) -> Result<Punet, String> {
    let student_values: HashMap<String, TensorData> = student
        .collect(None, None, false)
        .into_iter()
        .filter(|s| !is_buffer(&s.name))
        .map(|s| {
            let name = s.name.clone();
            bridge::into_data(s).map(|d| (name, d)).map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let mut updated = Vec::new();
    for snapshot in teacher.collect(None, None, false) {
        let name = snapshot.name.clone();
        let Some(s) = student_values.get(&name) else {
            continue;
        };
        let id = snapshot.param_id;
        let t = bridge::into_data(snapshot).map_err(|e| e.to_string())?;
        let tau = if is_prompt_path(&name) {
            rates.prompts
        } else {
            rates.body
        } as f32;
        let (tv, sv) = (
            t.try_to_vec::<f32>().map_err(|e| format!("{name}: {e:?}"))?,
            s.try_to_vec::<f32>().map_err(|e| format!("{name}: {e:?}"))?,
        );
        let blended: Vec<f32> = tv
            .iter()
            .zip(&sv)
            .map(|(t, s)| tau * t + (1.0 - tau) * s)
            .collect();
        updated.push(bridge::from_data(
            TensorData::new(blended, t.shape().to_vec()),
            name,
            id,
        ));
    }
    let result = teacher.apply(updated, None, None, false);
    match result.errors.first() {
        Some(e) => Err(e.to_string()),
        None => Ok(teacher),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use ept_backbones::unet::PunetConfig;

    fn values(model: &Punet) -> HashMap<String, Vec<f32>> {
        model
            .collect(None, None, false)
            .into_iter()
            .map(|s| {
                (
                    s.name.clone(),
                    bridge::into_data(s).unwrap().try_to_vec::<f32>().unwrap(),
                )
            })
            .collect()
    }

    /// Every averaged tensor equals `τ t + (1 − τ) s` element by element (τ by group);
    /// BatchNorm statistics keep the teacher's values.
    #[test]
    fn update_equals_the_formula() {
        let device = Device::flex();
        let config = PunetConfig {
            channels: vec![8, 16],
            heads: 2,
            window: Some([4, 4, 1]),
            tokens_per_class: 2,
            class_slots: 3,
            ..PunetConfig::default()
        };
        let teacher = config.init(&device).unwrap();
        let student = config.init(&device).unwrap();
        let (t0, s0) = (values(&teacher), values(&student));
        let rates = EmaRates {
            body: 0.99,
            prompts: 0.9,
        };
        let after = values(&ema_update(teacher, &student, rates).unwrap());
        let mut prompts = 0;
        for (name, new) in &after {
            let tau = if is_prompt_path(name) {
                rates.prompts
            } else {
                rates.body
            } as f32;
            prompts += is_prompt_path(name) as usize;
            for ((n, t), s) in new.iter().zip(&t0[name]).zip(&s0[name]) {
                let expected = if is_buffer(name) {
                    *t
                } else {
                    tau * t + (1.0 - tau) * s
                };
                assert_eq!(*n, expected, "{name}");
            }
        }
        assert!(prompts > 0);
    }
}
