//! `ept-cli pretrain --config F`: CPA self-supervised pre-training of a PUNet body
//! (`task = "pretrain"` configs), resumable like `train`.

use ept_backend::DeviceSpec;
use ept_pretrain::{PretrainConfig, pretrain};

use crate::train::TrainArgs;

pub fn run(args: &TrainArgs, device: &DeviceSpec) -> anyhow::Result<()> {
    let table = ept_train::config::load_table(&args.config, &args.overrides())?;
    let config = args.parsed(PretrainConfig::from_table(table, &args.config))?;
    let options = args.options(std::slice::from_ref(device));
    let summary = pretrain(&config, device, &options)?;
    let [l0, s0, c0] = summary.first_epoch;
    let [l1, s1, c1] = summary.last_epoch;
    println!(
        "run {}: {}, {:.1} s; mean loss first epoch {l0:.4} (seg {s0:.4}, cpa {c0:.4}), last {l1:.4} (seg {s1:.4}, cpa {c1:.4})",
        summary.run_dir.display(),
        crate::epochs(summary.epochs_done),
        summary.seconds
    );
    if let Some(body) = summary.body {
        println!(
            "pretrained body: {} (use it as model.checkpoint of a segmentation config)",
            body.display()
        );
    }
    Ok(())
}
