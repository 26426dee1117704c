//! The classification head every method trains on the CLS feature after the final
//! norm: one linear layer, or the MLP-3 baseline (two hidden layers of the embedding
//! width with ReLU).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::relu};

/// A stack of linear layers with ReLU between them.
#[derive(Module, Debug)]
pub struct ClassHead {
    pub layers: Vec<Linear>,
}

impl ClassHead {
    /// `depth` linear layers (1 = linear head, 3 = MLP-3) from `dim` features to `classes`.
    pub fn new(dim: usize, classes: usize, depth: usize, device: &Device) -> Self {
        let layers = (0..depth)
            .map(|i| {
                let out = if i + 1 == depth { classes } else { dim };
                LinearConfig::new(dim, out).init(device)
            })
            .collect();
        ClassHead { layers }
    }

    /// Wrap an existing linear layer (e.g. a checkpoint's head).
    pub fn from_linear(linear: Linear) -> Self {
        ClassHead { layers: vec![linear] }
    }

    pub fn num_classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.weight.dims()[1])
    }

    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        self.layers.iter().enumerate().fold(features, |x, (i, layer)| {
            let y = layer.forward(x);
            if i < last { relu(y) } else { y }
        })
    }
}
