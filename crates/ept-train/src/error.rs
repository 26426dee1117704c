//! Errors of the training engine, each naming the file, key or step it concerns.

use std::path::Path;

use ept_backbones::checkpoint::store::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("config {path}: {message}")]
    Config { path: String, message: String },
    #[error(transparent)]
    Data(#[from] ept_data::DataError),
    /// Not for writes: a [`ept_tuning::TuningError::Write`] becomes [`TrainError::Write`].
    #[error(transparent)]
    Tuning(ept_tuning::TuningError),
    #[error(transparent)]
    Model(#[from] ept_backbones::VitError),
    #[error(transparent)]
    Checkpoint(#[from] ept_backbones::CheckpointError),
    #[error(
        "the loss became {value} at epoch {epoch}, step {step} (learning rate {lr:e}); training stopped. {advice}"
    )]
    NonFinite {
        value: f32,
        epoch: usize,
        step: usize,
        lr: f64,
        /// What to do: resume from the last checkpoint, or start again if there is none.
        advice: String,
    },
    /// `source` reads "writing PATH: why" (see [`TrainError::write`]).
    #[error("{source}. The last checkpoint saved before this (if any) is intact")]
    Write { path: String, source: std::io::Error },
    /// A file or folder a run reads or writes (a checkpoint, a report, a weights file).
    #[error("{path}: {message}")]
    Run { path: String, message: String },
}

impl From<ept_tuning::TuningError> for TrainError {
    fn from(error: ept_tuning::TuningError) -> Self {
        match error {
            ept_tuning::TuningError::Write(write) => write.into(),
            other => TrainError::Tuning(other),
        }
    }
}

impl From<WriteError> for TrainError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Io { path, source } => TrainError::write(&path, source),
            WriteError::Encode { path, reason } => TrainError::run(&path, format!("encoding: {reason}")),
        }
    }
}

impl TrainError {
    pub fn config(path: &Path, message: impl std::fmt::Display) -> Self {
        TrainError::Config {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }

    pub fn write(path: &Path, source: std::io::Error) -> Self {
        let source = if source.to_string().starts_with("writing ") {
            source // already explained by ept_backend::fs
        } else {
            ept_backend::fs::explain(source, path)
        };
        TrainError::Write {
            path: path.display().to_string(),
            source,
        }
    }

    /// `value`, or the [`TrainError::NonFinite`] that stops a run whose loss is NaN/∞ at
    /// this epoch/step (`run_dir` holds the last good checkpoint).
    pub fn check_finite(value: f32, epoch: usize, step: usize, lr: f64, run_dir: &Path) -> Result<f32, Self> {
        if value.is_finite() {
            Ok(value)
        } else {
            // Checkpoints are written at the end of each epoch: in the first there is none.
            let advice = if epoch == 0 {
                format!(
                    "No checkpoint was written yet: lower the learning rate (or check the loss settings) \
                     and run the same command again without --resume; it starts {} over",
                    run_dir.display()
                )
            } else {
                format!(
                    "The last good checkpoint in {} is intact: lower the learning rate and resume with --resume",
                    run_dir.display()
                )
            };
            Err(TrainError::NonFinite {
                value,
                epoch,
                step,
                lr,
                advice,
            })
        }
    }

    pub fn run(path: &Path, message: impl std::fmt::Display) -> Self {
        TrainError::Run {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}
