//! drgn as the oracle of `ksw bt`: for every task of the sysrq fixtures on
//! both kernels (the kdump-compressed dump and QEMU's full-memory ELF),
//! drgn (from PyPI, given the debug vmlinux's DWARF) and `ksw bt` (the
//! dump alone: kallsyms, BTF, ORC) must name the same functions, frame by
//! frame, at the same pc, with the same "interrupted" (exact) flag.
//!
//! drgn's side is `bt_drgn_oracle.py` (next to this file). drgn's inline
//! frames are left out (ksw has no DWARF and prints one frame per call,
//! as the kernel does), and drgn's frames are named by the ELF symbol at
//! the call site (`frame.symbol()`), which is what kallsyms has too
//! (`__handle_sysrq.cold`, not DWARF's `__handle_sysrq`).
//!
//! Each known, explained class of difference is matched by its own narrow
//! rule in `Class` below, counted and printed; anything else fails. The
//! crashed task is also compared through `ksw bt` without arguments.
//!
//! drgn is found at `$KSW_DRGN_PYTHON` (default
//! `~/.cache/ksw/drgn-venv/bin/python`, which `python3 testdata/pipeline
//! oracle` sets up); without it this test fails, as the other drgn oracle
//! does. Fixtures under `$KSW_FIXTURES` (default `~/.cache/ksw/fixtures`),
//! kernels under `$KSW_CACHE/kernels`; when missing the test fails unless
//! `KSW_ALLOW_MISSING_FIXTURES=1`.
//!
//! Run: `cargo test -p ksw --test bt_drgn -- --nocapture` (prints the
//! tally and every tolerated difference).

#[path = "../../analyze/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Kernel addresses are in the upper half; drgn's frame for the user-mode
/// registers is below it.
const KERNEL_HALF: u64 = 0x8000_0000_0000_0000;

fn drgn_python() -> PathBuf {
    let p = std::env::var_os("KSW_DRGN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::cache_dir().join("drgn-venv/bin/python"));
    assert!(
        p.exists(),
        "drgn oracle missing at {} (run `python3 testdata/pipeline oracle`, or set KSW_DRGN_PYTHON)",
        p.display()
    );
    p
}

fn fixtures_root() -> PathBuf {
    std::env::var_os("KSW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::cache_dir().join("fixtures"))
}

/// The explained classes of difference between the two traces of a task
/// (or between the two task lists). Each comes with the rule that
/// recognises it; see `frame_difference` and the enumeration in `compare_dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// kallsyms keeps the labels inside assembly functions
    /// (`SYM_INNER_LABEL`: `entry_SYSCALL_64_after_hwframe` in
    /// `entry_SYSCALL_64`, `secondary_startup_64_no_verify` on 6.1 and
    /// `common_startup_64` on 6.12 in `secondary_startup_64`), so ksw, like
    /// the kernel's own `Call Trace`, names the label; drgn names the ELF
    /// function symbol that has a size and covers it. Rule: same pc, and
    /// ksw's name is the ELF symbol at the nearest address at or below the
    /// call site, inside drgn's symbol.
    InnerLabel,
    /// Module text: drgn, given vmlinux's DWARF only, has no symbol for a
    /// module address (its module symbols come from module debug files) but
    /// still unwinds through it; ksw names it from the module's kallsyms.
    /// Rule: same pc, drgn has no symbol, and drgn's module of the pc is
    /// ksw's module of the symbol (`pvpanic` in the QEMU dumps).
    ModuleWithoutDrgnSymbol,
    /// A syscall's trace: drgn goes on with a frame for the user-mode
    /// registers at the top of the kernel stack (and, on some dumps, with
    /// frames it guesses on the user stack); ksw gives the registers in its
    /// stop record (`user-mode`, pc, sp). Rule: drgn's first frame past
    /// ksw's last is interrupted, in user space, its pc is ksw's stop pc,
    /// and every frame after it is in user space too.
    UserModeFrame,
    /// makedumpfile (6.12, -d 31) left out slab pages that hold
    /// task_structs: drgn cannot read the task (FaultError on an excluded
    /// page) and ksw skips it with a warning naming its address.
    UnreadableTask,
    /// A process-list entry whose neighbours on both sides are unreadable
    /// task_structs (6.12 kdump, pid 66): ksw walks the process list (both
    /// ways) and cannot reach it; drgn enumerates the PID table. ksw's
    /// `--task ADDR` refuses it as not on the task list.
    BetweenUnreadableTasks,
    /// The idle task of a CPU other than 0 is on no task list (only
    /// init_task, swapper/0, is the list's head), so `ksw bt --all` leaves it
    /// out; while it runs, `ksw bt --cpu N` traces it from the CPU's saved
    /// registers, and that trace is compared.
    IdleTaskThroughCpu,
    /// Same idle task, but switched out at the crash (QEMU dumps: CPU 1 ran
    /// the panic): ksw has no way to reach it (`--all` omits it, `--task`
    /// refuses it as not on the task list, `--cpu` gives the running task).
    /// A ksw limitation, listed rather than failed.
    IdleTaskUnreachable,
    /// drgn's PID-table walk ran into a page the dump left out (6.12 kdump:
    /// makedumpfile drops some slab pages) and ended there, so drgn lists
    /// fewer tasks; ksw walks the process list both ways and reaches more.
    /// Rule: drgn reported the FaultError of its walk, and the task ksw
    /// traced is not in drgn's shortened list.
    DrgnEnumerationCut,
}

#[derive(Default)]
struct Tally {
    compared: usize,
    identical: usize,
    tolerated: BTreeMap<Class, Vec<String>>,
    failures: Vec<String>,
}

/// Runs ksw; Ok(JSON) or Err(stderr).
fn ksw(args: &[&str], dump: &Path) -> Result<(Value, String), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
        .arg("bt")
        .args(args)
        .arg("--json")
        .arg(dump)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(stderr);
    }
    Ok((serde_json::from_slice(&out.stdout).unwrap(), stderr))
}

