//! `ept-cli train | eval | predict`: run a configured experiment, re-evaluate a finished
//! run from its folder, or classify images with it.

use std::path::PathBuf;

use clap::Args;
use ept_backend::DeviceSpec;
use ept_data::{DataSource, Sample, Target, Task};
use ept_train::engine::{build_model, check_split, pipelines, probabilities};
use ept_train::evaluate::evaluate;
use ept_train::{RunConfig, TrainOptions};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run configuration (TOML; may `extends` another)
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set train.epochs=2 --set train.seed=7`. Paths
    /// are relative to the working directory; `--set method.method=NAME` starts the
    /// method's options afresh.
    #[arg(long = "set")]
    pub overrides: Vec<String>,
    /// Continue the run from its newest checkpoint
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs (the run stays resumable)
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// No progress lines
    #[arg(long)]
    pub quiet: bool,
    /// Samples (images, slices or crops) per optimizer step (= `--set train.batch_size=N`)
    #[arg(long)]
    pub batch_size: Option<usize>,
}

impl TrainArgs {
    /// The config's `--set` overrides, `--batch-size` included.
    pub fn overrides(&self) -> Vec<String> {
        let mut overrides = self.overrides.clone();
        if let Some(n) = self.batch_size {
            overrides.push(format!("train.batch_size={n}"));
        }
        overrides
    }

    /// The command line's changes to the config file, as typed.
    fn changes_as_typed(&self) -> String {
        let mut changes: Vec<String> = self.overrides.iter().map(|o| format!("--set {o}")).collect();
        if let Some(n) = self.batch_size {
            changes.push(format!("--batch-size {n}"));
        }
        changes.join(" ")
    }

    /// `result` of parsing the loaded config. Its error may be about a value the command
    /// line changed, while its message names only the file, so it says what changed it.
    pub fn parsed<T>(&self, result: Result<T, ept_train::TrainError>) -> anyhow::Result<T> {
        let changes = self.changes_as_typed();
        result.map_err(|error| match error {
            ept_train::TrainError::Config { path, message } if !changes.is_empty() => {
                ept_train::TrainError::Config {
                    path: format!("{path} (as changed by {changes})"),
                    message,
                }
                .into()
            }
            other => other.into(),
        })
    }

    pub fn options(&self, devices: &[DeviceSpec]) -> TrainOptions {
        TrainOptions {
            resume: self.resume,
            stop_after_epochs: self.stop_after,
            quiet: self.quiet,
            devices: devices.to_vec(),
        }
    }
}

pub fn train(args: &TrainArgs, devices: &[DeviceSpec]) -> anyhow::Result<()> {
    let device = &devices[0];
    let options = args.options(devices);
    let overrides = args.overrides();
    let table = ept_train::config::load_table(&args.config, &overrides)?;
    if ept_train::config::is_segmentation(&table) {
        if devices.len() > 1 {
            anyhow::bail!(
                "{}: segmentation runs train on one device (PUNet's BatchNorm and the soft \
                 Dice loss are not per-sample means, so shards would change the result); \
                 give --device one device",
                args.config.display()
            );
        }
        let config = args.parsed(ept_train::seg::SegRunConfig::from_table(table, &args.config))?;
        return crate::segment::train(&config, device, &options);
    }
    let config = args.parsed(RunConfig::from_table(table, &args.config))?;
    let summary = ept_train::train(&config, device, &options)?;
    println!(
        "run {}: {}, {} trainable of {} parameters, {:.1} s",
        summary.run_dir.display(),
        crate::epochs(summary.epochs_done),
        summary.trainable_params,
        summary.total_params,
        summary.seconds
    );
    for (split, result) in [("val", &summary.val), ("test", &summary.test)] {
        if let Some(result) = result {
            let metrics: Vec<String> = result
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            println!("{split}: {}", metrics.join(", "));
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A finished run folder (holds config.toml and method.safetensors)
    #[arg(long)]
    pub run: PathBuf,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Evaluate on this annotation list instead of the config's test list (same format)
    #[arg(long)]
    pub list: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Images to classify
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Output format
    #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
    pub format: String,
}

/// The finished run's config, task and trained model (validation mode, plain device).
fn load_run(
    run: &RunArgs,
    device: &DeviceSpec,
) -> anyhow::Result<(RunConfig, ept_tuning::TunedVit, Task, usize)> {
    if !run.run.is_dir() {
        anyhow::bail!(
            "{}: --run takes a run folder (the output.dir of a train command)",
            run.run.display()
        );
    }
    let config_file = run.run.join("config.toml");
    if !config_file.is_file() {
        anyhow::bail!("{} is not a run folder: it has no config.toml", run.run.display());
    }
    let table = ept_train::config::load_table(&config_file, &[])?;
    match table.get("task").and_then(|t| t.as_str()) {
        Some("segmentation") => anyhow::bail!(
            "{} is a segmentation run: eval, predict and export take classification runs \
             (a segmentation run writes its test predictions and Dice scores while it trains)",
            run.run.display()
        ),
        Some("pretrain") => anyhow::bail!(
            "{} is a CPA pre-training run: eval, predict and export take classification runs \
             (its body.safetensors is the model.checkpoint of a segmentation config)",
            run.run.display()
        ),
        _ => {}
    }
    let config = RunConfig::from_table(table, &config_file)?;
    let method_file = run.run.join("method.safetensors");
    if !method_file.exists() {
        anyhow::bail!(
            "{} has not finished training (it has no method.safetensors yet): continue it with \
             `ept-cli train --config <its config> --resume`",
            run.run.display()
        );
    }
    let meta = ept_tuning::checkpoint::read_method_meta(&method_file)?;
    // Seeded as training seeded it: a backbone without a checkpoint is then the same
    // random backbone the run was trained on, not a new one at every call.
    let inference = device.device();
    ept_backend::seed_everything(&inference, config.train.seed);
    let mut notes = Vec::new();
    let (model, vit) = build_model(&config, meta.num_classes, &inference, &mut notes)?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    let (model, _) = ept_tuning::checkpoint::load_method(model, &vit.name, &method_file)?;
    // The task follows from the training source's format: the run needs no data files.
    let task = config.data.train.task();
    Ok((config, model, task, vit.img_size))
}

pub fn eval(args: &EvalArgs, device: &DeviceSpec) -> anyhow::Result<()> {
    let (config, model, task, size) = load_run(&args.run, device)?;
    let source = match (&args.list, &config.data.test) {
        (Some(list), Some(test @ DataSource::List { .. })) => {
            // The run's test source with another list: same image folder, format,
            // number of classes and class names.
            let mut source = test.clone();
            if let DataSource::List { list: path, .. } = &mut source {
                *path = list.clone();
            }
            source
        }
        (Some(_), _) => anyhow::bail!(
            "--list needs the run's test source to be a `list` (for its image folder and format)"
        ),
        (None, Some(test)) => test.clone(),
        (None, None) => anyhow::bail!("the run's config has no test list; pass --list"),
    };
    let set = source.load()?;
    let key = if args.list.is_some() {
        "--list"
    } else {
        "data.test"
    };
    check_split(&set, source.origin(), key, model.head.num_classes(), task)?;
    let (_, eval_pipeline) = pipelines(config.data.pipeline, size);
    let loader = ept_data::Loader::from_dataset(&set, eval_pipeline, eval_options())?;
    let result = evaluate(&model, &loader, task, &device.device(), false)?;
    println!("{}", serde_json::to_string_pretty(&result.metrics)?);
    Ok(())
}

fn eval_options() -> ept_data::LoaderOptions {
    ept_data::LoaderOptions {
        batch_size: 16,
        shuffle: false,
        drop_last: false,
        seed: 0,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        prefetch: 2,
    }
}

pub fn predict(args: &PredictArgs, device: &DeviceSpec) -> anyhow::Result<()> {
    let (config, model, task, size) = load_run(&args.run, device)?;
    let classes = model.head.num_classes();
    // Folders and missing files are known without decoding. An image that does not
    // decode stops the loader; then each image is run alone, so that one unreadable
    // file does not cost the readable ones their rows (decoding twice only then).
    let mut unreadable = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    for path in &args.images {
        if path.is_dir() {
            unreadable.push(format!("{}: is a folder, not an image file", path.display()));
        } else if !path.is_file() {
            unreadable.push(format!("{}: does not exist", path.display()));
        } else {
            samples.push(Sample {
                path: path.clone(),
                id: path.display().to_string(),
                target: Target::Single(0),
                group: None,
            });
        }
    }
    let (_, eval_pipeline) = pipelines(config.data.pipeline, size);
    // The class probabilities of `samples`, in their order.
    let probabilities_of = |samples: &[Sample]| -> anyhow::Result<Vec<Vec<f32>>> {
        let loader = ept_data::Loader::new(samples.to_vec(), classes, eval_pipeline.clone(), eval_options())?;
        let mut rows = vec![Vec::new(); samples.len()];
        for batch in loader.epoch(0) {
            let batch = batch?.into_device(&device.device());
            let probs = probabilities(model.forward(batch.images), task).into_data();
            let values = probs.try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            for (row, index) in values.chunks(classes).zip(batch.indices) {
                rows[index] = row.to_vec();
            }
        }
        Ok(rows)
    };
    let name = |sample: &Sample| sample.path.display().to_string();
    let rows: Vec<(String, Vec<f32>)> = match probabilities_of(&samples) {
        Ok(all) => samples.iter().map(name).zip(all).collect(),
        Err(_) => {
            let mut rows = Vec::new();
            for sample in &samples {
                match probabilities_of(std::slice::from_ref(sample)) {
                    Ok(mut one) => rows.push((name(sample), one.remove(0))),
                    Err(error) => unreadable.push(error.to_string()),
                }
            }
            rows
        }
    };
    if rows.is_empty() {
        anyhow::bail!("no image could be read:\n  {}", unreadable.join("\n  "));
    }
    if args.format == "json" {
        let json: Vec<_> = rows
            .iter()
            .map(|(p, r)| serde_json::json!({"image": p, "probabilities": r}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let header: Vec<String> = (0..classes).map(|c| format!("p{c}")).collect();
        println!("image,{}", header.join(","));
        for (path, row) in rows {
            let values: Vec<String> = row.iter().map(|v| format!("{v:.6}")).collect();
            println!("{path},{}", values.join(","));
        }
    }
    if !unreadable.is_empty() {
        anyhow::bail!(
            "{} of {} images could not be read (the others' rows are above):\n  {}",
            unreadable.len(),
            args.images.len(),
            unreadable.join("\n  ")
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Output `.safetensors` file (timm key names, PyTorch layout)
    #[arg(long)]
    pub out: PathBuf,
    /// Store f16 (half the size)
    #[arg(long)]
    pub half: bool,
}

/// Write a finished run's backbone (e.g. one pretrained with `method = "full"`) as timm weights.
pub fn export(args: &ExportArgs, device: &DeviceSpec) -> anyhow::Result<()> {
    // The run's own files (its trained method, config, log, checkpoints) are never
    // overwritten.
    const RUN_FILES: [&str; 4] = ["method.safetensors", "config.toml", "metrics.jsonl", "report.md"];
    let out_folder = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let out_name = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let (Ok(out_folder), Ok(run)) = (out_folder.canonicalize(), args.run.run.canonicalize())
        && (out_folder.starts_with(run.join("checkpoints"))
            || (out_folder == run && RUN_FILES.contains(&out_name.as_str())))
    {
        anyhow::bail!(
            "--out {} would overwrite a file of the run {}: write the export elsewhere",
            args.out.display(),
            args.run.run.display()
        );
    }
    let (config, model, _, _) = load_run(&args.run, device)?;
    let metadata = std::collections::HashMap::from([
        ("model".to_string(), config.model.name.clone()),
        ("exported_from".to_string(), args.run.run.display().to_string()),
    ]);
    let bytes = model.backbone.save_timm(&args.out, args.half, metadata)?;
    println!(
        "wrote {} ({bytes} bytes, {})",
        args.out.display(),
        if args.half { "f16" } else { "f32" }
    );
    Ok(())
}
