//! The CPA pre-training loop. Per batch of teacher crops: the EMA teacher (no
//! gradients) embeds the whole crop; its embeddings, average-pooled to ¼ resolution, are
//! clustered into prototypes seeded on a ⅛-resolution grid (spatially weighted soft
//! k-means) and give sharp target assignments; each student crop is embedded, pooled the
//! same way, matched to teacher positions by coordinates, and trained to reproduce the
//! targets (weight `cpa.weight`) beside a focal segmentation loss on one random base
//! class. AdamW steps the body and the prompts with their own learning rates; the
//! teacher then follows by EMA. Checkpoints (student, teacher, optimizer) every epoch
//! make `--resume` exact; the run ends with `body.safetensors` (the student),
//! `loss_curves.png` and `report.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::ToElement;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ept_backbones::unet::io::{load_punet_weights, save_punet};
use ept_backbones::unet::{HeadKind, NoUnetHooks, Punet, PunetConfig};
use ept_backend::DeviceSpec;
use ept_backend::rng::Rng;
use ept_data::{LoaderMode, PatchShape, SamplingConfig, VolumeLoader, VolumeLoaderOptions, sample_rng};
use ept_train::checkpoint::{self, TrainState};
use ept_train::groups::{ParamGroup, step_with_group};
use ept_train::schedule::learning_rate;
use ept_train::seg::loss::focal_loss;
use ept_train::{TrainError, TrainOptions};
use serde_json::json;

use crate::config::PretrainConfig;
use crate::ema::{EmaRates, ema_update, is_prompt_path};
use crate::kmeans::SoftKMeans;
use crate::loss::assignment_loss;
use crate::matching::match_positions;
use crate::views::{grid_coords, student_view};

/// What a pre-training run produced.
#[derive(Debug, Clone)]
pub struct PretrainSummary {
    pub run_dir: PathBuf,
    pub epochs_done: usize,
    /// Mean total / segmentation / CPA loss of the first and the last epoch.
    pub first_epoch: [f64; 3],
    pub last_epoch: [f64; 3],
    pub body: Option<PathBuf>,
    pub seconds: f64,
}

/// `[B, C, h, w, 1]` → `[B, C, h/f, w/f]` by averaging `f × f` cells (edges cut).
fn pool(x: Tensor<5>, f: usize) -> Tensor<4> {
    let [b, c, h, w, _] = x.dims();
    let (ho, wo) = (h / f, w / f);
    x.slice([0..b, 0..c, 0..ho * f, 0..wo * f, 0..1])
        .reshape([b, c, ho, f, wo, f])
        .mean_dim(5)
        .mean_dim(3)
        .reshape([b, c, ho, wo])
}

/// Item `i` of `[B, C, h, w]` as `[h·w, C]` rows.
fn rows(x: &Tensor<4>, i: usize) -> Tensor<2> {
    let [_, c, h, w] = x.dims();
    x.clone().narrow(0, i, 1).reshape([c, h * w]).transpose()
}

fn tensor2(values: Vec<f32>, cols: usize, device: &Device) -> Tensor<2> {
    let n = values.len() / cols;
    Tensor::from_data(TensorData::new(values, [n, cols]), device)
}

fn to_device2(x: Tensor<2>, device: &Device) -> Tensor<2> {
    Tensor::from_data(x.into_data(), device)
}

/// Build the student (similarity head) and its teacher copy.
fn build(config: &PretrainConfig, device: &Device) -> Result<Punet, TrainError> {
    let punet = PunetConfig {
        head: HeadKind::Similarity,
        ..config.model.punet.clone()
    };
    punet
        .init(device)
        .map_err(|e| TrainError::config(&config.config_file, format!("model.punet: {e}")))
}

fn write_checkpoint(dir_file: &Path, student: &Punet, teacher: &Punet) -> Result<(), TrainError> {
    save_punet(student, dir_file)?;
    save_punet(teacher, &dir_file.with_file_name("teacher.safetensors"))?;
    Ok(())
}

