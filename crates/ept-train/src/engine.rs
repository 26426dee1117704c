//! The training loop: data → model → loss → backward → optimizer step, with evaluation
//! each epoch, JSONL logs, crash-safe checkpoints and exact resume.
//!
//! Determinism: the backend is seeded before the model is built and again at the start
//! of every epoch (dropout streams), the loader derives each image's augmentation from
//! (seed, epoch, index), and the learning rate is a pure function of the step. A run
//! resumed from an epoch checkpoint therefore repeats the uninterrupted run's losses
//! bit for bit on one backend.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig};
use burn::prelude::ToElement;
use burn::tensor::{Device, Tensor, activation, loss::cross_entropy_with_logits};
use ept_backbones::{Vit, VitConfig};
use ept_backend::DeviceSpec;
use ept_data::{BatchTargets, Dataset, Loader, LoaderOptions, Pipeline, Sample, Target, Task, Transform};
use ept_tuning::TunedVit;
use serde_json::json;

use crate::checkpoint::{self, TrainState};
use crate::config::{OptimizerConfig, PipelineName, RunConfig};
use crate::error::TrainError;
use crate::evaluate::{EvalResult, evaluate};
use crate::groups::{ParamGroup, scheduled_step};
use crate::parallel::{BatchSplit, batch_gradients};
use crate::schedule::learning_rate;

/// How to run (beyond the config).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the newest checkpoint in the run folder.
    pub resume: bool,
    /// Stop after this many epochs in this invocation (the run stays resumable).
    pub stop_after_epochs: Option<usize>,
    /// No progress lines on stderr.
    pub quiet: bool,
    /// Devices that share every batch (data parallel; the first holds the model and the
    /// optimizer). Empty or one: the run's own device alone.
    pub devices: Vec<DeviceSpec>,
}

/// What a finished (or stopped) run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub epochs_done: usize,
    pub val: Option<EvalResult>,
    pub test: Option<EvalResult>,
    pub trainable_params: usize,
    pub total_params: usize,
    pub seconds: f64,
}

/// Pipelines for training and evaluation at `size` px.
pub fn pipelines(name: PipelineName, size: usize) -> (Pipeline, Pipeline) {
    match name {
        PipelineName::Medfmc => (Pipeline::medfmc_train(size), Pipeline::medfmc_test(size)),
        PipelineName::CenterCrop => (Pipeline::medfmc_train(size), Pipeline::center_crop_eval(size)),
        PipelineName::Resize => {
            let mut train = Pipeline::medfmc_test(size);
            train.steps.insert(1, Transform::HorizontalFlip { p: 0.5 });
            (train, Pipeline::medfmc_test(size))
        }
    }
}

/// The backbone architecture a run config asks for (`model.name`, at `model.image_size`
/// when given), checked.
pub fn vit_config(config: &RunConfig) -> Result<VitConfig, TrainError> {
    let mut vit_config = VitConfig::from_name(&config.model.name)?;
    if let Some(size) = config.model.image_size {
        vit_config = vit_config.with_img_size(size);
    }
    vit_config.validate()?;
    Ok(vit_config)
}

/// Build the backbone (loading its checkpoint) and attach the method and head.
pub fn build_model(
    config: &RunConfig,
    num_classes: usize,
    device: &Device,
    notes: &mut Vec<String>,
) -> Result<(TunedVit, VitConfig), TrainError> {
    let vit_config = vit_config(config)?;
    let mut vit: Vit = vit_config.init(device)?;
    match &config.model.checkpoint {
        Some(path) => {
            let report = vit.load_checkpoint(path, &vit_config.name)?;
            notes.extend(report.notes);
        }
        None => {
            // Drawn now, in module order, so the same seed gives the same backbone in
            // training and in eval/predict/export.
            ept_tuning::trainable::initialize_now(&vit);
            notes.push("no backbone checkpoint: the backbone is randomly initialised".into());
        }
    }
    let model = TunedVit::new(vit, &config.method, num_classes, device)?;
    Ok((model, vit_config))
}

