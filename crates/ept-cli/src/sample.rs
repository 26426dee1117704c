//! `ept-cli sample`: write MedFMC-style few-shot annotation lists (N-way K-shot drawn by
//! patient/study/slide group, one file per shots × seed, `exp1`–`exp5`) from a training
//! list, never drawing an image or group of the test list.

use std::path::PathBuf;

use clap::Args;
use ept_data::{DataSource, Grouping, ListKind, SampleOptions, SeedList, Shots};

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Training annotation list to draw from
    #[arg(long)]
    pub list: PathBuf,
    /// Folder the list's image names are relative to
    #[arg(long)]
    pub images: PathBuf,
    /// List format: chest | endo | colon (MedFMC) or class_index | space_list | comma_list
    #[arg(long)]
    pub format: ListKind,
    /// Test list: its images and groups are never sampled
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Shots per class (`1,5,10`) or a percentage of the training set (`20%`)
    #[arg(long, value_delimiter = ',', default_value = "1,5,10")]
    pub shots: Vec<Shots>,
    /// Seeds, one sampling each: `1..5` (= exp1–exp5), `1,3,7` or `4`
    #[arg(long, default_value = "1..5")]
    pub seeds: SeedList,
    /// Grouping override: image | prefix:N | slide | column
    #[arg(long)]
    pub grouping: Option<Grouping>,
    /// Number of classes (needed by the generic formats; MedFMC's are known)
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Output folder for the lists
    #[arg(long)]
    pub out: PathBuf,
}

/// A list source with the optional class count.
fn source(list: &std::path::Path, args: &SampleArgs) -> DataSource {
    let mut source = DataSource::list(list, &args.images, args.format);
    if let DataSource::List { num_classes, .. } = &mut source {
        *num_classes = args.num_classes;
    }
    source
}

pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    let mut options = SampleOptions::new(source(&args.list, args), &args.out);
    options.test = args.test.as_ref().map(|t| source(t, args));
    options.shots = args.shots.clone();
    options.seeds = args.seeds.0.clone();
    options.grouping = args.grouping;
    print!("{}", ept_data::sample_cmd::run(&options)?);
    Ok(())
}
