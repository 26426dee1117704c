//! The config-facing description of where data lives ([`DataSource`], a serde enum read
//! from the `[data]` tables of `configs/*.toml`) and the loaded result ([`Dataset`]):
//! samples, class count, task, class names, and the [`Layout`] used to write subsets of
//! it back in the same format.
//!
//! ```toml
//! [data.train]
//! kind = "list"                    # list | csv | folder
//! list = "datasets/brain_patches/lobe_train.txt"
//! images = "datasets/brain_patches/images"
//! format = "colon"                 # chest | endo | colon | class_index | space_list | comma_list
//! num_classes = 7                  # overrides the MedFMC default (chest 19, endo 4, colon 2)
//! classes = "datasets/brain_patches/classes.txt"   # optional, one name per line
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::csv::{CsvOptions, read_csv, render_csv};
use crate::error::DataError;
use crate::folder::read_image_folder;
use crate::format::{ListFormat, ListKind};
use crate::grouping::Grouping;
use crate::list::{read_list, render_list, write_atomic};
use crate::sample::{Sample, Target, Task};

fn yes() -> bool {
    true
}

/// Where a data set lives and how it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// A MedFMC-style annotation list plus the folder its names are relative to.
    List {
        list: PathBuf,
        images: PathBuf,
        format: ListKind,
        #[serde(default)]
        num_classes: Option<usize>,
        /// Optional class-name file (one name per line, in label order).
        #[serde(default)]
        classes: Option<PathBuf>,
        /// Fail on names that have no image file (default true).
        #[serde(default = "yes")]
        check_images: bool,
    },
    /// A `path,label[,group]` CSV file; paths are relative to `images` (default: the CSV's folder).
    Csv {
        file: PathBuf,
        #[serde(default)]
        images: Option<PathBuf>,
        #[serde(default)]
        multi_label: bool,
        #[serde(default)]
        num_classes: Option<usize>,
        #[serde(default)]
        classes: Option<PathBuf>,
        #[serde(default = "yes")]
        check_images: bool,
    },
    /// `root/<class>/<image>` folders.
    Folder { root: PathBuf },
}

/// How a data set's subsets are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    List(ListKind, ListFormat),
    Csv,
}

impl Layout {
    /// File extension of written subsets.
    pub fn extension(&self) -> &'static str {
        match self {
            Layout::List(..) => "txt",
            Layout::Csv => "csv",
        }
    }

    pub fn render<'a>(&self, samples: impl IntoIterator<Item = &'a Sample>) -> Result<String, DataError> {
        match self {
            Layout::List(_, format) => render_list(samples, format),
            Layout::Csv => render_csv(samples),
        }
    }
}

/// A loaded data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    pub num_classes: usize,
    pub task: Task,
    /// Class names in label order (`class0`, `class1`, … when the source has none).
    pub class_names: Vec<String>,
    pub layout: Layout,
    /// The few-shot grouping that fits the source (MedFMC rule, or `column` for CSV with groups).
    pub default_grouping: Grouping,
}

impl Dataset {
    /// Classes that no sample carries (a training list must have every class).
    pub fn classes_without_samples(&self) -> Vec<usize> {
        (0..self.num_classes)
            .filter(|&c| !self.samples.iter().any(|s| s.target.has(c)))
            .collect()
    }
}

fn read_class_names(path: &Path, num_classes: usize) -> Result<Vec<String>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let lines = crate::list::text_lines(&bytes, path)?;
    if lines.len() != num_classes {
        return Err(DataError::Invalid(format!(
            "{}: {} class names for {num_classes} classes",
            path.display(),
            lines.len()
        )));
    }
    for (i, (line, name)) in lines.iter().enumerate() {
        if let Some((first, _)) = lines[..i].iter().find(|(_, earlier)| earlier == name) {
            return Err(DataError::Invalid(format!(
                "{}:{line}: class name {name:?} is already on line {first}",
                path.display()
            )));
        }
    }
    Ok(lines.into_iter().map(|(_, name)| name).collect())
}

