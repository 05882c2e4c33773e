//! Acceptance against an independent oracle: for real kernel functions in
//! the Debian 6.1 cloud vmlinux, the CFA-relative stack offsets and sizes
//! ksw derives must equal what gdb's `info scope` reports
//! (`DW_OP_fbreg N`, `length L`; the frame base of these functions is
//! `DW_OP_call_frame_cfa`, so N is relative to the CFA). The watch that
//! `resolve` builds must also start at that slot.
//!
//! gdb runs once, in batch mode, over all functions.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use ksw_analyze::{DebugFile, ElfImage, ResolveRequest, frame_layout, resolve};

/// Out-of-line functions with stack-resident locals, chosen by name only:
/// the expected offsets come from gdb at test time.
const FUNCTIONS: &[&str] = &[
    "do_sys_openat2",
    "__do_sys_newuname",
    "core_sys_select",
    "__do_sys_newstat",
    "__do_sys_newfstat",
    "__do_sys_newlstat",
    "do_statx",
    "__do_sys_sysinfo",
    "hrtimer_nanosleep",
    "kernel_wait4",
    "__do_sys_clone",
    "__do_sys_clone3",
    "__do_sys_fork",
    "__do_sys_vfork",
    "do_mkdirat",
    "do_unlinkat",
    "do_rmdir",
    "do_renameat2",
    "do_linkat",
    "do_symlinkat",
    "do_mknodat",
    "user_statfs",
    "__do_sys_statfs",
    "__do_sys_fstatfs",
    "do_readlinkat",
    "do_faccessat",
    "do_fchmodat",
    "do_fchownat",
    "__do_sys_adjtimex",
    "do_pipe2",
    "__sys_bind",
    "__sys_sendto",
    "__sys_recvfrom",
    "__sys_getsockname",
    "__sys_getpeername",
    "__do_sys_ustat",
    "__do_sys_capget",
    "__do_sys_capset",
    "futex_wait",
    "do_tkill",
    "__do_sys_reboot",
    "__do_sys_sched_setattr",
];

/// gdb's answer: function → [(symbol, fbreg offset, length)].
fn gdb_scopes(vmlinux: &std::path::Path) -> BTreeMap<String, Vec<(String, i64, u64)>> {
    let mut cmd = Command::new("gdb");
    cmd.args(["-batch", "-nx"]);
    for f in FUNCTIONS {
        cmd.arg("-ex").arg(format!("info scope {f}"));
    }
    cmd.arg(vmlinux);
    let out = cmd.output().expect("run gdb");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut scopes = BTreeMap::new();
    let mut current: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("Scope for ") {
            let name = rest.trim_end_matches(':').to_string();
            scopes.entry(name.clone()).or_insert_with(Vec::new);
            current = Some(name);
            continue;
        }
        // Symbol NAME is a complex DWARF expression:
        //      0: DW_OP_fbreg -60
        // , length 20.
        let Some(rest) = line.strip_prefix("Symbol ") else {
            continue;
        };
        let Some((symbol, what)) = rest.split_once(' ') else {
            continue;
        };
        if what != "is a complex DWARF expression:" {
            continue;
        }
        let (Some(op), Some(len)) = (lines.get(i + 1), lines.get(i + 2)) else {
            continue;
        };
        let Some(offset) = op.trim().strip_prefix("0: DW_OP_fbreg ") else {
            continue;
        };
        let Some(length) = len
            .strip_prefix(", length ")
            .and_then(|l| l.strip_suffix('.'))
        else {
            continue;
        };
        let (Ok(offset), Ok(length)) = (offset.trim().parse::<i64>(), length.parse::<u64>()) else {
            continue;
        };
        if let Some(f) = &current {
            scopes
                .entry(f.clone())
                .or_default()
                .push((symbol.to_string(), offset, length));
        }
    }
    scopes
}

#[test]
fn frame_offsets_match_gdb_info_scope_6_1() {
    check_series("6.1");
}

