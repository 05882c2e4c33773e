//! `ksw resolve` as a user runs it: debug-file discovery by release under a
//! root, both watch strings and the table, JSON checked against gdb and
//! readelf, and the errors for a
//! mismatched or missing vmlinux. Uses the Debian 6.1 kernel unpacked in
//! `$KSW_CACHE` (default `~/.cache/ksw`); fails when it is absent unless
//! `KSW_ALLOW_MISSING_FIXTURES=1`.

use std::path::PathBuf;
use std::process::{Command, Output};

#[path = "../../analyze/tests/common/oracle.rs"]
mod oracle;

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
    // The watch against outside truth: gdb's slot for `op` plus the
    // member's offset as gdb computes it, and readelf's CFA − SP after the
    // probed instruction (at the next instruction by gdb's disassembly).
    let vmlinux = PathBuf::from(root).join(format!("usr/lib/debug/boot/vmlinux-{release}"));
    let text = oracle::gdb(
        &vmlinux,
        &[
            "info scope do_sys_openat2".into(),
            "disassemble do_sys_openat2".into(),
            "print (long)&((struct open_flags *)0)->acc_mode".into(),
            "print sizeof(((struct open_flags *)0)->acc_mode)".into(),
        ],
    );
    let printed: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix('$'))
        .filter_map(|l| l.split_once(" = ").and_then(|(_, v)| v.trim().parse().ok()))
        .collect();
    let [member, member_size] = printed[..] else {
        panic!("gdb printed {printed:?}:\n{text}");
    };
    let scopes = oracle::parse_scopes(&text);
    let &(_, op, op_len) = scopes
        .get("do_sys_openat2")
        .and_then(|s| s.iter().find(|(n, _, _)| n == "op"))
        .unwrap_or_else(|| panic!("gdb has no slot for op:\n{text}"));
    assert!(member + member_size <= op_len as i64);
    assert_eq!(json["cfa_offset"].as_i64(), Some(op + member), "{json}");
    assert_eq!(json["watch"]["watch_len"].as_i64(), Some(member_size));
    let disassembly = oracle::parse_disassembly(&text);
    let insns = &disassembly["do_sys_openat2"];
    let entry = insns[0].address;
    assert_eq!(json["function_address"].as_u64(), Some(entry));
    let fo = json["watch"]["function_offset"].as_u64().expect("fo");
    let cfi = oracle::Cfi::read(&vmlinux);
    let cfa_to_sp = oracle::cfa_minus_sp_after(insns, fo, |o| cfi.cfa_minus_sp(entry + o))
        .unwrap_or_else(|e| panic!("{kv}: {e}"));
    assert_eq!(
        json["watch"]["sp_offset"].as_i64(),
        Some(cfa_to_sp + op + member),
        "{kv}: readelf says CFA−SP = {cfa_to_sp} after +{fo:#x}"
    );
    assert!(
        kv.contains(&format!(" so={} ", cfa_to_sp + op + member)),
        "{kv}"
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

/// `--module-dir` finds the module that defines the function (`.ko` or
/// `.ko.xz`); `--list` shows where each local lives. Uses a relocatable
/// object built here from the analyze crate's C fixture, named like a
/// module.
#[test]
fn module_dir_xz_and_list() {
    let have = |p: &str| Command::new(p).arg("--version").output().is_ok();
    if !have("gcc") || !have("xz") {
        if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") {
            return;
        }
        panic!("fixture missing: gcc and xz (apt-get install gcc xz-utils)");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../analyze/tests/fixtures/victims.c");
    let modules = dir.path().join("lib/modules/x/kernel/drivers");
    std::fs::create_dir_all(&modules).expect("mkdir");
    let ko = modules.join("victims.ko");
    let status = Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-mno-red-zone",
            "-mgeneral-regs-only",
            "-fno-asynchronous-unwind-tables",
        ])
        .args(["-fstack-protector-strong", "-c"])
        .arg(&source)
        .arg("-o")
        .arg(&ko)
        .status()
        .expect("gcc");
    assert!(status.success());
    // An unrelated module in the same tree is skipped.
    std::fs::write(modules.join("other.ko"), b"not an ELF file").expect("write");
    let out = ksw(&[
        "resolve",
        "--module-dir",
        dir.path().to_str().expect("utf-8"),
        "victim",
        "req.hdr.len",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        plain.starts_with("fn=victim fo=0x") && plain.ends_with(" wl=2"),
        "{plain}"
    );

    let status = Command::new("xz").arg("-k").arg(&ko).status().expect("xz");
    assert!(status.success());
    let xz = format!("{}.xz", ko.display());
    let out = ksw(&["resolve", "--module", &xz, "victim", "req.hdr.len"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_xz = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(from_xz, plain, "same watch from the .ko.xz");

    let out = ksw(&["resolve", "--module", &xz, "victim", "--list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["req", "struct req", "buf", "calls", "static"] {
        assert!(text.contains(needle), "--list lacks {needle}:\n{text}");
    }
    // Nothing defines it: a clear error.
    let out = ksw(&[
        "resolve",
        "--module-dir",
        dir.path().to_str().expect("utf-8"),
        "no_such_fn",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("defines `no_such_fn`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A function that is not in vmlinux is looked for in the release's
/// standard module directories (`/usr/lib/debug/lib/modules/REL/...`).
#[test]
fn finds_a_module_function_under_the_standard_directories() {
    let Some((root, release)) = kernel() else {
        return;
    };
    if Command::new("gcc").arg("--version").output().is_err() {
        if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") {
            return;
        }
        panic!("fixture missing: gcc");
    }
    let tree = tempfile::tempdir().expect("temp dir");
    let boot = tree.path().join("usr/lib/debug/boot");
    std::fs::create_dir_all(&boot).expect("mkdir");
    std::os::unix::fs::symlink(
        root.join(format!("usr/lib/debug/boot/vmlinux-{release}")),
        boot.join(format!("vmlinux-{release}")),
    )
    .expect("symlink vmlinux");
    let extra = tree
        .path()
        .join(format!("usr/lib/debug/lib/modules/{release}/extra"));
    std::fs::create_dir_all(&extra).expect("mkdir");
    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../analyze/tests/fixtures/victims.c");
    let status = Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-mno-red-zone",
            "-fno-asynchronous-unwind-tables",
            "-fstack-protector-strong",
            "-c",
        ])
        .arg(&source)
        .arg("-o")
        .arg(extra.join("victims.ko"))
        .status()
        .expect("gcc");
    assert!(status.success());
    let tree_root = tree.path().to_str().expect("utf-8");
    let out = ksw(&[
        "resolve",
        "--root",
        tree_root,
        "--release",
        &release,
        "victim",
        "buf[1]",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("fn=victim fo=0x") && text.contains("victims.ko"),
        "{text}"
    );
    // vmlinux functions still come from vmlinux.
    let out = ksw(&[
        "resolve",
        "--root",
        tree_root,
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
}
