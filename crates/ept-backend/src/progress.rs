//! The one progress line a training run keeps rewriting on stderr (`\r`, no newline),
//! and ending it before anything else is printed, so that an error, a warning or the
//! out-of-memory report starts on a line of its own instead of after "eta 3s".

use std::sync::atomic::{AtomicBool, Ordering};

static OPEN: AtomicBool = AtomicBool::new(false);

/// Rewrite the progress line with `text`.
pub fn show(text: &str) {
    eprint!("\r{text}");
    OPEN.store(true, Ordering::Relaxed);
}

/// End the progress line, if one is open.
pub fn end_line() {
    if OPEN.swap(false, Ordering::Relaxed) {
        eprintln!();
    }
}

/// Whether a progress line is open (read by the out-of-memory report, which may not
/// allocate, so it writes the newline itself).
pub(crate) fn is_open() -> bool {
    OPEN.load(Ordering::Relaxed)
}
