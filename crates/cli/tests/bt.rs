//! `ksw bt` against the kernel's own `Call Trace`: the sysrq fixtures'
//! consoles hold the trace `panic()` printed; `ksw bt` rebuilds it from the
//! dump's memory alone (kallsyms, BTF, ORC; no vmlinux), and must list the
//! same functions in the same order, down to the same user-mode registers.
//! Fixtures as in `info_dmesg.rs`.

mod common;

use common::{debug_vmlinux, fixtures};

use std::process::Command;

/// The panic's trace on the console: the task line, the functions (the
/// kernel's `?` guesses left out) and the user-mode RIP and RSP.
struct ConsoleTrace {
    cpu: u64,
    pid: i64,
    comm: String,
    functions: Vec<String>,
    user_rip: u64,
    user_rsp: u64,
}

fn console_trace(console: &str) -> ConsoleTrace {
    let start = console
        .find("Kernel panic - not syncing")
        .expect("a panic on the console");
    let text = &console[start..];
    let task = regex::Regex::new(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (\S+)").unwrap();
    let c = task.captures(text).expect("the panic's task line");
    let frame = regex::Regex::new(r"^\[[ \d.]+\]  ([A-Za-z_][\w.]*)\+0x").unwrap();
    let mut functions = Vec::new();
    let mut lines = text.lines().skip_while(|l| !l.contains("Call Trace:"));
    for l in lines.by_ref() {
        if l.contains("RIP: 0033:") {
            break;
        }
        if let Some(f) = frame.captures(l) {
            functions.push(f[1].to_string());
        }
    }
    let rip = regex::Regex::new(r"RIP: 0033:0x([0-9a-f]+)").unwrap();
    let rsp = regex::Regex::new(r"RSP: 002b:([0-9a-f]+)").unwrap();
    ConsoleTrace {
        cpu: c[1].parse().unwrap(),
        pid: c[2].parse().unwrap(),
        comm: c[3].to_string(),
        functions,
        user_rip: u64::from_str_radix(&rip.captures(text).expect("user RIP")[1], 16).unwrap(),
        user_rsp: u64::from_str_radix(&rsp.captures(text).expect("user RSP")[1], 16).unwrap(),
    }
}

#[test]
fn panic_cpu_trace_matches_the_kernels_own() {
    let Some(root) = fixtures() else { return };
    let mut checked = 0;
    for series in ["6.1", "6.12"] {
        for (run, dumps) in [
            (
                "sysrq",
                &["dump.kdump-zlib", "dump.kdump-lzo", "dump.flat", "dump.elf"][..],
            ),
            ("sysrq-l4", &["dump.kdump-zlib"][..]),
        ] {
            let dir = root.join(series).join(run);
            let console = std::fs::read_to_string(dir.join("console.log")).unwrap();
            let want = console_trace(&console);
            // the console's trace starts inside panic() (dump_stack); the
            // saved registers start inside __crash_kexec: compare from panic
            let from = want
                .functions
                .iter()
                .position(|f| f == "panic")
                .expect("panic in the trace");
            let want_fns = &want.functions[from..];
            for dump in dumps {
                let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
                    .args(["bt", "--json"])
                    .arg(dir.join(dump))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{series}/{run}/{dump}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let t = &v[0];
                assert_eq!(
                    t["task"]["pid"].as_i64(),
                    Some(want.pid),
                    "{series}/{run}/{dump}"
                );
                assert_eq!(t["task"]["comm"].as_str(), Some(want.comm.as_str()));
                assert_eq!(t["cpu"].as_u64(), Some(want.cpu));
                assert_eq!(t["origin"], "crash-registers");
                let got: Vec<String> = t["trace"]["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["symbol"]["name"].as_str().unwrap_or("?").to_string())
                    .collect();
                let at = got
                    .iter()
                    .position(|f| f == "panic")
                    .unwrap_or_else(|| panic!("{series}/{dump}: no panic in {got:?}"));
                assert_eq!(&got[at..], want_fns, "{series}/{run}/{dump}");
                assert!(
                    got[..at].iter().all(|f| f.contains("crash_kexec")),
                    "{series}/{dump}: frames above panic are the kexec path: {got:?}"
                );
                for f in t["trace"]["frames"].as_array().unwrap() {
                    assert_eq!(f["stack"], "task", "{series}/{dump}: {f}");
                }
                let stop = &t["trace"]["stop"];
                assert_eq!(stop["reason"], "user-mode", "{series}/{dump}: {stop}");
                assert_eq!(stop["pc"].as_u64(), Some(want.user_rip));
                assert_eq!(stop["sp"].as_u64(), Some(want.user_rsp));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 10);
}

#[test]
fn sleeping_tasks_unwind_to_the_end_of_their_stack() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dump = root.join(series).join("sysrq-qemu/qemu.elf");
        let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
            .args(["bt", "--all", "--json"])
            .arg(&dump)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{series}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let traces = v.as_array().unwrap();
        assert!(traces.len() > 30, "{series}: {} tasks", traces.len());
        let mut complete = 0;
        for t in traces.iter().filter(|t| t["origin"] == "switch-frame") {
            let names: Vec<&str> = t["trace"]["frames"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["symbol"]["name"].as_str())
                .collect();
            // every switched-out task stopped in the scheduler
            assert!(
                names.first().is_some_and(|n| n.contains("schedule")),
                "{series}: {t}"
            );
            let stop = t["trace"]["stop"]["reason"].as_str().unwrap();
            if stop == "end-of-stack" || stop == "user-mode" {
                complete += 1;
            } else {
                panic!(
                    "{series}: task {} stopped with {stop}: {names:?}",
                    t["task"]["pid"]
                );
            }
        }
        assert!(complete > 30, "{series}: {complete} complete traces");
    }
}

#[test]
fn a_missing_task_or_cpu_is_named() {
    let Some(root) = fixtures() else { return };
    let dump = root.join("6.1/sysrq/dump.kdump-zlib");
    for (args, want) in [
        (&["--pid", "999999"][..], "no task with pid 999999"),
        (&["--cpu", "7"][..], "CPU 7 saved no registers"),
        (&["--task", "zz"][..], "not a hexadecimal address"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
            .arg("bt")
            .arg(&dump)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A kernel-printed trace: (segment, `name+off/size [module]`) per frame,
/// `?` guesses left out. The `RIP:` line of an exception frame is the
/// interrupted frame: it comes next in the walk, in the segment the next
/// printed frame is in (after `</#DB>` `<TASK>`, say), or in the current
/// one when no marker comes between.
fn kernel_trace(text: &str) -> Vec<(String, String)> {
    let marker = regex::Regex::new(r"^\[[ \d.]+\]  <(/?)([#\w]+)>$").unwrap();
    let frame = regex::Regex::new(
        r"^\[[ \d.]+\]  ([A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[\w+\])?)$",
    )
    .unwrap();
    let rip =
        regex::Regex::new(r"RIP: 0010:([A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[\w+\])?)")
            .unwrap();
    let mut out = Vec::new();
    let mut segment = String::new();
    let mut pending: Option<String> = None;
    for l in text
        .lines()
        .skip_while(|l| !l.contains("Call Trace:"))
        .skip(1)
    {
        if let Some(m) = marker.captures(l) {
            if &m[1] == "/" {
                if &m[2] == "TASK" {
                    break;
                }
            } else {
                segment = m[2].to_string();
            }
        } else if let Some(f) = frame.captures(l) {
            if let Some(p) = pending.take() {
                out.push((segment.clone(), p));
            }
            out.push((segment.clone(), f[1].to_string()));
        } else if let Some(r) = rip.captures(l) {
            pending = Some(r[1].to_string());
        } else if l.contains("RIP: 0033:") {
            break;
        }
    }
    if let Some(p) = pending {
        out.push((segment, p));
    }
    out
}

/// `ksw bt --json` frames as (segment, `name+off/size [module]`).
fn ksw_frames(trace: &serde_json::Value) -> Vec<(String, String)> {
    trace["trace"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = &f["symbol"];
            let mut text = format!(
                "{}+{:#x}/{:#x}",
                s["name"].as_str().unwrap_or("?"),
                s["offset"].as_u64().unwrap_or(0),
                s["size"].as_u64().unwrap_or(0)
            );
            if let Some(m) = s["module"].as_str() {
                text += &format!(" [{m}]");
            }
            let stack = match &f["stack"] {
                serde_json::Value::String(k) => k.to_uppercase(),
                v => format!("#{}", v["exception"].as_str().unwrap_or("?")),
            };
            (stack, text)
        })
        .collect()
}

fn ksw_json(args: &[&str], dump: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .arg("--json")
        .arg(dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} {}: {}",
        dump.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn catch_record_trace_is_the_reports_task_part() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("kstackwatch-panic");
        let console = std::fs::read_to_string(dir.join("console.log")).unwrap();
        let report = &console[console.find("KStackWatch").expect("a catch report")..];
        let want: Vec<(String, String)> = kernel_trace(report)
            .into_iter()
            .filter(|(s, _)| s == "TASK")
            .collect();
        assert!(want.len() >= 3, "{series}: {want:?}");
        let v = ksw_json(&["bt", "--catch"], &dir.join("dump.kdump-zlib"));
        assert_eq!(v[0]["origin"], "catch-record");
        assert_eq!(ksw_frames(&v[0]), want, "{series}");
        assert_eq!(v[0]["trace"]["stop"]["reason"], "end-of-stack");
    }
}

/// Every fixture run that panics and keeps a dump: the dump, and the
/// flags `ksw` needs for it.
const PANIC_DUMPS: &[(&str, &str, &[&str])] = &[
    ("sysrq", "dump.kdump-zlib", &[]),
    ("sysrq-l4", "dump.kdump-zlib", &[]),
    ("sysrq-qemu", "qemu.elf", &[]),
    (
        "sysrq-qemu-novmci",
        "qemu.elf",
        &["--vmcoreinfo", "ground-truth/vmcoreinfo"],
    ),
    ("kstackwatch-panic", "dump.kdump-zlib", &[]),
    ("kstackwatch-panic-qemu", "qemu.elf", &[]),
    // the panic comes from the #DB (NMI-like context)
    ("kstackwatch-panic-irqoff", "qemu.elf", &[]),
    // ... inside a module's init function
    ("kstackwatch-panic-init", "dump.kdump-zlib", &[]),
];

#[test]
fn every_panic_trace_is_the_kernels_own() {
    let Some(root) = fixtures() else { return };
    let at_end = regex::Regex::new(r"\+0x([0-9a-f]+)/0x([0-9a-f]+)$").unwrap();
    for series in ["6.1", "6.12"] {
        for (run, dump, flags) in PANIC_DUMPS {
            let dir = root.join(series).join(run);
            let dump = dir.join(dump);
            let flags: Vec<String> = flags
                .iter()
                .map(|f| {
                    if f.contains('/') {
                        dir.join(f).to_string_lossy().into_owned()
                    } else {
                        f.to_string()
                    }
                })
                .collect();
            // the panic's trace as the kernel printed it, from the dump's
            // own log (a panic in NMI-like context may miss the console)
            let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
                .arg("dmesg")
                .args(&flags)
                .arg(&dump)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&out.stdout);
            let panic = &log[log
                .find("Kernel panic - not syncing")
                .unwrap_or_else(|| panic!("{series}/{run}: no panic"))..];
            let want = kernel_trace(panic);
            let from = want
                .iter()
                .position(|(_, f)| f.starts_with("panic+"))
                .expect("panic in the trace")
                + 1;
            let want = &want[from..];
            assert!(want.len() >= 3, "{series}/{run}: {want:?}");
            let mut args = vec!["bt"];
            args.extend(flags.iter().map(String::as_str));
            let v = ksw_json(&args, &dump);
            let got = ksw_frames(&v[0]);
            // the kernel's trace starts in panic()'s dump_stack; the saved
            // registers start deeper (crash_kexec, QEMU's pvpanic): from
            // panic's caller on, the same frames, offsets and segments
            let at = got
                .iter()
                .position(|(_, f)| f.starts_with("panic+"))
                .expect("panic in ksw's trace")
                + 1;
            // where ksw recovered a return address that the exit probe had
            // replaced with its trampoline, the kernel's own trace (6.1,
            // from #DB) prints the trampoline itself, at the end of the
            // symbol before it (`trace_clock_x86_tsc+0x20/0x20`)
            let recovered: Vec<bool> = v[0]["trace"]["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["recovered"] == true)
                .collect();
            let ours = got.clone();
            let mut got = got;
            for (i, (_, f)) in got.iter_mut().enumerate().skip(at) {
                let Some((_, theirs)) = want.get(i - at) else {
                    break;
                };
                if recovered[i] && theirs != f {
                    let c = at_end
                        .captures(theirs)
                        .unwrap_or_else(|| panic!("{series}/{run}: {theirs}"));
                    assert_eq!(
                        &c[1], &c[2],
                        "{series}/{run}: the kernel's frame for a recovered address: {theirs}"
                    );
                    *f = theirs.clone();
                }
            }
            assert_eq!(&got[at..], want, "{series}/{run}");
            if run.ends_with("-irqoff") || run.ends_with("-init") {
                assert!(
                    want.iter().any(|(s, _)| s == "#DB") && want.iter().any(|(s, _)| s == "TASK"),
                    "{series}/{run}: {want:?}"
                );
            }
            if run.ends_with("-init") {
                // through the coming module's .init.text to the loader
                let task: Vec<&str> = ours
                    .iter()
                    .filter(|(s, _)| s == "TASK")
                    .map(|(_, f)| f.as_str())
                    .collect();
                let pos = |p: &str| task.iter().position(|f| f.starts_with(p));
                let order = [
                    "ksw_test_init_writer+",
                    "test_initcall_victim+",
                    "ksw_test_init_init+",
                    "do_one_initcall+",
                    "do_init_module+",
                ];
                let found: Vec<Option<usize>> = order.iter().map(|p| pos(p)).collect();
                assert!(
                    found.iter().all(Option::is_some) && found.windows(2).all(|w| w[0] < w[1]),
                    "{series}: {task:?}"
                );
                assert!(
                    task[0].ends_with("[kstackwatch_test_init]"),
                    "{series}: {task:?}"
                );
                assert_eq!(v[0]["trace"]["stop"]["reason"], "user-mode", "{series}");
            }
        }
    }
}

/// binutils' addr2line on `pcs` (link-time addresses): per address, the
/// inline chain innermost first as (function, file:line).
fn binutils_addr2line(vmlinux: &std::path::Path, pcs: &[u64]) -> Vec<Vec<(String, String)>> {
    let out = Command::new("addr2line")
        .arg("-e")
        .arg(vmlinux)
        .args(["-f", "-i", "-a"])
        .args(pcs.iter().map(|p| format!("{p:#x}")))
        .output()
        .expect("run addr2line (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut all: Vec<Vec<(String, String)>> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with("0x") {
            all.push(Vec::new());
        } else if let (Some(cur), Some(pos)) = (all.last_mut(), lines.next()) {
            cur.push((
                l.to_string(),
                pos.split(" (discriminator")
                    .next()
                    .unwrap_or(pos)
                    .to_string(),
            ));
        }
    }
    all
}

#[test]
fn vmlinux_adds_lines_and_inlines_but_never_changes_the_frames() {
    let Some(root) = fixtures() else { return };
    let mut compared = 0;
    let mut cfi_checked = 0;
    for series in ["6.1", "6.12"] {
        let vmlinux = debug_vmlinux(series);
        for dump in [
            root.join(series).join("sysrq/dump.kdump-zlib"),
            root.join(series).join("sysrq-qemu/qemu.elf"),
        ] {
            let bare = ksw_json(&["bt", "--all"], &dump);
            let vm = vmlinux.to_str().unwrap();
            let rich = ksw_json(&["bt", "--all", "--vmlinux", vm], &dump);
            let info = ksw_json(&["info"], &dump);
            let kaslr = u64::from_str_radix(
                info["kaslr_offset"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("0x"),
                16,
            )
            .unwrap();
            let (bare, rich) = (bare.as_array().unwrap(), rich.as_array().unwrap());
            assert_eq!(bare.len(), rich.len());
            for (b, r) in bare.iter().zip(rich) {
                // where ORC has no rule, the vmlinux's CFI finds the caller
                // that SP tracking found without it: the same frames
                for (fb, fr) in b["trace"]["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(r["trace"]["frames"].as_array().unwrap())
                {
                    if fb["caller_rule"] != fr["caller_rule"] {
                        assert_eq!(
                            (&fb["caller_rule"], &fr["caller_rule"]),
                            (&"sp-tracking".into(), &"dwarf-cfi".into()),
                            "{}",
                            dump.display()
                        );
                        cfi_checked += 1;
                    }
                }
                let strip = |t: &serde_json::Value| {
                    let mut t = t.clone();
                    for f in t["trace"]["frames"].as_array_mut().unwrap() {
                        f.as_object_mut().unwrap().remove("source");
                        f.as_object_mut().unwrap().remove("caller_rule");
                    }
                    t
                };
                assert_eq!(
                    strip(b),
                    strip(r),
                    "{}: physical frames differ with --vmlinux",
                    dump.display()
                );
                // every vmlinux frame's chain is binutils addr2line's
                let frames: Vec<&serde_json::Value> = r["trace"]["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["symbol"]["module"].is_null() && !f["symbol"].is_null())
                    .collect();
                let pcs: Vec<u64> = frames
                    .iter()
                    .map(|f| {
                        f["pc"].as_u64().unwrap()
                            - kaslr
                            - u64::from(!f["exact"].as_bool().unwrap())
                    })
                    .collect();
                let truth = binutils_addr2line(&vmlinux, &pcs);
                for (f, want) in frames.iter().zip(truth) {
                    let got: Vec<(String, String)> = f["source"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|p| {
                                    (
                                        p["function"].as_str().unwrap_or("??").to_string(),
                                        format!(
                                            "{}:{}",
                                            p["file"].as_str().unwrap_or("??"),
                                            p["line"].as_u64().unwrap_or(0)
                                        ),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    // assembly has no DWARF subprogram: binutils then
                    // names the function from the ELF symbol table, which
                    // is kallsyms' name of the frame
                    let symbol = f["symbol"]["name"].as_str().unwrap_or("");
                    let got: Vec<(String, String)> = got
                        .into_iter()
                        .zip(&want)
                        .map(|((gf, gl), (wf, _))| {
                            if gf == "??" && wf == symbol {
                                (wf.clone(), gl)
                            } else {
                                (gf, gl)
                            }
                        })
                        .collect();
                    assert_eq!(got, want, "{}: {}", dump.display(), f["symbol"]);
                    compared += 1;
                }
            }
        }
        // the wrong build is refused, naming both build IDs
        let other = debug_vmlinux(if series == "6.1" { "6.12" } else { "6.1" });
        let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
            .args(["bt", "--vmlinux"])
            .arg(&other)
            .arg(root.join(series).join("sysrq/dump.kdump-zlib"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is not this dump's kernel") && err.matches("build ID").count() >= 1,
            "{err}"
        );
    }
    assert!(compared > 500, "{compared} frames compared");
    // the panic CPUs' __crash_kexec frames, at least
    assert!(cfi_checked >= 2, "{cfi_checked} frames found by CFI");
    eprintln!("{compared} frames agree with binutils addr2line");
}

/// binutils' view of a `.ko` function's source line: `readelf` gives the
/// function's section and offset in it, `addr2line -j SECTION` the line
/// at an offset (binutils relocates the relocatable file's DWARF itself).
fn ko_line(ko: &std::path::Path, function: &str, offset: u64) -> String {
    let readelf = |arg: &str| {
        let out = Command::new("readelf")
            .args([arg, "-W"])
            .arg(ko)
            .output()
            .expect("run readelf");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // "  131: 00000000000003f5    24 FUNC    LOCAL  DEFAULT    9 ksw_panic_work"
    let (start, index) = readelf("-s")
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 8 && f[3] == "FUNC" && f[7] == function)
                .then(|| Some((u64::from_str_radix(f[1], 16).ok()?, f[6].to_string())))?
        })
        .unwrap_or_else(|| panic!("{function} not in readelf -s {}", ko.display()));
    // "  [ 9] .text.unlikely    PROGBITS ..."
    let section = readelf("-S")
        .lines()
        .find_map(|l| {
            let (num, rest) = l.trim_start().strip_prefix('[')?.split_once(']')?;
            (num.trim() == index).then(|| rest.split_whitespace().next().map(str::to_string))?
        })
        .unwrap_or_else(|| panic!("no section {index} in {}", ko.display()));
    let out = Command::new("addr2line")
        .arg("-e")
        .arg(ko)
        .args(["-j", &section, &format!("{:#x}", start + offset)])
        .output()
        .expect("run addr2line");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .unwrap_or("")
        .split(" (discriminator")
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn module_frames_get_lines_from_their_ko_checked_by_build_id() {
    let Some(root) = fixtures() else { return };
    let mut compared = 0;
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("kstackwatch-panic");
        let modules = dir.join("modules");
        let dump = dir.join("dump.kdump-zlib");
        let v = ksw_json(&["bt", "--module-dir", modules.to_str().unwrap()], &dump);
        let bare = ksw_json(&["bt"], &dump);
        for (f, b) in v[0]["trace"]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .zip(bare[0]["trace"]["frames"].as_array().unwrap())
        {
            assert_eq!(f["pc"], b["pc"], "{series}: the .ko changed the frames");
            let Some(module) = f["symbol"]["module"].as_str() else {
                continue;
            };
            let source = f["source"]
                .as_array()
                .unwrap_or_else(|| panic!("{series}: no lines for {f}"));
            let own = source.last().unwrap();
            let name = f["symbol"]["name"].as_str().unwrap();
            // the frame's pc as an offset into its function (a return
            // address belongs to the call before it)
            let offset =
                f["symbol"]["offset"].as_u64().unwrap() - u64::from(!f["exact"].as_bool().unwrap());
            let want = ko_line(&modules.join(format!("{module}.ko")), name, offset);
            let got = format!(
                "{}:{}",
                own["file"].as_str().unwrap(),
                own["line"].as_u64().unwrap()
            );
            assert_eq!(got, want, "{series}: {name}");
            compared += 1;
        }
        // another build's .ko is refused, naming both build IDs
        let other = root
            .join(if series == "6.1" { "6.12" } else { "6.1" })
            .join("kstackwatch-panic/modules");
        let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
            .args(["bt", "--json", "--module-dir"])
            .arg(&other)
            .arg(&dump)
            .output()
            .unwrap();
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        // with the section attributes in the dump, both IDs are named;
        // where makedumpfile dropped their page, the .ko's ID is looked
        // for in the module's memory and not found
        assert!(
            err.contains("is another build (its build ID is")
                || err.contains("is not in the module's memory"),
            "{series}: {err}"
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v[0]["trace"]["frames"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["source"].is_null()),
            "{series}"
        );
    }
    assert!(compared >= 4, "{compared} module frames compared");
}

#[test]
fn return_addresses_taken_by_the_exit_probe_are_recovered() {
    // kstackwatch's exit hook (a kretprobe on 6.1, an fprobe on 6.12, both
    // rethook) replaces the watched function's return address with its
    // trampoline; the victim, asleep inside the function at the panic,
    // must still unwind to its real caller (ksw_test.c: ksw_test_silent
    // calls silent_corruption_victim) and on to the syscall
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let v = ksw_json(
            &["bt", "--all"],
            &root.join(series).join("kstackwatch-panic/dump.kdump-zlib"),
        );
        let victim = v
            .as_array()
            .unwrap()
            .iter()
            .find(|t| {
                t["trace"]["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["symbol"]["name"] == "silent_corruption_victim")
            })
            .unwrap_or_else(|| panic!("{series}: no task in silent_corruption_victim"));
        let frames = victim["trace"]["frames"].as_array().unwrap();
        let at = frames
            .iter()
            .position(|f| f["symbol"]["name"] == "silent_corruption_victim")
            .unwrap();
        let caller = &frames[at + 1];
        assert_eq!(
            caller["symbol"]["name"], "ksw_test_silent",
            "{series}: {caller}"
        );
        assert_eq!(caller["recovered"], true, "{series}: {caller}");
        assert_eq!(
            victim["trace"]["stop"]["reason"], "user-mode",
            "{series}: {}",
            victim["trace"]["stop"]
        );
    }
}

#[test]
fn a_catch_that_is_not_there_is_named() {
    let Some(root) = fixtures() else { return };
    let run = |args: &[&str], dump: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ksw"))
            .arg("bt")
            .arg(dump)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for series in ["6.1", "6.12"] {
        let sysrq = root.join(series).join("sysrq/dump.kdump-zlib");
        let err = run(&["--catch"], &sysrq);
        assert!(
            err.contains("kstackwatch is not loaded in this dump"),
            "{err}"
        );
        let caught = root.join(series).join("kstackwatch-panic/dump.kdump-zlib");
        let err = run(&["--catch", "99"], &caught);
        assert!(
            err.contains("no catch 99 in the ring (it holds [1])"),
            "{err}"
        );
    }
}
