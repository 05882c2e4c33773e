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
fn live_on_a_missing_core_names_it_and_exits_1() {
    let out = ksw(&["live", "--core", "/nonexistent/kcore"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no output on stdout");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/kcore"), "{err}");
}

#[test]
fn a_usage_error_exits_2() {
    let out = ksw(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `ksw --help` on a terminal (util-linux's `script` gives it one), with
/// and without `NO_COLOR`; and on a pipe.
fn help_on_a_terminal(no_color: bool) -> String {
    let mut cmd = Command::new("script");
    cmd.args([
        "-qc",
        &format!("{} --help", env!("CARGO_BIN_EXE_ksw")),
        "/dev/null",
    ]);
    cmd.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = cmd.output().expect("run script(1)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    assert!(
        help_on_a_terminal(false).contains('\x1b'),
        "a terminal gets colour"
    );
    assert!(
        !help_on_a_terminal(true).contains('\x1b'),
        "NO_COLOR is honoured"
    );
    let piped = ksw(&["--help"]);
    assert!(
        !String::from_utf8_lossy(&piped.stdout).contains('\x1b'),
        "a pipe gets none"
    );
}
