//! `ept-tuning` — parameter-efficient tuning methods for a frozen ViT, and the
//! adaptation variants of a frozen PUNet ([`punet`]).
//!
//! One module per method ([`ept`], [`vpt`], [`vp`], [`lora`], [`adapter`]; the head-only
//! and unfreezing baselines need no module of their own), a serde-tagged
//! [`MethodConfig`] as the registry, [`TunedVit`] joining a backbone, a method and a
//! classification head through the backbone's hook seam, trainable-parameter
//! accounting ([`trainable`]) and method-only checkpoints ([`checkpoint`]).

pub mod adapter;
pub mod checkpoint;
pub mod config;
pub mod ept;
pub mod head;
pub mod lora;
pub mod model;
pub mod punet;
pub mod trainable;
pub mod vp;
pub mod vpt;

pub use config::{EmbedWay, EptConfig, EptForm, MethodConfig, PromptInit};
pub use model::{TunedVit, TuningError};
pub use punet::{SegMethodConfig, TunedPunet, load_seg_method, save_seg_method};
pub use trainable::ParamCount;