/// 6.12: no `.rela.debug_*`, `endbr64` before `__fentry__`.
#[test]
fn frame_offsets_match_gdb_info_scope_6_12() {
    check_series("6.12");
}

fn check_series(series: &str) {
    let Some(vmlinux) = common::vmlinux(series) else {
        common::missing(&format!("the Debian {series} debug vmlinux"));
        return;
    };
    if !common::have("gdb") {
        common::missing("gdb (apt-get install gdb)");
        return;
    }
    let scopes = gdb_scopes(&vmlinux);
    let file = DebugFile::open(&vmlinux).expect("open vmlinux");
    let image = ElfImage::parse(&file).expect("parse vmlinux");
    let mut functions_checked = 0;
    let mut slots_checked = 0;
    let mut resolved = 0;
    let mut orc_agreed = 0;
    let mut failures = Vec::new();
    for function in FUNCTIONS {
        let Some(expected) = scopes.get(*function).filter(|e| !e.is_empty()) else {
            continue;
        };
        // Inlining differs between builds: compare out-of-line functions only.
        if image.function_symbols(|n| n == *function).is_empty() {
            eprintln!("note: {series}: {function} has no out-of-line copy in this build");
            continue;
        }
        let layout = match frame_layout(&[&file], function) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{function}: {e}"));
                continue;
            }
        };
        functions_checked += 1;
        for (symbol, offset, length) in expected {
            let ours = layout
                .variables
                .iter()
                .find(|v| &v.name == symbol && v.cfa_offset == Some(*offset));
            match ours {
                Some(v) if v.size == Some(*length) => slots_checked += 1,
                Some(v) => failures.push(format!(
                    "{function}.{symbol}: size {:?}, gdb says {length}",
                    v.size
                )),
                None => failures.push(format!(
                    "{function}.{symbol}: gdb says fbreg {offset}; ksw has {:?}",
                    layout
                        .variables
                        .iter()
                        .filter(|v| &v.name == symbol)
                        .map(|v| v.cfa_offset)
                        .collect::<Vec<_>>()
                )),
            }
        }
        // The watch resolve builds for the first stack local starts in it.
        let (symbol, offset, length) = &expected[0];
        let request = ResolveRequest {
            function: function.to_string(),
            variable: Some(symbol.clone()),
            ..ResolveRequest::default()
        };
        match resolve(&[&file], &request) {
            Ok(r) => {
                let start = r.cfa_offset - r.watched_part.0 as i64;
                if start != *offset || r.watched_part.1 > *length {
                    failures.push(format!(
                        "{function}.{symbol}: watch at CFA{start:+} [{:?}]",
                        r.watched_part
                    ));
                } else if r.watch.sp_offset as i64 != r.cfa_to_sp + r.cfa_offset
                    || r.cfa_offset % i64::from(r.watch.watch_len) != 0
                {
                    failures.push(format!("{function}.{symbol}: inconsistent watch {r:?}"));
                } else {
                    resolved += 1;
                    // A disagreement between CFI and ORC is an error;
                    // count the probe points where both were consulted.
                    orc_agreed += usize::from(r.cfa_source.contains("ORC agrees"));
                }
            }
            Err(e) => eprintln!("note: resolve {function} {symbol}: {e}"),
        }
    }
    eprintln!(
        "{series}: checked {slots_checked} stack slots in {functions_checked} functions against gdb; \
         resolve built {resolved} watches, ORC agreed with CFI at {orc_agreed} probe points"
    );
    assert!(
        failures.is_empty(),
        "disagreements with gdb:\n{}",
        failures.join("\n")
    );
    assert!(
        functions_checked >= 30,
        "only {functions_checked} functions had gdb answers to compare"
    );
    assert!(resolved >= 30, "resolve built only {resolved} watches");
    assert!(
        orc_agreed >= 30,
        "ORC was consulted at only {orc_agreed} probe points"
    );
}
