//! PUNet's stages: the residual conv stem, encoder blocks (pre-activation conv, window
//! attention, 1×1 residual), decoder blocks (up-sample, concatenate the skip, conv,
//! window attention) and the SIA block shared by both — a plain and a shifted window
//! sub-block, each with its own relative-position bias and (in prompt-able models) its
//! own class-prompt pool and image→prompt bias.

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor};

use super::attention::{AttentionBias, PromptBias, PromptPool, WindowAttention};
use super::config::PunetConfig;
use super::conv::{ConvNd, batch_norm, lrelu, upsample2};
use super::hooks::UnetHooks;
use super::window::WindowGeometry;

/// MONAI's `UnetResBlock` as the reference's stem: two bias-free convs with BN and
/// LeakyReLU, and a strided 1×1 projection shortcut.
#[derive(Module, Debug)]
pub struct ResStem {
    pub conv1: ConvNd,
    pub norm1: BatchNorm,
    pub conv2: ConvNd,
    pub norm2: BatchNorm,
    pub conv3: ConvNd,
    pub norm3: BatchNorm,
}

impl ResStem {
    pub fn new(config: &PunetConfig, device: &Device) -> Self {
        let (c_in, c) = (config.in_channels, config.channels[0]);
        let (k, s) = (config.kernel(), config.stride());
        ResStem {
            conv1: ConvNd::new(c_in, c, k, s, false, device),
            norm1: batch_norm(c, device),
            conv2: ConvNd::new(c, c, k, [1, 1, 1], false, device),
            norm2: batch_norm(c, device),
            conv3: ConvNd::new(c_in, c, [1, 1, 1], s, false, device),
            norm3: batch_norm(c, device),
        }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let main = lrelu(self.norm1.forward(self.conv1.forward(x.clone())));
        let main = self.norm2.forward(self.conv2.forward(main));
        lrelu(main + self.norm3.forward(self.conv3.forward(x)))
    }
}

/// The prompt parameters of one SIA block (absent in fixed-head models).
#[derive(Module, Debug)]
pub struct SiaPrompts {
    /// One pool per sub-block.
    pub pools: Vec<PromptPool>,
    /// One image→prompt bias per sub-block.
    pub bias: Vec<PromptBias>,
}

/// Two window-attention sub-blocks (plain, shifted).
#[derive(Module, Debug)]
pub struct SiaBlock {
    pub attention: Vec<WindowAttention>,
    pub position_bias: Vec<AttentionBias>,
    pub prompts: Option<SiaPrompts>,
    pub window: [usize; 3],
    #[module(skip)]
    pub layout: super::config::WindowLayout,
}

impl SiaBlock {
    pub fn new(config: &PunetConfig, width: usize, device: &Device) -> Self {
        let window = config.window();
        let prompt_able = config.head == super::config::HeadKind::Similarity;
        SiaBlock {
            attention: (0..2)
                .map(|_| WindowAttention::new(width, config.heads, config.kv_from_queries, device))
                .collect(),
            position_bias: (0..2)
                .map(|_| AttentionBias::new(window, config.heads, config.bias_dim, device))
                .collect(),
            prompts: prompt_able.then(|| SiaPrompts {
                pools: (0..2)
                    .map(|_| PromptPool::new(config.class_slots, config.tokens_per_class, width, device))
                    .collect(),
                bias: (0..2)
                    .map(|_| {
                        PromptBias::new(
                            config.class_slots,
                            config.tokens_per_class,
                            config.heads,
                            config.bias_dim,
                            device,
                        )
                    })
                    .collect(),
            }),
            window,
            layout: config.window_layout,
        }
    }

