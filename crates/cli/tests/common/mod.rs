//! What the CLI's integration tests share: where the pipeline's fixtures
//! are (`KSW_FIXTURES`, default `~/.cache/ksw/fixtures`; missing fixtures
//! fail a test unless `KSW_ALLOW_MISSING_FIXTURES=1`) and where the debug
//! vmlinux of each series is.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};

/// The fixture root, or `None` when fixtures are missing and that is
/// allowed.
pub fn fixtures() -> Option<PathBuf> {
    let root = std::env::var_os("KSW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/ksw/fixtures")
        });
    if root.join("6.1/sysrq/manifest.json").exists() {
        return Some(root);
    }
    if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "fixtures missing under {} (run `python3 testdata/pipeline all`)",
        root.display()
    );
}

/// The debug vmlinux of a series, if the pipeline unpacked it.
pub fn debug_vmlinux(series: &str) -> PathBuf {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()));
    let cache = std::env::var_os("KSW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/ksw"));
    let dir = cache
        .join("kernels")
        .join(series)
        .join("root/usr/lib/debug/boot");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `python3 testdata/pipeline kernel {series}`)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinux-"))
        })
        .unwrap_or_else(|| panic!("no vmlinux-* in {}", dir.display()))
}

/// `ksw analyze DUMP ARGS --json`: its JSON (`None` when stdout is not
/// JSON), its exit code and its stderr. A Rust panic fails the caller.
pub fn ksw_analyze(dump: &Path, args: &[&str]) -> (Option<serde_json::Value>, i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ksw"))
        .arg("analyze")
        .arg(dump)
        .args(args)
        .arg("--json")
        .output()
        .expect("run ksw");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        serde_json::from_slice(&out.stdout).ok(),
        out.status.code().unwrap_or(-1),
        stderr,
    )
}
