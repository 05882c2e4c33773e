//! `resolve` on the kstackwatch test module, checked against the guest.
//!
//! The fixture run `kstackwatch` (testdata/pipeline) boots the Debian kernel,
//! loads `kstackwatch_test.ko`, and keeps `configs.txt`: for every scenario
//! the module measured at load, in the guest, where its victim local is
//! relative to SP at a marker instruction (`fo=` is the marker, a
//! `mov %rsp, REG`; `so=` is the local's address minus that SP; `dp=` the
//! activation). The fixture's `modules/` holds the very `.ko` the guest
//! loaded. Here `ksw resolve` builds a watch from the local's *name* alone,
//! on that `.ko`'s DWARF, and it must designate the bytes the guest
//! measured:
//!
//! - CFA − SP at the guest's marker comes from binutils (`readelf -wF`
//!   on the `.ko`, its relocations applied by readelf), with the marker's
//!   instruction boundary and text from gdb's `disassemble`; so the
//!   guest's local is at CFA + (`so` − that), which must equal ksw's CFA
//!   offset;
//! - ksw's own probe point must be an instruction boundary (gdb), and its
//!   `so=` must be the guest's CFA offset plus readelf's CFA − SP after
//!   the instruction ksw probes;
//! - `wl=8` and the depth as the guest armed it.
//!
//! Nothing here uses ksw's own CFA − SP.

mod common;

use std::path::Path;

use common::oracle::{self, Cfi};
use ksw_analyze::{ResolveRequest, locate, resolve};

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
    ("initcall", "test_initcall_victim", Some("local"), None),
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

fn check(series: &str) {
    let fixture = common::cache_dir()
        .join("fixtures")
        .join(series)
        .join("kstackwatch");
    let Ok(configs) = std::fs::read_to_string(fixture.join("configs.txt")) else {
        common::missing(&format!(
            "the {series} kstackwatch fixture's configs.txt (python3 testdata/pipeline all)"
        ));
        return;
    };
    let ko = fixture.join("modules/kstackwatch_test.ko");
    if !ko.is_file() {
        common::missing(&format!(
            "{}: the .ko the guest loaded (a fixture older than modules/; re-run the pipeline)",
            ko.display()
        ));
        return;
    }
    if !common::have("gdb") || !common::have("readelf") {
        common::missing("gdb and readelf (apt-get install gdb binutils)");
        return;
    }
    let failures = check_against_guest(series, &configs, &ko);
    assert!(failures.is_empty(), "{series}:\n{}", failures.join("\n"));
}

