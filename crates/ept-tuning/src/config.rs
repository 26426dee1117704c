//! The method registry: a serde-tagged [`MethodConfig`] read from TOML
//! (`method = "ept"` plus that method's options). Unknown methods and unknown keys are
//! errors that name them. Defaults follow the EPT paper's setups (REFERENCE.md §1).

use serde::{Deserialize, Serialize};

/// A tuning method and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// Every parameter trains.
    Full,
    /// Only the linear head on the CLS feature.
    Linear,
    /// The last `blocks` transformer blocks, the final norm and the head (Partial-1: blocks = 1).
    Partial {
        #[serde(default = "one")]
        blocks: usize,
    },
    /// A 3-layer MLP head (hidden width = embedding width), backbone frozen.
    Mlp3,
    /// All bias terms of the backbone (BitFit), plus the head.
    Bitfit,
    /// Low-rank updates of W_q and W_v inside the fused qkv projection.
    Lora {
        #[serde(default = "default_rank")]
        rank: usize,
        /// Scaling is `alpha / rank` (peft convention); default alpha = rank.
        #[serde(default)]
        alpha: Option<f64>,
        #[serde(default)]
        dropout: f64,
    },
    /// AdaptFormer: a parallel down–ReLU–up bottleneck beside each MLP.
    Adapter {
        /// Bottleneck = embed_dim / reduction (paper: r ∈ {1, 4, 8, 32, 64}).
        #[serde(default = "default_reduction")]
        reduction: usize,
        #[serde(default = "default_adapter_scale")]
        scale: f64,
        /// Dropout on the bottleneck while training (AdaptFormer: 0.1).
        #[serde(default = "default_adapter_dropout")]
        dropout: f64,
    },
    /// Visual prompting (Bahng et al.): a learnable frame of `pad` pixels added to the image.
    Vp {
        #[serde(default = "default_pad")]
        pad: usize,
    },
    /// Visual prompt tuning (Jia et al.): `length` learnable tokens after CLS.
    Vpt {
        #[serde(default = "default_vpt_length")]
        length: usize,
        /// Deep: new prompt tokens at every block; shallow: only before the first.
        #[serde(default = "yes")]
        deep: bool,
    },
    /// Embedded prompt tuning, computed in its exact O(1)-in-L form.
    Ept(EptConfig),
    /// Embedded prompt tuning, the reference's literal concatenate-then-softmax form.
    EptReference(EptConfig),
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_rank() -> usize {
    8
}
fn default_reduction() -> usize {
    8
}
fn default_adapter_scale() -> f64 {
    // AdaptFormer's ffn_adapter_scalar for ViT.
    0.1
}
fn default_adapter_dropout() -> f64 {
    // AdaptFormer custom_modules.py: dropout 0.1 on the adapter's down activation.
    0.1
}
fn default_pad() -> usize {
    // Bahng et al. prompt_size = 30 at 224 px.
    30
}
fn default_vpt_length() -> usize {
    10
}
fn default_ept_length() -> usize {
    // The EPT configs use prompt_length = 100.
    100
}

/// EPT options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EptConfig {
    /// Prompt length L (columns added to every attention row).
    #[serde(default = "default_ept_length")]
    pub length: usize,
    /// Blocks that get a prompt; absent = every block ("deep").
    #[serde(default)]
    pub layers: Option<Vec<usize>>,
    #[serde(default)]
    pub init: PromptInit,
    /// How the prompt meets the attention logits (paper Fig. 5).
    #[serde(default)]
    pub way: EmbedWay,
}

impl Default for EptConfig {
    fn default() -> Self {
        EptConfig {
            length: default_ept_length(),
            layers: None,
            init: PromptInit::default(),
            way: EmbedWay::default(),
        }
    }
}

/// Which EPT computation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EptForm {
    /// Exact, O(1) in L: only `logsumexp` over each prompt row reaches the output.
    Fast,
    /// Literal: concatenate the prompt to the logits, softmax, drop the prompt columns.
    Reference,
}