/// The optimizer a run config names, with optional global-norm gradient clipping.
pub fn optimizer(config: &OptimizerConfig, grad_clip_norm: Option<f32>) -> ModuleOptimizer {
    let clip = grad_clip_norm.map(GradientClippingConfig::Norm);
    match config {
        OptimizerConfig::Sgd {
            momentum,
            weight_decay,
            ..
        } => SgdConfig::new()
            .with_momentum((*momentum > 0.0).then(|| MomentumConfig::new().with_momentum(*momentum)))
            .with_weight_decay((*weight_decay > 0.0).then(|| WeightDecayConfig::new(*weight_decay as f32)))
            .with_gradient_clipping(clip)
            .init(),
        OptimizerConfig::Adamw { weight_decay, .. } => AdamWConfig::new()
            .with_weight_decay(*weight_decay as f32)
            .with_grad_clipping(clip)
            .init(),
    }
}

/// Cross-entropy (single-label) or BCE-with-logits (multi-label), averaged over the batch.
pub fn loss(logits: Tensor<2>, targets: &BatchTargets, num_classes: usize) -> Tensor<1> {
    match targets {
        BatchTargets::Classes(classes) => {
            cross_entropy_with_logits(logits, classes.clone().one_hot(num_classes).float())
        }
        BatchTargets::MultiHot(y) => {
            // max(x, 0) − x·y + log(1 + exp(−|x|)), the numerically stable form.
            let x = logits;
            let per = x.clone().clamp_min(0.0) - x.clone() * y.clone() + (x.abs().neg().exp() + 1.0).log();
            per.mean()
        }
    }
}

/// The loss value, or the typed error that stops a run whose loss is NaN/∞.
pub(crate) fn finite_loss(
    loss: &Tensor<1>,
    epoch: usize,
    step: usize,
    lr: f64,
    run_dir: &std::path::Path,
) -> Result<f32, TrainError> {
    TrainError::check_finite(
        loss.clone().into_scalar::<f32>().to_f32(),
        epoch,
        step,
        lr,
        run_dir,
    )
}

/// One epoch's step bookkeeping, shared by the training loops: the loss sum, each step's
/// log record and overwritten progress line, and the closing `epoch` record.
pub(crate) struct EpochMeter {
    epoch: usize,
    epochs: usize,
    steps: usize,
    batch: usize,
    /// What one batch element is called on the progress line (`img`, `crops`).
    unit: &'static str,
    quiet: bool,
    started: Instant,
    done: usize,
    loss_sum: f64,
}

impl EpochMeter {
    /// Start timing epoch `epoch` (0-based) of `epochs`, `steps` batches of `batch`.
    pub(crate) fn start(
        epoch: usize,
        epochs: usize,
        steps: usize,
        batch: usize,
        unit: &'static str,
        quiet: bool,
    ) -> Self {
        Self {
            epoch,
            epochs,
            steps,
            batch,
            unit,
            quiet,
            started: Instant::now(),
            done: 0,
            loss_sum: 0.0,
        }
    }

    /// Count one finished step (`step` is the run's step count after it): its `step`
    /// log record and, unless quiet, the progress line (step, loss, lr, throughput, ETA).
    pub(crate) fn record(
        &mut self,
        log: &mut Log,
        step: usize,
        loss: f32,
        lr: f64,
    ) -> Result<(), TrainError> {
        self.done += 1;
        self.loss_sum += loss as f64;
        log.write(json!({"event": "step", "epoch": self.epoch, "step": step, "loss": loss, "lr": lr}))?;
        if !self.quiet {
            let elapsed = self.started.elapsed().as_secs_f64();
            let rate = (self.done * self.batch) as f64 / elapsed;
            let eta = self.steps.saturating_sub(self.done) as f64 * elapsed / self.done as f64;
            ept_backend::progress::show(&format!(
                "epoch {}/{} step {}/{} loss {loss:.4} lr {lr:.2e} {rate:.1} {}/s eta {eta:.0}s   ",
                self.epoch + 1,
                self.epochs,
                self.done,
                self.steps,
                self.unit
            ));
        }
        Ok(())
    }

    /// End the progress line (call before evaluation prints anything).
    pub(crate) fn end_line(&self) {
        ept_backend::progress::end_line();
    }

