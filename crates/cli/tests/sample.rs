//! The README's main job as a test: `ksw info` and `ksw dmesg` on the
//! committed sample (testdata/sample/kstackwatch-6.1/dump.kdump-zlib, a
//! real kstackwatch catch with `ph=1` on Debian's 6.1 kernel), compared
//! with what the guest itself recorded:
//!
//! - `truth.json`: the release, the panic message, and the test module's
//!   own ground truth line (`truth scenario=silent victim=... local=ADDR
//!   len=8 depth=0 writer=...`), printed before the corruption;
//! - `console.log`: the first kernel's serial console, which printed the
//!   same printk records as they were made;
//! - `ground-truth/`: `/proc/kallsyms` (KASLR, the writer's address),
//!   the CPU count, the release.
//!
//! The sample is committed, so nothing here is skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample/kstackwatch-6.1")
}

fn dump() -> String {
    sample()
        .join("dump.kdump-zlib")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

fn ksw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .output()
        .expect("run ksw")
}

fn stdout_of(args: &[&str]) -> String {
    let out = ksw(args);
    assert!(
        out.status.success(),
        "ksw {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn truth() -> serde_json::Value {
    let text = std::fs::read_to_string(sample().join("truth.json")).expect("truth.json");
    serde_json::from_str(&text).expect("truth.json is JSON")
}

fn console() -> String {
    let bytes = std::fs::read(sample().join("console.log")).expect("console.log");
    String::from_utf8_lossy(&bytes).into_owned()
}

fn ground_truth(name: &str) -> String {
    std::fs::read_to_string(sample().join("ground-truth").join(name))
        .unwrap_or_else(|e| panic!("ground-truth/{name}: {e}"))
        .trim()
        .to_string()
}

/// `/proc/kallsyms` as the guest saw it: name (with `[module]`) → address.
fn kallsyms() -> BTreeMap<String, u64> {
    let out = Command::new("xz")
        .arg("-dc")
        .arg(sample().join("ground-truth/kallsyms.xz"))
        .output()
        .expect("run xz (apt-get install xz-utils)");
    assert!(out.status.success(), "xz -dc kallsyms.xz failed");
    let mut symbols = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (address, name) = match fields.as_slice() {
            [a, _, n] => (a, n.to_string()),
            [a, _, n, m] => (a, format!("{n} {m}")),
            _ => continue,
        };
        if let Ok(a) = u64::from_str_radix(address, 16) {
            symbols.entry(name).or_insert(a);
        }
    }
    symbols
}

/// `key=value` pairs of a report line.
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The console's panic: the CPU and PID on the `CPU: N PID: P` line that
/// follows `Kernel panic - not syncing`.
fn console_panic(console: &str) -> (u64, u64) {
    let lines: Vec<&str> = console.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("Kernel panic - not syncing"))
        .expect("the console shows the panic");
    let cpu_line = lines[at..]
        .iter()
        .find_map(|l| l.split_once("] CPU: ").map(|(_, rest)| rest))
        .expect("the panic's CPU line");
    let words: Vec<&str> = cpu_line.split_whitespace().collect();
    match words.as_slice() {
        [cpu, "PID:", pid, ..] => (
            cpu.parse().expect("CPU number"),
            pid.parse().expect("PID number"),
        ),
        _ => panic!("unexpected CPU line: {cpu_line}"),
    }
}

