//! The line syntax of MedFMC annotation lists, parsed from the RIGHT so that file names
//! may contain spaces (ColonPath names do: `1903326001_2019-06-11 12_07_06-…p0008.png 0`).
//!
//! | kind  | line                        | labels                          |
//! |-------|-----------------------------|---------------------------------|
//! | chest | `name.png 0,1,0,…` (19)     | comma list, multi-label         |
//! | endo  | `name.png 1 0 0 1` (4)      | space list, multi-label         |
//! | colon | `name.png 1` (2 classes)    | class index, single-label       |
//!
//! A file name whose last word is a bare integer (`scan 3.png` is fine, `scan 3` is not)
//! cannot be told apart from a label and is reported as a wrong label count.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::LineProblem;
use crate::grouping::Grouping;
use crate::sample::{Target, Task};

/// The most classes a data set may have (ImageNet-21k has 21,841): a larger
/// `num_classes` or label is a typo or a corrupt file, refused before class names or a
/// head of that size are allocated.
pub const MAX_CLASSES: usize = 100_000;

/// A configured class count must be in `1..=MAX_CLASSES` (the message names the key).
pub(crate) fn check_num_classes(num_classes: usize) -> Result<(), String> {
    if (1..=MAX_CLASSES).contains(&num_classes) {
        Ok(())
    } else {
        Err(format!(
            "num_classes = {num_classes} must be in 1..={MAX_CLASSES}"
        ))
    }
}

/// How the labels after the file name are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSyntax {
    /// `name 0,1,0,…` — one 0/1 flag per class, comma-separated (ChestDR).
    CommaList,
    /// `name 1 0 0 1` — one 0/1 flag per class, space-separated (Endo).
    SpaceList,
    /// `name 3` — the class index (ColonPath).
    ClassIndex,
}

impl LabelSyntax {
    pub fn task(self) -> Task {
        match self {
            LabelSyntax::ClassIndex => Task::SingleLabel,
            LabelSyntax::CommaList | LabelSyntax::SpaceList => Task::MultiLabel,
        }
    }
}

/// A named list format: the three MedFMC sets (with their class counts and grouping
/// rules) and the three bare syntaxes for other data written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// MedFMC ChestDR: comma list, 19 classes, one image per patient group.
    Chest,
    /// MedFMC Endo: space list, 4 classes, study id = first 18 characters.
    Endo,
    /// MedFMC ColonPath: class index, 2 classes, grouped by slide.
    Colon,
    ClassIndex,
    SpaceList,
    CommaList,
}

impl ListKind {
    pub const ALL: [ListKind; 6] = [
        ListKind::Chest,
        ListKind::Endo,
        ListKind::Colon,
        ListKind::ClassIndex,
        ListKind::SpaceList,
        ListKind::CommaList,
    ];

    pub fn syntax(self) -> LabelSyntax {
        match self {
            ListKind::Chest | ListKind::CommaList => LabelSyntax::CommaList,
            ListKind::Endo | ListKind::SpaceList => LabelSyntax::SpaceList,
            ListKind::Colon | ListKind::ClassIndex => LabelSyntax::ClassIndex,
        }
    }

    /// Class count of the MedFMC 2023 sets (REFERENCE.md §1 table); `None` for bare syntaxes.
    pub fn default_classes(self) -> Option<usize> {
        match self {
            ListKind::Chest => Some(19),
            ListKind::Endo => Some(4),
            ListKind::Colon => Some(2),
            _ => None,
        }
    }

    /// MedFMC's few-shot unit (its `tools/baseline_multi*.py`): chest per image, endo by
    /// the first 18 characters (study id), colon by slide (name without `pNNNN.png`).
    pub fn default_grouping(self) -> Grouping {
        match self {
            ListKind::Endo => Grouping::Prefix(18),
            ListKind::Colon => Grouping::Slide,
            _ => Grouping::Image,
        }
    }

    /// The prefix MedFMC uses for its list names (`colon_1-shot_train_exp1.txt`).
    pub fn name(self) -> &'static str {
        match self {
            ListKind::Chest => "chest",
            ListKind::Endo => "endo",
            ListKind::Colon => "colon",
            ListKind::ClassIndex => "class_index",
            ListKind::SpaceList => "space_list",
            ListKind::CommaList => "comma_list",
        }
    }

    /// The full format, with `num_classes` overriding the set's default.
    pub fn format(self, num_classes: Option<usize>) -> Result<ListFormat, String> {
        let num_classes = num_classes
            .or(self.default_classes())
            .ok_or_else(|| format!("list format '{}' needs num_classes", self.name()))?;
        check_num_classes(num_classes)?;
        Ok(ListFormat {
            syntax: self.syntax(),
            num_classes,
        })
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ListKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        ListKind::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<_> = ListKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown list format '{s}': expected one of {}", names.join(", "))
            })
    }
}

