//! The everyday commands on a running kernel: the `live-kcore` run boots
//! each kernel with the ksw binary inside and runs `ksw tasks`, `ksw
//! modules`, `ksw sym` and `ksw print` on `/proc/kcore`, each between
//! reads of the kernel's own view (`/proc/*/task/*/stat`, `/proc/modules`
//! and `/sys/module/*/notes`, `/proc/kallsyms`), then panics, and kdump
//! saves the dump. Here the answers are held against those views and
//! against the same commands on that dump. `ksw live` is held against
//! kstackwatch's own view (`/proc/kstackwatch`, the console's catch report,
//! the test module's printed address of the parked victim's local).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use common::{console_catch, fixtures, frame_symbol, hex};
use serde_json::Value;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json(dir: &Path, name: &str) -> Value {
    let err = std::fs::read_to_string(dir.join(name.replace(".json", ".err"))).unwrap_or_default();
    serde_json::from_str(&read(dir, name)).unwrap_or_else(|e| panic!("{name}: {e}; stderr: {err}"))
}

/// pid → (comm, state letter) from `/proc/*/task/*/stat` lines.
fn threads(text: &str) -> HashMap<i64, (String, char)> {
    text.lines()
        .filter_map(|l| {
            let (pid, rest) = l.split_once(" (")?;
            let (comm, rest) = rest.rsplit_once(") ")?;
            Some((pid.parse().ok()?, (comm.to_string(), rest.chars().next()?)))
        })
        .collect()
}

fn letter(state: &str) -> char {
    match state {
        "Running" => 'R',
        "Sleeping" => 'S',
        "DiskSleep" => 'D',
        "Stopped" => 'T',
        "Traced" => 't',
        "Dead" => 'X',
        "Zombie" => 'Z',
        "Parked" => 'P',
        "Idle" => 'I',
        other => panic!("state {other}"),
    }
}

#[test]
fn tasks_agree_with_proc_for_every_thread_that_lives_through_both_reads() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        let (before, after) = (
            threads(&read(&dir, "threads-before")),
            threads(&read(&dir, "threads-after")),
        );
        let ksw: HashMap<i64, (String, char)> = json(&dir, "ksw-tasks.json")
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["pid"].as_i64().unwrap(),
                    (
                        t["comm"].as_str().unwrap().to_string(),
                        letter(t["state"].as_str().unwrap()),
                    ),
                )
            })
            .collect();
        let (mut compared, mut ran_between) = (0, 0);
        for (pid, (comm, state)) in &before {
            let Some((comm_after, state_after)) = after.get(pid) else {
                continue;
            };
            if comm != comm_after {
                continue;
            }
            let got = ksw
                .get(pid)
                .unwrap_or_else(|| panic!("{series}: pid {pid} ({comm}) missing from ksw tasks"));
            // ksw prints the task's own `comm`, as drgn and crash do; /proc
            // decorates a workqueue worker's with the queue it serves
            // (`kworker/0:0-events`) and gives a kthread's full name where
            // `comm` cut it at 15 bytes (`rcu_tasks_rude_kthread`)
            let same = &got.0 == comm
                || (got.0.starts_with("kworker/")
                    && comm
                        .strip_prefix(got.0.as_str())
                        .is_some_and(|r| r.starts_with('-')))
                || (got.0.len() == 15 && comm.starts_with(got.0.as_str()));
            assert!(
                same,
                "{series}: pid {pid}: {} in ksw, {comm} in /proc",
                got.0
            );
            // a state that held through both reads is the one ksw saw,
            // unless the thread ran in between (a kthread that wakes every
            // few milliseconds): a difference is allowed only with R on
            // one side, and only for a few threads
            if state == state_after && got.1 != *state {
                assert!(
                    got.1 == 'R' || *state == 'R',
                    "{series}: pid {pid} ({comm}): {} in ksw, {state} in /proc",
                    got.1
                );
                ran_between += 1;
            }
            compared += 1;
        }
        assert!(compared > 20, "{series}: only {compared} threads compared");
        assert!(
            ran_between * 10 <= compared,
            "{series}: {ran_between} of {compared} threads changed state between the reads"
        );
    }
}

