//! The whole `ept-cli sample` command as one library call: read a training list (and
//! optionally the test list, whose images and groups are then never drawn), draw the
//! requested K-shot / percent subsets for every seed, and write MedFMC-named lists
//! (`colon_5-shot_train_exp1.txt`, `colon_5-shot_val_exp1.txt`, `colon_20-percent_train_exp1.txt`)
//! in the source's own format. All draws are made before anything is written, so a
//! failing draw (too few groups) leaves the output folder untouched.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use ept_backend::Rng;

use crate::dataset::DataSource;
use crate::error::DataError;
use crate::fewshot::{FewShotSpec, FractionSpec, MultiLabelPolicy, sample_few_shot, sample_fraction};
use crate::grouping::Grouping;
use crate::list::write_atomic;

const VALIDATION_STREAM: u64 = 0x5641_4c49; // "VALI"

/// One subset size: K per class, or a percentage of the training images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shots {
    PerClass(usize),
    Percent(u32),
}

impl fmt::Display for Shots {
    /// The tag used in file names: `5-shot`, `20-percent`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shots::PerClass(k) => write!(f, "{k}-shot"),
            Shots::Percent(p) => write!(f, "{p}-percent"),
        }
    }
}

impl FromStr for Shots {
    type Err = String;

    /// `5` (K per class) or `20%` (percent of the training images).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || {
            format!(
                "bad shots '{s}': expected K (a whole number from 1, e.g. 5) or a percentage from 1% to 100% (e.g. 20%)"
            )
        };
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Shots::Percent(p)),
                _ => Err(bad()),
            },
            None => match s.parse::<usize>() {
                Ok(k) if k > 0 => Ok(Shots::PerClass(k)),
                _ => Err(bad()),
            },
        }
    }
}

impl Shots {
    /// Parse a comma-separated list: `1,5,10,20%`.
    pub fn parse_list(s: &str) -> Result<Vec<Shots>, String> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::parse)
            .collect()
    }
}

/// Experiment numbers = seeds (`exp1`…`exp5` use seeds 1…5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedList(pub Vec<u64>);

impl FromStr for SeedList {
    type Err = String;

    /// `1..5` and `1..=5` (both inclusive: MedFMC's exp1–exp5), `1,3,7`, or `4`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = || format!("bad seeds '{s}': expected e.g. 1..5, 1,3,7 or 4");
        let num = |t: &str| t.trim().parse::<u64>().map_err(|_| bad());
        let seeds = if let Some((a, b)) = s.split_once("..") {
            let (a, b) = (num(a)?, num(b.trim_start_matches('='))?);
            if a > b || b - a >= 10_000 {
                return Err(bad());
            }
            (a..=b).collect()
        } else {
            s.split(',').map(num).collect::<Result<Vec<_>, _>>()?
        };
        if seeds.is_empty() {
            return Err(bad());
        }
        Ok(SeedList(seeds))
    }
}

/// Everything the `sample` command needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// The training pool to draw from.
    pub train: DataSource,
    /// The test list: its images and groups are never drawn.
    pub test: Option<DataSource>,
    pub shots: Vec<Shots>,
    pub seeds: Vec<u64>,
    pub out_dir: PathBuf,
    /// File-name prefix; default the MedFMC set name (`colon`) or the file stem.
    pub prefix: Option<String>,
    /// Default: the source's rule (MedFMC's per set, `column` for grouped CSV).
    pub grouping: Option<Grouping>,
    pub policy: MultiLabelPolicy,
    /// At most this many images in each validation list (MedFMC: 3000).
    pub val_max: usize,
}

impl SampleOptions {
    /// MedFMC defaults: 1/5/10-shot, exp1–exp5, validation lists of at most 3000 images.
    pub fn new(train: DataSource, out_dir: impl Into<PathBuf>) -> Self {
        SampleOptions {
            train,
            test: None,
            shots: vec![Shots::PerClass(1), Shots::PerClass(5), Shots::PerClass(10)],
            seeds: (1..=5).collect(),
            out_dir: out_dir.into(),
            prefix: None,
            grouping: None,
            policy: MultiLabelPolicy::PerClass,
            val_max: 3000, // MedFMC generate_few-shot_file.py: val_num = 3000
        }
    }
}

