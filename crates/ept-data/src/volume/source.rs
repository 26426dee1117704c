//! Volume data sets: the `image,label` CSV list ([`read_volume_list`]), the config that
//! says how to load and preprocess it ([`VolumeSource`]), the seeded train/val/test
//! split ([`split_volumes`]) and the loaded, preprocessed result ([`VolumeSet`]), cached
//! in memory so an epoch never touches the disk.
//!
//! Preprocessing, once per volume at load: label grouping (or a range check) →
//! resample to `spacing` (trilinear image, nearest labels) → intensity window (to
//! `[-1, 1]`) → optional centred pad/crop to `dims` (image padded with −1, labels with 0).
//!
//! ```toml
//! [data]
//! list = "datasets/brain_volumes/volumes.csv"      # header `image,label`, paths relative to it
//! classes = "datasets/brain_volumes/classes.txt"  # or class_names = ["background", …]
//! spacing = [1.25, 1.25, 2.5]                      # mm (default)
//! window = { min = 0.0, max = 255.0 }              # default: CT −1000..1000
//! split = { train = 0.7, val = 0.1, test = 0.2 }   # default
//! seed = 0
//! few_volumes = 2                                  # optional: first 2 training volumes
//! # label_groups = { 1 = [2001, 2002], 2 = [8101] } # class → source values; others → 0
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ept_backend::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::geometry::{PadCrop, pad_or_crop_to, undo_pad_or_crop};
use super::intensity::IntensityWindow;
use super::nifti_io::{check_pair, read_label_map, read_volume};
use super::resample::{Interp, resample_to_dims, resample_to_spacing};
use super::{LabelMap, Volume};
use crate::error::{DataError, LineProblem};
use crate::list::text_lines;

/// Image value used for padding after windowing (the window minimum).
pub const IMAGE_PAD: f32 = -1.0;
/// Split sub-stream id (never shared with shuffling or augmentation).
const SPLIT_STREAM: u64 = 0x5350_4c54; // "SPLT"

/// One row of a volume list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeEntry {
    /// The image path as written in the list (used as the volume's id).
    pub id: String,
    pub image: PathBuf,
    pub label: PathBuf,
}

/// Read a CSV list with the header `image,label`; paths are relative to the CSV's folder
/// and must exist. Errors are `file:line: problem`.
pub fn read_volume_list(csv: &Path) -> Result<Vec<VolumeEntry>, DataError> {
    let bytes = std::fs::read(csv).map_err(|e| DataError::io(csv, e))?;
    let base = csv.parent().unwrap_or(Path::new(""));
    let lines = text_lines(&bytes, csv)?;
    let Some(((first_no, first), rows)) = lines.split_first() else {
        return Err(DataError::Invalid(format!(
            "{}: empty volume list (expected the header `image,label` and one row per volume)",
            csv.display()
        )));
    };
    let header: Vec<String> = first.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
    if header != ["image", "label"] {
        return Err(DataError::line(
            csv,
            *first_no,
            LineProblem::Header {
                expected: "image,label",
                found: first.clone(),
            },
        ));
    }
    let mut out = Vec::with_capacity(rows.len());
    // Each image by what it is (another spelling of a path is the same file) → its line.
    let mut listed: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
    for (line, text) in rows {
        let err = |p| DataError::line(csv, *line, p);
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() != 2 {
            return Err(err(LineProblem::WrongColumnCount {
                expected: 2,
                found: fields.len(),
            }));
        }
        let mut paths = [PathBuf::new(), PathBuf::new()];
        for ((column, field), slot) in ["image", "label"].into_iter().zip(&fields).zip(&mut paths) {
            if field.is_empty() {
                return Err(err(LineProblem::EmptyColumn { column }));
            }
            let path = base.join(field);
            if let Some(problem) = LineProblem::for_listed(&path, Some(column), || LineProblem::MissingFile {
                column,
                path: path.clone(),
            }) {
                return Err(err(problem));
            }
            // An image twice would let one volume into two splits; a label map may be
            // shared (one empty mask for every negative case).
            if column == "image" {
                let file = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if let Some(&first_line) = listed.get(&file) {
                    return Err(err(LineProblem::Repeated {
                        column,
                        path,
                        first_line,
                    }));
                }
                listed.insert(file, *line);
            }
            *slot = path;
        }
        let [image, label] = paths;
        out.push(VolumeEntry {
            id: fields[0].to_string(),
            image,
            label,
        });
    }
    if out.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: the list has no volumes",
            csv.display()
        )));
    }
    Ok(out)
}

