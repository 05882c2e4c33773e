//! The CFA at a pc that ORC leaves undefined, from the function's code.
//!
//! objtool marks some code as "undefined" (the kernel never unwinds from
//! there): `crash_setup_regs()`'s inline assembly in `__crash_kexec` is
//! such a place, and it is exactly where the panic CPU's registers were
//! saved. This module follows the function's control flow from its entry
//! (where CFA = SP + 8) and tracks how each instruction moves SP, so the
//! walk can go on; the frame it yields is marked as derived this way.
//! Pure: it sees code bytes, not memory.

use std::collections::{HashMap, VecDeque};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

/// More instructions than a kernel function has.
const MAX_INSTRUCTIONS: usize = 20_000;

/// CFA − SP at `pc`, for a function whose code (starting at its entry
/// `base`) is `code`; `None` if no path from the entry reaches `pc` with
/// a known SP, or two paths disagree.
pub fn cfa_offset_at(code: &[u8], base: u64, pc: u64) -> Option<i64> {
    let mut known: HashMap<u64, i64> = HashMap::new();
    let mut work = VecDeque::from([(base, 8i64)]);
    // code ending past the top of the address space is cut there
    let end = base.saturating_add(code.len() as u64);
    let mut steps = 0;
    while let Some((start, mut offset)) = work.pop_front() {
        if start < base || start >= end {
            continue;
        }
        let mut decoder = Decoder::with_ip(
            64,
            &code[(start - base) as usize..],
            start,
            DecoderOptions::NONE,
        );
        let mut ins = Instruction::default();
        while decoder.can_decode() {
            steps += 1;
            if steps > MAX_INSTRUCTIONS {
                return None;
            }
            decoder.decode_out(&mut ins);
            if let Some(&seen) = known.get(&ins.ip()) {
                if seen != offset {
                    // paths disagree here: not trustworthy
                    if ins.ip() == pc {
                        return None;
                    }
                }
                break;
            }
            known.insert(ins.ip(), offset);
            match ins.flow_control() {
                FlowControl::Return | FlowControl::Interrupt | FlowControl::Exception => break,
                FlowControl::UnconditionalBranch => {
                    if ins.op0_kind() == OpKind::NearBranch64 {
                        work.push_back((ins.near_branch_target(), offset));
                    }
                    break;
                }
                FlowControl::IndirectBranch => break,
                FlowControl::ConditionalBranch => {
                    work.push_back((ins.near_branch_target(), offset));
                }
                _ => {}
            }
            match sp_delta(&ins) {
                Some(d) => offset -= d,
                None => break,
            }
        }
    }
    known.get(&pc).copied()
}

/// How an instruction moves SP (bytes, negative = grows the stack);
/// `None` if it sets SP in a way this tracker cannot follow.
fn sp_delta(ins: &Instruction) -> Option<i64> {
    let writes_sp = ins.op_count() > 0
        && ins.op0_kind() == OpKind::Register
        && ins.op0_register() == Register::RSP;
    match ins.mnemonic() {
        // a call returns with SP where it was
        Mnemonic::Call => Some(0),
        _ if ins.is_stack_instruction() => Some(i64::from(ins.stack_pointer_increment())),
        Mnemonic::Sub if writes_sp && is_imm(ins) => Some(-(ins.immediate(1) as i64)),
        Mnemonic::Add if writes_sp && is_imm(ins) => Some(ins.immediate(1) as i64),
        Mnemonic::Lea
            if writes_sp
                && ins.memory_base() == Register::RSP
                && ins.memory_index() == Register::None =>
        {
            Some(ins.memory_displacement64() as i64)
        }
        _ if writes_sp => None,
        _ => Some(0),
    }
}

fn is_imm(ins: &Instruction) -> bool {
    matches!(
        ins.op1_kind(),
        OpKind::Immediate8to64 | OpKind::Immediate32to64 | OpKind::Immediate8 | OpKind::Immediate32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_pushes_and_branches() {
        // push rbx; sub rsp,0x20; test eax,eax; je L; add rsp,0x20; pop rbx; ret
        // L: nop; (pc) add rsp,0x20; pop rbx; ret
        let code = [
            0x53, 0x48, 0x83, 0xec, 0x20, 0x85, 0xc0, 0x74, 0x06, 0x48, 0x83, 0xc4, 0x20, 0x5b,
            0xc3, 0x90, 0x48, 0x83, 0xc4, 0x20, 0x5b, 0xc3,
        ];
        let base = 0x1000;
        assert_eq!(cfa_offset_at(&code, base, base), Some(8));
        assert_eq!(cfa_offset_at(&code, base, base + 1), Some(16));
        assert_eq!(cfa_offset_at(&code, base, base + 5), Some(48));
        // reached only through the branch
        assert_eq!(cfa_offset_at(&code, base, base + 0x10), Some(48));
        assert_eq!(cfa_offset_at(&code, base, base + 0x14), Some(16));
        assert_eq!(cfa_offset_at(&code, base, 0x2000), None);
        // found by the sp_track fuzz target: code at the top of the
        // address space
        assert_eq!(cfa_offset_at(&code, u64::MAX - 4, u64::MAX - 4), Some(8));
    }
}
