//! The common representation every reader produces: one [`Sample`] per image, with its
//! resolved path, the name it had in its list (`id`), its [`Target`] and, when the source
//! has one, an explicit group (patient / study / slide) used by few-shot sampling.

use std::path::PathBuf;

/// The label of one image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Single-label classification: the class index.
    Single(usize),
    /// Multi-label classification: one flag per class.
    Multi(Vec<bool>),
}

impl Target {
    /// Whether the image belongs to class `class`.
    pub fn has(&self, class: usize) -> bool {
        match self {
            Target::Single(c) => *c == class,
            Target::Multi(flags) => flags.get(class).copied().unwrap_or(false),
        }
    }

    /// The classes the image belongs to, ascending.
    pub fn classes(&self) -> Vec<usize> {
        match self {
            Target::Single(c) => vec![*c],
            Target::Multi(flags) => flags
                .iter()
                .enumerate()
                .filter_map(|(c, &on)| on.then_some(c))
                .collect(),
        }
    }

    /// The highest class index this target mentions (`None` for an all-zero multi-label).
    pub fn max_class(&self) -> Option<usize> {
        self.classes().last().copied()
    }

    pub fn task(&self) -> Task {
        match self {
            Target::Single(_) => Task::SingleLabel,
            Target::Multi(_) => Task::MultiLabel,
        }
    }
}

/// Single-label (softmax + cross-entropy) or multi-label (sigmoid + BCE) classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    SingleLabel,
    MultiLabel,
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sample {
    /// Where the image file is (the list's image folder joined with `id`).
    pub path: PathBuf,
    /// The image's name exactly as written in its list (used when writing lists back).
    pub id: String,
    pub target: Target,
    /// An explicit group (patient, study, slide) when the source has a group column.
    pub group: Option<String>,
}