#[test]
fn modules_agree_with_proc_modules_and_their_notes() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        let ksw: HashMap<String, Value> = json(&dir, "ksw-modules.json")
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap().to_string(), m.clone()))
            .collect();
        // "name size refcount deps state address [taints]"
        let proc_modules = read(&dir, "proc-modules");
        let mut names = HashSet::new();
        for l in proc_modules.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            let m = ksw
                .get(f[0])
                .unwrap_or_else(|| panic!("{series}: {} missing", f[0]));
            assert_eq!(m["size"].as_u64(), f[1].parse().ok(), "{series}: {}", f[0]);
            assert_eq!(m["state"].as_str(), Some(f[4].to_lowercase().as_str()));
            let base = u64::from_str_radix(f[5].trim_start_matches("0x"), 16).unwrap();
            assert_eq!(m["base"].as_u64(), Some(base), "{series}: {}", f[0]);
            names.insert(f[0].to_string());
        }
        assert_eq!(names.len(), ksw.len(), "{series}: the same modules");
        assert!(names.contains("kstackwatch"));
        // the note: namesz, descsz, type (12 bytes), "GNU\0", the ID
        let mut ids = 0;
        for l in read(&dir, "module-notes").lines() {
            let Some((name, hex)) = l.split_once(' ') else {
                continue;
            };
            let Some(m) = ksw.get(name) else { continue };
            assert_eq!(m["build_id"].as_str(), hex.get(32..), "{series}: {name}");
            ids += 1;
        }
        assert_eq!(ids, names.len(), "{series}: every module's build ID");
    }
}

#[test]
fn sym_agrees_with_kallsyms_on_a_thousand_addresses() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        // address → every name kallsyms gives it
        let mut names: HashMap<u64, Vec<String>> = HashMap::new();
        for l in read(&dir, "kallsyms-now").lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let (Some(a), Some(n)) = (f.first(), f.get(2)) {
                if let Ok(a) = u64::from_str_radix(a, 16) {
                    names.entry(a).or_default().push(n.to_string());
                }
            }
        }
        let asked: Vec<u64> = read(&dir, "sym-addresses")
            .lines()
            .map(|l| u64::from_str_radix(l.trim(), 16).unwrap())
            .collect();
        assert_eq!(asked.len(), 1000, "{series}");
        let got = json(&dir, "ksw-sym.json");
        let got = got.as_array().unwrap();
        assert_eq!(got.len(), asked.len());
        let mut named = 0;
        for (a, g) in asked.iter().zip(got) {
            assert_eq!(g["address"].as_u64(), Some(*a));
            // absolute symbols (per-CPU offsets, at tiny addresses) are not
            // in kernel text: kallsyms lists them, lookups do not use them
            let Some(name) = g["name"].as_str() else {
                assert!(*a < 0xffff_0000_0000_0000, "{series}: {a:#x} unnamed");
                continue;
            };
            let want = &names[a];
            assert!(
                want.iter().any(|n| n == name),
                "{series}: {a:#x} is {want:?} in kallsyms, {name} in ksw"
            );
            assert!(
                g["symbol"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{name}+0x0/"))
            );
            named += 1;
        }
        assert!(named > 900, "{series}: {named} named");
    }
}

#[test]
fn print_reads_typed_globals_on_the_running_kernel() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        assert_eq!(
            read(&dir, "ksw-print-comm.txt"),
            "(char [16])\"swapper/0\"\n",
            "{series}: {}",
            read(&dir, "ksw-print-comm.err")
        );
        let jiffies: Vec<u64> = [1, 2]
            .iter()
            .map(|n| {
                let v = json(&dir, &format!("ksw-print-jiffies{n}.json"));
                assert_eq!(v["type"], "volatile unsigned long", "{series}");
                v["value"]["unsigned"].as_u64().expect("jiffies")
            })
            .collect();
        // 0.1 s apart (and a whole ksw run each), at HZ 250
        assert!(
            jiffies[1] > jiffies[0],
            "{series}: jiffies did not move: {jiffies:?}"
        );
    }
}

