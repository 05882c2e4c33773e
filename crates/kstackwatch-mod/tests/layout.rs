//! The C headers `module/ksw_record.h` and `module/ksw_state_map.h` and
//! their Rust mirrors agree: a C
//! program compiled here with gcc prints the offset and size of every
//! field, and each must equal what Rust computes.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use kstackwatch_contract::record::{self, Catch, CatchLog, Regs};
use kstackwatch_contract::state_map::{self, RawEntry, RawStateMap};

fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

macro_rules! fields {
    ($map:ident, $cty:literal, $ty:ty, [$($f:ident),* $(,)?]) => {
        $(
            $map.insert(
                format!("{}.{}", $cty, stringify!($f)),
                (offset_of!($ty, $f), size_of_field(|x: &$ty| &x.$f)),
            );
        )*
        $map.insert(format!("{}.SIZEOF", $cty), (0, size_of::<$ty>()));
    };
}

fn rust_layout() -> BTreeMap<String, (usize, usize)> {
    let mut m = BTreeMap::new();
    fields!(
        m,
        "ksw_regs",
        Regs,
        [
            r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs,
            flags, sp, ss
        ]
    );
    fields!(
        m,
        "ksw_catch",
        Catch,
        [
            seq,
            timestamp_ns,
            cpu,
            flags,
            func_name,
            func_offset,
            sp_offset,
            watch_len,
            depth,
            watch_addr,
            armed_sp,
            old_value,
            new_value,
            victim_task,
            writer_task,
            victim_pid,
            writer_pid,
            victim_comm,
            writer_comm,
            config,
            regs
        ]
    );
    fields!(
        m,
        "ksw_catch_log",
        CatchLog,
        [
            magic,
            version,
            header_size,
            record_size,
            nr_records,
            total,
            records
        ]
    );
    fields!(m, "ksw_state_map_entry", RawEntry, [name, value, size]);
    fields!(
        m,
        "ksw_state_map",
        RawStateMap,
        [magic, version, nr_entries, entry_size, reserved, entries]
    );
    m.insert("CONST.MAP_MAGIC".into(), (0, state_map::MAGIC as usize));
    m.insert("CONST.MAP_VERSION".into(), (0, state_map::VERSION as usize));
    m.insert("CONST.MAP_NAME_LEN".into(), (0, state_map::NAME_LEN));
    m.insert("CONST.MAP_ENTRIES".into(), (0, state_map::ENTRIES));
    m.insert("CONST.MAGIC".into(), (0, record::MAGIC as usize));
    m.insert("CONST.VERSION".into(), (0, record::VERSION as usize));
    m.insert("CONST.RING".into(), (0, record::RING));
    m.insert("CONST.FUNC_LEN".into(), (0, record::FUNC_LEN));
    m.insert("CONST.COMM_LEN".into(), (0, record::COMM_LEN));
    m.insert("CONST.CONFIG_LEN".into(), (0, record::CONFIG_LEN));
    m.insert("CONST.CANARY".into(), (0, record::FLAG_CANARY as usize));
    m.insert("CONST.SELF".into(), (0, record::FLAG_SELF as usize));
    m.insert("CONST.PANIC".into(), (0, record::FLAG_PANIC as usize));
    m
}

const C_PROGRAM: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include "ksw_record.h"
#include "ksw_state_map.h"

#define F(s, f) printf("%s.%s %zu %zu\n", #s, #f, offsetof(struct s, f), \
		       sizeof(((struct s *)0)->f))
#define S(s) printf("%s.SIZEOF 0 %zu\n", #s, sizeof(struct s))
#define C(n, v) printf("CONST.%s 0 %llu\n", n, (unsigned long long)(v))

