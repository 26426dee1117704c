//! The image-folder layout (torchvision `ImageFolder`): `root/<class>/…/<image>`, one
//! subfolder per class, classes numbered in sorted name order, images found recursively
//! and sorted so the sample order never depends on the file system.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::sample::{Sample, Target};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        entries.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    entries.sort();
    Ok(entries)
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Read `root/<class>/…` into samples (ids are paths relative to `root`, with `/`) and
/// the class names in label order.
pub fn read_image_folder(root: &Path) -> Result<(Vec<Sample>, Vec<String>), DataError> {
    let classes: Vec<PathBuf> = sorted_entries(root)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: no class subfolders (the image-folder layout is root/<class>/<image>)",
            root.display()
        )));
    }
    let mut samples = Vec::new();
    let mut names = Vec::new();
    for (class, dir) in classes.iter().enumerate() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut images = Vec::new();
        collect_images(dir, &mut images)?;
        if images.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: class folder '{name}' has no images (.png, .jpg, .jpeg)",
                root.display()
            )));
        }
        for path in images {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let id = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            samples.push(Sample {
                path,
                id,
                target: Target::Single(class),
                group: None,
            });
        }
        names.push(name);
    }
    Ok((samples, names))
}
