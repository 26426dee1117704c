//! `ept-cli info`: build a model, optionally load a checkpoint into it, and print its
//! architecture, parameter counts per module and the checkpoint keys that were loaded.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ept_backbones::{Vit, VitConfig};
use ept_backend::DeviceSpec;
use ept_tuning::{MethodConfig, TunedVit};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Model name, e.g. vit_base_patch16_224 (vit_{micro,tiny,small,base,large}_patch{4,8,14,16,32}_{size})
    #[arg(long, default_value = "vit_base_patch16_224")]
    pub model: String,
    /// A timm or mmcls checkpoint (.safetensors or .pth) to load
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Input image size (position embeddings are interpolated to it)
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Classes of the linear head (0 = no head)
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// List every loaded checkpoint key
    #[arg(long)]
    pub keys: bool,
    /// Also count trainable/frozen parameters for a tuning method (a name such as
    /// ept, vpt, lora, or `all` for a table of every method with default options)
    #[arg(long)]
    pub method: Option<String>,
}

impl Default for InfoArgs {
    fn default() -> Self {
        InfoArgs {
            model: "vit_base_patch16_224".into(),
            checkpoint: None,
            image_size: None,
            num_classes: None,
            keys: false,
            method: None,
        }
    }
}

/// `86567656` → `86,567,656`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parameter counts grouped by top-level module (`blocks` summed over all blocks).
fn counts_by_module(model: &Vit) -> BTreeMap<String, usize> {
    let mut groups = BTreeMap::new();
    for (key, shape) in model.expected_keys() {
        let group = key.split('.').next().unwrap_or(&key).to_string();
        *groups.entry(group).or_insert(0) += shape.iter().product::<usize>();
    }
    groups
}

pub fn run(args: &InfoArgs, device: &DeviceSpec) -> anyhow::Result<()> {
    let mut config = VitConfig::from_name(&args.model)?;
    if let Some(size) = args.image_size {
        config = config.with_img_size(size);
    }
    if let Some(classes) = args.num_classes {
        config = config.with_num_classes(classes);
    }
    let mut model = config
        .init(&device.device())
        .with_context(|| format!("building {}", args.model))?;
    let report = match &args.checkpoint {
        Some(path) => Some(model.load_checkpoint(path, &config.name)?),
        None => None,
    };

    println!("model        {}", config.name);
    println!("device       {device}");
    println!(
        "input        {} x {} px, {} channels; patch {} -> {} x {} grid, {} tokens (incl. CLS)",
        config.img_size,
        config.img_size,
        config.in_chans,
        config.patch_size,
        config.grid_size(),
        config.grid_size(),
        config.num_tokens()
    );
    println!(
        "transformer  width {}, depth {}, heads {}, mlp {}",
        config.embed_dim,
        config.depth,
        config.num_heads,
        config.mlp_hidden()
    );
    match model.num_classes() {
        0 => println!("head         none (features only)"),
        n => println!("head         linear on CLS, {n} classes"),
    }
    println!("parameters");
    let groups = counts_by_module(&model);
    let total: usize = groups.values().sum();
    let per_block = groups.get("blocks").copied().unwrap_or(0) / config.depth.max(1);
    for (group, count) in &groups {
        let detail = if group == "blocks" {
            format!("  ({} x {})", config.depth, thousands(per_block))
        } else {
            String::new()
        };
        println!("  {group:<12} {:>14}{detail}", thousands(*count));
    }
    println!("  {:<12} {:>14}", "total", thousands(total));
    match report {
        Some(report) => {
            print!("checkpoint   {report}");
            if args.keys {
                for key in &report.loaded {
                    println!("  {key}");
                }
            }
        }
        None => println!("checkpoint   none (random timm-style initialisation)"),
    }
    if let Some(name) = &args.method {
        print_method_counts(name, model, &config, device)?;
    }
    Ok(())
}

/// Trainable/frozen counts of one method, or a markdown table of all of them.
fn print_method_counts(
    name: &str,
    model: Vit,
    config: &VitConfig,
    device: &DeviceSpec,
) -> anyhow::Result<()> {
    let methods = if name == "all" {
        MethodConfig::all_defaults()
    } else {
        vec![MethodConfig::from_name(name).map_err(anyhow::Error::msg)?]
    };
    let classes = config.num_classes.max(1);
    println!("tuning methods ({classes}-class head on CLS)");
    println!("| method | options | trainable | frozen | trainable % |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let mut backbone = Some(model);
    for method in methods {
        let vit = match backbone.take() {
            Some(vit) => vit,
            None => config.init(&device.device())?,
        };
        let tuned = TunedVit::new(vit, &method, classes, &device.device())?;
        let count = tuned.param_count();
        let options = toml_options(&method);
        println!(
            "| {} | {} | {} | {} | {:.3} |",
            method.name(),
            options,
            thousands(count.trainable),
            thousands(count.frozen),
            count.trainable_percent()
        );
    }
    Ok(())
}

/// The method's options as compact `key=value` text.
fn toml_options(method: &MethodConfig) -> String {
    let text = toml::to_string(method).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with("method"))
        .map(|l| l.replace(" = ", "="))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(86_567_656), "86,567,656");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