#[test]
fn kcore_refusals_name_the_cause() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        for (run, cause) in [
            ("ksw-nonroot", "only root may read it"),
            ("ksw-norawio", "needs CAP_SYS_RAWIO"),
        ] {
            let err = read(&dir, &format!("{run}.err"));
            assert_eq!(
                read(&dir, &format!("{run}.rc")).trim(),
                "1",
                "{series} {run}: {err}"
            );
            assert!(
                read(&dir, &format!("{run}.out")).is_empty(),
                "{series} {run}"
            );
            assert!(!err.contains("panicked"), "{series} {run}: {err}");
            assert!(
                err.contains("cannot read the running kernel through /proc/kcore")
                    && err.contains(cause),
                "{series} {run}: {err}"
            );
        }
    }
}

/// `ksw CMD --json DUMP ARGS`, parsed.
fn ksw_json(cmd: &str, dump: &Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args([cmd, "--json"])
        .arg(dump)
        .args(args)
        .output()
        .expect("run ksw");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ksw {cmd} {}: {err}", dump.display());
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ksw {cmd}: {e}"))
}

#[test]
fn the_dump_taken_right_after_agrees_with_the_live_answers() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        let dump = dir.join("dump.kdump-zlib");
        // modules: nothing loads or unloads between the reads. The dump
        // may lack a module's build-ID page (makedumpfile 1.7.2 drops
        // some slab pages of 6.12, saying so); where it has one, it is
        // the live one.
        let key = |m: &Value| {
            (
                m["name"].as_str().map(str::to_owned),
                m["base"].as_u64(),
                m["size"].as_u64(),
            )
        };
        let modules = |v: &Value| -> HashMap<_, Option<String>> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|m| (key(m), m["build_id"].as_str().map(str::to_owned)))
                .collect()
        };
        let live = modules(&json(&dir, "ksw-modules.json"));
        let after = modules(&ksw_json("modules", &dump, &[]));
        assert_eq!(
            live.keys().collect::<HashSet<_>>(),
            after.keys().collect::<HashSet<_>>(),
            "{series}: modules"
        );
        for (m, id) in &after {
            assert!(live[m].is_some(), "{series}: {m:?} has no build ID live");
            if id.is_some() {
                assert_eq!(id, &live[m], "{series}: {m:?}");
            }
        }
        assert!(
            after.values().any(Option::is_some),
            "{series}: no build ID in the dump at all"
        );
        // tasks: every thread seen live and still there has the same
        // name. A live thread missing from the dump is the ksw that
        // listed them, the output disk's ext4 threads (the disk is
        // unmounted before the panic), or one whose task_struct page the
        // dump excluded
        // (6.12's makedumpfile drops some slab pages): the dump's `ksw
        // tasks` then warns of excluded pages in the task list, and a
        // page holds parts of at most a few task_structs.
        let comms = |v: &Value| -> HashMap<i64, String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["pid"].as_i64().unwrap(),
                        t["comm"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let live = comms(&json(&dir, "ksw-tasks.json"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ksw"))
            .args(["tasks", "--json"])
            .arg(&dump)
            .output()
            .unwrap();
        assert!(out.status.success(), "{series}");
        let after = comms(&serde_json::from_slice(&out.stdout).unwrap());
        let excluded = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("task list") && l.contains("excluded from the dump"))
            .count();
        let both: Vec<i64> = live
            .keys()
            .filter(|p| after.contains_key(p))
            .copied()
            .collect();
        let missing: Vec<(&i64, &String)> = live
            .iter()
            .filter(|(p, c)| {
                !after.contains_key(p)
                    && c.as_str() != "ksw"
                    && !c.starts_with("jbd2/vda")
                    && !c.starts_with("ext4-")
                    && !c.starts_with("kworker/R-ext4")
            })
            .collect();
        assert!(
            missing.len() <= 4 * excluded,
            "{series}: live tasks missing from the dump {missing:?}, with {excluded} excluded-page warnings"
        );
        assert!(
            both.len() * 2 >= live.len(),
            "{series}: {} of {}",
            both.len(),
            live.len()
        );
        for pid in &both {
            // a kworker renames itself as it takes other work
            if !live[pid].starts_with("kworker/") {
                assert_eq!(live[pid], after[pid], "{series}: pid {pid}");
            }
        }
        // live: kstackwatch's state did not change after the last live
        // read; the dump has the same config, slots, task table,
        // counters, debug registers and catches
        let live = json(&dir, "ksw-live-final.json");
        // `ksw live --json --core DUMP`: live takes its file as --core
        let after = ksw_json("live", Path::new("--core"), &[dump.to_str().unwrap()]);
        assert_eq!(live["loaded"], true, "{series}");
        for key in [
            "config",
            "watching",
            "generation",
            "slots",
            "tasks",
            "counters",
            "cpus",
        ] {
            assert_eq!(live["state"][key], after["state"][key], "{series}: {key}");
        }
        let seqs = |v: &Value| -> Vec<(Value, Value, Value)> {
            v["catches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["seq"].clone(),
                        c["writer"]["store"].clone(),
                        c["victim"]["address"].clone(),
                    )
                })
                .collect()
        };
        assert_eq!(seqs(&live), seqs(&after), "{series}: catches");
        assert!(!seqs(&live).is_empty(), "{series}");
        // print: the same init_task, and a later jiffies
        let comm = ksw_json("print", &dump, &["init_task.comm"]);
        assert_eq!(comm["value"]["string"], "swapper/0", "{series}");
        let then = json(&dir, "ksw-print-jiffies2.json")["value"]["unsigned"].as_u64();
        let now = ksw_json("print", &dump, &["jiffies"])["value"]["unsigned"].as_u64();
        assert!(
            now > then,
            "{series}: jiffies {then:?} live, {now:?} in the dump"
        );
    }
}

