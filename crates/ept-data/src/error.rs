//! Typed errors of the data layer. Problems in a user's file are reported as
//! `file:line: what is wrong` ([`DataError::Line`] with a [`LineProblem`]) so an editor
//! can jump to them; sampling and transform problems have their own enums because the
//! engine may want to react to them (e.g. fall back to fewer shots). Volume problems name
//! the NIfTI file ([`DataError::Nifti`]) or both files of an image/label pair
//! ([`DataError::VolumePair`]).

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading, sampling, decoding or batching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A line of an annotation list or CSV file is malformed.
    #[error("{file}:{line}: {problem}")]
    Line {
        file: String,
        line: usize,
        problem: LineProblem,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: cannot decode image: {message}", path.display())]
    Decode { path: PathBuf, message: String },
    /// A data set or option that is wrong as a whole (not one line of a file).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    #[error("{}: {source}", path.display())]
    Transform { path: PathBuf, source: TransformError },
    #[error("cannot start the decode thread pool: {0}")]
    ThreadPool(String),
    /// A NIfTI file that cannot be read or written as a volume (corrupt, truncated, not
    /// NIfTI, wrong dimensionality, non-finite voxels, non-integer labels …).
    #[error("{}: {message}", path.display())]
    Nifti { path: PathBuf, message: String },
    /// An image and its label map that do not describe the same grid.
    #[error("{} and {}: {problem}", image.display(), labels.display())]
    VolumePair {
        image: PathBuf,
        labels: PathBuf,
        problem: String,
    },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn nifti(path: &Path, message: impl Into<String>) -> Self {
        DataError::Nifti {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub(crate) fn line(file: &Path, line: usize, problem: LineProblem) -> Self {
        DataError::Line {
            file: file.display().to_string(),
            line,
            problem,
        }
    }
}

/// What is wrong with one line of an annotation file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("missing labels: expected `<file name> {expected}`")]
    MissingLabels { expected: String },
    #[error("missing file name before the labels")]
    MissingFileName,
    #[error("wrong number of labels: expected {expected}, found {found}")]
    WrongLabelCount { expected: usize, found: usize },
    #[error("label '{token}' is not a number")]
    NotANumber { token: String },
    #[error("label {value} out of range: expected {allowed}")]
    OutOfRange { value: i64, allowed: String },
    #[error("unknown image '{name}': no such file in {}", dir.display())]
    UnknownImage { name: String, dir: PathBuf },
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("wrong number of columns: expected {expected}, found {found}")]
    WrongColumnCount { expected: usize, found: usize },
    #[error("empty {column} column")]
    EmptyColumn { column: &'static str },
    #[error("expected the header `{expected}`, found `{found}`")]
    Header { expected: &'static str, found: String },
    #[error("{column} file '{}' does not exist", path.display())]
    MissingFile { column: &'static str, path: PathBuf },
    #[error("{column} file '{}' is already listed on line {first_line} (a volume listed twice could land in training and test)", path.display())]
    Repeated {
        column: &'static str,
        path: PathBuf,
        first_line: usize,
    },
    /// `column` names which file of the line, where a line lists more than one.
    #[error("{}'{}' is a folder, not a file", column.map(|c| format!("{c} file ")).unwrap_or_default(), path.display())]
    NotAFile {
        column: Option<&'static str>,
        path: PathBuf,
    },
}

impl LineProblem {
    /// The problem with a listed `path` (in `column`, where a line lists several files)
    /// that is not a file: a folder is named as one, anything else is `missing`. `None`
    /// when it is a file.
    pub(crate) fn for_listed(
        path: &Path,
        column: Option<&'static str>,
        missing: impl FnOnce() -> LineProblem,
    ) -> Option<LineProblem> {
        if path.is_file() {
            None
        } else if path.is_dir() {
            Some(LineProblem::NotAFile {
                column,
                path: path.to_path_buf(),
            })
        } else {
            Some(missing())
        }
    }
}

/// Why a few-shot (or fraction) subset could not be drawn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    #[error(
        "cannot draw {shots}-shot: every class needs at least {shots} groups (grouping '{grouping}'), but {}",
        short.iter().map(|s| format!("class {} has {}", s.class, s.available)).collect::<Vec<_>>().join(", ")
    )]
    NotEnoughGroups {
        shots: usize,
        grouping: String,
        short: Vec<Shortfall>,
    },
    #[error("sample '{id}' has no group, but grouping 'column' needs a group column")]
    MissingGroup { id: String },
    #[error("sample '{id}' has label {class}, but the data set has {num_classes} classes")]
    LabelOutOfRange {
        id: String,
        class: usize,
        num_classes: usize,
    },
    #[error("shots must be at least 1")]
    ZeroShots,
    #[error("fraction must be in (0, 1], got {0}")]
    InvalidFraction(f64),
    #[error("nothing to sample from: the training pool is empty after removing held-out groups")]
    EmptyPool,
}

/// One class that has fewer groups than the requested shots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub class: usize,
    pub available: usize,
}

/// A transform that cannot be applied to an image (or is configured wrongly).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("{transform}: expected {expected} channels, image has {found}")]
    Channels {
        transform: &'static str,
        expected: String,
        found: usize,
    },
    #[error("image is empty ({channels}x{height}x{width})")]
    Empty {
        channels: usize,
        height: usize,
        width: usize,
    },
    #[error("image data has {found} values, expected {channels}x{height}x{width}")]
    DataLength {
        channels: usize,
        height: usize,
        width: usize,
        found: usize,
    },
    #[error("{transform}: {message}")]
    Parameter {
        transform: &'static str,
        message: String,
    },
}