int main(void)
{
	F(ksw_regs, r15); F(ksw_regs, r14); F(ksw_regs, r13); F(ksw_regs, r12);
	F(ksw_regs, bp); F(ksw_regs, bx); F(ksw_regs, r11); F(ksw_regs, r10);
	F(ksw_regs, r9); F(ksw_regs, r8); F(ksw_regs, ax); F(ksw_regs, cx);
	F(ksw_regs, dx); F(ksw_regs, si); F(ksw_regs, di); F(ksw_regs, orig_ax);
	F(ksw_regs, ip); F(ksw_regs, cs); F(ksw_regs, flags); F(ksw_regs, sp);
	F(ksw_regs, ss); S(ksw_regs);
	F(ksw_catch, seq); F(ksw_catch, timestamp_ns); F(ksw_catch, cpu);
	F(ksw_catch, flags); F(ksw_catch, func_name); F(ksw_catch, func_offset);
	F(ksw_catch, sp_offset); F(ksw_catch, watch_len); F(ksw_catch, depth);
	F(ksw_catch, watch_addr); F(ksw_catch, armed_sp); F(ksw_catch, old_value);
	F(ksw_catch, new_value); F(ksw_catch, victim_task);
	F(ksw_catch, writer_task); F(ksw_catch, victim_pid);
	F(ksw_catch, writer_pid); F(ksw_catch, victim_comm);
	F(ksw_catch, writer_comm); F(ksw_catch, config); F(ksw_catch, regs);
	S(ksw_catch);
	F(ksw_catch_log, magic); F(ksw_catch_log, version);
	F(ksw_catch_log, header_size); F(ksw_catch_log, record_size);
	F(ksw_catch_log, nr_records); F(ksw_catch_log, total);
	F(ksw_catch_log, records); S(ksw_catch_log);
	C("MAGIC", KSW_RECORD_MAGIC); C("VERSION", KSW_RECORD_VERSION);
	C("RING", KSW_RECORD_RING); C("FUNC_LEN", KSW_RECORD_FUNC_LEN);
	C("COMM_LEN", KSW_RECORD_COMM_LEN); C("CONFIG_LEN", KSW_RECORD_CONFIG_LEN);
	C("CANARY", KSW_CATCH_CANARY); C("SELF", KSW_CATCH_SELF);
	C("PANIC", KSW_CATCH_PANIC);
	F(ksw_state_map_entry, name); F(ksw_state_map_entry, value);
	F(ksw_state_map_entry, size); S(ksw_state_map_entry);
	F(ksw_state_map, magic); F(ksw_state_map, version);
	F(ksw_state_map, nr_entries); F(ksw_state_map, entry_size);
	F(ksw_state_map, reserved); F(ksw_state_map, entries);
	S(ksw_state_map);
	C("MAP_MAGIC", KSW_STATE_MAP_MAGIC);
	C("MAP_VERSION", KSW_STATE_MAP_VERSION);
	C("MAP_NAME_LEN", KSW_STATE_MAP_NAME_LEN);
	C("MAP_ENTRIES", KSW_STATE_MAP_ENTRIES);
	return 0;
}
"#;

fn c_layout() -> BTreeMap<String, (usize, usize)> {
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("module");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ksw-layout");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let bin = dir.join("layout");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let out = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg("-I")
        .arg(&module)
        .arg(&src)
        .output()
        .expect("gcc must be installed to check the record layout");
    assert!(
        out.status.success(),
        "gcc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&bin).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            (
                v[0].to_string(),
                (v[1].parse().unwrap(), v[2].parse().unwrap()),
            )
        })
        .collect()
}

#[test]
fn c_header_and_rust_mirror_agree() {
    let c = c_layout();
    let rust = rust_layout();
    assert_eq!(c.len(), rust.len(), "the two sides list different fields");
    for (name, want) in &c {
        assert_eq!(
            rust.get(name),
            Some(want),
            "{name}: C says (offset, size) = {want:?}"
        );
    }
}

#[test]
fn no_implicit_padding() {
    // Fields laid end to end: every struct's size is the sum of its fields.
    let m = rust_layout();
    for s in [
        "ksw_regs",
        "ksw_catch",
        "ksw_catch_log",
        "ksw_state_map_entry",
        "ksw_state_map",
    ] {
        let sum: usize = m
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{s}.")) && !k.ends_with("SIZEOF"))
            .map(|(_, (_, size))| size)
            .sum();
        assert_eq!(sum, m[&format!("{s}.SIZEOF")].1, "{s} has padding");
    }
}