#[test]
fn bt_pid_names_the_module_function_a_thread_sleeps_in_with_its_line() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        let pid: i64 = read(&dir, "parked-pid")
            .trim()
            .parse()
            .expect("the parked pid");
        let v = json(&dir, "ksw-bt-parked.json");
        let t = &v[0];
        assert_eq!(t["task"]["pid"].as_i64(), Some(pid), "{series}");
        assert_eq!(t["task"]["comm"], "ksw_parked", "{series}");
        assert_eq!(t["origin"], "switch-frame", "{series}: asleep, not running");
        let frames = t["trace"]["frames"].as_array().unwrap();
        let names: Vec<&str> = frames
            .iter()
            .filter_map(|f| f["symbol"]["name"].as_str())
            .collect();
        // schedule() under the wait, then the module's functions
        let at = names
            .iter()
            .position(|n| *n == "test_park_victim")
            .unwrap_or_else(|| panic!("{series}: {names:?}"));
        assert!(names[..at].contains(&"schedule"), "{series}: {names:?}");
        assert_eq!(
            names.get(at + 1),
            Some(&"ksw_park_thread"),
            "{series}: {names:?}"
        );
        let f = &frames[at];
        assert_eq!(f["symbol"]["module"], "kstackwatch_test", "{series}");
        let src = &f["source"][0];
        let file = src["file"].as_str().expect("file:line from the .ko");
        assert!(file.ends_with("/ksw_test.c"), "{series}: {file}");
        // the line is the wait's, as the .ko's DWARF has it; the source
        // is the one the module was built from
        let line = src["line"].as_u64().unwrap() as usize;
        // (the build directory is gone; its sources are this checkout's,
        // which the fixture's input hash covers)
        let name = Path::new(file).file_name().unwrap();
        let ours = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../kstackwatch-mod/module")
            .join(name);
        let text =
            std::fs::read_to_string(&ours).unwrap_or_else(|e| panic!("{}: {e}", ours.display()));
        let there = text.lines().nth(line - 1).unwrap_or("");
        assert!(
            there.contains("wait_event_interruptible(ksw_park_wq"),
            "{series}: {file}:{line} is {there:?}"
        );
    }
}

/// The counters `/proc/kstackwatch` prints ("name: value" lines), by the
/// names `ksw live` gives.
fn proc_counters(text: &str, names: &[String]) -> Vec<(String, i64)> {
    names
        .iter()
        .map(|n| {
            let v = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{n}: ")))
                .unwrap_or_else(|| panic!("/proc/kstackwatch has no counter {n}"));
            (n.clone(), v.trim().parse().unwrap())
        })
        .collect()
}