/// EPT prompt initialisation (reference: ept.py `prompt_init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptInit {
    /// Normal, std 0.02.
    #[default]
    Normal,
    /// Uniform in ±0.08.
    Uniform,
    Zero,
    /// Kaiming-uniform over the prompt tensor (fan-in = L).
    Kaiming,
    /// Zero, then the mean patch-token embedding of the first training batch is added
    /// (the reference's quirk); applied by the training engine before the first step.
    Token,
}

/// How EPT embeds the prompt into the attention logits S (paper Fig. 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedWay {
    /// softmax(S + P), P of shape [N, N].
    Add,
    /// softmax(S ⊙ P), P of shape [N, N].
    Multi,
    /// Concatenate P [N, L] in front of S, softmax, drop P's columns (the reference default).
    #[default]
    PureCat,
    /// As `pure_cat`, with P scaled per query row by (max − min) of that row of S.
    MultiCat,
}

impl MethodConfig {
    /// The registry name (`method = "…"` in TOML).
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Full => "full",
            MethodConfig::Linear => "linear",
            MethodConfig::Partial { .. } => "partial",
            MethodConfig::Mlp3 => "mlp3",
            MethodConfig::Bitfit => "bitfit",
            MethodConfig::Lora { .. } => "lora",
            MethodConfig::Adapter { .. } => "adapter",
            MethodConfig::Vp { .. } => "vp",
            MethodConfig::Vpt { .. } => "vpt",
            MethodConfig::Ept(_) => "ept",
            MethodConfig::EptReference(_) => "ept_reference",
        }
    }

    /// Every method with its default options, in the paper's table order.
    pub fn all_defaults() -> Vec<MethodConfig> {
        vec![
            MethodConfig::Full,
            MethodConfig::Linear,
            MethodConfig::Partial { blocks: 1 },
            MethodConfig::Mlp3,
            MethodConfig::Lora {
                rank: default_rank(),
                alpha: None,
                dropout: 0.0,
            },
            MethodConfig::Bitfit,
            MethodConfig::Adapter {
                reduction: default_reduction(),
                scale: default_adapter_scale(),
                dropout: default_adapter_dropout(),
            },
            MethodConfig::Vp { pad: default_pad() },
            MethodConfig::Vpt {
                length: default_vpt_length(),
                deep: true,
            },
            MethodConfig::Ept(EptConfig::default()),
        ]
    }

    /// Parse a method given just by name with default options (`--method ept`).
    pub fn from_name(name: &str) -> Result<Self, String> {
        let text = format!("method = \"{name}\"");
        toml::from_str(&text).map_err(|e| format!("unknown method '{name}': {}", e.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_defaults() {
        let m: MethodConfig = toml::from_str("method = \"ept\"\nlength = 20\nway = \"multi_cat\"").unwrap();
        let MethodConfig::Ept(cfg) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(
            (cfg.length, cfg.way, cfg.init),
            (20, EmbedWay::MultiCat, PromptInit::Normal)
        );
        let text = toml::to_string(&m).unwrap();
        assert_eq!(toml::from_str::<MethodConfig>(&text).unwrap(), m);
        let lora: MethodConfig = toml::from_str("method = \"lora\"").unwrap();
        assert_eq!(
            lora,
            MethodConfig::Lora {
                rank: 8,
                alpha: None,
                dropout: 0.0
            }
        );
    }

    #[test]
    fn unknown_key_and_method_are_named() {
        let err = toml::from_str::<MethodConfig>("method = \"ept\"\nlenght = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lenght"), "{err}");
        let err = toml::from_str::<MethodConfig>("method = \"vpt\"\ndepth = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("depth"), "{err}");
        let err = MethodConfig::from_name("prefix_tuning").unwrap_err();
        assert!(err.contains("prefix_tuning") && err.contains("ept"), "{err}");
    }

    #[test]
    fn every_default_has_its_name() {
        for m in MethodConfig::all_defaults() {
            assert_eq!(MethodConfig::from_name(m.name()).unwrap().name(), m.name());
        }
    }
}
