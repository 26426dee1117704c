//! Visual Prompting (Bahng et al. 2022; reference `prompters.py` `PadPrompter`): a
//! learnable frame `pad` pixels wide, zero inside, added to the normalised image.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use crate::model::TuningError;

#[derive(Module, Debug)]
pub struct PadPrompt {
    /// `[1, C, pad, S]`
    pub pad_up: Param<Tensor<4>>,
    /// `[1, C, pad, S]`
    pub pad_down: Param<Tensor<4>>,
    /// `[1, C, S − 2·pad, pad]`
    pub pad_left: Param<Tensor<4>>,
    /// `[1, C, S − 2·pad, pad]`
    pub pad_right: Param<Tensor<4>>,
}

impl PadPrompt {
    /// Standard-normal init, as the reference (`torch.randn`).
    pub fn new(pad: usize, channels: usize, size: usize, device: &Device) -> Result<Self, TuningError> {
        if pad == 0 || 2 * pad >= size {
            return Err(TuningError::Invalid(format!(
                "vp: pad {pad} must be between 1 and {} for {size}-px images",
                (size - 1) / 2
            )));
        }
        let inner = size - 2 * pad;
        let param = |shape: [usize; 4]| {
            Param::from_tensor(Tensor::random(shape, Distribution::Normal(0.0, 1.0), device))
        };
        Ok(PadPrompt {
            pad_up: param([1, channels, pad, size]),
            pad_down: param([1, channels, pad, size]),
            pad_left: param([1, channels, inner, pad]),
            pad_right: param([1, channels, inner, pad]),
        })
    }

    /// `images + frame`.
    pub fn pixels(&self, images: Tensor<4>) -> Tensor<4> {
        let [_, channels, inner, _] = self.pad_left.dims();
        let center = Tensor::zeros([1, channels, inner, inner], &images.device());
        let middle = Tensor::cat(vec![self.pad_left.val(), center, self.pad_right.val()], 3);
        let frame = Tensor::cat(vec![self.pad_up.val(), middle, self.pad_down.val()], 2);
        images + frame
    }
}
