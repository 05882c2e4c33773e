//! `ksw print` on the committed sample (a real 6.1 kdump): what it prints
//! for well-formed expressions (JSON included), and the refusal, exit
//! code 1 and reason for every kind of bad expression. drgn's agreement
//! on values is `print_drgn.rs`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/sample/kstackwatch-6.1/dump.kdump-zlib")
}

/// stdout, stderr and exit code of `ksw print SAMPLE EXPR ARGS`.
fn print(expr: &str, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
        .arg("print")
        .arg(sample())
        .arg(expr)
        .args(args)
        .output()
        .expect("run ksw");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn json_gives_the_type_address_and_value_tree() {
    let (out, err, code) = print("init_task.comm", &["--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["expression"], "init_task.comm");
    assert_eq!(v["type"], "char [16]");
    assert_eq!(v["value"]["string"], "swapper/0");
    // comm's address is init_task's plus comm's offset in BTF
    let (task, _, _) = print("&init_task", &["--json"]);
    let task: Value = serde_json::from_str(&task).unwrap();
    let base = task["value"]["pointer"].as_u64().expect("pointer");
    let comm = v["address"].as_u64().expect("address");
    assert!(
        comm > base && comm - base < 0x2000,
        "{comm:#x} vs {base:#x}"
    );

    let (out, _, _) = print("init_task.tasks", &["--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let members = v["value"]["struct"].as_array().expect("members");
    let names: Vec<&str> = members.iter().map(|m| m[0].as_str().unwrap()).collect();
    assert_eq!(names, ["next", "prev"]);
    assert_eq!(members[0][1]["type"], "struct list_head *");
}

#[test]
fn casts_pointers_and_per_cpu_variables() {
    // a typed pointer made from an address, and followed
    let (addr, _, _) = print("&init_task", &[]);
    let hex = addr.trim().rsplit(')').next().unwrap().to_string();
    let (out, err, code) = print(&format!("((struct task_struct *){hex})->comm"), &[]);
    assert_eq!(
        (code, out.as_str()),
        (0, "(char [16])\"swapper/0\"\n"),
        "{err}"
    );
    // per_cpu: each CPU's runqueue has its own cpu number
    for cpu in 0..2 {
        let (out, err, code) = print(&format!("per_cpu(runqueues, {cpu}).cpu"), &[]);
        assert_eq!((code, out), (0, format!("(int){cpu}\n")), "{err}");
    }
    // a symbol of no type, typed by a cast as gdb does
    let (out, err, code) = print("(unsigned long)init_nsproxy", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("(unsigned long)"), "{out}");
}

#[test]
fn bad_expressions_are_refused_with_the_reason() {
    for (expr, reason) in [
        ("init_task.", "at column 11"),
        ("init_task + 1", "at column 11"),
        ("no_such_symbol_here", "no symbol `no_such_symbol_here`"),
        ("init_nsproxy", "`init_nsproxy` has no type here"),
        ("runqueues", "use per_cpu(runqueues, CPU)"),
        ("per_cpu(init_task, 0)", "not a per-CPU variable"),
        ("per_cpu(runqueues, 4096)", "CPU 4096 is not one of"),
        ("init_task.no_such_member", "no_such_member"),
        ("init_task.tasks.next.next", "use `->next`"),
        (
            "*init_task.mm",
            "bytes at 0x0: virtual address 0x0 is not mapped",
        ),
        (
            "(struct no_such_struct *)0",
            "no type `struct no_such_struct`",
        ),
        ("*init_task.stack", "void pointer"),
        ("init_task.comm->x", "needs a pointer"),
        ("&init_task.tasks.next[0].next->prev.x", "x"),
    ] {
        let (out, err, code) = print(expr, &[]);
        assert_eq!(code, 1, "`{expr}` should fail: {out}{err}");
        assert!(out.is_empty(), "`{expr}`: {out}");
        assert!(
            err.contains(reason),
            "`{expr}`: expected {reason:?} in: {err}"
        );
    }
}