fn live_counters(v: &Value) -> Vec<(String, i64)> {
    v["state"]["counters"]
        .as_array()
        .expect("counters")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["value"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// `ksw live`'s counters equal the module's own, read just before and
/// just after it (and those two agree: nothing ran in between).
fn assert_counters_are_the_modules(dir: &Path, v: &Value, case: &str, series: &str) {
    let ksw = live_counters(v);
    assert!(ksw.len() >= 20, "{series} {case}: {ksw:?}");
    let names: Vec<String> = ksw.iter().map(|(n, _)| n.clone()).collect();
    let before = proc_counters(&read(dir, &format!("proc-state-{case}-before")), &names);
    let after = proc_counters(&read(dir, &format!("proc-state-{case}-after")), &names);
    assert_eq!(
        before, after,
        "{series} {case}: the counters moved between the reads"
    );
    assert_eq!(ksw, before, "{series} {case}");
}

/// The config line the test module proposes for a scenario.
fn proposed_config(dir: &Path, scenario: &str) -> String {
    read(dir, "configs.txt")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{scenario} kv ")))
        .unwrap_or_else(|| panic!("no {scenario} config"))
        .to_string()
}

#[test]
fn live_shows_the_catch_the_console_reported_and_the_modules_own_counters() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        let v = json(&dir, "ksw-live-catch.json");
        assert_eq!(v["loaded"], true, "{series}");
        let s = &v["state"];
        assert_eq!(s["watching"], true, "{series}");
        assert_eq!(
            s["config"].as_str(),
            Some(proposed_config(&dir, "silent").as_str())
        );
        assert_eq!(
            v["watch"]["function"], "silent_corruption_victim",
            "{series}"
        );
        assert_counters_are_the_modules(&dir, &v, "catch", series);
        let catches = live_counters(&v)
            .into_iter()
            .find(|(n, _)| n == "catches")
            .map(|(_, c)| c);
        assert_eq!(catches, Some(1), "{series}");
        // the ring's catch, explained: the kernel's own report
        let kernel = console_catch(&read(&dir, "console.log"));
        let list = v["catches"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{series}");
        let c = &list[0];
        let frame0 = &c["writer"]["stack"]["trace"]["frames"][0]["symbol"];
        assert_eq!(frame_symbol(frame0), kernel.writer, "{series}");
        assert_eq!(c["writer"]["trap_ip"].as_u64(), Some(kernel.ip));
        assert_eq!(c["victim"]["address"].as_u64(), Some(kernel.address));
        assert_eq!(c["victim"]["old_value"]["raw"].as_u64(), Some(kernel.old));
        assert_eq!(c["victim"]["new_value"]["raw"].as_u64(), Some(kernel.new));
        assert_eq!(c["depth"]["recorded"].as_u64(), Some(kernel.depth));
    }
}

#[test]
fn live_shows_the_watch_armed_on_the_parked_victim() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        // "park: pid N asleep in test_park_victim local=0x..."
        let line = read(&dir, "parked-line");
        let pid: i64 = read(&dir, "parked-pid")
            .trim()
            .parse()
            .expect("the parked pid");
        let local = hex(line
            .trim()
            .rsplit_once("local=")
            .unwrap_or_else(|| panic!("{series}: {line}"))
            .1);
        let v = json(&dir, "ksw-live-park.json");
        let s = &v["state"];
        assert_eq!(
            s["config"].as_str(),
            Some(proposed_config(&dir, "park").as_str())
        );
        assert_counters_are_the_modules(&dir, &v, "park", series);
        // one slot armed, on the local the test module printed, for it
        let armed: Vec<&Value> = s["slots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["busy"] == true)
            .collect();
        assert_eq!(armed.len(), 1, "{series}: {armed:?}");
        let slot = armed[0];
        assert_eq!(slot["address"].as_u64(), Some(local), "{series}");
        assert_eq!(slot["idle"], false);
        assert_eq!(slot["victim"]["pid"].as_i64(), Some(pid), "{series}");
        assert_eq!(slot["victim"]["comm"], "ksw_parked", "{series}");
        assert_eq!(slot["depth"].as_u64(), Some(0));
        // the depth table: the parked task, one activation, armed at 0
        let tasks = s["tasks"].as_array().unwrap();
        let mine: Vec<&Value> = tasks
            .iter()
            .filter(|t| t["task"]["pid"].as_i64() == Some(pid))
            .collect();
        assert_eq!(mine.len(), 1, "{series}: {tasks:?}");
        assert_eq!(mine[0]["depth"].as_i64(), Some(1));
        assert_eq!(mine[0]["armed_depth"].as_i64(), Some(0));
        assert_eq!(mine[0]["slot"], slot["index"]);
        assert_eq!(mine[0]["stale"], false);
        // every CPU was told: one enabled debug register on the local,
        // holding that slot's breakpoint
        let cpus = s["cpus"].as_array().unwrap();
        assert!(cpus.len() >= 2, "{series}: {cpus:?}");
        for c in cpus {
            let on: Vec<&Value> = c["registers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["enabled"] == true && r["address"].as_u64() == Some(local))
                .collect();
            assert_eq!(on.len(), 1, "{series}: cpu {}: {c}", c["cpu"]);
            assert_eq!(on[0]["slot"], slot["index"], "{series}: {c}");
        }
        assert_eq!(s["pending_ipis"].as_i64(), Some(0), "{series}");
        let text = read(&dir, "ksw-live-park.txt");
        assert!(text.contains(&format!("{local:#x}")), "{series}: {text}");
        assert!(
            text.contains(&format!("ksw_parked (pid {pid})")),
            "{series}: {text}"
        );
    }
}

#[test]
fn live_watch_stops_cleanly_on_sigint_and_when_the_module_unloads() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let dir = root.join(series).join("live-kcore");
        for case in ["sigint", "unload"] {
            let rc = read(&dir, &format!("ksw-live-watch-{case}.rc"));
            let err = read(&dir, &format!("ksw-live-watch-{case}.err"));
            assert_eq!(rc.trim(), "0", "{series} {case}: {err}");
            let out = read(&dir, &format!("ksw-live-watch-{case}.txt"));
            // a refresh every 0.5 s for 6 s: several views, each whole
            let views = out.matches("read from /proc/kcore").count();
            assert!(views >= 2, "{series} {case}: {views} views\n{out}");
            assert_eq!(
                out.matches("== COUNTERS ==").count(),
                views,
                "{series} {case}"
            );
            assert!(
                !out.contains("\x1b["),
                "{series} {case}: redraws into a file"
            );
        }
        let err = read(&dir, "ksw-live-watch-unload.err");
        assert!(err.contains("kstackwatch was unloaded"), "{series}: {err}");
        assert!(
            read(&dir, "ksw-live-watch-sigint.err").trim().is_empty(),
            "{series}"
        );
    }
}

/// `ksw live --watch` loads its inputs again for every view; a note about
/// them (here: the `.ko` files of another build) is said once, not once
/// per view.
#[test]
fn watch_says_each_note_once() {
    use std::process::{Command, Stdio};
    let Some(root) = fixtures() else { return };
    let dump = root.join("6.1/kstackwatch-panic-fire/dump.kdump-zlib");
    let foreign = root.join("6.12/kstackwatch-panic-fire/modules");
    let child = Command::new(env!("CARGO_BIN_EXE_ksw"))
        .arg("live")
        .args(["--watch", "0.2", "--offline", "--core"])
        .arg(&dump)
        .arg("--module-dir")
        .arg(&foreign)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let views = String::from_utf8_lossy(&out.stdout)
        .matches("read from")
        .count();
    assert!(views >= 3, "{views} views");
    let err = String::from_utf8_lossy(&out.stderr);
    let notes: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("is another build"))
        .collect();
    assert!(!notes.is_empty(), "{err}");
    let distinct: HashSet<&str> = notes.iter().copied().collect();
    assert_eq!(distinct.len(), notes.len(), "{err}");
}
