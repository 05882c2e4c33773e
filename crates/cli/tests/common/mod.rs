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

/// The kernel's catch report (the last one on the console).
#[derive(Debug)]
pub struct ConsoleCatch {
    pub writer: String,
    pub ip: u64,
    pub address: u64,
    pub old: u64,
    pub new: u64,
    pub victim: String,
    pub depth: u64,
}

pub fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("hex {s}"))
}

pub fn console_catch(console: &str) -> ConsoleCatch {
    let writer =
        regex::Regex::new(r"kstackwatch: writer: (\S+(?: \[\w+\])?) ip=(0x[0-9a-f]+)").unwrap();
    let watch = regex::Regex::new(
        r"kstackwatch: watch: addr=(0x[0-9a-f]+) len=\d+ old=(0x[0-9a-f]+) new=(0x[0-9a-f]+)",
    )
    .unwrap();
    let victim = regex::Regex::new(r"kstackwatch: victim: func=(\S+) depth=(\d+)").unwrap();
    let w = writer.captures_iter(console).last().expect("a writer line");
    let a = watch.captures_iter(console).last().expect("a watch line");
    let v = victim.captures_iter(console).last().expect("a victim line");
    ConsoleCatch {
        writer: w[1].to_string(),
        ip: hex(&w[2]),
        address: hex(&a[1]),
        old: hex(&a[2]),
        new: hex(&a[3]),
        victim: v[1].to_string(),
        depth: v[2].parse().unwrap(),
    }
}

/// A JSON frame's symbol as the kernel prints it: `name+off/size [module]`.
pub fn frame_symbol(sym: &serde_json::Value) -> String {
    format!(
        "{}+{:#x}/{:#x} [{}]",
        sym["name"].as_str().unwrap(),
        sym["offset"].as_u64().unwrap(),
        sym["size"].as_u64().unwrap(),
        sym["module"].as_str().unwrap()
    )
}