    /// Run both sub-blocks on `[B, C, X, Y, Z]`; `classes` are the active foreground
    /// slots whose prompts join every window; `first_block` numbers the sub-blocks.
    pub fn forward(
        &self,
        x: Tensor<5>,
        classes: &[usize],
        hooks: &dyn UnetHooks,
        first_block: usize,
    ) -> Tensor<5> {
        let [batch, _, sx, sy, sz] = x.dims();
        let device = x.device();
        let mut x = x;
        for (sub, attention) in self.attention.iter().enumerate() {
            let geometry = WindowGeometry::new([sx, sy, sz], self.window, sub == 1, self.layout);
            let prompts = match (&self.prompts, classes.is_empty()) {
                (Some(p), false) => {
                    Some(attention.prompt_keys(p.pools[sub].tokens(classes), p.bias[sub].bias(classes)))
                }
                _ => None,
            };
            let prompt_count = prompts.as_ref().map_or(0, |p| p.keys.dims()[1]);
            let tokens = geometry.partition(x);
            let tokens = attention.forward(
                tokens,
                geometry.windows(),
                self.position_bias[sub].content(&geometry, &device),
                prompts.as_ref(),
                geometry.mask(prompt_count, &device),
                hooks,
                first_block + sub,
                &geometry.configured_rows(self.window),
            );
            x = geometry.merge(tokens, batch);
        }
        x
    }
}

/// Encoder stage: `SIA(conv(lrelu(BN(x)))) + conv_res(BN_res(x))`.
#[derive(Module, Debug)]
pub struct EncoderBlock {
    pub norm: BatchNorm,
    pub conv: ConvNd,
    pub norm_res: BatchNorm,
    pub conv_res: ConvNd,
    pub sia: SiaBlock,
}

impl EncoderBlock {
    pub fn new(config: &PunetConfig, c_in: usize, c_out: usize, stride: [usize; 3], device: &Device) -> Self {
        EncoderBlock {
            norm: batch_norm(c_in, device),
            conv: ConvNd::new(c_in, c_out, config.kernel(), stride, true, device),
            norm_res: batch_norm(c_in, device),
            conv_res: ConvNd::new(c_in, c_out, [1, 1, 1], stride, true, device),
            sia: SiaBlock::new(config, c_out, device),
        }
    }

    pub fn forward(
        &self,
        x: Tensor<5>,
        classes: &[usize],
        hooks: &dyn UnetHooks,
        first_block: usize,
    ) -> Tensor<5> {
        let main = self.conv.forward(lrelu(self.norm.forward(x.clone())));
        self.sia.forward(main, classes, hooks, first_block) + self.conv_res.forward(self.norm_res.forward(x))
    }
}

/// Decoder stage: up-sample, crop to the skip, `cat[up, skip]`, BN → LeakyReLU → conv, SIA.
#[derive(Module, Debug)]
pub struct DecoderBlock {
    pub norm_concat: BatchNorm,
    pub conv_concat: ConvNd,
    pub sia: SiaBlock,
    pub factor: [usize; 3],
}

impl DecoderBlock {
    pub fn new(config: &PunetConfig, c_in: usize, c_out: usize, device: &Device) -> Self {
        DecoderBlock {
            norm_concat: batch_norm(c_in + c_out, device),
            conv_concat: ConvNd::new(c_in + c_out, c_out, config.kernel(), [1, 1, 1], true, device),
            sia: SiaBlock::new(config, c_out, device),
            factor: config.stride(),
        }
    }

    pub fn forward(
        &self,
        x: Tensor<5>,
        skip: Tensor<5>,
        classes: &[usize],
        hooks: &dyn UnetHooks,
        first_block: usize,
    ) -> Tensor<5> {
        let up = crop_to(upsample2(x, self.factor), skip.dims());
        let merged = Tensor::cat(vec![up, skip], 1);
        let x = self.conv_concat.forward(lrelu(self.norm_concat.forward(merged)));
        self.sia.forward(x, classes, hooks, first_block)
    }
}

/// Keep the first `dims[2..]` voxels of each spatial axis.
pub fn crop_to(x: Tensor<5>, dims: [usize; 5]) -> Tensor<5> {
    let [b, c, ..] = x.dims();
    x.slice([0..b, 0..c, 0..dims[2], 0..dims[3], 0..dims[4]])
}
