//! Few-shot subsets drawn the way MedFMC draws them (`tools/baseline_multi*.py`,
//! `generate_few-shot_file.py`): for each class, shuffle the groups (patients, studies,
//! slides) that contain the class and take K of them; the subset is every image of those
//! groups that has the class. "1-shot" therefore means one *group* per class — one image
//! for chest (group = image), one study for endo, one slide for colon.
//!
//! Guarantees, by construction and checked by the property tests:
//! - the same inputs and seed give the same subset;
//! - each class gets exactly K groups picked for it, or a [`SamplingError::NotEnoughGroups`]
//!   that lists every short class;
//! - nothing from the held-out set (test list) is drawn: no image whose name appears there,
//!   no image whose group appears there;
//! - the "rest" (candidates for a validation list) never shares a group with the subset.
//!
//! Differences from MedFMC, on purpose: randomness comes from our seeded [`Rng`] (one
//! stream per class, so the K=1 draw is contained in the K=5 draw for the same seed), an
//! image picked for two classes is listed once, and a class with too few groups is an
//! error instead of silently getting fewer.

use std::collections::{HashMap, HashSet};

use ept_backend::Rng;

use crate::error::{SamplingError, Shortfall};
use crate::grouping::Grouping;
use crate::sample::Sample;

/// How classes of a multi-label set share picked groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiLabelPolicy {
    /// MedFMC: every class independently gets K groups; a class also present in groups
    /// picked for other classes ends up with more than K. Images enter the subset only
    /// through a class they were picked for.
    #[default]
    PerClass,
    /// Classes in index order; groups already picked that contain the class count
    /// towards its K, and only the missing ones are drawn. Smaller subsets, each class
    /// still covered by at least K groups. All positive images of picked groups enter.
    Greedy,
}

/// A K-shot draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FewShotSpec {
    pub shots: usize,
    pub num_classes: usize,
    pub seed: u64,
    pub grouping: Grouping,
    pub policy: MultiLabelPolicy,
}

/// A draw of a fraction of the training images (MedFMC's "20 %" setting), by group.
#[derive(Debug, Clone, PartialEq)]
pub struct FractionSpec {
    /// In (0, 1]; groups are taken until at least `fraction × pool` images are in.
    pub fraction: f64,
    pub seed: u64,
    pub grouping: Grouping,
}

/// The result of a draw, as indices into the training pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FewShot {
    /// The subset, ascending.
    pub train: Vec<usize>,
    /// Eligible images outside every picked group, ascending (validation candidates).
    pub rest: Vec<usize>,
    /// Per class, the groups picked for it (K-shot) or picked groups containing it (fraction).
    pub per_class: Vec<Vec<String>>,
    /// Pool images left out because they (or their group) appear in the held-out set.
    pub held_out_overlap: usize,
}

/// Group keys of the pool, and which pool images are eligible (not held out).
struct Pool<'a> {
    keys: Vec<&'a str>,
    eligible: Vec<bool>,
}

impl<'a> Pool<'a> {
    fn new(
        train: &'a [Sample],
        held_out: &[Sample],
        grouping: Grouping,
        num_classes: Option<usize>,
    ) -> Result<Self, SamplingError> {
        let keys = train
            .iter()
            .map(|s| grouping.key(s))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(n) = num_classes {
            for s in train {
                if let Some(class) = s.target.max_class().filter(|&c| c >= n) {
                    return Err(SamplingError::LabelOutOfRange {
                        id: s.id.clone(),
                        class,
                        num_classes: n,
                    });
                }
            }
        }
        let held_groups: HashSet<&str> = held_out
            .iter()
            .map(|s| grouping.key(s))
            .collect::<Result<_, _>>()?;
        let held_names: HashSet<&str> = held_out.iter().map(|s| s.id.as_str()).collect();
        let held_paths: HashSet<&std::path::Path> = held_out.iter().map(|s| s.path.as_path()).collect();
        let eligible = train
            .iter()
            .zip(&keys)
            .map(|(s, k)| {
                !held_groups.contains(k)
                    && !held_names.contains(s.id.as_str())
                    && !held_paths.contains(s.path.as_path())
            })
            .collect();
        Ok(Pool { keys, eligible })
    }

    /// Distinct eligible groups, in first-appearance order, whose images satisfy `pred`.
    fn groups_where(&self, train: &[Sample], pred: impl Fn(&Sample) -> bool) -> Vec<&'a str> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, s) in train.iter().enumerate() {
            if self.eligible[i] && pred(s) && seen.insert(self.keys[i]) {
                out.push(self.keys[i]);
            }
        }
        out
    }

    fn held_out_overlap(&self) -> usize {
        self.eligible.iter().filter(|e| !**e).count()
    }

    fn rest(&self, picked: &HashSet<&str>) -> Vec<usize> {
        (0..self.keys.len())
            .filter(|&i| self.eligible[i] && !picked.contains(self.keys[i]))
            .collect()
    }
}

