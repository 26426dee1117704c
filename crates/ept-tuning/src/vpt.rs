//! Visual Prompt Tuning (Jia et al. 2022; reference `KMnP/vpt` `vit_prompt/vit.py`).
//! `L` learnable tokens are inserted after CLS before block 0 (no position embedding);
//! deep VPT replaces them with fresh tokens before every later block, shallow VPT
//! carries the first ones through. Only CLS reaches the head.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

#[derive(Module, Debug)]
pub struct VptPrompt {
    /// `[depth, L, D]` when deep, `[1, L, D]` when shallow.
    pub prompt: Param<Tensor<3>>,
}

impl VptPrompt {
    /// Xavier-uniform init as the reference: bound √(6 / (3·patch² + D)).
    pub fn new(length: usize, deep: bool, depth: usize, dim: usize, patch: usize, device: &Device) -> Self {
        let bound = (6.0 / (3 * patch * patch + dim) as f64).sqrt();
        let layers = if deep { depth } else { 1 };
        VptPrompt {
            prompt: Param::from_tensor(Tensor::random(
                [layers, length, dim],
                Distribution::Uniform(-bound, bound),
                device,
            )),
        }
    }

    pub fn length(&self) -> usize {
        self.prompt.dims()[1]
    }

    /// Insert (block 0) or replace (later blocks, deep) the prompt tokens.
    pub fn block_input(&self, block: usize, x: Tensor<3>) -> Tensor<3> {
        let [layers, length, dim] = self.prompt.dims();
        if block >= layers {
            return x;
        }
        let [batch, tokens, _] = x.dims();
        let prompt = self.prompt.val().narrow(0, block, 1).expand([batch, length, dim]);
        let cls = x.clone().narrow(1, 0, 1);
        let skip = if block == 0 { 1 } else { 1 + length };
        let rest = x.narrow(1, skip, tokens - skip);
        Tensor::cat(vec![cls, prompt, rest], 1)
    }
}
