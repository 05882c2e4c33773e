//! Shared test plumbing: where the kernel fixtures are, and the policy for
//! when they are missing (fail, unless `KSW_ALLOW_MISSING_FIXTURES=1`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod oracle;

/// `$KSW_CACHE`, or `~/.cache/ksw`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("KSW_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/ksw"),
    }
}

/// Returns `false` (test skipped) when fixtures may be missing; panics otherwise.
pub fn missing(what: &str) -> bool {
    if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") {
        eprintln!("skipping: {what} (KSW_ALLOW_MISSING_FIXTURES=1)");
        false
    } else {
        panic!(
            "fixture missing: {what}. Run the fixture pipeline (testdata/pipeline) to fetch the \
             Debian kernels into $KSW_CACHE, or set KSW_ALLOW_MISSING_FIXTURES=1 to skip"
        );
    }
}

/// The unpacked package root of a kernel series (`6.1`, `6.12`).
pub fn kernel_root(series: &str) -> Option<PathBuf> {
    let root = cache_dir().join("kernels").join(series).join("root");
    root.is_dir().then_some(root)
}

/// The debug vmlinux of a kernel series, if unpacked.
pub fn vmlinux(series: &str) -> Option<PathBuf> {
    let dir = kernel_root(series)?.join("usr/lib/debug/boot");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinux-"))
        })
}

/// The release string from a vmlinux path (`vmlinux-REL`).
pub fn release_of(vmlinux: &Path) -> String {
    vmlinux
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinux-"))
        .unwrap_or_default()
        .to_string()
}

/// Build the out-of-tree module sources in `dir` against a kernel's
/// headers with Kbuild (`make -C HEADERS M=DIR modules`).
pub fn build_kbuild_module(headers: &Path, dir: &Path) {
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(headers)
        .arg(format!("M={}", dir.display()))
        .arg("modules")
        .output()
        .expect("make");
    assert!(
        out.status.success(),
        "module build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// Compile C `source` with gcc into an object file in `dir` and return it.
pub fn compile(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create fixture directory");
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).expect("write C source");
    let o = dir.join(format!("{name}.o"));
    let out = Command::new("gcc")
        .args(flags)
        .arg("-c")
        .arg(&c)
        .arg("-o")
        .arg(&o)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    o
}
