//! drgn as the oracle of `ksw print`: on real dumps of both kernels, the
//! same expressions printed by drgn (PyPI, with the debug vmlinux's DWARF)
//! and by `ksw print` (the dump alone: kallsyms and BTF) must give the
//! same text, line for line: whole structs (`init_task`, a CPU's
//! runqueue), members, array elements, pointer chases, per-CPU variables.
//!
//! Three differences are drgn's extras and are taken out of its text
//! first: drgn names a pointer that points into a symbol (`(T *)init_task+
//! 0x890 = 0xffff...`), it adds the string a `char *` points at, and it
//! writes a flexible array member as `[]` where BTF only has a length of 0. drgn's side is `print_drgn_oracle.py`.
//!
//! drgn comes from `$KSW_DRGN_PYTHON` (default
//! `~/.cache/ksw/drgn-venv/bin/python`); fixtures as in `common`.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// (ksw expression, the same in drgn's Python)
const EXPRESSIONS: &[(&str, &str)] = &[
    ("init_task", "prog['init_task']"),
    ("init_task.comm", "prog['init_task'].comm"),
    ("init_task.thread", "prog['init_task'].thread"),
    ("init_mm", "prog['init_mm']"),
    (
        "init_uts_ns.name.release",
        "prog['init_uts_ns'].name.release",
    ),
    ("jiffies", "prog['jiffies']"),
    ("system_state", "prog['system_state']"),
    ("panic_cpu", "prog['panic_cpu']"),
    ("per_cpu(runqueues, 0)", "per_cpu(prog['runqueues'], 0)"),
    (
        "per_cpu(runqueues, 1).nr_running",
        "per_cpu(prog['runqueues'], 1).nr_running",
    ),
    (
        "per_cpu(runqueues, 0).curr->comm",
        "per_cpu(prog['runqueues'], 0).curr.comm",
    ),
    ("init_task.tasks.next", "prog['init_task'].tasks.next"),
    (
        "init_task.tasks.next->next->prev",
        "prog['init_task'].tasks.next.next.prev",
    ),
    ("*init_task.tasks.next", "prog['init_task'].tasks.next[0]"),
    ("&init_task.tasks", "prog['init_task'].tasks.address_of_()"),
    (
        "init_task.signal->rlim[7]",
        "prog['init_task'].signal.rlim[7]",
    ),
    (
        "init_task.cpus_mask.bits[0]",
        "prog['init_task'].cpus_mask.bits[0]",
    ),
    (
        "((struct list_head *)&init_task.tasks)->prev",
        "drgn.cast('struct list_head *', prog['init_task'].tasks.address_of_()).prev",
    ),
    (
        "(unsigned int)jiffies_64",
        "drgn.cast('unsigned int', prog['jiffies_64'])",
    ),
];

fn drgn_python() -> PathBuf {
    let p = std::env::var_os("KSW_DRGN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/ksw/drgn-venv/bin/python")
        });
    assert!(
        p.exists(),
        "drgn oracle missing at {} (run `python3 testdata/pipeline oracle`, or set KSW_DRGN_PYTHON)",
        p.display()
    );
    p
}

/// drgn's texts, keyed by ksw expression.
fn drgn(dump: &Path, vmlinux: &Path) -> serde_json::Map<String, serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/print_drgn_oracle.py");
    let mut child = Command::new(drgn_python())
        .arg(script)
        .arg(dump)
        .arg(vmlinux)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run drgn");
    let input: serde_json::Map<String, serde_json::Value> = EXPRESSIONS
        .iter()
        .map(|(k, p)| ((*k).to_string(), serde_json::Value::from(*p)))
        .collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::Value::Object(input).to_string().as_bytes())
        .expect("write drgn's input");
    let out = child.wait_with_output().expect("drgn");
    assert!(out.status.success(), "drgn failed on {}", dump.display());
    serde_json::from_slice(&out.stdout).expect("drgn's JSON")
}

/// drgn's text less its two extras (see the top of the file).
fn without_drgn_extras(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.replace("[]){", "[0]){");
        // `(char *)0x... = "text",` -> `(char *)0x...,`
        if let Some(at) = line.find("char *)0x")
            && let Some(quote) = line[at..].find(" = \"")
        {
            let end = if line.ends_with(',') {
                line.len() - 1
            } else {
                line.len()
            };
            line.replace_range(at + quote..end, "");
        }
        // `)SYMBOL+0xOFF = 0x` -> `)0x`
        while let Some(eq) = line.find(" = 0x") {
            let Some(open) = line[..eq].rfind(')') else {
                break;
            };
            let name = &line[open + 1..eq];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.+".contains(c))
            {
                break;
            }
            line.replace_range(open + 1..eq + 3, "");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Where two texts first differ: the line number and both lines.
fn first_difference(got: &str, want: &str) -> Option<String> {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    (0..g.len().max(w.len()))
        .find(|&i| g.get(i) != w.get(i))
        .map(|i| {
            format!(
                "line {}:\n  ksw:  {:?}\n  drgn: {:?}",
                i + 1,
                g.get(i),
                w.get(i)
            )
        })
}

#[test]
fn print_matches_drgn() {
    let Some(root) = common::fixtures() else {
        return;
    };
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/sample/kstackwatch-6.1/dump.kdump-zlib");
    let dumps = [
        ("6.1", sample),
        ("6.12", root.join("6.12/sysrq/dump.kdump-zlib")),
        ("6.1", root.join("6.1/sysrq-qemu/qemu.elf")),
    ];
    let mut compared = 0;
    for (series, dump) in &dumps {
        assert!(dump.exists(), "missing {}", dump.display());
        let vmlinux = common::debug_vmlinux(series);
        let expected = drgn(dump, &vmlinux);
        for (expr, _) in EXPRESSIONS {
            let want = expected[*expr].as_str().expect("drgn's text");
            assert!(
                !want.starts_with("error:"),
                "drgn on {}: {expr}: {want}",
                dump.display()
            );
            let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
                .args(["print"])
                .arg(dump)
                .arg(expr)
                .output()
                .expect("run ksw");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "ksw print {expr} on {}: {stderr}",
                dump.display()
            );
            let got = String::from_utf8_lossy(&out.stdout);
            let want = without_drgn_extras(want);
            if let Some(diff) = first_difference(&got, &want) {
                panic!(
                    "ksw print '{expr}' on {} differs from drgn at {diff}",
                    dump.display()
                );
            }
            compared += 1;
        }
    }
    eprintln!(
        "ksw print vs drgn: {compared} expressions on {} dumps, all equal",
        dumps.len()
    );
}

#[test]
fn drgn_extras_are_removed() {
    assert_eq!(
        without_drgn_extras("\t.prev = (struct list_head *)init_task+0x890 = 0xffffffff88a1b2d0,"),
        "\t.prev = (struct list_head *)0xffffffff88a1b2d0,\n"
    );
    assert_eq!(
        without_drgn_extras("\t.x = (unsigned long []){},"),
        "\t.x = (unsigned long [0]){},\n"
    );
    assert_eq!(
        without_drgn_extras("\t.s = (char [8])\"a = 0x\","),
        "\t.s = (char [8])\"a = 0x\",\n"
    );
    assert_eq!(
        without_drgn_extras("\t.selector = (char *)0x0 = \"S\\xff\","),
        "\t.selector = (char *)0x0,\n"
    );
    assert_eq!(without_drgn_extras("(int)1"), "(int)1\n");
}