/// Draw a K-shot subset of `train`, never touching anything in `held_out` (see module doc).
pub fn sample_few_shot(
    train: &[Sample],
    held_out: &[Sample],
    spec: &FewShotSpec,
) -> Result<FewShot, SamplingError> {
    if spec.shots == 0 {
        return Err(SamplingError::ZeroShots);
    }
    let pool = Pool::new(train, held_out, spec.grouping, Some(spec.num_classes))?;
    if !pool.eligible.iter().any(|&e| e) {
        return Err(SamplingError::EmptyPool);
    }
    let base = Rng::new(spec.seed);
    let mut per_class: Vec<Vec<String>> = Vec::with_capacity(spec.num_classes);
    let mut picked_all: HashSet<&str> = HashSet::new();
    let mut short = Vec::new();
    for class in 0..spec.num_classes {
        let mut groups = pool.groups_where(train, |s| s.target.has(class));
        if groups.len() < spec.shots {
            short.push(Shortfall {
                class,
                available: groups.len(),
            });
            per_class.push(Vec::new());
            continue;
        }
        base.fork(class as u64).shuffle(&mut groups);
        let chosen: Vec<&str> = match spec.policy {
            MultiLabelPolicy::PerClass => groups[..spec.shots].to_vec(),
            MultiLabelPolicy::Greedy => {
                let have = groups.iter().filter(|g| picked_all.contains(*g)).count();
                let mut chosen: Vec<&str> = groups
                    .iter()
                    .copied()
                    .filter(|g| picked_all.contains(g))
                    .collect();
                chosen.extend(
                    groups
                        .iter()
                        .copied()
                        .filter(|g| !picked_all.contains(g))
                        .take(spec.shots.saturating_sub(have)),
                );
                chosen
            }
        };
        picked_all.extend(chosen.iter().copied());
        per_class.push(chosen.into_iter().map(str::to_string).collect());
    }
    if !short.is_empty() {
        return Err(SamplingError::NotEnoughGroups {
            shots: spec.shots,
            grouping: spec.grouping.to_string(),
            short,
        });
    }
    let picked_for: Vec<HashSet<&str>> = per_class
        .iter()
        .map(|gs| gs.iter().map(String::as_str).collect())
        .collect();
    let train_idx: Vec<usize> = (0..train.len())
        .filter(|&i| {
            pool.eligible[i]
                && match spec.policy {
                    MultiLabelPolicy::PerClass => train[i]
                        .target
                        .classes()
                        .iter()
                        .any(|&c| picked_for[c].contains(pool.keys[i])),
                    MultiLabelPolicy::Greedy => {
                        picked_all.contains(pool.keys[i]) && !train[i].target.classes().is_empty()
                    }
                }
        })
        .collect();
    Ok(FewShot {
        train: train_idx,
        rest: pool.rest(&picked_all),
        per_class,
        held_out_overlap: pool.held_out_overlap(),
    })
}

/// Draw whole groups of `train` in seeded random order until at least
/// `ceil(fraction × eligible images)` are in (MedFMC's "20 % of the training set").
pub fn sample_fraction(
    train: &[Sample],
    held_out: &[Sample],
    spec: &FractionSpec,
) -> Result<FewShot, SamplingError> {
    if !(spec.fraction > 0.0 && spec.fraction <= 1.0) {
        return Err(SamplingError::InvalidFraction(spec.fraction));
    }
    let pool = Pool::new(train, held_out, spec.grouping, None)?;
    let eligible = pool.eligible.iter().filter(|&&e| e).count();
    if eligible == 0 {
        return Err(SamplingError::EmptyPool);
    }
    let target = ((spec.fraction * eligible as f64).ceil() as usize).clamp(1, eligible);
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for i in (0..train.len()).filter(|&i| pool.eligible[i]) {
        *sizes.entry(pool.keys[i]).or_default() += 1;
    }
    let mut groups = pool.groups_where(train, |_| true);
    Rng::new(spec.seed).shuffle(&mut groups);
    let mut picked: HashSet<&str> = HashSet::new();
    let mut count = 0;
    for g in groups {
        if count >= target {
            break;
        }
        count += sizes.get(g).copied().unwrap_or(0);
        picked.insert(g);
    }
    let train_idx: Vec<usize> = (0..train.len())
        .filter(|&i| pool.eligible[i] && picked.contains(pool.keys[i]))
        .collect();
    let num_classes = train
        .iter()
        .filter_map(|s| s.target.max_class())
        .max()
        .map_or(0, |m| m + 1);
    let per_class = (0..num_classes)
        .map(|c| {
            let mut gs: Vec<String> = train_idx
                .iter()
                .filter(|&&i| train[i].target.has(c))
                .map(|&i| pool.keys[i].to_string())
                .collect();
            gs.dedup();
            gs.sort();
            gs.dedup();
            gs
        })
        .collect();
    Ok(FewShot {
        train: train_idx,
        rest: pool.rest(&picked),
        per_class,
        held_out_overlap: pool.held_out_overlap(),
    })
}