#[test]
fn info_on_the_sample_matches_the_guest() {
    let truth = truth();
    let release = truth["release"].as_str().expect("release in truth.json");
    assert_eq!(release, ground_truth("release"));
    let console = console();
    let (panic_cpu, panic_pid) = console_panic(&console);
    // KASLR: where the guest's kallsyms put _text, against its link address.
    let text_start = kallsyms()["_text"];
    let kaslr = text_start - 0xffff_ffff_8100_0000;

    // The README's command: text.
    let text = stdout_of(&["info", &dump()]);
    assert!(
        text.contains(&format!("\nkernel release:    {release}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nKASLR offset:      {kaslr:#x}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\npanic CPU:         {panic_cpu}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nCPUs:              {}\n", ground_truth("ncpus"))),
        "{text}"
    );
    let panic_row = text
        .lines()
        .find(|l| l.ends_with("<- panic"))
        .expect("a CPU row marked as the panic");
    let row: Vec<&str> = panic_row.split_whitespace().collect();
    assert_eq!(
        row[..4],
        [
            "cpu",
            panic_cpu.to_string().as_str(),
            "pid",
            panic_pid.to_string().as_str()
        ],
        "{panic_row}"
    );
    assert_eq!(text.matches("<- panic").count(), 1, "{text}");

    // And JSON.
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&["info", "--json", &dump()])).expect("JSON");
    assert_eq!(json["kernel_release"], release);
    assert_eq!(json["kaslr_offset"], format!("{kaslr:#x}"));
    assert_eq!(json["panic_cpu"], panic_cpu);
    assert_eq!(json["format"], "kdump-compressed");
    assert_eq!(json["compression"], "zlib");
    let cpus = json["cpus"].as_array().expect("cpus");
    assert_eq!(cpus.len().to_string(), ground_truth("ncpus"));
    let panicked: Vec<&serde_json::Value> = cpus.iter().filter(|c| c["panicked"] == true).collect();
    assert_eq!(panicked.len(), 1, "{json}");
    assert_eq!(panicked[0]["cpu"], panic_cpu);
    assert_eq!(panicked[0]["pid"], panic_pid);
}

#[test]
fn dmesg_on_the_sample_shows_the_catch_the_guest_made() {
    let truth = truth();
    let guest = &truth["test_module"];
    let text = stdout_of(&["dmesg", &dump()]);
    let console = console();
    let lines: Vec<&str> = text.lines().collect();

    // Every record the console printed, in the same order, from the
    // first (`Linux version`) on. (KERN_DEBUG records are in the ring
    // buffer only.)
    // (Lines that the boot console and ttyS0 both printed, at the
    // hand-over, appear twice in a row.)
    let mut printed: Vec<&str> = console
        .lines()
        .filter(|l| {
            l.starts_with('[')
                && l.split_once("] ").is_some_and(|(ts, _)| {
                    ts[1..].trim().split_once('.').is_some_and(|(s, us)| {
                        s.bytes().all(|b| b.is_ascii_digit())
                            && us.len() == 6
                            && us.bytes().all(|b| b.is_ascii_digit())
                    })
                })
        })
        .collect();
    printed.dedup();
    assert!(printed.len() > 300, "{} console lines", printed.len());
    assert_eq!(lines.first(), printed.first(), "the first record");
    let mut at = 0;
    for line in &printed {
        match lines[at..].iter().position(|l| l == line) {
            Some(p) => at += p + 1,
            None => {
                panic!("the console printed `{line}`; ksw dmesg lacks it (or has it out of order)")
            }
        }
    }

    // The README's excerpt: from the catch to the panic.
    let start = lines
        .iter()
        .position(|l| l.contains("KStackWatch: Caught stack corruption"))
        .expect("the catch report");
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.contains("Kernel panic - not syncing"))
            .expect("the panic after the catch");
    let report = &lines[start..=end];
    let find = |tag: &str| -> BTreeMap<String, String> {
        let line = report
            .iter()
            .find(|l| l.contains(&format!("kstackwatch: {tag}: ")))
            .unwrap_or_else(|| panic!("no `{tag}:` line in\n{}", report.join("\n")));
        fields(line)
    };
    assert_eq!(
        report[report.len() - 1].split_once("] ").map(|x| x.1),
        Some(format!(
            "Kernel panic - not syncing: {}",
            truth["panic_message"].as_str().expect("panic_message")
        ))
        .as_deref()
    );
    // The writer: the function the test module names, at the address the
    // guest's kallsyms gives it.
    let writer_line = report
        .iter()
        .find(|l| l.contains("kstackwatch: writer: "))
        .expect("writer line");
    let symbol = writer_line
        .split_once("writer: ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .expect("writer symbol");
    let (function, offset) = symbol
        .split_once('+')
        .and_then(|(f, rest)| rest.split_once('/').map(|(o, _)| (f, hex(o))))
        .expect("FUNC+OFF/SIZE");
    assert_eq!(function, guest["writer"], "{writer_line}");
    let writer = find("writer");
    let module_symbol = format!("{function} [kstackwatch_test]");
    assert_eq!(
        hex(&writer["ip"]),
        kallsyms()[&module_symbol] + offset,
        "{writer_line}"
    );
    // The watched bytes: the victim's local, as the test module printed
    // its address before the write.
    let watch = find("watch");
    assert_eq!(watch["addr"], guest["local"]);
    assert_eq!(watch["len"], guest["len"]);
    assert_eq!(
        (watch["old"].as_str(), watch["new"].as_str()),
        (
            truth["report"]["watch"][2].as_str().expect("old"),
            truth["report"]["watch"][3].as_str().expect("new")
        )
    );
    assert_ne!(watch["old"], watch["new"]);
    // The victim, its activation, and the config that armed the watch.
    let victim = find("victim");
    assert_eq!(victim["func"], guest["victim"]);
    assert_eq!(victim["depth"], guest["depth"]);
    let config = report
        .iter()
        .find_map(|l| l.split_once("kstackwatch: config: ").map(|x| x.1))
        .expect("config line");
    assert_eq!(config, truth["config"]);
    // The watch is SP at the probe + so=: the local again.
    let so: u64 = fields(config)["so"].parse().expect("so=");
    assert_eq!(
        hex(&victim["armed_sp"]) + so,
        hex(guest["local"].as_str().expect("local"))
    );
    // Each report line is the console's line, verbatim.
    for line in report {
        assert!(
            console.lines().any(|c| c == *line),
            "not on the console: {line}"
        );
    }

    // JSON: the same records, numbered without a gap.
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&["dmesg", "--json", &dump()])).expect("JSON");
    let records = json.as_array().expect("records");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i, "{r}");
    }
    assert!(records.iter().any(|r| r["text"]
        == format!(
            "Kernel panic - not syncing: {}",
            truth["panic_message"].as_str().unwrap_or_default()
        )));
}

