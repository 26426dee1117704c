//! Which images belong together (one patient, study or slide) for few-shot sampling:
//! a few-shot draw picks whole groups, so near-duplicate images of one unit never end up
//! on both sides of a split. The rules mirror MedFMC's `tools/baseline_multi*.py`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SamplingError;
use crate::sample::Sample;

/// How to derive a sample's group key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Grouping {
    /// Every image is its own group (MedFMC chest).
    Image,
    /// The first N characters of the name (MedFMC endo: 18 = study id).
    Prefix(usize),
    /// The name without its extension and a trailing `p<digits>` patch counter
    /// (MedFMC colon: `…3546p0008.png` → `…3546`, like its `name[:-9]`). A name without
    /// such a counter is its own group.
    Slide,
    /// The sample's explicit group (the CSV `group` column).
    Column,
}

impl Grouping {
    /// The group key of `sample`, borrowed from its name or group.
    pub fn key<'a>(&self, sample: &'a Sample) -> Result<&'a str, SamplingError> {
        let id = sample.id.as_str();
        Ok(match self {
            Grouping::Image => id,
            Grouping::Prefix(n) => match id.char_indices().nth(*n) {
                Some((at, _)) => &id[..at],
                None => id,
            },
            Grouping::Slide => slide_of(id),
            Grouping::Column => sample
                .group
                .as_deref()
                .ok_or_else(|| SamplingError::MissingGroup { id: id.to_string() })?,
        })
    }
}

fn slide_of(id: &str) -> &str {
    let file_start = id.rfind('/').map_or(0, |i| i + 1);
    let stem = match id[file_start..].rfind('.') {
        Some(dot) if dot > 0 => &id[..file_start + dot],
        _ => id,
    };
    let without_digits = stem.trim_end_matches(|c: char| c.is_ascii_digit());
    if without_digits.len() == stem.len() {
        return id;
    }
    match without_digits.strip_suffix(['p', 'P']) {
        Some(slide) if !slide.is_empty() => slide,
        _ => id,
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grouping::Image => f.write_str("image"),
            Grouping::Prefix(n) => write!(f, "prefix:{n}"),
            Grouping::Slide => f.write_str("slide"),
            Grouping::Column => f.write_str("column"),
        }
    }
}

impl FromStr for Grouping {
    type Err = String;

    /// `image`, `prefix:N`, `slide` or `column`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "image" => Ok(Grouping::Image),
            "slide" => Ok(Grouping::Slide),
            "column" => Ok(Grouping::Column),
            _ => match s.strip_prefix("prefix:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Grouping::Prefix(n)),
                _ => Err(format!(
                    "unknown grouping '{s}': expected image, prefix:N (N >= 1), slide or column"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Target;

    fn sample(id: &str) -> Sample {
        Sample {
            path: id.into(),
            id: id.into(),
            target: Target::Single(0),
            group: None,
        }
    }

    #[test]
    fn medfmc_rules() {
        let colon = sample("1903326001_2019-06-11 12_07_06-lv1-3173-23728-2837-3546p0008.png");
        assert_eq!(
            Grouping::Slide.key(&colon).unwrap(),
            &colon.id[..colon.id.len() - 9],
            "same as MedFMC's name[:-9]"
        );
        let endo = sample("13333_2021.12_0006_55977222.png");
        assert_eq!(Grouping::Prefix(18).key(&endo).unwrap(), "13333_2021.12_0006");
        assert_eq!(Grouping::Prefix(99).key(&endo).unwrap(), endo.id);
        assert_eq!(Grouping::Image.key(&endo).unwrap(), endo.id);
        assert_eq!(Grouping::Slide.key(&sample("plain.png")).unwrap(), "plain.png");
        assert_eq!(Grouping::Slide.key(&sample("p0001.png")).unwrap(), "p0001.png");
        assert_eq!(
            Grouping::Slide.key(&sample("dir.v2/s7p12.jpg")).unwrap(),
            "dir.v2/s7"
        );
        assert!(matches!(
            Grouping::Column.key(&sample("a.png")),
            Err(SamplingError::MissingGroup { .. })
        ));
    }

    #[test]
    fn parses_and_prints() {
        for g in [
            Grouping::Image,
            Grouping::Prefix(18),
            Grouping::Slide,
            Grouping::Column,
        ] {
            assert_eq!(g.to_string().parse::<Grouping>().unwrap(), g);
        }
        assert!("prefix:0".parse::<Grouping>().is_err());
        assert!("patient".parse::<Grouping>().unwrap_err().contains("slide"));
    }
}