/// Pre-train a PUNet body with CPA.
pub fn pretrain(
    config: &PretrainConfig,
    spec: &DeviceSpec,
    options: &TrainOptions,
) -> Result<PretrainSummary, TrainError> {
    let started = Instant::now();
    let run_dir = config.output.dir.clone();
    let set = Arc::new(config.data.source.load()?);
    if let Some(bad) = config
        .cpa
        .base_classes
        .iter()
        .find(|c| **c == 0 || **c >= set.num_classes())
    {
        return Err(TrainError::config(
            &config.config_file,
            format!(
                "cpa.base_classes: {bad} is not a foreground class (1..{})",
                set.num_classes() - 1
            ),
        ));
    }
    let device = spec.autodiff_device();
    let inference = spec.device();
    ept_backend::seed_everything(&device, config.train.seed);
    let mut student = build(config, &device)?;
    // Base class k uses prompt slot k.
    if let Some(&k) = config.cpa.base_classes.iter().max()
        && k >= student.config.class_slots
    {
        return Err(TrainError::config(
            &config.config_file,
            format!(
                "class {k} needs prompt slot {k}: set model.punet.class_slots to at least {} (it is {})",
                k + 1,
                student.config.class_slots
            ),
        ));
    }
    // The run folder is made once the data and the model are known good, so a wrong
    // path or setting leaves none.
    let (resume_from, _run_lock) = checkpoint::start_run(&run_dir, options.resume, &config.to_toml())?;
    let mut teacher = student.valid();
    let clip = config.train.grad_clip_norm.map(GradientClippingConfig::Norm);
    let mut optim: ModuleOptimizer = AdamWConfig::new()
        .with_weight_decay(config.train.weight_decay as f32)
        .with_grad_clipping(clip)
        .init();
    let (mut start_epoch, mut step) = (0, 0);
    if let Some(dir) = &resume_from {
        // The optimizer steps the student only; the teacher comes back beside it.
        // A checkpoint of this run must fit whole: a prompt or head left at its
        // initialisation would not be a resume.
        let exact = |model: &Punet, file: &Path| -> Result<Punet, TrainError> {
            let (loaded, notes) =
                load_punet_weights(model.clone(), file).map_err(|e| TrainError::run(file, e))?;
            if notes.is_empty() {
                Ok(loaded)
            } else {
                Err(TrainError::run(
                    file,
                    format!(
                        "does not fit this config's model ({}): resume with the settings the run was started with",
                        notes.join("; ")
                    ),
                ))
            }
        };
        let (resumed, state, restored) = checkpoint::load_with(dir, optim, |file| {
            let loaded = exact(&student, file)?;
            teacher = exact(&teacher, &file.with_file_name("teacher.safetensors"))?;
            Ok(loaded)
        })?;
        student = resumed;
        optim = restored;
        start_epoch = state.epoch + 1;
        step = state.step;
        checkpoint::continue_run(&run_dir, state.epoch, &config.to_toml())?;
    }
    let prompts = ParamGroup::new(&student, &is_prompt_path);

    let [tx, ty] = config.data.teacher_size;
    let loader = VolumeLoader::new(
        set.clone(),
        set.split.train.clone(),
        SamplingConfig {
            shape: PatchShape::Slice2d { size: [tx, ty] },
            p_fg: config.data.p_fg,
            samples_per_volume: config.data.samples_per_volume,
        },
        config.data.augment,
        VolumeLoaderOptions {
            batch_size: config.train.batch_size,
            mode: LoaderMode::Train,
            drop_last: false,
            seed: config.train.seed,
            threads: ept_backend::worker_threads(config.data.workers),
        },
    )?;
    ept_backend::memory::note_batch(config.train.batch_size, None);
    let kmeans = SoftKMeans {
        iterations: config.cpa.kmeans_iterations,
        temperature: config.cpa.teacher_temperature,
        fwhm: config.cpa.fwhm,
        z_scale: 2.0,
    };
    let rates = EmaRates {
        body: config.cpa.ema_body,
        prompts: config.cpa.ema_prompts,
    };
    let log_path = run_dir.join("metrics.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| TrainError::write(&log_path, e))?;
    let mut write_log = |record: serde_json::Value| -> Result<(), TrainError> {
        writeln!(log, "{record}").map_err(|e| TrainError::write(&log_path, e))
    };
    if resume_from.is_none() {
        write_log(
            json!({"event": "start", "task": "pretrain", "params": student.counts().total,
            "train_volumes": set.split.train.len(), "base_classes": config.cpa.base_classes}),
        )?;
    }
    let steps_per_epoch = loader.batch_indices(0).len();
    let total_steps = steps_per_epoch * config.train.epochs;
    let last_epoch = match options.stop_after_epochs {
        Some(n) => (start_epoch + n).min(config.train.epochs),
        None => config.train.epochs,
    };
    let (mut first, mut last) = ([0f64; 3], [0f64; 3]);
    for epoch in start_epoch..last_epoch {
        let epoch_start = Instant::now();
        let mut sums = [0f64; 3];
        for (i, batch) in loader.epoch(epoch as u64).enumerate() {
            let batch = batch?;
            let b = batch.len();
            let mut rngs: Vec<Rng> = (0..b)
                .map(|k| sample_rng(config.train.seed ^ 0xC9A, epoch as u64, i * b + k))
                .collect();
            let class = config.cpa.base_classes[rngs[0].below(config.cpa.base_classes.len())];
            let classes = [class];

            // Teacher: embeddings of the whole crop, prototypes and target assignments.
            let teacher_images = Tensor::<5>::from_data(
                TensorData::new(batch.images.clone(), [b, 1, tx, ty, 1]),
                &inference,
            );
            let teacher_features = teacher.features(teacher_images, &classes, &NoUnetHooks);
            let targets_grid = pool(teacher_features.clone(), 2); // ¼ resolution
            let seeds = pool(teacher_features, 4); // ⅛ resolution
            let [_, _, qh, qw] = targets_grid.dims();
            let [_, _, ph, pw] = seeds.dims();
            let teacher_coords = grid_coords(qh, qw, 4, [0, 0]);
            let seed_coords = grid_coords(ph, pw, 8, [0, 0]);
            let mut per_item = Vec::with_capacity(b);
            for k in 0..b {
                let (mu, _) = kmeans.cluster(
                    rows(&targets_grid, k),
                    tensor2(teacher_coords.clone(), 3, &inference),
                    rows(&seeds, k),
                    tensor2(seed_coords.clone(), 3, &inference),
                );
                let targets =
                    SoftKMeans::assign(rows(&targets_grid, k), mu.clone(), config.cpa.teacher_temperature);
                per_item.push((to_device2(mu, &device), to_device2(targets, &device)));
            }

            // Students: segmentation + assignment losses.
            let mut seg_total: Option<Tensor<1>> = None;
            let mut cpa_total: Option<Tensor<1>> = None;
            for size in &config.data.student_sizes {
                let view = student_view(
                    &batch.images,
                    &batch.labels,
                    b,
                    [tx, ty],
                    *size,
                    config.data.student_intensity,
                    &mut rngs,
                );
                let [sx, sy] = *size;
                let images = Tensor::<5>::from_data(TensorData::new(view.images, [b, 1, sx, sy, 1]), &device);
                let labels: Vec<i64> = view
                    .labels
                    .iter()
                    .map(|&l| (l as usize == class) as i64)
                    .collect();
                let labels = Tensor::<4, Int>::from_data(TensorData::new(labels, [b, sx, sy, 1]), &device);
                let (logits, features) = student.forward_with_features(images, &classes, &NoUnetHooks);
                let seg = focal_loss(logits, labels, config.cpa.focal_gamma);
                let pooled = pool(features, 2);
                let [_, _, sh, sw] = pooled.dims();
                let mut cpa_items = Vec::new();
                for (k, (mu, targets)) in per_item.iter().enumerate() {
                    let coords = grid_coords(sh, sw, 4, view.offsets[k]);
                    let matched =
                        match_positions(&coords, &teacher_coords, config.cpa.max_match_distance, 2.0);
                    let (student_rows, teacher_rows): (Vec<i64>, Vec<i64>) = matched
                        .iter()
                        .enumerate()
                        .filter_map(|(n, m)| m.map(|t| (n as i64, t as i64)))
                        .unzip();
                    if student_rows.is_empty() {
                        continue;
                    }
                    let index = |v: Vec<i64>| {
                        Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), &device)
                    };
                    let s = rows(&pooled, k).select(0, index(student_rows));
                    let t = targets.clone().select(0, index(teacher_rows));
                    cpa_items.push(assignment_loss(s, mu.clone(), t, config.cpa.student_temperature));
                }
                seg_total = Some(match seg_total {
                    Some(t) => t + seg,
                    None => seg,
                });
                if !cpa_items.is_empty() {
                    let n = cpa_items.len();
                    let mean = Tensor::cat(cpa_items, 0).sum().div_scalar(n as f64);
                    cpa_total = Some(match cpa_total {
                        Some(t) => t + mean,
                        None => mean,
                    });
                }
            }
            let seg = seg_total.expect("at least one student view");
            let cpa = cpa_total.unwrap_or_else(|| seg.zeros_like());
            let loss = seg.clone() + cpa.clone().mul_scalar(config.cpa.weight);
            let values = [loss.clone(), seg, cpa].map(|t| t.into_scalar::<f32>().to_f32() as f64);
            let lr_scale = learning_rate(&config.train.schedule, 1.0, step, total_steps);
            TrainError::check_finite(
                values[0] as f32,
                epoch,
                step,
                config.train.lr_body * lr_scale,
                &run_dir,
            )?;
            let grads = GradientsParams::from_grads(loss.backward(), &student);
            student = step_with_group(
                &mut optim,
                student,
                grads,
                config.train.lr_body * lr_scale,
                &prompts,
                config.train.lr_prompts * lr_scale,
            );
            teacher = ema_update(teacher, &student, rates)
                .map_err(|e| TrainError::run(&run_dir, format!("EMA update: {e}")))?;
            step += 1;
            for (s, v) in sums.iter_mut().zip(values) {
                *s += v;
            }
            write_log(
                json!({"event": "step", "epoch": epoch, "step": step, "loss": values[0], "seg": values[1], "cpa": values[2]}),
            )?;
            if !options.quiet {
                ept_backend::progress::show(&format!(
                    "epoch {}/{} step {}/{steps_per_epoch} loss {:.4} (seg {:.4}, cpa {:.4})   ",
                    epoch + 1,
                    config.train.epochs,
                    i + 1,
                    values[0],
                    values[1],
                    values[2]
                ));
            }
        }
        ept_backend::progress::end_line();
        let means = sums.map(|s| s / steps_per_epoch.max(1) as f64);
        if epoch == start_epoch {
            first = means;
        }
        last = means;
        write_log(
            json!({"event": "epoch", "epoch": epoch, "step": step, "mean_loss": means[0], "mean_seg": means[1],
            "mean_cpa": means[2], "seconds": epoch_start.elapsed().as_secs_f64()}),
        )?;
        checkpoint::save_with(
            &run_dir,
            &optim,
            &TrainState {
                epoch,
                step,
                seed: config.train.seed,
            },
            |file| write_checkpoint(file, &student, &teacher),
        )?;
    }
    let mut body = None;
    if last_epoch == config.train.epochs {
        let path = run_dir.join("body.safetensors");
        save_punet(&student.valid(), &path)?;
        crate::report::write_loss_curves(&log_path, &run_dir.join("loss_curves.png"))?;
        body = Some(path);
    }
    Ok(PretrainSummary {
        run_dir,
        epochs_done: last_epoch,
        first_epoch: first,
        last_epoch: last,
        body,
        seconds: started.elapsed().as_secs_f64(),
    })
}