/// Syntax plus class count: everything needed to parse or write a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListFormat {
    pub syntax: LabelSyntax,
    pub num_classes: usize,
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `(rest, last word)` of a trimmed string, or `None` when it is a single word.
fn split_last(s: &str) -> Option<(&str, &str)> {
    let at = s.rfind(is_space)?;
    Some((s[..at].trim_end_matches(is_space), &s[at + 1..]))
}

fn last_word(s: &str) -> &str {
    split_last(s).map_or(s, |(_, w)| w)
}

/// `x.png`, `a b.jpeg`: ends in a dot and a short extension containing a letter.
fn looks_like_file_name(word: &str) -> bool {
    match word.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
                && ext.chars().any(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

fn flag(token: &str) -> Result<bool, LineProblem> {
    let value: i64 = token.trim().parse().map_err(|_| LineProblem::NotANumber {
        token: token.trim().to_string(),
    })?;
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(LineProblem::OutOfRange {
            value,
            allowed: "0 or 1".into(),
        }),
    }
}

impl ListFormat {
    fn labels_hint(&self) -> String {
        match self.syntax {
            LabelSyntax::CommaList => format!("<{} comma-separated 0/1 flags>", self.num_classes),
            LabelSyntax::SpaceList => format!("<{} space-separated 0/1 flags>", self.num_classes),
            LabelSyntax::ClassIndex => format!("<class index 0..{}>", self.num_classes - 1),
        }
    }

    /// Parse one non-empty, trimmed line into `(file name, target)`.
    pub fn parse_line(&self, line: &str) -> Result<(String, Target), LineProblem> {
        let line = line.trim_matches(|c: char| c.is_whitespace());
        match self.syntax {
            LabelSyntax::CommaList => self.parse_comma(line),
            LabelSyntax::SpaceList | LabelSyntax::ClassIndex => self.parse_words(line),
        }
    }

    fn parse_comma(&self, line: &str) -> Result<(String, Target), LineProblem> {
        let Some((mut rest, last)) = split_last(line) else {
            return Err(if line.contains(',') {
                LineProblem::MissingFileName
            } else {
                LineProblem::MissingLabels {
                    expected: self.labels_hint(),
                }
            });
        };
        // Tolerate `name 0, 1, 0`: pull words back in while the name part ends in a comma.
        let mut labels = last.to_string();
        while rest.ends_with(',') {
            match split_last(rest) {
                Some((r, w)) => {
                    labels.insert_str(0, w);
                    rest = r;
                }
                None => return Err(LineProblem::MissingFileName),
            }
        }
        if !labels.contains(',') && self.num_classes > 1 && looks_like_file_name(&labels) {
            return Err(LineProblem::MissingLabels {
                expected: self.labels_hint(),
            });
        }
        let items: Vec<&str> = labels.split(',').collect();
        if items.len() != self.num_classes {
            return Err(LineProblem::WrongLabelCount {
                expected: self.num_classes,
                found: items.len(),
            });
        }
        let flags = items.into_iter().map(flag).collect::<Result<Vec<_>, _>>()?;
        Ok((rest.to_string(), Target::Multi(flags)))
    }

    fn parse_words(&self, line: &str) -> Result<(String, Target), LineProblem> {
        let expected = match self.syntax {
            LabelSyntax::ClassIndex => 1,
            _ => self.num_classes,
        };
        // Peel integer words off the right end.
        let mut name = line;
        let mut words = Vec::new();
        while let Some((rest, word)) = split_last(name) {
            if word.parse::<i64>().is_err() {
                break;
            }
            words.push(word);
            name = rest;
        }
        words.reverse();
        if words.len() > expected {
            return Err(LineProblem::WrongLabelCount {
                expected,
                found: words.len(),
            });
        }
        if words.len() < expected {
            let single_word = split_last(name).is_none();
            let offending = last_word(name);
            return Err(if words.is_empty() && single_word {
                LineProblem::MissingLabels {
                    expected: self.labels_hint(),
                }
            } else if single_word || looks_like_file_name(offending) {
                if words.is_empty() {
                    LineProblem::MissingLabels {
                        expected: self.labels_hint(),
                    }
                } else {
                    LineProblem::WrongLabelCount {
                        expected,
                        found: words.len(),
                    }
                }
            } else {
                LineProblem::NotANumber {
                    token: offending.to_string(),
                }
            });
        }
        let target = match self.syntax {
            LabelSyntax::ClassIndex => {
                let value: i64 = words[0].parse().map_err(|_| LineProblem::NotANumber {
                    token: words[0].to_string(),
                })?;
                if value < 0 || value as u64 >= self.num_classes as u64 {
                    return Err(LineProblem::OutOfRange {
                        value,
                        allowed: format!("0..={}", self.num_classes - 1),
                    });
                }
                Target::Single(value as usize)
            }
            _ => Target::Multi(words.into_iter().map(flag).collect::<Result<_, _>>()?),
        };
        Ok((name.to_string(), target))
    }

    /// Write one line (without newline). Fails if the target does not fit the format.
    pub fn format_line(&self, id: &str, target: &Target) -> Result<String, String> {
        if id.is_empty() || id.contains(['\n', '\r']) || id != id.trim() {
            return Err(format!("file name {id:?} cannot be written to a list"));
        }
        let flags = |flags: &[bool], sep: &str| -> Result<String, String> {
            if flags.len() != self.num_classes {
                return Err(format!(
                    "'{id}' has {} labels, the format has {} classes",
                    flags.len(),
                    self.num_classes
                ));
            }
            Ok(flags
                .iter()
                .map(|&f| if f { "1" } else { "0" })
                .collect::<Vec<_>>()
                .join(sep))
        };
        let labels = match (self.syntax, target) {
            (LabelSyntax::ClassIndex, Target::Single(c)) if *c < self.num_classes => c.to_string(),
            (LabelSyntax::CommaList, Target::Multi(f)) => flags(f, ",")?,
            (LabelSyntax::SpaceList, Target::Multi(f)) => flags(f, " ")?,
            (syntax, target) => {
                return Err(format!(
                    "'{id}': target {target:?} cannot be written as {syntax:?}"
                ));
            }
        };
        Ok(format!("{id} {labels}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLON: ListFormat = ListFormat {
        syntax: LabelSyntax::ClassIndex,
        num_classes: 2,
    };
    const ENDO: ListFormat = ListFormat {
        syntax: LabelSyntax::SpaceList,
        num_classes: 4,
    };
    const CHEST3: ListFormat = ListFormat {
        syntax: LabelSyntax::CommaList,
        num_classes: 3,
    };

    #[test]
    fn names_with_spaces_are_kept_whole() {
        let (name, t) = COLON.parse_line("a b  c.png 1").unwrap();
        assert_eq!((name.as_str(), t), ("a b  c.png", Target::Single(1)));
        let (name, t) = ENDO.parse_line("x y.png\t1 0 0 1  ").unwrap();
        assert_eq!(name, "x y.png");
        assert_eq!(t, Target::Multi(vec![true, false, false, true]));
        let (name, t) = CHEST3.parse_line("p q.png 0, 1,1").unwrap();
        assert_eq!(name, "p q.png");
        assert_eq!(t, Target::Multi(vec![false, true, true]));
    }

    #[test]
    fn each_problem_is_named() {
        use LineProblem::*;
        let wrong = |e: usize, f: usize| WrongLabelCount {
            expected: e,
            found: f,
        };
        assert_eq!(ENDO.parse_line("a.png 1 0 0"), Err(wrong(4, 3)));
        assert_eq!(ENDO.parse_line("a b.png 1 0 0"), Err(wrong(4, 3)));
        assert_eq!(ENDO.parse_line("a.png 1 0 0 1 1"), Err(wrong(4, 5)));
        assert!(matches!(ENDO.parse_line("a.png 1 x 0 1"), Err(NotANumber { token }) if token == "x"));
        assert!(matches!(
            ENDO.parse_line("a.png 1 2 0 1"),
            Err(OutOfRange { value: 2, .. })
        ));
        assert!(matches!(ENDO.parse_line("a.png"), Err(MissingLabels { .. })));
        assert!(matches!(COLON.parse_line("a b.png"), Err(MissingLabels { .. })));
        assert!(matches!(
            COLON.parse_line("a.png 2"),
            Err(OutOfRange { value: 2, .. })
        ));
        assert!(matches!(
            COLON.parse_line("a.png -1"),
            Err(OutOfRange { value: -1, .. })
        ));
        assert!(matches!(COLON.parse_line("a.png one"), Err(NotANumber { .. })));
        assert_eq!(CHEST3.parse_line("a.png 0,1"), Err(wrong(3, 2)));
        assert!(matches!(CHEST3.parse_line("a.png 0,y,1"), Err(NotANumber { token }) if token == "y"));
        assert!(matches!(CHEST3.parse_line("0,1,0"), Err(MissingFileName)));
        assert!(matches!(CHEST3.parse_line("a.png"), Err(MissingLabels { .. })));
    }

    #[test]
    fn formatting_round_trips() {
        for (fmt, line) in [
            (COLON, "a b.png 1"),
            (ENDO, "a b.png 0 1 1 0"),
            (CHEST3, "a b.png 1,0,1"),
        ] {
            let (name, target) = fmt.parse_line(line).unwrap();
            assert_eq!(fmt.format_line(&name, &target).unwrap(), line);
        }
        assert!(
            COLON
                .format_line("a.png", &Target::Multi(vec![true, false]))
                .is_err()
        );
        assert!(ENDO.format_line("a.png", &Target::Multi(vec![true])).is_err());
    }

    #[test]
    fn kinds_parse_by_name() {
        assert_eq!("Endo".parse::<ListKind>().unwrap(), ListKind::Endo);
        assert_eq!("space-list".parse::<ListKind>().unwrap(), ListKind::SpaceList);
        let err = "xray".parse::<ListKind>().unwrap_err();
        assert!(err.contains("chest, endo, colon"), "{err}");
        assert!(ListKind::SpaceList.format(None).is_err());
        assert_eq!(ListKind::Chest.format(None).unwrap().num_classes, 19);
    }
}