    /// The epoch's closing `epoch` record: mean loss over its steps and seconds since
    /// [`EpochMeter::start`].
    pub(crate) fn write_epoch(&self, log: &mut Log, step: usize) -> Result<(), TrainError> {
        let mean_loss = self.loss_sum / self.steps.max(1) as f64;
        log.write(
            json!({"event": "epoch", "epoch": self.epoch, "step": step, "mean_loss": mean_loss,
            "seconds": self.started.elapsed().as_secs_f64()}),
        )
    }
}

/// Seed for epoch `epoch`'s stochastic layers.
pub(crate) fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64 + 1)
}

/// Append-only JSONL log.
pub(crate) struct Log {
    path: PathBuf,
    file: std::fs::File,
}

impl Log {
    pub(crate) fn open(path: PathBuf) -> Result<Self, TrainError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::write(&path, e))?;
        Ok(Log { path, file })
    }

    pub(crate) fn write(&mut self, record: serde_json::Value) -> Result<(), TrainError> {
        writeln!(self.file, "{record}").map_err(|e| TrainError::write(&self.path, e))
    }
}

/// The optional split at config key `key` (`data.val`, `data.test`), checked against the
/// model's classes and task (those of `data.train`).
fn load_split(
    source: &Option<ept_data::DataSource>,
    key: &str,
    classes: usize,
    task: Task,
) -> Result<Option<Dataset>, TrainError> {
    let Some(source) = source else { return Ok(None) };
    let split = source.load()?;
    check_split(&split, source.origin(), key, classes, task)?;
    Ok(Some(split))
}

/// An evaluation split must label the classes the model predicts: same task, same
/// number of classes (else its metrics would index past the model's outputs).
pub fn check_split(
    split: &Dataset,
    origin: &std::path::Path,
    key: &str,
    classes: usize,
    task: Task,
) -> Result<(), TrainError> {
    let describe = |classes: usize, task: Task| {
        let kind = match task {
            Task::SingleLabel => "single-label",
            Task::MultiLabel => "multi-label",
        };
        format!("{classes} classes, {kind}")
    };
    if split.num_classes == classes && split.task == task {
        return Ok(());
    }
    Err(TrainError::Data(ept_data::DataError::Invalid(format!(
        "{} ({key}) has {} but the model predicts {} (data.train's labels): \
         give {key} and data.train the same list format and num_classes (a class count \
         inferred from a CSV's labels misses classes no row names: set num_classes)",
        origin.display(),
        describe(split.num_classes, split.task),
        describe(classes, task)
    ))))
}

/// An image that cannot be read found while the run trains or evaluates: what to do
/// about it (the checkpoints written before are intact, and `--resume` continues).
fn mid_run(error: TrainError, run_dir: &std::path::Path) -> TrainError {
    match error {
        TrainError::Data(data @ (ept_data::DataError::Decode { .. } | ept_data::DataError::Io { .. })) => {
            // Every image is read in the first epoch, before its checkpoint.
            let then = if checkpoint::latest(run_dir).is_some() {
                "continue with --resume (the last checkpoint is intact)"
            } else {
                "run the same command again without --resume (no checkpoint was written yet)"
            };
            TrainError::run(
                run_dir,
                format!("stopped: {data}. Fix the file or remove it from its list, then {then}"),
            )
        }
        other => other,
    }
}

/// Warn (on stderr) when an evaluation split shares images with the training split:
/// its metrics would overstate what the model learned.
fn warn_overlap(train: &Dataset, split: &Dataset, key: &str) {
    let trained: std::collections::HashSet<&std::path::Path> =
        train.samples.iter().map(|s| s.path.as_path()).collect();
    let shared: Vec<&Sample> = split
        .samples
        .iter()
        .filter(|s| trained.contains(s.path.as_path()))
        .collect();
    if let Some(first) = shared.first() {
        eprintln!(
            "warning: {} of the {} images of {key} are also in data.train (e.g. {}): its metrics will overstate accuracy",
            shared.len(),
            split.samples.len(),
            first.path.display()
        );
    }
}