/// Every disagreement between ksw and the guest's `configs`, on `ko`.
fn check_against_guest(series: &str, configs: &str, ko: &Path) -> Vec<String> {
    let file = locate::open(ko).expect("open kstackwatch_test.ko");
    let commands: Vec<String> = SCENARIOS
        .iter()
        .map(|(_, f, _, _)| format!("disassemble {f}"))
        .collect();
    let disassembly = oracle::parse_disassembly(&oracle::gdb(ko, &commands));
    let cfi = Cfi::read(ko);
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
        if !line.contains(&format!(" fn={function} ")) {
            failures.push(format!(
                "{scenario}: the guest watched another function: {line}"
            ));
            continue;
        }
        let guest_depth = get("dp").unwrap_or(0);
        // binutils' and gdb's view of the function in the guest's .ko.
        let Some(insns) = disassembly.get(*function) else {
            failures.push(format!("{scenario}: gdb cannot disassemble {function}"));
            continue;
        };
        let Some((value, size)) = oracle::nm_symbol(ko, function) else {
            failures.push(format!("{scenario}: nm has no unique symbol {function}"));
            continue;
        };
        let cfa_at = |o: u64| cfi.cfa_minus_sp_in_function(value, size, o);
        // The marker really is at the guest's fo (same build).
        match insns.iter().find(|i| i.offset == fo) {
            Some(i) if i.text.starts_with("mov ") && i.text.contains("%rsp,") => {}
            other => {
                failures.push(format!(
                    "{scenario}: +{fo:#x} in the guest's .ko is {:?}, not the marker `mov %rsp, REG`",
                    other.map(|i| &i.text)
                ));
                continue;
            }
        }
        let guest_cfa_offset = match oracle::cfa_minus_sp_after(insns, fo, cfa_at) {
            Ok(cfa_to_sp) => so as i64 - cfa_to_sp,
            Err(e) => {
                failures.push(format!("{scenario}: at the guest's marker: {e}"));
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
        let r = match resolve(&[&file], &request) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{scenario}: {e}"));
                continue;
            }
        };
        // The bytes the guest measured, by CFA offset.
        if r.cfa_offset != guest_cfa_offset {
            failures.push(format!(
                "{scenario}: ksw watches CFA{:+} ({}), the guest measured CFA{guest_cfa_offset:+} ({line})",
                r.cfa_offset, r.key_value
            ));
            continue;
        }
        // ksw's so= at its own probe point, by readelf's CFA − SP there.
        let truth_so = match oracle::cfa_minus_sp_after(insns, r.watch.function_offset, cfa_at) {
            Ok(cfa_to_sp) => cfa_to_sp + guest_cfa_offset,
            Err(e) => {
                failures.push(format!(
                    "{scenario}: ksw's probe point ({}): {e}",
                    r.key_value
                ));
                continue;
            }
        };
        if r.symbol != *function
            || r.watch.sp_offset as i64 != truth_so
            || r.watch.watch_len != 8
            || u64::from(r.watch.depth.unwrap_or(0)) != guest_depth
        {
            failures.push(format!(
                "{scenario}: ksw says `{}`; the guest's slot is at SP{truth_so:+} after ksw's \
                 probe (readelf), wl=8, dp={guest_depth} ({line})",
                r.key_value
            ));
            continue;
        }
        checked += 1;
        eprintln!(
            "{series} {scenario}: {}  (guest: {})",
            r.key_value,
            line.split_once(' ').map_or("", |x| x.1)
        );
    }
    if failures.is_empty() && checked != SCENARIOS.len() {
        failures.push(format!(
            "only {checked} of {} scenarios checked",
            SCENARIOS.len()
        ));
    }
    failures
}

#[test]
fn resolved_watches_match_the_guest_6_1() {
    check("6.1");
}

#[test]
fn resolved_watches_match_the_guest_6_12() {
    check("6.12");
}

/// The comparison can fail: a guest that had measured the silent local
/// one word higher, or at another marker, disagrees with ksw.
#[test]
fn a_different_guest_measurement_is_a_disagreement() {
    let fixture = common::cache_dir().join("fixtures/6.1/kstackwatch");
    let ko = fixture.join("modules/kstackwatch_test.ko");
    let Ok(configs) = std::fs::read_to_string(fixture.join("configs.txt")) else {
        common::missing("the 6.1 kstackwatch fixture's configs.txt");
        return;
    };
    if !ko.is_file() || !common::have("gdb") || !common::have("readelf") {
        common::missing(&format!("{} with gdb and readelf", ko.display()));
        return;
    }
    assert!(check_against_guest("6.1", &configs, &ko).is_empty());
    let line = configs
        .lines()
        .find(|l| l.starts_with("silent kv "))
        .expect("silent kv line");
    let so = keys(line)
        .into_iter()
        .find(|(k, _)| k == "so")
        .map(|(_, v)| number(&v))
        .expect("so=");
    let moved = line.replace(&format!(" so={so} "), &format!(" so={} ", so + 8));
    let failures = check_against_guest("6.1", &configs.replace(line, &moved), &ko);
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("silent: ksw watches CFA")),
        "{failures:?}"
    );
    // The marker moved off its instruction: no longer the guest's build.
    let fo = keys(line)
        .into_iter()
        .find(|(k, _)| k == "fo")
        .map(|(_, v)| number(&v))
        .expect("fo=");
    let shifted = line.replace(&format!(" fo={fo:#x} "), &format!(" fo={:#x} ", fo + 1));
    let failures = check_against_guest("6.1", &configs.replace(line, &shifted), &ko);
    assert!(
        failures.iter().any(|f| f.contains("not the marker")),
        "{failures:?}"
    );
}