/// Train/val/test fractions (must sum to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFractions {
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions {
            train: 0.7,
            val: 0.1,
            test: 0.2,
        }
    }
}

/// Volume indices of each subset, in the shuffled order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeSplit {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// Shuffle `0..n` with `seed` and cut it into train | val | test.
///
/// Rounding: `n_val = round(n·val)`, `n_test = round(n·test)` (halves away from zero),
/// `n_train` = the rest; when that leaves no training volume, one is taken back from
/// test, else from val. So 10 volumes at 0.7/0.1/0.2 give 7/1/2, and 1 volume gives 1/0/0.
pub fn split_volumes(n: usize, fractions: SplitFractions, seed: u64) -> Result<VolumeSplit, DataError> {
    let SplitFractions { train, val, test } = fractions;
    let ok = [train, val, test].iter().all(|f| f.is_finite() && *f >= 0.0);
    if !ok || (train + val + test - 1.0).abs() > 1e-6 || train <= 0.0 {
        return Err(DataError::Invalid(format!(
            "data.source.split: fractions train {train}, val {val}, test {test} must be non-negative, sum to 1, with train > 0"
        )));
    }
    if n == 0 {
        return Err(DataError::Invalid("cannot split an empty volume list".into()));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed).fork(SPLIT_STREAM).shuffle(&mut order);
    let mut n_val = (n as f64 * val).round() as usize;
    let mut n_test = (n as f64 * test).round() as usize;
    while n_val + n_test >= n {
        if n_test > 0 {
            n_test -= 1;
        } else {
            n_val -= 1;
        }
    }
    let n_train = n - n_val - n_test;
    Ok(VolumeSplit {
        train: order[..n_train].to_vec(),
        val: order[n_train..n_train + n_val].to_vec(),
        test: order[n_train + n_val..].to_vec(),
    })
}

fn default_spacing() -> [f32; 3] {
    [1.25, 1.25, 2.5]
}

/// Where a volume data set lives and how it is preprocessed (a `[data]` config table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSource {
    /// CSV list with the header `image,label`.
    pub list: PathBuf,
    /// Class names in label order, background (0) first.
    #[serde(default)]
    pub class_names: Vec<String>,
    /// Alternatively, a file with one class name per line.
    #[serde(default)]
    pub classes: Option<PathBuf>,
    /// Class index → the source label values it gathers; values in no group become 0.
    /// Without it, source labels must already be class indices.
    #[serde(default)]
    pub label_groups: Option<BTreeMap<String, Vec<u32>>>,
    /// Target voxel spacing in mm.
    #[serde(default = "default_spacing")]
    pub spacing: [f32; 3],
    #[serde(default)]
    pub window: IntensityWindow,
    /// Pad/crop every volume (centred) to these dims after resampling.
    #[serde(default)]
    pub dims: Option<[usize; 3]>,
    #[serde(default)]
    pub split: SplitFractions,
    /// Seed of the split shuffle.
    #[serde(default)]
    pub seed: u64,
    /// Keep only the first N training volumes (of the shuffled order).
    #[serde(default)]
    pub few_volumes: Option<usize>,
}

impl VolumeSource {
    /// A source with every default (`spacing` 1.25×1.25×2.5 mm, CT window, 0.7/0.1/0.2).
    pub fn new(list: impl Into<PathBuf>, class_names: Vec<String>) -> Self {
        VolumeSource {
            list: list.into(),
            class_names,
            classes: None,
            label_groups: None,
            spacing: default_spacing(),
            window: IntensityWindow::default(),
            dims: None,
            split: SplitFractions::default(),
            seed: 0,
            few_volumes: None,
        }
    }

    /// The class names (from `class_names` or the `classes` file).
    pub fn class_names(&self) -> Result<Vec<String>, DataError> {
        let names = match (&self.classes, self.class_names.is_empty()) {
            (Some(_), false) => {
                return Err(DataError::Invalid(
                    "data.source: give either `class_names` or `classes`, not both".into(),
                ));
            }
            (Some(file), true) => {
                let bytes = std::fs::read(file).map_err(|e| DataError::io(file, e))?;
                text_lines(&bytes, file)?.into_iter().map(|(_, t)| t).collect()
            }
            (None, _) => self.class_names.clone(),
        };
        if names.len() < 2 {
            let from = match &self.classes {
                Some(file) => format!("{} (data.source.classes)", file.display()),
                None => "data.source.class_names".to_string(),
            };
            return Err(DataError::Invalid(format!(
                "{from}: need at least 2 class names (background first), got {names:?}"
            )));
        }
        if let Some(twice) = crate::list::first_repeat(&names) {
            return Err(DataError::Invalid(format!(
                "data.source: class name {twice:?} is given twice"
            )));
        }
        if names.len() > usize::from(u16::MAX) {
            return Err(DataError::Invalid("data.source: too many classes".into()));
        }
        Ok(names)
    }