fn drgn(script: &Path, dump: &Path, vmlinux: &Path) -> Vec<Value> {
    let out = Command::new(drgn_python())
        .arg(script)
        .arg(dump)
        .arg(vmlinux)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drgn on {}: {}",
        dump.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn u64_of(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn name_of(ksw_frame: &Value) -> Option<&str> {
    ksw_frame["symbol"]["name"].as_str()
}

/// Compares ksw's trace of a task with drgn's frames, frame by frame.
/// Returns the tolerated differences (class, description) or the first
/// unexplained one.
fn compare_trace(ksw_trace: &Value, drgn_frames: &[Value]) -> Result<Vec<(Class, String)>, String> {
    let ours = ksw_trace["trace"]["frames"].as_array().unwrap();
    let theirs: Vec<&Value> = drgn_frames
        .iter()
        .filter(|f| f["inline"] == false)
        .collect();
    let stop = &ksw_trace["trace"]["stop"];
    let mut tolerated = Vec::new();
    for i in 0..ours.len().max(theirs.len()) {
        let (a, b) = (ours.get(i), theirs.get(i).copied());
        let show = |f: Option<&Value>, ksw: bool| match f {
            None => "-".to_string(),
            Some(f) if ksw => format!(
                "{}@{:#x}",
                name_of(f).unwrap_or("?"),
                u64_of(&f["pc"]).unwrap_or(0)
            ),
            Some(f) => format!(
                "{}@{:#x}",
                f["symbol"].as_str().unwrap_or("?"),
                u64_of(&f["pc"]).unwrap_or(0)
            ),
        };
        let at = format!("frame {i}: ksw {}, drgn {}", show(a, true), show(b, false));
        match (a, b) {
            (Some(a), Some(b)) => {
                if a["pc"] != b["pc"] {
                    return Err(format!("{at}: different pc"));
                }
                if a["exact"] != b["interrupted"] {
                    return Err(format!(
                        "{at}: ksw exact={} but drgn interrupted={}",
                        a["exact"], b["interrupted"]
                    ));
                }
                let ours = name_of(a);
                let theirs = b["symbol"].as_str();
                if ours.is_some() && ours == theirs {
                    continue;
                }
                match (ours, theirs) {
                    (Some(o), Some(_))
                        if b["labels"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|l| l.as_str() == Some(o)) =>
                    {
                        tolerated.push((Class::InnerLabel, at));
                    }
                    (Some(_), None)
                        if !a["symbol"]["module"].is_null()
                            && a["symbol"]["module"] == b["module"] =>
                    {
                        tolerated.push((Class::ModuleWithoutDrgnSymbol, at));
                    }
                    _ => return Err(format!("{at}: different function")),
                }
            }
            (None, Some(b))
                if i == ours.len()
                    && b["interrupted"] == true
                    && u64_of(&b["pc"]).is_some_and(|pc| pc < KERNEL_HALF)
                    && stop["reason"] == "user-mode"
                    && stop["pc"] == b["pc"]
                    && theirs[i..]
                        .iter()
                        .all(|f| u64_of(&f["pc"]).is_some_and(|pc| pc < KERNEL_HALF)) =>
            {
                // drgn's user-mode frame, and whatever it then guessed on
                // the user stack: ksw stops at the user-mode registers
                tolerated.push((Class::UserModeFrame, at));
                break;
            }
            _ => return Err(format!("{at}: one trace is longer (ksw stop {stop})")),
        }
    }
    Ok(tolerated)
}

/// ksw's task fields against drgn's.
fn same_task(ksw_task: &Value, d: &Value) -> Result<(), String> {
    for (k, dk) in [
        ("pid", "pid"),
        ("comm", "comm"),
        ("cpu", "cpu"),
        ("on_cpu", "on_cpu"),
    ] {
        if ksw_task[k] != d[dk] {
            return Err(format!("task {k}: ksw {} drgn {}", ksw_task[k], d[dk]));
        }
    }
    Ok(())
}

fn record(tally: &mut Tally, label: &str, ksw_trace: &Value, d: &Value) {
    tally.compared += 1;
    let result = same_task(&ksw_trace["task"], d)
        .and_then(|()| compare_trace(ksw_trace, d["frames"].as_array().unwrap()));
    match result {
        Ok(t) if t.is_empty() => tally.identical += 1,
        Ok(t) => {
            for (class, at) in t {
                tally
                    .tolerated
                    .entry(class)
                    .or_default()
                    .push(format!("{label}: {at}"));
            }
        }
        Err(e) => tally.failures.push(format!(
            "{label}: {e}\n  ksw: {}\n  drgn: {}",
            names(ksw_trace),
            drgn_names(d)
        )),
    }
}

fn names(ksw_trace: &Value) -> String {
    let v: Vec<&str> = ksw_trace["trace"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| name_of(f).unwrap_or("?"))
        .collect();
    format!("{v:?} stop {}", ksw_trace["trace"]["stop"])
}

fn drgn_names(d: &Value) -> String {
    let v: Vec<&str> = d["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["inline"] == false)
        .map(|f| f["symbol"].as_str().unwrap_or("?"))
        .collect();
    format!("{v:?}")
}

fn compare_dump(
    tally: &mut Tally,
    script: &Path,
    series: &str,
    run: &str,
    dump: &Path,
    vmlinux: &Path,
) {
    let mut theirs = drgn(script, dump, vmlinux);
    let cut: Option<String> = theirs
        .iter()
        .find(|d| d["source"] == "enumeration-error")
        .map(|d| d["error"].as_str().unwrap_or("?").to_string());
    theirs.retain(|d| d["source"] != "enumeration-error");
    let (all, warnings) =
        ksw(&["--all"], dump).unwrap_or_else(|e| panic!("ksw bt --all {}: {e}", dump.display()));
    let ours: HashMap<u64, &Value> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (u64_of(&t["task"]["address"]).unwrap(), t))
        .collect();
    let unreadable: HashSet<u64> = theirs
        .iter()
        .filter(|d| !d["error"].is_null())
        .map(|d| u64_of(&d["address"]).unwrap())
        .collect();
    let drgn_addrs: HashSet<u64> = theirs
        .iter()
        .map(|d| u64_of(&d["address"]).unwrap())
        .collect();
    for a in ours.keys().filter(|a| !drgn_addrs.contains(a)) {
        match &cut {
            Some(err) => tally
                .tolerated
                .entry(Class::DrgnEnumerationCut)
                .or_default()
                .push(format!(
                    "{series}/{run}: ksw traced task {a:#x}; drgn's walk ended: {err}"
                )),
            None => tally.failures.push(format!(
                "{series}/{run}: ksw traced task {a:#x}, which drgn does not enumerate"
            )),
        }
    }
    for d in &theirs {
        let addr = u64_of(&d["address"]).unwrap();
        let label = format!(
            "{series}/{run} pid {} {} ({addr:#x})",
            d["pid"],
            d["comm"].as_str().unwrap_or("?")
        );
        if let Some(err) = d["error"].as_str() {
            // ksw's warnings name the task whose pages are gone
            if err.starts_with("FaultError")
                && err.contains("Excluded page")
                && !ours.contains_key(&addr)
                && warnings.contains(&format!("{addr:#x}"))
            {
                tally
                    .tolerated
                    .entry(Class::UnreadableTask)
                    .or_default()
                    .push(format!("{label}: drgn {err}"));
            } else {
                tally.failures.push(format!(
                    "{label}: drgn failed ({err}); ksw traced it: {}",
                    ours.contains_key(&addr)
                ));
            }
            continue;
        }
        if let Some(t) = ours.get(&addr) {
            record(tally, &label, t, d);
            continue;
        }
        // Not in `ksw bt --all`.
        let idle_elsewhere = d["source"] == "idle" && d["cpu"] != 0;
        if idle_elsewhere && d["on_cpu"] == true {
            let cpu = d["cpu"].to_string();
            match ksw(&["--cpu", &cpu], dump) {
                Ok((v, _)) if u64_of(&v[0]["task"]["address"]) == Some(addr) => {
                    tally
                        .tolerated
                        .entry(Class::IdleTaskThroughCpu)
                        .or_default()
                        .push(format!("{label}: traced with --cpu {cpu}"));
                    record(tally, &label, &v[0], d);
                }
                other => tally.failures.push(format!(
                    "{label}: running on CPU {cpu}, ksw bt --cpu {cpu}: {other:?}"
                )),
            }
            continue;
        }
        match ksw(&["--task", &format!("{addr:x}")], dump) {
            Ok((v, _)) => {
                tally
                    .failures
                    .push(format!("{label}: missing from --all but --task traces it"));
                record(tally, &label, &v[0], d);
            }
            Err(e) if e.contains("in the task list") && idle_elsewhere => {
                tally
                    .tolerated
                    .entry(Class::IdleTaskUnreachable)
                    .or_default()
                    .push(format!(
                        "{label}: switched out on CPU {}, drgn {}; ksw --task: {}",
                        d["cpu"],
                        drgn_names(d),
                        e.trim()
                    ));
            }
            Err(e)
                if e.contains("in the task list")
                    && [&d["list_prev"], &d["list_next"]]
                        .iter()
                        .all(|n| u64_of(n).is_some_and(|n| unreadable.contains(&n))) =>
            {
                tally
                    .tolerated
                    .entry(Class::BetweenUnreadableTasks)
                    .or_default()
                    .push(format!(
                        "{label}: process-list neighbours {:#x} and {:#x} unreadable; drgn {}",
                        u64_of(&d["list_prev"]).unwrap(),
                        u64_of(&d["list_next"]).unwrap(),
                        drgn_names(d)
                    ));
            }
            Err(e) => tally.failures.push(format!(
                "{label}: not in ksw bt --all and --task fails: {}",
                e.trim()
            )),
        }
    }
    // The crashed task, as `ksw bt` prints it by default.
    let crashed: Vec<&Value> = theirs.iter().filter(|d| d["crashed"] == true).collect();
    assert_eq!(crashed.len(), 1, "{series}/{run}: drgn's crashed thread");
    let (v, _) = ksw(&[], dump).unwrap_or_else(|e| panic!("ksw bt {}: {e}", dump.display()));
    assert_eq!(v[0]["origin"], "crash-registers", "{series}/{run}");
    if u64_of(&v[0]["task"]["address"]) != u64_of(&crashed[0]["address"]) {
        tally.failures.push(format!(
            "{series}/{run}: ksw's panic task {} is not drgn's crashed thread {}",
            v[0]["task"], crashed[0]["address"]
        ));
    } else {
        let label = format!("{series}/{run} crashed task (ksw bt, no arguments)");
        record(tally, &label, &v[0], crashed[0]);
    }
}

#[test]
fn every_task_traces_as_drgn_traces_it() {
    let root = fixtures_root();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt_drgn_oracle.py");
    let mut tally = Tally::default();
    let mut dumps = 0;
    for series in ["6.1", "6.12"] {
        let Some(vmlinux) = common::vmlinux(series) else {
            common::missing(&format!("the {series} debug vmlinux"));
            return;
        };
        for (run, file) in [("sysrq", "dump.kdump-zlib"), ("sysrq-qemu", "qemu.elf")] {
            let dump = root.join(series).join(run).join(file);
            if !dump.exists() {
                common::missing(&dump.display().to_string());
                return;
            }
            compare_dump(&mut tally, &script, series, run, &dump, &vmlinux);
            dumps += 1;
        }
    }
    let mut report = format!(
        "ksw bt vs drgn: {dumps} dumps, {} task traces compared, {} identical\n",
        tally.compared, tally.identical
    );
    for (class, list) in &tally.tolerated {
        writeln!(report, "tolerated {class:?}: {}", list.len()).unwrap();
        for l in list {
            writeln!(report, "    {l}").unwrap();
        }
    }
    eprintln!("{report}");
    assert!(
        tally.failures.is_empty(),
        "{} unexplained differences:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    // Not vacuous: the sysrq fixtures hold 50-60 tasks each.
    assert_eq!(dumps, 4);
    assert!(
        tally.compared >= 200,
        "only {} traces compared",
        tally.compared
    );
    assert!(tally.identical * 10 >= tally.compared * 9, "{report}");
}

/// `ksw bt -v`'s frame variables against drgn's on the crashed thread of
/// the sysrq dumps: every variable both read from memory or a register
/// has the same bytes (frames matched by pc; inlined callees' variables
/// left out, drgn keeps them in inline frames).
#[test]
fn frame_variables_read_as_drgn_reads_them() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt_locals_oracle.py");
    let mut compared = 0;
    for series in ["6.1", "6.12"] {
        let Some(vmlinux) = common::vmlinux(series) else {
            common::missing(&format!("the Debian {series} debug vmlinux"));
            return;
        };
        let dump = fixtures_root().join(series).join("sysrq/dump.kdump-zlib");
        let drgn_frames = drgn(&script, &dump, &vmlinux);
        let (v, _) = ksw(&["-v", "--vmlinux", vmlinux.to_str().unwrap()], &dump).unwrap();
        for f in v[0]["trace"]["frames"].as_array().unwrap() {
            let Some(d) = drgn_frames.iter().find(|d| d["pc"] == f["pc"]) else {
                continue;
            };
            for var in f["variables"].as_array().into_iter().flatten() {
                if !var["inlined_from"].is_null() {
                    continue;
                }
                let name = var["name"].as_str().unwrap();
                let ours = match var["value"]["kind"].as_str().unwrap() {
                    "memory" => var["value"]["bytes"].as_str().unwrap().to_string(),
                    "register" => {
                        let size = d["locals"][name].as_str().map_or(8, |h| h.len() / 2);
                        let bytes = var["value"]["value"].as_u64().unwrap().to_le_bytes();
                        bytes[..size.min(8)]
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect()
                    }
                    _ => continue,
                };
                let Some(theirs) = d["locals"][name].as_str() else {
                    continue;
                };
                assert_eq!(ours, theirs, "{series}: {} {name}", f["symbol"]["name"]);
                compared += 1;
            }
        }
    }
    assert!(
        compared >= 6,
        "only {compared} variables compared with drgn"
    );
    eprintln!("{compared} frame variables agree with drgn");
}
