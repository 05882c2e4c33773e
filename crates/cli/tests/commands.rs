//! The `ksw` binary as a user meets it: help and exit codes.

use std::process::Command;

fn ksw(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .output()
        .expect("run ksw")
}

#[test]
fn help_lists_the_planned_commands() {
    let out = ksw(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "info", "dmesg", "analyze", "resolve", "bt", "tasks", "modules", "sym", "print", "live",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(cmd)),
            "`{cmd}` missing from --help:\n{text}"
        );
    }
}

#[test]
fn a_command_not_built_yet_says_so_and_exits_2() {
    let out = ksw(&["live"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no placeholder output on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`live` is not available"), "{err}");
}

#[test]
fn a_usage_error_exits_2() {
    let out = ksw(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
