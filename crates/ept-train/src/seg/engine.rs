//! The segmentation training loop: a PUNet with one adaptation variant trained on
//! slices or patches of a volume data set with the focal (+ optional Dice) loss,
//! validated by sliding-window Dice on whole volumes, checkpointed every epoch with
//! exact resume (same machinery as classification runs), and finished by a test
//! evaluation that writes predictions as NIfTI, overlays as PNG and a `report.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use ept_backbones::unet::io::load_punet_weights;
use ept_backbones::unet::{PunetConfig, is_prompt_path};
use ept_backend::DeviceSpec;
use ept_data::{HostVolumeBatch, LoaderMode, VolumeLoader, VolumeLoaderOptions, VolumeSet};
use ept_tuning::{TunedPunet, load_seg_method, save_seg_method};
use serde_json::json;

use super::config::SegRunConfig;
use super::evaluate::{EvalOutputs, SegEvalResult, evaluate_volumes, run_label_table};
use super::loss::{dice_loss, focal_loss};
use super::sliding::SlidingWindow;
use crate::checkpoint::{self, TrainState};
use crate::engine::{EpochMeter, Log, TrainOptions, epoch_seed, finite_loss, optimizer};
use crate::error::TrainError;
use crate::groups::{ParamGroup, scheduled_step};
use crate::schedule::learning_rate;

/// What a segmentation run produced.
#[derive(Debug, Clone)]
pub struct SegRunSummary {
    pub run_dir: PathBuf,
    pub epochs_done: usize,
    /// Validation Dice before the first step and after the last epoch.
    pub val_before: Option<SegEvalResult>,
    pub val: Option<SegEvalResult>,
    pub test: Option<SegEvalResult>,
    pub trainable_params: usize,
    pub total_params: usize,
    pub seconds: f64,
}

/// The run's foreground classes, checked against the data set.
fn run_classes(config: &SegRunConfig, set: &VolumeSet) -> Result<Vec<usize>, TrainError> {
    let n = set.num_classes();
    let classes = config.data.classes.clone().unwrap_or_else(|| (1..n).collect());
    if classes.is_empty() {
        return Err(TrainError::config(&config.config_file, "data.classes is empty"));
    }
    if let Some(twice) = ept_data::first_repeat(&classes) {
        return Err(TrainError::config(
            &config.config_file,
            format!("data.classes names class {twice} twice"),
        ));
    }
    if let Some(bad) = classes.iter().find(|c| **c == 0 || **c >= n) {
        return Err(TrainError::config(
            &config.config_file,
            format!(
                "data.classes: {bad} is not a foreground class of the data set (1..{}: {:?})",
                n - 1,
                &set.class_names[1..]
            ),
        ));
    }
    Ok(classes)
}

/// Build the PUNet for `config`'s method (head, outputs), load a pretrained body.
pub fn build_seg_model(
    config: &SegRunConfig,
    classes: Vec<usize>,
    device: &burn::tensor::Device,
    notes: &mut Vec<String>,
) -> Result<TunedPunet, TrainError> {
    let punet_config = PunetConfig {
        head: config.method.head(),
        fixed_outputs: classes.len() + 1,
        ..config.model.punet.clone()
    };
    // Class k uses prompt slot k.
    let highest = classes.iter().max().copied().unwrap_or(0);
    if highest >= punet_config.class_slots {
        return Err(TrainError::config(
            &config.config_file,
            format!(
                "class {highest} needs prompt slot {highest}: set model.punet.class_slots to at least {} (it is {})",
                highest + 1,
                punet_config.class_slots
            ),
        ));
    }
    let mut punet = punet_config
        .init(device)
        .map_err(|e| TrainError::config(&config.config_file, format!("model.punet: {e}")))?;
    match &config.model.checkpoint {
        Some(path) => {
            let (loaded, more) = load_punet_weights(punet, path).map_err(|e| TrainError::run(path, e))?;
            punet = loaded;
            notes.extend(more);
        }
        None => notes.push("no PUNet checkpoint: the body is randomly initialised".into()),
    }
    Ok(TunedPunet::new(punet, &config.method, classes, device)?)
}

