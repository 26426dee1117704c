//! Crash-safe file output shared by every crate that writes results: a file is written
//! to a temporary sibling, flushed to disk, and renamed over the destination, so a
//! reader sees either the old file or the complete new one — never half a checkpoint.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` atomically (temp file + fsync + rename + directory fsync).
/// On error the destination is untouched and the temporary file removed; the error
/// names the path. Only a regular file is replaced: renaming over a symbolic link, a
/// device (`/dev/null`) or a pipe would replace the link or the device node itself.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Ok(existing) = fs::symlink_metadata(path)
        && !existing.file_type().is_file()
    {
        let what = if existing.file_type().is_symlink() {
            "a symbolic link"
        } else if existing.is_dir() {
            "a folder"
        } else {
            "a device, pipe or socket"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is {what}, not a regular file: not replacing it (give a new file name)",
                path.display()
            ),
        ));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file path", path.display()),
        )
    })?;
    let temp = parent.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(&parent) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if let Err(error) = result {
        let _ = fs::remove_file(&temp);
        return Err(explain(error, path));
    }
    Ok(())
}

/// True for the errors of a full disk, an exhausted quota or a file-size limit.
pub fn is_out_of_space(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

/// `error` of writing `path`, as a message that names the path and, when the disk (or a
/// quota or file-size limit) is full, says so and what to do.
pub fn explain(error: io::Error, path: &Path) -> io::Error {
    let advice = if is_out_of_space(&error) {
        " — the disk is full (or a quota or file-size limit was reached): free space or set \
         output.dir to another disk, then continue with --resume"
    } else {
        ""
    };
    io::Error::new(
        error.kind(),
        format!("writing {}: {error}{advice}", path.display()),
    )
}

/// Make a file-size limit (`ulimit -f`) a write error instead of a kill: by default the
/// kernel ends a process that writes past the limit with SIGXFSZ, before it can say
/// what happened. Ignoring the signal makes the write fail with `EFBIG`, which
/// [`explain`] reports as a full disk while the last checkpoint stays intact.
pub fn report_file_size_limit() {
    // SIGXFSZ is 25 on these (MIPS, for one, numbers it otherwise).
    #[cfg(all(
        target_os = "linux",
        any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "x86",
            target_arch = "arm",
            target_arch = "riscv64"
        )
    ))]
    {
        unsafe extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGXFSZ: i32 = 25;
        const SIG_IGN: usize = 1;
        // SAFETY: installs the kernel's own "ignore" disposition; no handler code runs.
        unsafe {
            signal(SIGXFSZ, SIG_IGN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_explained() {
        let full = explain(io::Error::from_raw_os_error(28), Path::new("/runs/x/state.json"));
        let text = full.to_string();
        assert!(text.starts_with("writing /runs/x/state.json: "), "{text}");
        assert!(
            text.contains("the disk is full") && text.contains("--resume"),
            "{text}"
        );
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        let denied = explain(io::Error::from_raw_os_error(13), Path::new("/x"));
        assert!(!denied.to_string().contains("disk is full"), "{denied}");
    }

    /// `/dev/full` answers every write with ENOSPC: a real full-disk error, no mount needed.
    #[cfg(target_os = "linux")]
    #[test]
    fn writing_to_a_full_device_names_it() {
        let mut file = File::options().write(true).open("/dev/full").unwrap();
        let error = file
            .write_all(&[0u8; 4096])
            .and_then(|_| file.sync_all())
            .unwrap_err();
        assert!(is_out_of_space(&error), "{error:?}");
        assert!(
            explain(error, Path::new("/dev/full"))
                .to_string()
                .contains("disk is full")
        );
    }

    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let dir = std::env::temp_dir().join(format!("ept-fs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.bin");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A link or a device node at the destination is left as it is (a rename would have
    /// replaced `/dev/null` itself with a file).
    #[cfg(unix)]
    #[test]
    fn refuses_to_replace_links_devices_and_folders() {
        let dir = std::env::temp_dir().join(format!("ept-fs-special-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("real.bin");
        fs::write(&target, b"kept").unwrap();
        let link = dir.join("link.bin");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for (path, what) in [
            (link.as_path(), "a symbolic link"),
            (Path::new("/dev/null"), "a device"),
            (dir.as_path(), "a folder"),
        ] {
            let error = write_atomic(path, b"new").unwrap_err().to_string();
            assert!(
                error.contains(what) && error.contains("not replacing it"),
                "{error}"
            );
        }
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"kept");
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_destination_is_an_error_naming_it() {
        let path = Path::new("/nonexistent-dir-ept/x.bin");
        let err = write_atomic(path, b"x").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir-ept/x.bin"), "{err}");
    }
}
