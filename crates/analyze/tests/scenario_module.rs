//! `resolve` on the kstackwatch test module, checked against the guest.
//!
//! The fixture run `kstackwatch` (testdata/pipeline) boots the Debian kernel,
//! loads `kstackwatch_test.ko`, and keeps `configs.txt`: for every scenario
//! the module measured at run time, in the guest, where its victim local is
//! relative to SP at a marker instruction (`fo=`, `so=`). Here `ksw resolve`
//! builds a watch from the local's *name* alone, on the module's DWARF; both
//! must designate the same stack bytes: `so_guest − (CFA−SP after fo_guest)`
//! equals the CFA offset ksw resolved. The `.ko` is the one the guest loaded
//! (`modules/` in the fixture) or, for older fixtures, rebuilt from
//! crates/kstackwatch-mod/module against the same headers.

mod common;

use std::path::{Path, PathBuf};

use ksw_analyze::{ResolveRequest, cfa_to_sp_after, locate, resolve};

/// Scenario → (victim function, variable or `None` for the canary, depth).
const SCENARIOS: &[(&str, &str, Option<&str>, Option<u16>)] = &[
    ("fire", "test_watch_fire", Some("buf[1]"), None),
    ("canary", "test_canary_overflow", None, None),
    (
        "recursion",
        "recursive_corruption_test",
        Some("local"),
        Some(3),
    ),
    ("silent", "silent_corruption_victim", Some("local"), None),
    ("mthread", "test_mthread_victim", Some("buf[2]"), None),
    ("overflow", "test_overflow_victim", None, None),
    ("loop", "test_loop_victim", Some("local"), None),
];

/// `key=value` pairs of a config line.
fn keys(config: &str) -> Vec<(String, String)> {
    config
        .split_whitespace()
        .filter_map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

fn number(text: &str) -> u64 {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).expect("hex number"),
        None => text.parse().expect("decimal number"),
    }
}

fn module_for(fixture: &Path, series: &str) -> Option<(PathBuf, Option<tempfile::TempDir>)> {
    let shipped = fixture.join("modules/kstackwatch_test.ko");
    if shipped.is_file() {
        return Some((shipped, None));
    }
    let root = common::kernel_root(series)?;
    let headers = std::fs::read_dir(root.join("usr/src"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("Module.symvers").is_file())?;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kstackwatch-mod/module");
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(&source).ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".c") || name.ends_with(".h") || name == "Kbuild" || name == "Makefile" {
            std::fs::copy(entry.path(), dir.path().join(&*name)).expect("copy module source");
        }
    }
    common::build_kbuild_module(&headers, dir.path());
    Some((dir.path().join("kstackwatch_test.ko"), Some(dir)))
}

fn check(series: &str) {
    let fixture = common::cache_dir()
        .join("fixtures")
        .join(series)
        .join("kstackwatch");
    let Ok(configs) = std::fs::read_to_string(fixture.join("configs.txt")) else {
        common::missing(&format!(
            "the {series} kstackwatch fixture (python3 testdata/pipeline all)"
        ));
        return;
    };
    let Some((ko, _keep)) = module_for(&fixture, series) else {
        common::missing(&format!(
            "the {series} kernel headers to rebuild kstackwatch_test.ko"
        ));
        return;
    };
    let file = locate::open(&ko).expect("open kstackwatch_test.ko");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (scenario, function, variable, depth) in SCENARIOS {
        // The guest's measurement: kvso (explicit slot) for canaries, kv otherwise.
        let grammar = if variable.is_some() { "kv" } else { "kvso" };
        let Some(line) = configs
            .lines()
            .find(|l| l.starts_with(&format!("{scenario} {grammar} ")))
        else {
            failures.push(format!("{scenario}: no `{grammar}` config in configs.txt"));
            continue;
        };
        let kv = keys(line);
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| number(v));
        let (Some(fo), Some(so)) = (get("fo"), get("so")) else {
            failures.push(format!("{scenario}: config without fo/so: {line}"));
            continue;
        };
        let guest_cfa_offset = match cfa_to_sp_after(&[&file], function, fo) {
            Ok(cfa_to_sp) => so as i64 - cfa_to_sp,
            Err(e) => {
                failures.push(format!(
                    "{scenario}: {e} (a fixture older than the module source? re-run the pipeline)"
                ));
                continue;
            }
        };
        let request = ResolveRequest {
            function: function.to_string(),
            variable: variable.map(str::to_string),
            canary: variable.is_none(),
            depth: *depth,
            panic: false,
        };
        match resolve(&[&file], &request) {
            Ok(r) if r.cfa_offset == guest_cfa_offset && r.watch.watch_len == 8 => {
                checked += 1;
                eprintln!("{scenario}: {}  (guest: {})", r.key_value, line.split_once(' ').map_or("", |x| x.1));
            }
            Ok(r) => failures.push(format!(
                "{scenario}: ksw watches CFA{:+} ({}), the guest measured CFA{guest_cfa_offset:+} ({line})",
                r.cfa_offset, r.key_value
            )),
            Err(e) => failures.push(format!("{scenario}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{series}:\n{}", failures.join("\n"));
    assert_eq!(checked, SCENARIOS.len());
}

#[test]
fn resolved_watches_match_the_guest_6_1() {
    check("6.1");
}

#[test]
fn resolved_watches_match_the_guest_6_12() {
    check("6.12");
}
