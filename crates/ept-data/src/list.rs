//! Reading and writing MedFMC-style annotation lists (`name.png <labels>` per line).
//! Reading tolerates CRLF, blank lines, a UTF-8 byte-order mark and leading/trailing
//! blanks; every malformed line is reported as `file:line: problem`. Writing is atomic
//! (temporary file + rename) so an interrupted `sample` run never leaves half a list.

use std::path::Path;

use crate::error::{DataError, LineProblem};
use crate::format::ListFormat;
use crate::sample::Sample;

/// The non-blank lines of a text file as `(1-based line number, trimmed text)`.
/// Fails on the first line that is not UTF-8.
pub(crate) fn text_lines(bytes: &[u8], file: &Path) -> Result<Vec<(usize, String)>, DataError> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text =
            std::str::from_utf8(raw).map_err(|_| DataError::line(file, i + 1, LineProblem::NotUtf8))?;
        let text = if i == 0 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        let text = text.trim();
        if !text.is_empty() {
            out.push((i + 1, text.to_string()));
        }
    }
    Ok(out)
}

/// Parse list text (the contents of `file`) into samples whose paths are `images/<name>`.
/// With `check_images`, a name without a file under `images` is an error.
pub fn parse_list(
    bytes: &[u8],
    file: &Path,
    images: &Path,
    format: &ListFormat,
    check_images: bool,
) -> Result<Vec<Sample>, DataError> {
    let mut samples = Vec::new();
    for (line_no, text) in text_lines(bytes, file)? {
        let (id, target) = format
            .parse_line(&text)
            .map_err(|p| DataError::line(file, line_no, p))?;
        let path = images.join(&id);
        if check_images
            && let Some(problem) = LineProblem::for_listed(&path, None, || LineProblem::UnknownImage {
                name: id.clone(),
                dir: images.to_path_buf(),
            })
        {
            return Err(DataError::line(file, line_no, problem));
        }
        samples.push(Sample {
            path,
            id,
            target,
            group: None,
        });
    }
    Ok(samples)
}

/// Read an annotation list from disk (see [`parse_list`]).
pub fn read_list(
    list: &Path,
    images: &Path,
    format: &ListFormat,
    check_images: bool,
) -> Result<Vec<Sample>, DataError> {
    let bytes = std::fs::read(list).map_err(|e| DataError::io(list, e))?;
    parse_list(&bytes, list, images, format, check_images)
}

/// Write `text` to `path` atomically (`ept_backend::fs::write_atomic`), creating parent
/// folders.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), DataError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    ept_backend::fs::write_atomic(path, text.as_bytes()).map_err(|e| DataError::io(path, e))
}

/// The first item of `items` that an earlier one equals (a class named twice, say).
pub fn first_repeat<T: PartialEq>(items: &[T]) -> Option<&T> {
    items
        .iter()
        .enumerate()
        .find_map(|(i, item)| items[..i].contains(item).then_some(item))
}

/// Render samples as list text, one line each, in the given order.
pub fn render_list<'a>(
    samples: impl IntoIterator<Item = &'a Sample>,
    format: &ListFormat,
) -> Result<String, DataError> {
    let mut text = String::new();
    for s in samples {
        let line = format.format_line(&s.id, &s.target).map_err(DataError::Invalid)?;
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// Write samples as an annotation list (atomically).
pub fn write_list<'a>(
    path: &Path,
    samples: impl IntoIterator<Item = &'a Sample>,
    format: &ListFormat,
) -> Result<(), DataError> {
    write_atomic(path, &render_list(samples, format)?)
}
