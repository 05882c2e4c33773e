//! `resolve` on small C programs built here with kernel-like flags
//! (`-O2 -g -mno-red-zone -mgeneral-regs-only -fstack-protector-strong
//! -fno-asynchronous-unwind-tables`), checked by running them under gdb:
//! after the probed instruction executes, SP + `so` must be the address of
//! the watched bytes, as gdb computes it from the live frame. The same
//! source as a relocatable object (like a `.ko`) must give the same watch,
//! and bad input must give the right error.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ksw_analyze::{DebugFile, Error, ResolveRequest, frame_layout, resolve};

const FLAGS: &[&str] = &[
    "-O2",
    "-g",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-fno-asynchronous-unwind-tables",
    "-fstack-protector-strong",
    "-fno-pie",
];

struct Built {
    _dir: tempfile::TempDir,
    /// victims.c as an ET_REL object (like a .ko).
    object: PathBuf,
    /// victims.c + main.c linked (ET_EXEC, like vmlinux).
    program: PathBuf,
    /// helper_a.o + helper_b.o merged with `ld -r`: two static `helper`s.
    merged: PathBuf,
    /// victims.c without -g.
    no_debug: PathBuf,
    /// victims.c + main.c with user-space defaults: `.eh_frame` and no
    /// `.debug_frame`, so CFA−SP comes from disassembly.
    program_eh_frame: PathBuf,
    /// victims.c with SHF_COMPRESSED debug sections (`-gz=zlib`).
    compressed: PathBuf,
}

