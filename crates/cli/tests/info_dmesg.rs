//! `ksw info` and `ksw dmesg` run as a user runs them, on the pipeline's
//! dumps (found through `KSW_FIXTURES`, default `~/.cache/ksw/fixtures`;
//! missing fixtures fail unless `KSW_ALLOW_MISSING_FIXTURES=1`).

mod common;

use common::fixtures;

use std::path::Path;
use std::process::{Command, Output};

fn ksw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .output()
        .expect("run ksw")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn info_json_names_the_kernel_and_the_panicking_cpu() {
    let Some(root) = fixtures() else { return };
    for series in ["6.1", "6.12"] {
        let run = root.join(series).join("sysrq");
        let release = std::fs::read_to_string(run.join("ground-truth/release"))
            .unwrap()
            .trim()
            .to_owned();
        for dump in ["dump.kdump-zlib", "dump.kdump-lzo", "dump.flat", "dump.elf"] {
            let out = ksw(&["info", "--json", s(&run.join(dump))]);
            assert!(
                out.status.success(),
                "{dump}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["kernel_release"], release.as_str(), "{series} {dump}");
            assert_eq!(v["page_table_levels"], 5);
            let cpus = v["cpus"].as_array().unwrap();
            let panic_cpu = v["panic_cpu"].as_u64().unwrap();
            assert!(
                cpus.iter()
                    .any(|c| c["cpu"] == panic_cpu && c["panicked"] == true),
                "{v}"
            );
            // The text rendering says the same things.
            let text = String::from_utf8(ksw(&["info", s(&run.join(dump))]).stdout).unwrap();
            assert!(
                text.contains(&format!("kernel release:    {release}")),
                "{text}"
            );
            assert!(text.contains("<- panic"), "{text}");
        }
    }
}

#[test]
fn dmesg_ends_with_the_panic_the_console_showed() {
    let Some(root) = fixtures() else { return };
    let run = root.join("6.1/sysrq");
    let console = std::fs::read_to_string(run.join("console.log")).unwrap();
    let out = ksw(&["dmesg", s(&run.join("dump.kdump-lzo"))]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let panic = text
        .lines()
        .find(|l| l.contains("Kernel panic - not syncing: sysrq triggered crash"))
        .expect("panic line");
    assert!(console.contains(panic), "{panic}");
    let last = text.lines().last().unwrap();
    assert!(console.contains(last), "{last}");
    let json = ksw(&["dmesg", "--json", s(&run.join("dump.flat"))]);
    let records: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    // One record per line here, except records that hold several lines.
    let n = records.as_array().unwrap().len();
    assert!(n > 100 && n <= text.lines().count(), "{n} records");
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["text"] == "Kernel panic - not syncing: sysrq triggered crash")
    );
}

#[test]
fn a_qemu_dump_without_vmcoreinfo_says_how_to_fix_it() {
    let Some(root) = fixtures() else { return };
    let run = root.join("6.1/sysrq-qemu-novmci");
    let out = ksw(&["dmesg", s(&run.join("qemu.elf"))]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-device vmcoreinfo") && err.contains("--vmcoreinfo"),
        "{err}"
    );
    let out = ksw(&[
        "dmesg",
        "--vmcoreinfo",
        s(&run.join("ground-truth/vmcoreinfo")),
        s(&run.join("qemu.kdump-zlib.flat")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("Kernel panic - not syncing: sysrq triggered crash")
    );
}

#[test]
fn bad_input_is_an_error_with_exit_status_1() {
    let exe = std::env::current_exe().unwrap();
    for (path, says) in [
        (exe.as_path(), "not a core"),
        (Path::new("/"), "directory"),
        (Path::new("/nonexistent/dump"), "cannot read"),
    ] {
        let out = ksw(&["info", s(path)]);
        assert_eq!(out.status.code(), Some(1), "{}", path.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("ksw: error: ") && err.contains(says),
            "{err}"
        );
    }
}