/// Train, evaluate and report one run.
pub fn train(
    config: &RunConfig,
    spec: &DeviceSpec,
    options: &TrainOptions,
) -> Result<RunSummary, TrainError> {
    let started = Instant::now();
    let run_dir = config.output.dir.clone();
    let train_set = config.data.train.load()?;
    let (classes, task) = (train_set.num_classes, train_set.task);
    let val_set = load_split(&config.data.val, "data.val", classes, task)?;
    let test_set = load_split(&config.data.test, "data.test", classes, task)?;
    let missing = train_set.classes_without_samples();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|&c| format!("{c} ({})", train_set.class_names[c]))
            .collect();
        return Err(TrainError::Data(ept_data::DataError::Invalid(format!(
            "{} (data.train) has no sample of class {} of {classes}: every class needs at \
             least one training image (check data.train's num_classes, or draw the few-shot \
             list again with `ept-cli sample`)",
            config.data.train.origin().display(),
            names.join(", ")
        ))));
    }
    for (key, split) in [("data.val", &val_set), ("data.test", &test_set)] {
        if let Some(split) = split {
            warn_overlap(&train_set, split, key);
        }
    }
    let device = spec.autodiff_device();
    ept_backend::seed_everything(&device, config.train.seed);
    let mut notes = Vec::new();
    let (mut model, vit_config) = build_model(config, classes, &device, &mut notes)?;
    if !options.quiet {
        notes.iter().for_each(|note| eprintln!("note: {note}"));
    }
    // The run folder is made once the data and the model load, so a wrong path leaves none.
    let (resume_from, _run_lock) = checkpoint::start_run(&run_dir, options.resume, &config.to_toml())?;
    let counts = model.param_count();
    let mut optim = optimizer(&config.train.optimizer, config.train.grad_clip_norm);
    let (mut start_epoch, mut step) = (0, 0);
    if let Some(dir) = &resume_from {
        let (resumed, state, restored) = checkpoint::load(dir, model, optim, &vit_config.name)?;
        model = resumed;
        optim = restored;
        start_epoch = state.epoch + 1;
        step = state.step;
        checkpoint::continue_run(&run_dir, state.epoch, &config.to_toml())?;
    }
    // After a resume: loading restores the saved parameter ids, which the group keys on.
    let head_group = ParamGroup::new(&model, &|path| path.starts_with("head."));
    let mut log = Log::open(run_dir.join("metrics.jsonl"))?;
    if resume_from.is_none() {
        log.write(
            json!({"event": "start", "method": config.method.name(), "model": vit_config.name,
            "trainable_params": counts.trainable, "total_params": counts.total(), "notes": notes,
            "train_images": train_set.samples.len(), "classes": classes,
            "precision": ept_backend::precision::current_precision().to_string()}),
        )?;
    }

    let size = vit_config.img_size;
    let (train_pipeline, eval_pipeline) = pipelines(config.data.pipeline, size);
    let threads = ept_backend::worker_threads(config.data.workers);
    let loader = Loader::from_dataset(
        &train_set,
        train_pipeline,
        LoaderOptions {
            batch_size: config.train.batch_size,
            shuffle: true,
            drop_last: false,
            seed: config.train.seed,
            threads,
            prefetch: 2,
        },
    )?;
    let split = BatchSplit {
        devices: match options.devices.as_slice() {
            [] | [_] => vec![device.clone()],
            many => many.iter().map(DeviceSpec::autodiff_device).collect(),
        },
        micro_batch: config.train.micro_batch_size.map(std::num::NonZeroUsize::get),
    };
    ept_backend::memory::note_batch(config.train.batch_size, Some(split.micro_batch));
    let steps_per_epoch = loader.num_batches();
    let total_steps = steps_per_epoch * config.train.epochs;
    let base_lr = config.train.optimizer.lr();
    let eval_loader = |set: &Dataset| {
        Loader::from_dataset(
            set,
            eval_pipeline.clone(),
            LoaderOptions {
                batch_size: config.train.batch_size.max(8),
                shuffle: false,
                drop_last: false,
                seed: 0,
                threads,
                prefetch: 2,
            },
        )
    };

    let last_epoch = match options.stop_after_epochs {
        Some(n) => (start_epoch + n).min(config.train.epochs),
        None => config.train.epochs,
    };
    let mut val_result = None;
    for epoch in start_epoch..last_epoch {
        ept_backend::seed_everything(&device, epoch_seed(config.train.seed, epoch));
        let mut meter = EpochMeter::start(
            epoch,
            config.train.epochs,
            steps_per_epoch,
            config.train.batch_size,
            "img",
            options.quiet,
        );
        for batch in loader.epoch(epoch as u64) {
            let host = batch.map_err(|e| mid_run(e.into(), &run_dir))?;
            let lr = learning_rate(&config.train.schedule, base_lr, step, total_steps);
            let piece_loss = |replica: &TunedVit, samples, device: &Device| {
                let piece = host.slice(samples).into_device(device);
                loss(replica.forward(piece.images), &piece.targets, classes)
            };
            let (value, grads) = batch_gradients(&model, host.len(), &split, &piece_loss);
            let value = TrainError::check_finite(value, epoch, step, lr, &run_dir)?;
            model = scheduled_step(
                &mut optim,
                model,
                grads,
                (lr, base_lr),
                &head_group,
                config.train.head_lr,
            );
            step += 1;
            meter.record(&mut log, step, value, lr)?;
        }
        meter.end_line();
        let evaluate_now = config.train.eval_every > 0 && (epoch + 1) % config.train.eval_every == 0;
        if let (Some(val), true) = (&val_set, evaluate_now) {
            let result = evaluate(&model.valid(), &eval_loader(val)?, task, &spec.device(), false)
                .map_err(|e| mid_run(e, &run_dir))?;
            log.write(json!({"event": "eval", "split": "val", "epoch": epoch, "metrics": result.metrics}))?;
            val_result = Some(result);
        }
        meter.write_epoch(&mut log, step)?;
        checkpoint::save(
            &run_dir,
            &model,
            &optim,
            &vit_config.name,
            &TrainState {
                epoch,
                step,
                seed: config.train.seed,
            },
        )?;
    }

    let finished = last_epoch == config.train.epochs;
    let mut test_result = None;
    if finished {
        if let Some(test) = &test_set {
            let result = evaluate(&model.valid(), &eval_loader(test)?, task, &spec.device(), true)
                .map_err(|e| mid_run(e, &run_dir))?;
            log.write(json!({"event": "eval", "split": "test", "metrics": result.metrics}))?;
            let labels = (task == Task::SingleLabel).then(|| split_targets(&result.targets, classes).0);
            crate::analysis::write_run_report(
                &run_dir,
                config.method.name(),
                &vit_config.name,
                (counts.trainable, counts.total()),
                &result,
                labels.as_deref(),
            )
            .map_err(|e| TrainError::run(&run_dir, format!("writing the report: {e}")))?;
            test_result = Some(result);
        }
        let path = run_dir.join("method.safetensors");
        ept_tuning::checkpoint::save_method(&model, &vit_config.name, &path)?;
    }
    Ok(RunSummary {
        run_dir,
        epochs_done: last_epoch,
        val: val_result,
        test: test_result,
        trainable_params: counts.trainable,
        total_params: counts.total(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The class targets of a split as (single-label indices, multi-label flags).
pub fn split_targets(targets: &[Target], classes: usize) -> (Vec<usize>, Vec<Vec<bool>>) {
    let flags = targets
        .iter()
        .map(|t| match t {
            Target::Single(c) => (0..classes).map(|k| k == *c).collect(),
            Target::Multi(f) => f.clone(),
        })
        .collect();
    let single = targets
        .iter()
        .map(|t| match t {
            Target::Single(c) => *c,
            Target::Multi(_) => 0,
        })
        .collect();
    (single, flags)
}

/// Probabilities from logits: softmax (single-label) or sigmoid (multi-label).
pub fn probabilities(logits: Tensor<2>, task: Task) -> Tensor<2> {
    match task {
        Task::SingleLabel => activation::softmax(logits, 1),
        Task::MultiLabel => activation::sigmoid(logits),
    }
}