/// The README's main job: `ksw analyze` on the sample with its `.ko`
/// files and the module's sources, no vmlinux.
#[test]
fn analyze_on_the_sample_names_the_store_line_and_the_victim_local() {
    let modules = sample().join("modules");
    let modules = modules.to_str().expect("utf-8 path");
    // the module's sources as the sample was built from them
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample/kstackwatch-6.1/source");
    let src = src.to_str().expect("utf-8 path");
    let t = truth();
    let tm = &t["test_module"];
    let (victim, writer) = (
        tm["victim"].as_str().unwrap(),
        tm["writer"].as_str().unwrap(),
    );
    let args = [
        "analyze",
        &dump(),
        "--module-dir",
        modules,
        "--source-dir",
        src,
    ];
    // the README's command: text
    let text = stdout_of(&args);
    let headline = text
        .lines()
        .find(|l| l.contains(" wrote 0x"))
        .unwrap_or_else(|| panic!("no headline in\n{text}"));
    assert!(headline.starts_with(&format!("{writer} (")), "{headline}");
    assert!(
        headline.contains(&format!("in {victim}'s local")),
        "{headline}"
    );
    assert!(
        text.contains("/* KSW_STORE */"),
        "the store's line text:\n{text}"
    );
    // JSON: the test module's truth
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&json_args)).unwrap();
    let c = &v["catch"];
    let local = hex(tm["local"].as_str().unwrap());
    assert_eq!(c["victim"]["address"].as_u64(), Some(local));
    assert_eq!(c["writer"]["store"]["writes_to"].as_u64(), Some(local));
    assert_eq!(c["writer"]["function"].as_str(), Some(writer));
    assert_eq!(c["victim"]["function"].as_str(), Some(victim));
    assert_eq!(c["victim"]["slot"]["path"], "local");
    let depth: u64 = tm["depth"].as_str().unwrap().parse().unwrap();
    assert_eq!(c["depth"]["recorded"].as_u64(), Some(depth));
    assert_eq!(c["depth"]["frame_depth"].as_u64(), Some(depth));
    assert_eq!(c["config"], t["config"]);
    assert_eq!(c["resolve"]["same_watch"], true);
    assert_eq!(v["warnings"], serde_json::json!([]));
}
