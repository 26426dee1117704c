//! LoRA (Hu et al. 2021) on W_q and W_v of the fused qkv projection, peft's
//! conventions: `ΔW = B·A · alpha/r`, A kaiming-uniform, B zero, optional dropout on
//! the LoRA input. The update is added to the `qkv` output as `[Δq, 0, Δv]`.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// `x ↦ b(a(x))`, A: D → r, B: r → D, no biases.
#[derive(Module, Debug)]
pub struct LowRank {
    pub a: Linear,
    pub b: Linear,
}

impl LowRank {
    fn new(dim: usize, rank: usize, device: &Device) -> Self {
        LowRank {
            // torch's default Linear init = kaiming_uniform(a=√5) = burn's default.
            a: LinearConfig::new(dim, rank).with_bias(false).init(device),
            b: LinearConfig::new(rank, dim)
                .with_bias(false)
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.b.forward(self.a.forward(x))
    }
}

#[derive(Module, Debug)]
pub struct LoraBlock {
    pub lora_q: LowRank,
    pub lora_v: LowRank,
}

#[derive(Module, Debug)]
pub struct LoraSet {
    pub blocks: Vec<LoraBlock>,
    pub scaling: f64,
    pub dropout: Dropout,
}

impl LoraSet {
    pub fn new(depth: usize, dim: usize, rank: usize, alpha: f64, dropout: f64, device: &Device) -> Self {
        LoraSet {
            blocks: (0..depth)
                .map(|_| LoraBlock {
                    lora_q: LowRank::new(dim, rank, device),
                    lora_v: LowRank::new(dim, rank, device),
                })
                .collect(),
            scaling: alpha / rank as f64,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// `[Δq, 0, Δv]` for block `block`, `[B, N, 3D]`.
    pub fn qkv_delta(&self, block: usize, normed: &Tensor<3>) -> Option<Tensor<3>> {
        let lora = self.blocks.get(block)?;
        let x = self.dropout.forward(normed.clone());
        let dq = lora.lora_q.forward(x.clone()).mul_scalar(self.scaling);
        let dv = lora.lora_v.forward(x).mul_scalar(self.scaling);
        let zeros = dq.zeros_like();
        Some(Tensor::cat(vec![dq, zeros, dv], 2))
    }
}
