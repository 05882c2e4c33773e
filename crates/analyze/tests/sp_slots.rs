//! SP-based stack slots (`DW_OP_breg7 N`) on the Debian 6.1 vmlinux,
//! checked against gdb: gcc describes the large locals of functions that
//! realign their stack (`and $-16, %rsp`) relative to SP, since they are
//! no fixed distance from the CFA. gdb's `info scope` gives N and the
//! length; the watch must be at SP + N (+ the watched part) after the
//! probed instruction, which must be an instruction boundary by gdb's
//! `disassemble`, after the realignment, with SP unchanged from the end of
//! the prologue (no push, pop or other write to %rsp in between).

mod common;

use common::oracle::{self, Insn};
use ksw_analyze::{
    DebugFile, Register, ResolveRequest, StackLocation, VariableLocation, frame_layout, resolve,
};

/// Locals gcc places with `DW_OP_breg7` in the pinned 6.1 build.
/// (`do_select`'s `table` is SP-based too, but its initialising call,
/// `poll_initwait(&table)`, is followed by another call: no probe point,
/// for the same reason as for a CFA-based slot.)
const SLOTS: &[(&str, &str)] = &[
    ("do_sys_poll", "table"),
    ("do_select", "expire"),
    ("___sys_sendmsg", "iovstack"),
    ("inet_ioctl", "ifr"),
];

/// `Symbol NAME is a complex DWARF expression:` / `0: DW_OP_breg7 N
/// [$rsp]` / `, length L.`: function → (name, N, L).
fn breg7_scopes(text: &str) -> Vec<(String, String, i64, u64)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut current = String::new();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("Scope for ") {
            current = rest.trim_end_matches(':').to_string();
            continue;
        }
        let Some(symbol) = line
            .strip_prefix("Symbol ")
            .and_then(|r| r.strip_suffix(" is a complex DWARF expression:"))
        else {
            continue;
        };
        let (Some(op), Some(len)) = (lines.get(i + 1), lines.get(i + 2)) else {
            continue;
        };
        let Some(offset) = op
            .trim()
            .strip_prefix("0: DW_OP_breg7 ")
            .and_then(|o| o.strip_suffix(" [$rsp]"))
            .and_then(|o| o.trim().parse::<i64>().ok())
        else {
            continue;
        };
        let Some(length) = len
            .strip_prefix(", length ")
            .and_then(|l| l.strip_suffix('.'))
            .and_then(|l| l.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((current.clone(), symbol.to_string(), offset, length));
    }
    found
}

/// Whether an instruction writes %rsp (other than a call, which returns
/// with SP as it was).
fn moves_sp(insn: &Insn) -> bool {
    let mnemonic = insn.text.split_whitespace().next().unwrap_or("");
    mnemonic.starts_with("push")
        || mnemonic.starts_with("pop")
        || mnemonic == "leave"
        || insn.text.ends_with(",%rsp")
}

#[test]
fn sp_based_slots_match_gdb_6_1() {
    let Some(vmlinux) = common::vmlinux("6.1") else {
        common::missing("the Debian 6.1 debug vmlinux");
        return;
    };
    if !common::have("gdb") {
        common::missing("gdb (apt-get install gdb)");
        return;
    }
    let mut functions: Vec<&str> = SLOTS.iter().map(|(f, _)| *f).collect();
    functions.dedup();
    let commands: Vec<String> = functions
        .iter()
        .flat_map(|f| [format!("info scope {f}"), format!("disassemble {f}")])
        .collect();
    let text = oracle::gdb(&vmlinux, &commands);
    let scopes = breg7_scopes(&text);
    let disassembly = oracle::parse_disassembly(&text);
    let file = DebugFile::open(&vmlinux).expect("open vmlinux");
    let mut failures = Vec::new();
    for (function, variable) in SLOTS {
        let Some((_, _, n, length)) = scopes
            .iter()
            .find(|(f, v, _, _)| f == function && v == variable)
        else {
            failures.push(format!(
                "{function}.{variable}: gdb has no DW_OP_breg7 slot for it"
            ));
            continue;
        };
        let layout = frame_layout(&[&file], function).expect("layout");
        let listed = layout
            .variables
            .iter()
            .find(|v| v.name == *variable && v.size == Some(*length));
        match listed.map(|v| &v.location) {
            Some(VariableLocation::Stack(StackLocation::RegisterBased {
                register: Register::Rsp,
                offset,
                cfa_offset: None,
            })) if offset == n => {}
            other => failures.push(format!(
                "{function}.{variable}: --list has {other:?}, gdb says rsp{n:+}"
            )),
        }
        let request = ResolveRequest {
            function: function.to_string(),
            variable: Some(variable.to_string()),
            ..ResolveRequest::default()
        };
        let r = match resolve(&[&file], &request) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{function}.{variable}: resolve refused: {e}"));
                continue;
            }
        };
        let (part_start, part_end) = r.watched_part;
        if part_end > *length {
            failures.push(format!(
                "{function}.{variable}: watches [{part_start}, {part_end}) of a {length}-byte slot"
            ));
        }
        if r.watch.sp_offset as i64 != n + part_start as i64 {
            failures.push(format!(
                "{function}.{variable}: {} but gdb's slot is at rsp{n:+} (part at +{part_start})",
                r.key_value
            ));
        }
        // The probe: an instruction boundary after the realignment, with
        // SP as the prologue left it.
        let insns = &disassembly[*function];
        let Some(probe) = insns
            .iter()
            .position(|i| i.offset == r.watch.function_offset)
        else {
            failures.push(format!(
                "{function}.{variable}: fo={:#x} is not an instruction boundary for gdb",
                r.watch.function_offset
            ));
            continue;
        };
        let Some(realign) = insns[..probe]
            .iter()
            .position(|i| i.text.starts_with("and ") && i.text.ends_with(",%rsp"))
        else {
            failures.push(format!(
                "{function}.{variable}: no stack realignment before the probe"
            ));
            continue;
        };
        let last_move = insns[..=probe].iter().rposition(moves_sp).unwrap_or(0);
        let prologue_end = insns[realign..]
            .iter()
            .position(|i| !moves_sp(i))
            .map_or(realign, |p| realign + p - 1);
        if last_move != prologue_end {
            failures.push(format!(
                "{function}.{variable}: SP moves at +{:#x}, after the prologue and before the \
                 probe at +{:#x}",
                insns[last_move].offset, r.watch.function_offset
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "SP-based slots disagree with gdb:\n{}",
        failures.join("\n")
    );
}
