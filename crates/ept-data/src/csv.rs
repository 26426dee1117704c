//! The CSV layout: `path,label[,group]`, one image per row. An optional first row
//! `path,label` or `path,label,group` names the columns (a group column needs it).
//! Rows are split from the RIGHT, so paths may contain commas even unquoted; a path in
//! double quotes (`"a,b.png"`, `""` for a quote) is also accepted. Labels are a class
//! index (single-label) or 0/1 flags separated by spaces or `;` (multi-label).

use std::path::Path;

use crate::error::{DataError, LineProblem};
use crate::format::{MAX_CLASSES, check_num_classes};
use crate::list::{text_lines, write_atomic};
use crate::sample::{Sample, Target};

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    pub multi_label: bool,
    /// Class count; inferred when `None` (largest index + 1, or the first row's flag count).
    pub num_classes: Option<usize>,
    pub check_images: bool,
}

fn unquote(field: &str) -> String {
    let f = field.trim();
    match f.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => f.to_string(),
    }
}

fn header_columns(text: &str) -> Option<usize> {
    let cols: Vec<String> = text.split(',').map(|c| unquote(c).to_ascii_lowercase()).collect();
    match cols.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["path", "label"] => Some(2),
        ["path", "label", "group"] => Some(3),
        _ => None,
    }
}

fn parse_label(field: &str, multi: bool, num_classes: Option<usize>) -> Result<Target, LineProblem> {
    if multi {
        let words: Vec<&str> = field
            .split(|c: char| c == ';' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(n) = num_classes.filter(|&n| n != words.len()) {
            return Err(LineProblem::WrongLabelCount {
                expected: n,
                found: words.len(),
            });
        }
        let flags = words
            .into_iter()
            .map(|w| match w.parse::<i64>() {
                Ok(0) => Ok(false),
                Ok(1) => Ok(true),
                Ok(value) => Err(LineProblem::OutOfRange {
                    value,
                    allowed: "0 or 1".into(),
                }),
                Err(_) => Err(LineProblem::NotANumber { token: w.into() }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Target::Multi(flags))
    } else {
        let value: i64 = field.parse().map_err(|_| LineProblem::NotANumber {
            token: field.to_string(),
        })?;
        let classes = num_classes.unwrap_or(MAX_CLASSES);
        if value < 0 || value as u64 >= classes as u64 {
            let allowed = match num_classes {
                Some(n) => format!("0..={}", n - 1),
                None => format!("a class index in 0..{MAX_CLASSES}"),
            };
            return Err(LineProblem::OutOfRange { value, allowed });
        }
        Ok(Target::Single(value as usize))
    }
}

/// Parse CSV text; returns the samples and the class count.
pub fn parse_csv(
    bytes: &[u8],
    file: &Path,
    images: &Path,
    options: &CsvOptions,
) -> Result<(Vec<Sample>, usize), DataError> {
    if let Some(n) = options.num_classes {
        check_num_classes(n).map_err(|e| DataError::Invalid(format!("{}: {e}", file.display())))?;
    }
    let lines = text_lines(bytes, file)?;
    let mut rows = lines.as_slice();
    let mut columns = 2;
    if let Some((_, first)) = rows.first()
        && let Some(n) = header_columns(first)
    {
        columns = n;
        rows = &rows[1..];
    }
    let mut num_classes = options.num_classes;
    let mut samples = Vec::with_capacity(rows.len());
    for (line_no, text) in rows {
        let err = |p| DataError::line(file, *line_no, p);
        let mut fields: Vec<&str> = text.rsplitn(columns, ',').collect();
        if fields.len() != columns {
            return Err(err(LineProblem::WrongColumnCount {
                expected: columns,
                found: fields.len(),
            }));
        }
        fields.reverse();
        let path = unquote(fields[0]);
        let label = unquote(fields[1]);
        let group = fields.get(2).map(|g| unquote(g));
        if path.is_empty() {
            return Err(err(LineProblem::EmptyColumn { column: "path" }));
        }
        if label.is_empty() {
            return Err(err(LineProblem::EmptyColumn { column: "label" }));
        }
        if group.as_deref() == Some("") {
            return Err(err(LineProblem::EmptyColumn { column: "group" }));
        }
        let target = parse_label(&label, options.multi_label, num_classes).map_err(err)?;
        if let (None, Target::Multi(flags)) = (num_classes, &target) {
            num_classes = Some(flags.len());
        }
        let full = images.join(&path);
        if options.check_images
            && let Some(problem) = LineProblem::for_listed(&full, None, || LineProblem::UnknownImage {
                name: path.clone(),
                dir: images.to_path_buf(),
            })
        {
            return Err(err(problem));
        }
        samples.push(Sample {
            path: full,
            id: path,
            target,
            group,
        });
    }
    let num_classes = match num_classes {
        Some(n) => n,
        None => samples
            .iter()
            .filter_map(|s| s.target.max_class())
            .max()
            .map_or(0, |m| m + 1),
    };
    if num_classes == 0 {
        return Err(DataError::Invalid(format!(
            "{}: no classes found (the file has no rows)",
            file.display()
        )));
    }
    Ok((samples, num_classes))
}

/// Read a CSV file from disk (see [`parse_csv`]).
pub fn read_csv(file: &Path, images: &Path, options: &CsvOptions) -> Result<(Vec<Sample>, usize), DataError> {
    let bytes = std::fs::read(file).map_err(|e| DataError::io(file, e))?;
    parse_csv(&bytes, file, images, options)
}

fn quote(field: &str) -> String {
    if field.contains([',', '"']) || field != field.trim() {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Render samples as CSV with a header; a group column is written when any sample has one.
pub fn render_csv<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Result<String, DataError> {
    let samples: Vec<&Sample> = samples.into_iter().collect();
    let with_group = samples.iter().any(|s| s.group.is_some());
    let mut text = String::from(if with_group {
        "path,label,group\n"
    } else {
        "path,label\n"
    });
    for s in samples {
        if s.id.contains(['\n', '\r']) {
            return Err(DataError::Invalid(format!(
                "file name {:?} cannot be written to CSV",
                s.id
            )));
        }
        let label = match &s.target {
            Target::Single(c) => c.to_string(),
            Target::Multi(flags) => flags
                .iter()
                .map(|&f| if f { "1" } else { "0" })
                .collect::<Vec<_>>()
                .join(" "),
        };
        text.push_str(&quote(&s.id));
        text.push(',');
        text.push_str(&label);
        if with_group {
            text.push(',');
            text.push_str(&quote(s.group.as_deref().unwrap_or("")));
        }
        text.push('\n');
    }
    Ok(text)
}

/// Write samples as CSV (atomically).
pub fn write_csv<'a>(path: &Path, samples: impl IntoIterator<Item = &'a Sample>) -> Result<(), DataError> {
    write_atomic(path, &render_csv(samples)?)
}