    /// Source value → class lookup (65,536 entries), or `None` without `label_groups`.
    fn label_table(&self, num_classes: usize) -> Result<Option<Vec<u16>>, DataError> {
        let Some(groups) = &self.label_groups else {
            return Ok(None);
        };
        let mut table = vec![0u16; 1 << 16];
        let mut owner: Vec<Option<usize>> = vec![None; 1 << 16];
        for (key, values) in groups {
            let class: usize = key
                .trim()
                .parse()
                .ok()
                .filter(|&c| c < num_classes)
                .ok_or_else(|| {
                    DataError::Invalid(format!(
                        "label_groups: key '{key}' is not a class index in 0..{num_classes}"
                    ))
                })?;
            for &v in values {
                let slot = usize::try_from(v)
                    .ok()
                    .filter(|&v| v <= usize::from(u16::MAX))
                    .ok_or_else(|| {
                        DataError::Invalid(format!("label_groups: source value {v} is above 65535"))
                    })?;
                if let Some(other) = owner[slot].filter(|&o| o != class) {
                    return Err(DataError::Invalid(format!(
                        "label_groups: source value {v} is in both class {other} and class {class}"
                    )));
                }
                owner[slot] = Some(class);
                table[slot] = class as u16;
            }
        }
        Ok(Some(table))
    }

    /// Read, check, preprocess and split every volume of the list.
    pub fn load(&self) -> Result<VolumeSet, DataError> {
        let class_names = self.class_names()?;
        let table = self.label_table(class_names.len())?;
        self.window
            .validate()
            .map_err(|e| DataError::Invalid(format!("data.source.window: {e}")))?;
        if self.spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(DataError::Invalid(format!(
                "data.source.spacing {:?} must be positive and finite",
                self.spacing
            )));
        }
        if self.dims.is_some_and(|d| d.contains(&0)) {
            return Err(DataError::Invalid(format!(
                "data.source.dims {:?} contain a zero",
                self.dims
            )));
        }
        let entries = read_volume_list(&self.list)?;
        let mut split = split_volumes(entries.len(), self.split, self.seed)?;
        if let Some(n) = self.few_volumes {
            if n == 0 {
                return Err(DataError::Invalid("few_volumes must be at least 1".into()));
            }
            split.train.truncate(n);
        }
        let prep = Preprocess {
            num_classes: class_names.len(),
            table: table.as_deref(),
            spacing: self.spacing,
            window: self.window,
            dims: self.dims,
        };
        let volumes = entries
            .par_iter()
            .map(|e| prep.run(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VolumeSet {
            volumes,
            class_names,
            split,
        })
    }
}

/// The settings of [`VolumeSource::load`]'s per-volume preprocessing.
struct Preprocess<'a> {
    num_classes: usize,
    table: Option<&'a [u16]>,
    spacing: [f32; 3],
    window: IntensityWindow,
    dims: Option<[usize; 3]>,
}

impl Preprocess<'_> {
    fn run(&self, entry: &VolumeEntry) -> Result<PreparedVolume, DataError> {
        let image = read_volume(&entry.image)?;
        let mut labels = read_label_map(&entry.label)?;
        check_pair(&image, &labels)?;
        // Within tolerance, but the last bits may differ: one grid for both.
        labels.spacing = image.spacing;
        match self.table {
            Some(t) => labels.data.iter_mut().for_each(|v| *v = t[usize::from(*v)]),
            None => {
                if let Some(&bad) = labels.data.iter().find(|&&v| usize::from(v) >= self.num_classes) {
                    return Err(DataError::nifti(
                        &entry.label,
                        format!(
                            "label {bad} is not a class index in 0..{} (add `label_groups` to map source labels)",
                            self.num_classes
                        ),
                    ));
                }
            }
        }
        let (source_dims, source_spacing) = (image.dims, image.spacing);
        let image_error = |e: DataError| DataError::nifti(&entry.image, e.to_string());
        let label_error = |e: DataError| DataError::nifti(&entry.label, e.to_string());
        let mut image = resample_to_spacing(&image, self.spacing, Interp::Trilinear).map_err(image_error)?;
        let mut labels = resample_to_spacing(&labels, self.spacing, Interp::Nearest).map_err(label_error)?;
        self.window.apply(&mut image)?;
        let mut pad_crop = None;
        if let Some(dims) = self.dims {
            let (i, how) = pad_or_crop_to(&image, dims, IMAGE_PAD)?;
            let (l, _) = pad_or_crop_to(&labels, dims, 0)?;
            (image, labels, pad_crop) = (i, l, Some(how));
        }
        let foreground = foreground_index(&labels, self.num_classes);
        Ok(PreparedVolume {
            id: entry.id.clone(),
            image,
            labels,
            source_dims,
            source_spacing,
            pad_crop,
            foreground,
        })
    }
}