/// Labels of a host batch mapped to run classes, as a device tensor.
fn run_labels(batch: &HostVolumeBatch, table: &[u8], device: &burn::tensor::Device) -> Tensor<4, Int> {
    let labels: Vec<i64> = batch
        .labels
        .iter()
        .map(|&l| table.get(l as usize).copied().unwrap_or(0) as i64)
        .collect();
    Tensor::from_data(TensorData::new(labels, batch.dims), device)
}

/// Warn (on stderr) about a split that leaves the run unevaluated, and about run classes
/// without a voxel in the training volumes (their prompts would learn nothing).
fn warn_about_split(set: &VolumeSet, classes: &[usize]) {
    let split = &set.split;
    if split.val.is_empty() && split.test.is_empty() {
        eprintln!(
            "warning: the split leaves no validation or test volume (all {} for training): \
             the run will not be evaluated; list more volumes or change data.source.split",
            split.train.len()
        );
    }
    for &class in classes {
        let seen = split.train.iter().any(|&v| {
            set.volumes[v]
                .foreground
                .get(class - 1)
                .is_some_and(|voxels| !voxels.is_empty())
        });
        if !seen {
            eprintln!(
                "warning: class {class} ({}) has no voxel in the training volumes: nothing teaches it",
                set.class_names[class]
            );
        }
    }
}

