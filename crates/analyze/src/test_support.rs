//! Helpers of the crate's unit tests.

use std::path::{Path, PathBuf};

/// `tests/fixtures/victims.c` compiled by gcc into `dir` with `-O2 -g`
/// and `extra` flags; the object's path.
pub(crate) fn victims_object(dir: &Path, extra: &[&str]) -> PathBuf {
    let object = dir.join("victims.o");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/victims.c");
    let status = std::process::Command::new("gcc")
        .args(["-O2", "-g"])
        .args(extra)
        .args(["-c", source, "-o"])
        .arg(&object)
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc failed on {source}");
    object
}