fn generic_names(n: usize) -> Vec<String> {
    (0..n).map(|c| format!("class{c}")).collect()
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl DataSource {
    /// The file or folder the samples come from (for messages).
    pub fn origin(&self) -> &Path {
        match self {
            DataSource::List { list, .. } => list,
            DataSource::Csv { file, .. } => file,
            DataSource::Folder { root } => root,
        }
    }

    /// A MedFMC-style list source with the format's default class count.
    pub fn list(list: impl Into<PathBuf>, images: impl Into<PathBuf>, format: ListKind) -> Self {
        DataSource::List {
            list: list.into(),
            images: images.into(),
            format,
            num_classes: None,
            classes: None,
            check_images: true,
        }
    }

    /// The same source with relative paths taken relative to `base` (e.g. the config's folder).
    pub fn relative_to(&self, base: &Path) -> Self {
        let mut out = self.clone();
        match &mut out {
            DataSource::List {
                list,
                images,
                classes,
                ..
            } => {
                *list = resolve(base, list);
                *images = resolve(base, images);
                if let Some(c) = classes {
                    *c = resolve(base, c);
                }
            }
            DataSource::Csv {
                file,
                images,
                classes,
                ..
            } => {
                *file = resolve(base, file);
                if let Some(i) = images {
                    *i = resolve(base, i);
                }
                if let Some(c) = classes {
                    *c = resolve(base, c);
                }
            }
            DataSource::Folder { root } => *root = resolve(base, root),
        }
        out
    }

    /// Single- or multi-label, as the source's format says (no file is read).
    pub fn task(&self) -> Task {
        match self {
            DataSource::List { format, .. } => format.syntax().task(),
            DataSource::Csv {
                multi_label: true, ..
            } => Task::MultiLabel,
            DataSource::Csv { .. } | DataSource::Folder { .. } => Task::SingleLabel,
        }
    }

    /// Read the whole data set, and check that it can be trained or evaluated on: it
    /// lists images, a single-label task has at least two classes, and no image is
    /// listed twice with different labels.
    pub fn load(&self) -> Result<Dataset, DataError> {
        let dataset = self.read()?;
        let origin = self.origin().display();
        if dataset.samples.is_empty() {
            return Err(DataError::Invalid(format!("{origin} lists no images")));
        }
        if dataset.task == Task::SingleLabel && dataset.num_classes < 2 {
            return Err(DataError::Invalid(format!(
                "{origin}: single-label classification needs at least 2 classes, and this \
                 data set has {} (check num_classes, or the labels it was inferred from)",
                dataset.num_classes
            )));
        }
        let mut seen: std::collections::HashMap<&Path, &Target> = std::collections::HashMap::new();
        for sample in &dataset.samples {
            if let Some(first) = seen.insert(&sample.path, &sample.target)
                && first != &sample.target
            {
                return Err(DataError::Invalid(format!(
                    "{origin}: image {} is listed twice with different labels (classes {:?} and {:?})",
                    sample.id,
                    first.classes(),
                    sample.target.classes()
                )));
            }
        }
        Ok(dataset)
    }

    fn read(&self) -> Result<Dataset, DataError> {
        match self {
            DataSource::List {
                list,
                images,
                format,
                num_classes,
                classes,
                check_images,
            } => {
                let fmt = format.format(*num_classes).map_err(DataError::Invalid)?;
                let samples = read_list(list, images, &fmt, *check_images)?;
                let class_names = match classes {
                    Some(p) => read_class_names(p, fmt.num_classes)?,
                    None => generic_names(fmt.num_classes),
                };
                Ok(Dataset {
                    samples,
                    num_classes: fmt.num_classes,
                    task: fmt.syntax.task(),
                    class_names,
                    layout: Layout::List(*format, fmt),
                    default_grouping: format.default_grouping(),
                })
            }
            DataSource::Csv {
                file,
                images,
                multi_label,
                num_classes,
                classes,
                check_images,
            } => {
                let dir = match images {
                    Some(dir) => dir.clone(),
                    None => file.parent().map(Path::to_path_buf).unwrap_or_default(),
                };
                let opts = CsvOptions {
                    multi_label: *multi_label,
                    num_classes: *num_classes,
                    check_images: *check_images,
                };
                let (samples, n) = read_csv(file, &dir, &opts)?;
                let class_names = match classes {
                    Some(p) => read_class_names(p, n)?,
                    None => generic_names(n),
                };
                let grouped = samples.iter().any(|s| s.group.is_some());
                Ok(Dataset {
                    samples,
                    num_classes: n,
                    task: self.task(),
                    class_names,
                    layout: Layout::Csv,
                    default_grouping: if grouped {
                        Grouping::Column
                    } else {
                        Grouping::Image
                    },
                })
            }
            DataSource::Folder { root } => {
                let (samples, names) = read_image_folder(root)?;
                Ok(Dataset {
                    samples,
                    num_classes: names.len(),
                    task: Task::SingleLabel,
                    class_names: names,
                    layout: Layout::Csv,
                    default_grouping: Grouping::Image,
                })
            }
        }
    }

    /// A short name for file prefixes: the list format's MedFMC name, or the file stem.
    pub fn prefix(&self) -> String {
        match self {
            DataSource::List { format, .. } => format.name().to_string(),
            DataSource::Csv { file, .. } => file
                .file_stem()
                .map_or("data".into(), |s| s.to_string_lossy().into_owned()),
            DataSource::Folder { root } => root
                .file_name()
                .map_or("data".into(), |s| s.to_string_lossy().into_owned()),
        }
    }
}

impl Dataset {
    /// Write the samples at `indices` (in that order) in this data set's layout.
    pub fn write_subset(&self, path: &Path, indices: &[usize]) -> Result<(), DataError> {
        let picked = indices
            .iter()
            .map(|&i| {
                self.samples.get(i).ok_or_else(|| {
                    DataError::Invalid(format!(
                        "subset index {i} out of range ({} samples)",
                        self.samples.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        write_atomic(path, &self.layout.render(picked)?)
    }

    /// A new data set holding only the samples at `indices`.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            samples: indices
                .iter()
                .filter_map(|&i| self.samples.get(i).cloned())
                .collect(),
            num_classes: self.num_classes,
            task: self.task,
            class_names: self.class_names.clone(),
            layout: self.layout,
            default_grouping: self.default_grouping,
        }
    }
}