/// Train, validate, test and report one segmentation run.
pub fn train_segmentation(
    config: &SegRunConfig,
    spec: &DeviceSpec,
    options: &TrainOptions,
) -> Result<SegRunSummary, TrainError> {
    let started = Instant::now();
    let run_dir = config.output.dir.clone();
    let set = Arc::new(config.data.source.load()?);
    let classes = run_classes(config, &set)?;
    warn_about_split(&set, &classes);
    let table = run_label_table(&classes, set.num_classes());
    let device = spec.autodiff_device();
    ept_backend::seed_everything(&device, config.train.seed);
    let mut notes = Vec::new();
    let mut model = build_seg_model(config, classes.clone(), &device, &mut notes)?;
    if !options.quiet {
        notes.iter().for_each(|note| eprintln!("note: {note}"));
    }
    // The run folder is made once the data and the model load, so a wrong path leaves none.
    let (resume_from, _run_lock) = checkpoint::start_run(&run_dir, options.resume, &config.to_toml())?;
    let counts = model.param_count();
    let mut optim = optimizer(&config.train.optimizer, config.train.grad_clip_norm);
    let (mut start_epoch, mut step) = (0, 0);
    if let Some(dir) = &resume_from {
        let (resumed, state, restored) =
            checkpoint::load_with(dir, optim, |file| Ok(load_seg_method(model.clone(), file)?))?;
        model = resumed;
        optim = restored;
        start_epoch = state.epoch + 1;
        step = state.step;
        checkpoint::continue_run(&run_dir, state.epoch, &config.to_toml())?;
    }
    // After a resume: loading restores the saved parameter ids, which the group keys on.
    let prompt_group = ParamGroup::new(&model, &|path| {
        path.strip_prefix("punet.").is_some_and(is_prompt_path) || path.starts_with("ept.")
    });

    let threads = ept_backend::worker_threads(config.data.workers);
    // `few_volumes` is already applied to the split by the data layer.
    let train_volumes = set.split.train.clone();
    let loader = VolumeLoader::new(
        set.clone(),
        train_volumes.clone(),
        config.data.sampling,
        config.data.augment,
        VolumeLoaderOptions {
            batch_size: config.train.batch_size,
            mode: LoaderMode::Train,
            drop_last: false,
            seed: config.train.seed,
            threads,
        },
    )?;
    ept_backend::memory::note_batch(config.train.batch_size, None);
    let window = SlidingWindow {
        roi: config.data.sampling.shape.dims(),
        overlap: config.eval.overlap,
        blend: config.eval.blend,
        batch: config.train.batch_size.max(4),
    };
    let inference = spec.device();
    let no_outputs = EvalOutputs {
        predictions: None,
        overlays: None,
    };
    let evaluate_val = |model: &TunedPunet| -> Result<Option<SegEvalResult>, TrainError> {
        if set.split.val.is_empty() {
            return Ok(None);
        }
        Ok(Some(evaluate_volumes(
            &model.valid(),
            &set,
            &set.split.val,
            &window,
            &inference,
            &no_outputs,
        )?))
    };

    let mut log = Log::open(run_dir.join("metrics.jsonl"))?;
    let mut val_before = None;
    if resume_from.is_none() {
        log.write(
            json!({"event": "start", "task": "segmentation", "method": config.method.name(),
            "classes": classes, "class_names": set.class_names, "trainable_params": counts.trainable,
            "total_params": counts.total(), "notes": notes, "train_volumes": train_volumes.len(),
            "val_volumes": set.split.val.len(), "test_volumes": set.split.test.len()}),
        )?;
        if config.train.eval_every > 0 {
            val_before = evaluate_val(&model)?;
            if let Some(r) = &val_before {
                log.write(json!({"event": "eval", "split": "val", "epoch": -1, "mean_dice": r.mean_dice, "per_class": r.per_class}))?;
            }
        }
    }

    let steps_per_epoch = loader.batch_indices(0).len();
    let total_steps = steps_per_epoch * config.train.epochs;
    let base_lr = config.train.optimizer.lr();
    let last_epoch = match options.stop_after_epochs {
        Some(n) => (start_epoch + n).min(config.train.epochs),
        None => config.train.epochs,
    };
    let mut val = None;
    for epoch in start_epoch..last_epoch {
        ept_backend::seed_everything(&device, epoch_seed(config.train.seed, epoch));
        let mut meter = EpochMeter::start(
            epoch,
            config.train.epochs,
            steps_per_epoch,
            config.train.batch_size,
            "crops",
            options.quiet,
        );
        for batch in loader.epoch(epoch as u64) {
            let batch = batch?;
            let labels = run_labels(&batch, &table, &device);
            let images = batch.into_device(&device).images;
            let lr = learning_rate(&config.train.schedule, base_lr, step, total_steps);
            let logits = model.forward(images);
            let mut loss = focal_loss(logits.clone(), labels.clone(), config.train.focal_gamma);
            if config.train.dice_weight > 0.0 {
                loss = loss + dice_loss(logits, labels).mul_scalar(config.train.dice_weight);
            }
            let value = finite_loss(&loss, epoch, step, lr, &run_dir)?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = scheduled_step(
                &mut optim,
                model,
                grads,
                (lr, base_lr),
                &prompt_group,
                config.train.lr_prompts,
            );
            step += 1;
            meter.record(&mut log, step, value, lr)?;
        }
        meter.end_line();
        let evaluate_now = config.train.eval_every > 0 && (epoch + 1) % config.train.eval_every == 0;
        if evaluate_now && let Some(r) = evaluate_val(&model)? {
            log.write(json!({"event": "eval", "split": "val", "epoch": epoch, "mean_dice": r.mean_dice, "per_class": r.per_class}))?;
            val = Some(r);
        }
        meter.write_epoch(&mut log, step)?;
        checkpoint::save_with(
            &run_dir,
            &optim,
            &TrainState {
                epoch,
                step,
                seed: config.train.seed,
            },
            |file| {
                save_seg_method(&model, file)?;
                Ok(())
            },
        )?;
    }

    let mut test = None;
    if last_epoch == config.train.epochs {
        if !set.split.test.is_empty() {
            let predictions = run_dir.join("predictions");
            let overlays = run_dir.join("overlays");
            let outputs = EvalOutputs {
                predictions: config.eval.write_predictions.then_some(predictions.as_path()),
                overlays: Some(overlays.as_path()),
            };
            let result = evaluate_volumes(
                &model.valid(),
                &set,
                &set.split.test,
                &window,
                &inference,
                &outputs,
            )?;
            log.write(json!({"event": "eval", "split": "test", "mean_dice": result.mean_dice, "per_class": result.per_class,
                "volumes": result.volumes}))?;
            test = Some(result);
        }
        save_seg_method(&model, &run_dir.join("method.safetensors"))?;
        super::report::write_seg_report(
            &run_dir,
            config,
            &set.class_names,
            &classes,
            (counts.trainable, counts.total()),
            val_before.as_ref(),
            val.as_ref(),
            test.as_ref(),
        )?;
    }
    Ok(SegRunSummary {
        run_dir,
        epochs_done: last_epoch,
        val_before,
        val,
        test,
        trainable_params: counts.trainable,
        total_params: counts.total(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
