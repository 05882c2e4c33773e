//! `ksw resolve` as a user runs it: debug-file discovery by release under a
//! root, both watch strings and the table, JSON, and the errors for a
//! mismatched or missing vmlinux. Uses the Debian 6.1 kernel unpacked in
//! `$KSW_CACHE` (default `~/.cache/ksw`); fails when it is absent unless
//! `KSW_ALLOW_MISSING_FIXTURES=1`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn ksw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .output()
        .expect("run ksw")
}

/// The unpacked 6.1 package root and its release, or `None` when skipped.
fn kernel() -> Option<(PathBuf, String)> {
    let cache = std::env::var_os("KSW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/ksw")
        });
    let root = cache.join("kernels/6.1/root");
    let release = std::fs::read_dir(root.join("usr/lib/debug/boot"))
        .ok()
        .and_then(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("vmlinux-"))
                        .map(str::to_string)
                })
                .next()
        });
    match release {
        Some(release) => Some((root, release)),
        None if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") => None,
        None => panic!(
            "fixture missing: the Debian 6.1 debug vmlinux under {}; run the fixture pipeline \
             or set KSW_ALLOW_MISSING_FIXTURES=1",
            root.display()
        ),
    }
}

#[test]
fn finds_the_vmlinux_by_release_and_prints_both_grammars() {
    let Some((root, release)) = kernel() else {
        return;
    };
    let root = root.to_str().expect("utf-8 path");
    let out = ksw(&[
        "resolve",
        "--root",
        root,
        "--release",
        &release,
        "do_sys_openat2",
        "op",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let key_value = lines.next().unwrap_or_default();
    let positional = lines.next().unwrap_or_default();
    assert!(
        key_value.starts_with("fn=do_sys_openat2 fo=0x")
            && key_value.contains(" so=")
            && key_value.ends_with(" wl=8"),
        "{key_value}"
    );
    assert!(
        positional.starts_with("do_sys_openat2+0x") && positional.ends_with(":8"),
        "{positional}"
    );
    for row in ["probe", "variable", "CFA − SP", "SP offset", "fs/open.c"] {
        assert!(text.contains(row), "table lacks {row}:\n{text}");
    }

    let out = ksw(&[
        "resolve",
        "--root",
        root,
        "--release",
        &release,
        "--json",
        "--depth",
        "2",
        "--panic",
        "do_sys_openat2",
        "op.acc_mode",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["watch"]["depth"], 2);
    assert_eq!(json["watch"]["panic"], true);
    assert_eq!(json["watch"]["watch_len"], 4);
    let kv = json["key_value"].as_str().unwrap_or_default();
    assert!(kv.contains(" dp=2 ") && kv.ends_with(" wl=4 ph=1"), "{kv}");
    assert!(
        json["positional"].is_null(),
        "the positional grammar has no panic flag"
    );
    let so = json["watch"]["sp_offset"].as_i64().unwrap_or(-1);
    assert_eq!(
        so,
        json["cfa_to_sp"].as_i64().unwrap_or(0) + json["cfa_offset"].as_i64().unwrap_or(0)
    );
}

#[test]
fn refuses_a_mismatched_or_missing_vmlinux() {
    let Some((root, release)) = kernel() else {
        return;
    };
    let vmlinux = root.join(format!("usr/lib/debug/boot/vmlinux-{release}"));
    let vmlinux = vmlinux.to_str().expect("utf-8");
    let out = ksw(&[
        "resolve",
        "--vmlinux",
        vmlinux,
        "--release",
        "6.12.117+deb12-cloud-amd64",
        "do_sys_openat2",
        "op",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match") && err.contains(&release),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let empty = tempfile::tempdir().expect("temp dir");
    let out = ksw(&[
        "resolve",
        "--root",
        empty.path().to_str().expect("utf-8"),
        "--release",
        &release,
        "do_sys_openat2",
        "op",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no debug vmlinux") && err.contains("-dbg"),
        "{err}"
    );
}

#[test]
fn explains_bad_names() {
    let Some((root, release)) = kernel() else {
        return;
    };
    let vmlinux = root.join(format!("usr/lib/debug/boot/vmlinux-{release}"));
    let vmlinux = vmlinux.to_str().expect("utf-8");
    let out = ksw(&["resolve", "--vmlinux", vmlinux, "do_sys_opnat2", "op"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ksw(&["resolve", "--vmlinux", vmlinux, "do_sys_openat2", "opp"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no local or parameter `opp`") && err.contains("op"),
        "{err}"
    );
    let out = ksw(&[
        "resolve",
        "--vmlinux",
        vmlinux,
        "do_sys_openat2",
        "how->flags",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("pointer"));
    // VAR and --canary exclude each other; one of them is required.
    assert_eq!(
        ksw(&["resolve", "--vmlinux", vmlinux, "do_sys_openat2"])
            .status
            .code(),
        Some(2)
    );
}