fn fixture_source(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn build() -> Option<Built> {
    if !common::have("gcc") || !common::have("ld") {
        common::missing("gcc and ld (apt-get install gcc binutils)");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let object = common::compile(d, "victims", &fixture_source("victims.c"), FLAGS);
    let main = common::compile(d, "main", &fixture_source("main.c"), FLAGS);
    let program = d.join("prog");
    let status = Command::new("gcc")
        .args(["-no-pie", "-o"])
        .arg(&program)
        .arg(&object)
        .arg(&main)
        .status()
        .expect("link");
    assert!(status.success(), "link failed");
    let a = common::compile(d, "helper_a", &fixture_source("helper_a.c"), FLAGS);
    let b = common::compile(d, "helper_b", &fixture_source("helper_b.c"), FLAGS);
    let merged = d.join("merged.o");
    let status = Command::new("ld")
        .arg("-r")
        .arg(&a)
        .arg(&b)
        .arg("-o")
        .arg(&merged)
        .status()
        .expect("ld -r");
    assert!(status.success(), "ld -r failed");
    let no_debug_flags: Vec<&str> = FLAGS.iter().copied().filter(|f| *f != "-g").collect();
    let no_debug = common::compile(d, "nodebug", &fixture_source("victims.c"), &no_debug_flags);
    let user_flags = ["-O2", "-g", "-fstack-protector-strong", "-fno-pie"];
    let eh_victims = common::compile(
        &d.join("eh"),
        "victims",
        &fixture_source("victims.c"),
        &user_flags,
    );
    let eh_main = common::compile(
        &d.join("eh"),
        "main",
        &fixture_source("main.c"),
        &user_flags,
    );
    let program_eh_frame = d.join("prog-eh");
    let status = Command::new("gcc")
        .args(["-no-pie", "-o"])
        .arg(&program_eh_frame)
        .arg(&eh_victims)
        .arg(&eh_main)
        .status()
        .expect("link");
    assert!(status.success(), "link failed");
    let mut gz_flags = FLAGS.to_vec();
    gz_flags.push("-gz=zlib");
    let compressed = common::compile(
        &d.join("gz"),
        "victims",
        &fixture_source("victims.c"),
        &gz_flags,
    );
    Some(Built {
        _dir: dir,
        program_eh_frame,
        compressed,
        object,
        program,
        merged,
        no_debug,
    })
}

fn request(function: &str, variable: &str) -> ResolveRequest {
    ResolveRequest {
        function: function.into(),
        variable: Some(variable.into()),
        ..ResolveRequest::default()
    }
}

/// Run `program` under gdb: stop at `address`, execute that instruction,
/// then print each expression in hex, one per line.
fn gdb_after_instruction(program: &Path, address: u64, expressions: &[String]) -> Vec<u64> {
    let mut cmd = Command::new("gdb");
    cmd.args(["-batch", "-nx"])
        .arg("-ex")
        .arg(format!("break *{address:#x}"))
        .arg("-ex")
        .arg("run")
        .arg("-ex")
        .arg("stepi");
    for e in expressions {
        cmd.arg("-ex")
            .arg(format!("printf \"VALUE %lx\\n\", (unsigned long)({e})"));
    }
    cmd.arg(program);
    let out = cmd.output().expect("run gdb");
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("VALUE "))
        .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
        .collect();
    assert_eq!(
        values.len(),
        expressions.len(),
        "gdb did not print every value:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    values
}

#[test]
fn watch_address_is_the_variable_at_run_time() {
    let Some(built) = build() else { return };
    if !common::have("gdb") {
        common::missing("gdb");
        return;
    }
    for program in [&built.program, &built.program_eh_frame] {
        check_at_run_time(program);
    }
}

fn check_at_run_time(program: &Path) {
    let file = DebugFile::open(program).expect("open program");
    let cases = [
        ("victim", "req"),
        ("victim", "req.hdr.len"),
        ("victim", "req.hdr.kind"),
        ("victim", "req.tail"),
        ("victim", "buf[2]"),
        ("victim", "buf"),
        ("with_cold", "b"),
        ("with_cold", "b[9]"),
    ];
    for (function, variable) in cases {
        let r = resolve(&[&file], &request(function, variable))
            .unwrap_or_else(|e| panic!("resolve {function} {variable}: {e}"));
        let probe = r.function_address + r.watch.function_offset;
        let values = gdb_after_instruction(
            program,
            probe,
            &[
                format!("$sp + {}", r.watch.sp_offset),
                format!("(char *)&{variable} + {}", r.watched_part.0),
            ],
        );
        assert_eq!(
            values[0], values[1],
            "{function} {variable}: SP+so = {:#x} but the variable's bytes are at {:#x} ({})",
            values[0], values[1], r.key_value
        );
        assert_eq!(
            values[0] % u64::from(r.watch.watch_len),
            0,
            "{function} {variable}: misaligned watch"
        );
    }
    // The canary slot holds the guard after the probed store.
    let r = resolve(
        &[&file],
        &ResolveRequest {
            function: "victim".into(),
            canary: true,
            ..ResolveRequest::default()
        },
    )
    .expect("canary");
    let values = gdb_after_instruction(
        program,
        r.function_address + r.watch.function_offset,
        &[
            format!("*(unsigned long *)($sp + {})", r.watch.sp_offset),
            "*(unsigned long *)($fs_base + 0x28)".into(),
        ],
    );
    assert_eq!(
        values[0], values[1],
        "canary slot {} does not hold the guard",
        r.key_value
    );
}

#[test]
fn relocatable_object_gives_the_same_watch_as_the_linked_program() {
    let Some(built) = build() else { return };
    let linked = DebugFile::open(&built.program).expect("open program");
    let object = DebugFile::open(&built.object).expect("open object");
    for (function, variable) in [
        ("victim", "req.hdr.len"),
        ("victim", "buf[1]"),
        ("with_cold", "b"),
    ] {
        let a = resolve(&[&linked], &request(function, variable)).expect("linked");
        let b = resolve(&[&object], &request(function, variable)).expect("object");
        assert_eq!(a.watch, b.watch, "{function} {variable}");
        assert_eq!(a.cfa_offset, b.cfa_offset);
        assert!(
            b.probe_source
                .as_deref()
                .is_some_and(|s| s.contains("victims.c")),
            "{:?}",
            b.probe_source
        );
    }
    // SHF_COMPRESSED debug sections give the same answers.
    let compressed = DebugFile::open(&built.compressed).expect("open compressed");
    for (function, variable) in [("victim", "req.hdr.len"), ("with_cold", "b")] {
        let a = resolve(&[&object], &request(function, variable)).expect("plain");
        let b = resolve(&[&compressed], &request(function, variable)).expect("compressed");
        assert_eq!(a.watch, b.watch, "{function} {variable}");
    }
    let layout = frame_layout(&[&object], "victim").expect("layout");
    let req = layout
        .variables
        .iter()
        .find(|v| v.name == "req")
        .expect("req listed");
    // int, struct hdr (4), char[12], padding 4, long: 32 bytes by the x86_64 ABI.
    assert_eq!(req.size, Some(32));
    assert!(req.cfa_offset.is_some());
}

#[test]
fn gcc_copies_and_duplicate_statics() {
    let Some(built) = build() else { return };
    let object = DebugFile::open(&built.object).expect("open object");
    // Only the .constprop copy exists: it is used, and the output says so.
    let r = resolve(&[&object], &request("scale", "pad")).expect("scale");
    assert_eq!(r.watch.function, "scale.constprop.0");
    assert!(
        r.caveats.iter().any(|c| c.contains("compiler-made copy")),
        "{:?}",
        r.caveats
    );
    // Two static `helper`s in one object: ambiguous, both listed.
    let merged = DebugFile::open(&built.merged).expect("open merged");
    match resolve(&[&merged], &request("helper", "a")) {
        Err(Error::AmbiguousFunction { candidates, .. }) => {
            assert_eq!(candidates.len(), 2, "{candidates:?}");
            let units: Vec<&str> = candidates.iter().map(|c| c.defined_in.as_str()).collect();
            assert!(
                units.iter().any(|u| u.contains("helper_a.c"))
                    && units.iter().any(|u| u.contains("helper_b.c")),
                "{units:?}"
            );
        }
        other => panic!("expected an ambiguity, got {other:?}"),
    }
    // A function that exists only inlined.
    match resolve(&[&object], &request("tiny", "t")) {
        Err(Error::InlinedOnly { callers, .. }) => {
            assert!(callers.contains("calls_tiny"), "{callers}")
        }
        other => panic!("expected inlined-only, got {other:?}"),
    }
    // Its local can be watched in the caller.
    let r = resolve(&[&object], &request("calls_tiny", "t")).expect("inlined local");
    assert!(
        r.caveats.iter().any(|c| c.contains("inlined")),
        "{:?}",
        r.caveats
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let Some(built) = build() else { return };
    let object = DebugFile::open(&built.object).expect("open object");
    let files = [&object];
    match resolve(&files, &request("victm", "req")) {
        Err(Error::UnknownFunction { suggestions, .. }) => {
            assert!(suggestions.contains(&"victim".to_string()))
        }
        other => panic!("unknown function: {other:?}"),
    }
    match resolve(&files, &request("victim", "rq")) {
        Err(Error::UnknownVariable { suggestions, .. }) => {
            assert!(suggestions.contains(&"req".to_string()), "{suggestions:?}")
        }
        other => panic!("unknown variable: {other:?}"),
    }
    match resolve(&files, &request("regonly", "a")) {
        Err(e @ Error::NotOnStack { .. }) => assert!(e.to_string().contains("register"), "{e}"),
        other => panic!("register-only: {other:?}"),
    }
    match resolve(&files, &request("victim", "calls")) {
        Err(e @ Error::NotOnStack { .. }) => assert!(e.to_string().contains("static"), "{e}"),
        other => panic!("static local: {other:?}"),
    }
    // Computed, never stored: no location at any pc, or only a value.
    match resolve(&files, &request("optimised", "gone")) {
        Err(Error::NotOnStack { .. }) => {}
        other => panic!("optimised-out variable: {other:?}"),
    }
    match resolve(&files, &request("victim", "req->hdr")) {
        Err(e @ Error::BadPath { .. }) => assert!(e.to_string().contains("pointer"), "{e}"),
        other => panic!("pointer path: {other:?}"),
    }
    match resolve(&files, &request("victim", "buf[4]")) {
        Err(e @ Error::BadPath { .. }) => assert!(e.to_string().contains("out of bounds"), "{e}"),
        other => panic!("out of bounds: {other:?}"),
    }
    match resolve(&files, &request("victim", "req.nosuch")) {
        Err(e @ Error::BadPath { .. }) => {
            assert!(e.to_string().contains("hdr"), "members listed: {e}")
        }
        other => panic!("no member: {other:?}"),
    }
    match resolve(
        &files,
        &ResolveRequest {
            function: "regonly".into(),
            canary: true,
            ..ResolveRequest::default()
        },
    ) {
        Err(e @ Error::NoCanary { .. }) => assert!(e.to_string().contains("ac=1"), "{e}"),
        other => panic!("no canary: {other:?}"),
    }
    let no_debug = DebugFile::open(&built.no_debug).expect("open");
    match resolve(&[&no_debug], &request("victim", "req")) {
        Err(Error::NoDebugInfo { .. }) => {}
        other => panic!("missing debug info: {other:?}"),
    }
    let not_elf = DebugFile::from_bytes("junk", b"not an ELF file at all".to_vec());
    assert!(matches!(
        resolve(&[&not_elf], &request("victim", "req")),
        Err(Error::NotElf { .. })
    ));
    // Truncated files are refused, not read past their end.
    let bytes = std::fs::read(&built.object).expect("read object");
    for cut in [64, bytes.len() / 3, bytes.len() / 2, bytes.len() - 100] {
        let truncated = DebugFile::from_bytes("truncated", bytes[..cut].to_vec());
        assert!(
            resolve(&[&truncated], &request("victim", "req")).is_err(),
            "cut at {cut}"
        );
    }
}

/// Kernels built with `-mstack-protector-guard-symbol` load the canary as
/// `mov %gs:__ref_stack_chk_guard(%rip)` (per-CPU symbol) instead of
/// `%gs:0x28`: the slot found must be the same as with the classic form,
/// in a relocatable object and in a linked image.
#[test]
fn canary_through_a_per_cpu_guard_symbol() {
    let Some(built) = build() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut flags = FLAGS.to_vec();
    flags.extend([
        "-mstack-protector-guard-reg=gs",
        "-mstack-protector-guard-symbol=__ref_stack_chk_guard",
    ]);
    let object = common::compile(dir.path(), "guard", &fixture_source("victims.c"), &flags);
    let linked = dir.path().join("guard.elf");
    let status = Command::new("gcc")
        .args([
            "-nostdlib",
            "-no-pie",
            "-Wl,--unresolved-symbols=ignore-all",
            "-Wl,-e,victim",
        ])
        .arg("-Wl,--defsym,__ref_stack_chk_guard=0x5000")
        .arg(&object)
        .arg("-o")
        .arg(&linked)
        .status()
        .expect("link");
    assert!(status.success());
    let classic = DebugFile::open(&built.object).expect("open classic");
    let canary = |file: &DebugFile| {
        resolve(
            &[file],
            &ResolveRequest {
                function: "victim".into(),
                canary: true,
                ..ResolveRequest::default()
            },
        )
    };
    let want = canary(&classic).expect("classic canary");
    for path in [&object, &linked] {
        let file = DebugFile::open(path).expect("open");
        let got = canary(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(got.cfa_offset, want.cfa_offset, "{}", path.display());
        assert!(
            got.probe_instruction.starts_with("mov %rax,"),
            "{}",
            got.probe_instruction
        );
    }
}

/// Corrupted files give errors or answers, never a panic: bytes of the
/// object are overwritten at pseudo-random places (a fixed-seed xorshift,
/// so a failure reproduces) and every entry point is called.
#[test]
fn corrupted_objects_never_panic() {
    let Some(built) = build() else { return };
    let original = std::fs::read(&built.object).expect("read object");
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..500 {
        let mut bytes = original.clone();
        let flips = 1 + (next() % 16) as usize;
        for _ in 0..flips {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        let file = DebugFile::from_bytes(format!("corrupt-{round}"), bytes);
        let outcome = std::panic::catch_unwind(|| {
            let _ = resolve(&[&file], &request("victim", "req.hdr.len"));
            let _ = resolve(&[&file], &request("with_cold", "b[3]"));
            let _ = resolve(
                &[&file],
                &ResolveRequest {
                    function: "victim".into(),
                    canary: true,
                    ..ResolveRequest::default()
                },
            );
            let _ = frame_layout(&[&file], "victim");
            let _ = resolve(&[&file], &request("victm", "req"));
        });
        assert!(outcome.is_ok(), "panic on corrupted object, round {round}");
    }
}