/// Flat voxel indices of each foreground class (`[c - 1]` for class `c ≥ 1`).
pub fn foreground_index(labels: &LabelMap, num_classes: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); num_classes.saturating_sub(1)];
    for (i, &v) in labels.data.iter().enumerate() {
        if v > 0
            && let Some(list) = out.get_mut(usize::from(v) - 1)
        {
            list.push(i as u32);
        }
    }
    out
}

/// One volume after preprocessing, with what is needed to map a prediction back.
#[derive(Debug, Clone)]
pub struct PreparedVolume {
    pub id: String,
    /// Resampled, windowed (and padded/cropped) image; its header/path are the source's.
    pub image: Volume<f32>,
    /// Class labels on the same grid.
    pub labels: LabelMap,
    /// Dims and spacing of the source file.
    pub source_dims: [usize; 3],
    pub source_spacing: [f32; 3],
    pub pad_crop: Option<PadCrop>,
    /// Flat voxel indices (into `labels.data`) of each class ≥ 1: `foreground[c - 1]`.
    pub foreground: Vec<Vec<u32>>,
}

impl PreparedVolume {
    /// Map a label prediction on the prepared grid back onto the source grid (undo the
    /// pad/crop, nearest resampling to the source dims and spacing) — ready for
    /// [`super::nifti_io::write_volume_like`] with `self.image.header`.
    pub fn labels_to_source(&self, prediction: &LabelMap) -> Result<LabelMap, DataError> {
        if prediction.dims != self.labels.dims {
            return Err(DataError::Invalid(format!(
                "{}: prediction dims {:?} differ from the prepared grid {:?}",
                self.id, prediction.dims, self.labels.dims
            )));
        }
        let unpadded = match &self.pad_crop {
            Some(how) => undo_pad_or_crop(prediction, how, 0)?,
            None => prediction.clone(),
        };
        resample_to_dims(&unpadded, self.source_dims, self.source_spacing, Interp::Nearest)
    }

    /// Classes (≥ 1) that have at least one voxel.
    pub fn present_classes(&self) -> Vec<usize> {
        (0..self.foreground.len())
            .filter(|&c| !self.foreground[c].is_empty())
            .map(|c| c + 1)
            .collect()
    }
}

/// A loaded volume data set.
#[derive(Debug, Clone)]
pub struct VolumeSet {
    /// In list order.
    pub volumes: Vec<PreparedVolume>,
    /// Background first.
    pub class_names: Vec<String>,
    pub split: VolumeSplit,
}

impl VolumeSet {
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rounding_is_as_documented() {
        let f = SplitFractions::default();
        let s = split_volumes(10, f, 1).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (7, 1, 2));
        let s = split_volumes(1, f, 1).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (1, 0, 0));
        let s = split_volumes(3, f, 1).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (2, 0, 1));
        let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
        assert_eq!(split_volumes(10, f, 1).unwrap(), split_volumes(10, f, 1).unwrap());
        assert_ne!(split_volumes(10, f, 1).unwrap(), split_volumes(10, f, 2).unwrap());
    }

    #[test]
    fn bad_fractions_are_refused() {
        let bad = SplitFractions {
            train: 0.5,
            val: 0.1,
            test: 0.1,
        };
        assert!(split_volumes(10, bad, 0).is_err());
        assert!(split_volumes(0, SplitFractions::default(), 0).is_err());
    }

    #[test]
    fn label_groups_map_values_and_refuse_overlaps() {
        let mut src = VolumeSource::new("x.csv", vec!["bg".into(), "a".into(), "b".into()]);
        src.label_groups = Some(BTreeMap::from([("1".into(), vec![5, 6]), ("2".into(), vec![9])]));
        let t = src.label_table(3).unwrap().unwrap();
        assert_eq!((t[5], t[6], t[9], t[7]), (1, 1, 2, 0));
        src.label_groups = Some(BTreeMap::from([("1".into(), vec![5]), ("2".into(), vec![5])]));
        assert!(src.label_table(3).is_err());
        src.label_groups = Some(BTreeMap::from([("3".into(), vec![5])]));
        assert!(src.label_table(3).unwrap_err().to_string().contains("'3'"));
    }
}
