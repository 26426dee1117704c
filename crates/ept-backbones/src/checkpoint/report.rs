//! What a checkpoint load did or why it failed, phrased for the person who ran it.

use std::fmt;
use std::path::PathBuf;

/// A tensor whose shape differs between model and checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub key: String,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (model {:?}, file {:?})",
            self.key, self.expected, self.found
        )
    }
}

/// Why a checkpoint could not be loaded (or an export written).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing an export failed; `source` already names the path (`ept_backend::fs`).
    #[error("cannot write the export: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {} is unreadable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// Boxed: the lists would make every `Result<_, CheckpointError>` large.
    #[error(transparent)]
    Mismatch(Box<KeyMismatch>),
}

/// A checkpoint whose tensor names or shapes do not fit the model.
#[derive(Debug, thiserror::Error)]
#[error(
    "checkpoint {} does not fit model {model} ({naming} key naming detected): {}. \
     Is it a checkpoint of another architecture or size?",
    path.display(),
    describe_mismatch(missing, unexpected, mismatched)
)]
pub struct KeyMismatch {
    pub path: PathBuf,
    pub model: String,
    pub naming: String,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub mismatched: Vec<ShapeMismatch>,
}

/// At most this many names are printed per list; the rest are counted.
const LIST_LIMIT: usize = 8;

fn list<T: fmt::Display>(items: &[T]) -> String {
    let mut text = items
        .iter()
        .take(LIST_LIMIT)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_LIMIT {
        text.push_str(&format!(" and {} more", items.len() - LIST_LIMIT));
    }
    text
}

fn describe_mismatch(missing: &[String], unexpected: &[String], mismatched: &[ShapeMismatch]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} missing keys: {}", missing.len(), list(missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected keys: {}",
            unexpected.len(),
            list(unexpected)
        ));
    }
    if !mismatched.is_empty() {
        parts.push(format!(
            "{} shape mismatches: {}",
            mismatched.len(),
            list(mismatched)
        ));
    }
    parts.join("; ")
}

/// What a successful load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub path: PathBuf,
    /// `timm` or `mmcls`.
    pub naming: String,
    /// Model keys (timm naming) that received checkpoint values.
    pub loaded: Vec<String>,
    /// Things the user should know: interpolated position grid, re-initialised head, …
    pub notes: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "loaded {} tensors from {} ({} naming)",
            self.loaded.len(),
            self.path.display(),
            self.naming
        )?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}