/// One written train/val pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRun {
    pub shots: Shots,
    pub exp: u64,
    pub train_file: PathBuf,
    pub val_file: PathBuf,
    pub train_images: usize,
    pub val_images: usize,
    /// Distinct groups in the training subset.
    pub groups: usize,
}

/// What `run` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSummary {
    pub pool_images: usize,
    pub num_classes: usize,
    pub grouping: Grouping,
    /// Pool images skipped because they or their group appear in the test list.
    pub held_out_overlap: usize,
    pub runs: Vec<SampleRun>,
}

impl fmt::Display for SampleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pool: {} images, {} classes, grouping '{}'{}",
            self.pool_images,
            self.num_classes,
            self.grouping,
            if self.held_out_overlap > 0 {
                format!(" ({} skipped: shared with the test list)", self.held_out_overlap)
            } else {
                String::new()
            }
        )?;
        for r in &self.runs {
            writeln!(
                f,
                "  {:<11} exp{:<3} train {:>5} images ({:>4} groups)  val {:>5}  -> {}",
                r.shots.to_string(),
                r.exp,
                r.train_images,
                r.groups,
                r.val_images,
                r.train_file.display()
            )?;
        }
        Ok(())
    }
}

/// Run the `sample` command (see module doc).
pub fn run(opts: &SampleOptions) -> Result<SampleSummary, DataError> {
    if opts.shots.is_empty() || opts.seeds.is_empty() {
        return Err(DataError::Invalid(
            "sample: need at least one shots value and one seed".into(),
        ));
    }
    let train = opts.train.load()?;
    let test = match &opts.test {
        Some(t) => t.load()?.samples,
        None => Vec::new(),
    };
    let grouping = opts.grouping.unwrap_or(train.default_grouping);
    let prefix = opts.prefix.clone().unwrap_or_else(|| opts.train.prefix());
    let ext = train.layout.extension();

    let mut outputs: Vec<(PathBuf, String)> = Vec::new();
    let mut runs = Vec::new();
    let mut held_out_overlap = 0;
    for &shots in &opts.shots {
        for &exp in &opts.seeds {
            let draw = match shots {
                Shots::PerClass(k) => sample_few_shot(
                    &train.samples,
                    &test,
                    &FewShotSpec {
                        shots: k,
                        num_classes: train.num_classes,
                        seed: exp,
                        grouping,
                        policy: opts.policy,
                    },
                )?,
                Shots::Percent(p) => sample_fraction(
                    &train.samples,
                    &test,
                    &FractionSpec {
                        fraction: p as f64 / 100.0,
                        seed: exp,
                        grouping,
                    },
                )?,
            };
            held_out_overlap = draw.held_out_overlap;
            let mut val = draw.rest.clone();
            Rng::new(exp).fork(VALIDATION_STREAM).shuffle(&mut val);
            val.truncate(opts.val_max);
            val.sort_unstable();
            let name = |split: &str| {
                opts.out_dir
                    .join(format!("{prefix}_{shots}_{split}_exp{exp}.{ext}"))
            };
            let (train_file, val_file) = (name("train"), name("val"));
            let pick = |idx: &[usize]| idx.iter().map(|&i| &train.samples[i]).collect::<Vec<_>>();
            outputs.push((train_file.clone(), train.layout.render(pick(&draw.train))?));
            outputs.push((val_file.clone(), train.layout.render(pick(&val))?));
            let mut groups: Vec<&str> = draw
                .train
                .iter()
                .filter_map(|&i| grouping.key(&train.samples[i]).ok())
                .collect();
            groups.sort_unstable();
            groups.dedup();
            runs.push(SampleRun {
                shots,
                exp,
                train_file,
                val_file,
                train_images: draw.train.len(),
                val_images: val.len(),
                groups: groups.len(),
            });
        }
    }
    for (path, text) in &outputs {
        write_atomic(path, text)?;
    }
    Ok(SampleSummary {
        pool_images: train.samples.len(),
        num_classes: train.num_classes,
        grouping,
        held_out_overlap,
        runs,
    })
}
