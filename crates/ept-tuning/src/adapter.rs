//! AdaptFormer (Chen et al. 2022; reference `custom_modules.py`, ffn_option "parallel"):
//! a bottleneck `up(dropout(relu(down(x)))) · scale` computed from the residual stream
//! after attention and added beside the MLP. Init as the reference's "lora" option:
//! `down` kaiming-uniform, `up` and biases zero.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::relu};

#[derive(Module, Debug)]
pub struct Bottleneck {
    pub down: Linear,
    pub up: Linear,
}

#[derive(Module, Debug)]
pub struct AdapterSet {
    pub blocks: Vec<Bottleneck>,
    pub scale: f64,
    pub dropout: Dropout,
}

impl AdapterSet {
    pub fn new(
        depth: usize,
        dim: usize,
        bottleneck: usize,
        scale: f64,
        dropout: f64,
        device: &Device,
    ) -> Self {
        AdapterSet {
            blocks: (0..depth)
                .map(|_| Bottleneck {
                    down: LinearConfig::new(dim, bottleneck).init(device),
                    up: LinearConfig::new(bottleneck, dim)
                        .with_initializer(Initializer::Zeros)
                        .init(device),
                })
                .collect(),
            scale,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    pub fn mlp_parallel(&self, block: usize, residual: &Tensor<3>) -> Option<Tensor<3>> {
        let adapter = self.blocks.get(block)?;
        let hidden = self.dropout.forward(relu(adapter.down.forward(residual.clone())));
        Some(adapter.up.forward(hidden).mul_scalar(self.scale))
    }
}
