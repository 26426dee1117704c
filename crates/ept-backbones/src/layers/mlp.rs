//! The transformer feed-forward block: `fc2(gelu(fc1(x)))`, timm's `Mlp` with exact
//! (erf) GELU. Field names equal timm's keys.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::gelu};

use super::timm_linear_init;

#[derive(Config, Debug)]
pub struct MlpConfig {
    pub dim: usize,
    pub hidden: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl MlpConfig {
    pub fn init(&self, device: &Device) -> Mlp {
        let linear = |i, o| {
            LinearConfig::new(i, o)
                .with_initializer(timm_linear_init())
                .init(device)
        };
        Mlp {
            fc1: linear(self.dim, self.hidden),
            fc2: linear(self.hidden, self.dim),
        }
    }
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}
