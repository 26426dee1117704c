//! `ept-data` — the data layer for few-shot classification: it reads MedFMC annotation
//! lists (chest / endo / colon), image folders and CSV files into one [`Sample`]
//! representation, draws MedFMC-style few-shot subsets by patient/study/slide group,
//! decodes and augments images with composable, seeded [`Transform`]s, and batches them
//! into burn tensors on a thread pool with prefetch. The engine never parses files: it
//! asks a [`DataSource`] for a [`Dataset`] and a [`Loader`] for batches.
//!
//! Module map: [`format`] (list line syntax) → [`list`], [`csv`], [`folder`] (readers and
//! writers) → [`dataset`] (the config-facing [`DataSource`]) → [`grouping`] + [`fewshot`]
//! (sampling) → [`sample_cmd`] (the `ept-cli sample` command as a library call);
//! [`image`] (decoding) → [`transform`] → [`loader`] (batches) → [`bench`];
//! [`volume`] (3-D CT/MRI for segmentation: NIfTI I/O → resampling, windowing, pad/crop →
//! the `image,label` list, label grouping, split and in-memory cache → slice/patch
//! sampling with foreground weighting → augmentation → [`VolumeBatch`]es).

pub mod bench;
pub mod csv;
pub mod dataset;
pub mod error;
pub mod fewshot;
pub mod folder;
pub mod format;
pub mod grouping;
pub mod image;
pub mod list;
pub mod loader;
pub mod sample;
pub mod sample_cmd;
pub mod transform;
pub mod volume;

pub use dataset::{DataSource, Dataset, Layout};
pub use error::{DataError, LineProblem, SamplingError, TransformError};
pub use fewshot::{FewShot, FewShotSpec, FractionSpec, MultiLabelPolicy, sample_few_shot, sample_fraction};
pub use format::{LabelSyntax, ListFormat, ListKind};
pub use grouping::Grouping;
pub use image::{Image, decode_bytes, decode_file};
pub use list::first_repeat;
pub use loader::{Batch, BatchTargets, HostBatch, Loader, LoaderOptions, sample_rng};
pub use sample::{Sample, Target, Task};
pub use sample_cmd::{SampleOptions, SampleSummary, SeedList, Shots};
pub use transform::{Interpolation, Pipeline, Size, Transform};
pub use volume::augment::AugmentConfig;
pub use volume::batch::{HostVolumeBatch, LoaderMode, VolumeBatch, VolumeLoader, VolumeLoaderOptions};
pub use volume::geometry::{PadCrop, pad_or_crop_to, undo_pad_or_crop};
pub use volume::intensity::IntensityWindow;
pub use volume::nifti_io::{
    NiftiDatatype, check_pair, read_label_map, read_volume, write_volume, write_volume_like,
};
pub use volume::resample::{Interp, resample_to_dims, resample_to_spacing};
pub use volume::sampling::{PatchOrigin, PatchShape, SamplingConfig};
pub use volume::source::{PreparedVolume, SplitFractions, VolumeSet, VolumeSource, VolumeSplit};
pub use volume::{LabelMap, Volume};
