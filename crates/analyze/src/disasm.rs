//! Disassembly of one function, annotated with what `resolve` needs: the
//! CFA-to-SP distance before and after each instruction, which stack bytes
//! each instruction writes (CFA-relative), which calls receive a pointer
//! into the frame, and where the stack-protector canary is loaded.
//!
//! Register values are tracked only as far as "this register holds CFA + k"
//! (set by `lea`/`mov` from rsp, rbp or another tracked register), in
//! address order. That is an approximation across branches; it is used to
//! find the function's own writes, never to compute the watch address,
//! which comes from CFI.

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Formatter, GasFormatter, Instruction,
    InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register,
};

use crate::cfi::{CfaRow, row_at};

/// A write to stack memory, CFA-relative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StackWrite {
    /// First byte written, relative to the CFA.
    pub(crate) cfa_offset: i64,
    /// Bytes written; `None` for a `rep` string store of unknown count.
    pub(crate) len: Option<u64>,
    /// `true` when an index register makes the address only a lower bound.
    pub(crate) indexed: bool,
}

impl StackWrite {
    /// Whether this write may touch `[start, start + len)` (CFA-relative).
    /// `extent_end` bounds a write of unknown extent: the end of the stack
    /// object the write starts in.
    pub(crate) fn overlaps(&self, start: i64, len: u64, extent_end: impl Fn(i64) -> i64) -> bool {
        let end = start.saturating_add(len as i64);
        let (w_start, w_end) = match (self.len, self.indexed) {
            (Some(n), false) => (self.cfa_offset, self.cfa_offset.saturating_add(n as i64)),
            // Unknown extent: anything from the first byte to the end of
            // the object it starts in.
            _ => (
                self.cfa_offset,
                extent_end(self.cfa_offset).max(self.cfa_offset + 1),
            ),
        };
        w_start < end && start < w_end
    }
}

/// How control leaves an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Falls through.
    Next,
    /// A call: returns to the next instruction.
    Call,
    /// Any jump, return or trap.
    Branch,
}

/// One decoded instruction with its annotations.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) address: u64,
    pub(crate) next: u64,
    pub(crate) text: String,
    pub(crate) flow: Flow,
    /// CFA − SP before the instruction.
    pub(crate) cfa_minus_sp_before: Option<i64>,
    /// CFA − SP after it (for `Flow::Next`).
    pub(crate) cfa_minus_sp_after: Option<i64>,
    /// Where `cfa_minus_sp_after` came from.
    pub(crate) after_from_cfi: bool,
    /// The value the linear SP tracker predicts after the instruction.
    pub(crate) tracked_after: Option<i64>,
    pub(crate) writes: Vec<StackWrite>,
    /// For calls: argument registers (by position) holding CFA + k.
    pub(crate) pointer_args: Vec<(usize, crate::register::Register, i64)>,
    /// For direct calls: the target.
    pub(crate) call_target: Option<u64>,
    pub(crate) modifies_rsp: bool,
    /// Loads the stack-protector guard into this register.
    pub(crate) canary_load: Option<Register>,
    /// Stores this register into the frame at CFA + k.
    pub(crate) register_store: Option<(Register, i64)>,
    pub(crate) is_nop: bool,
    /// A `rep`-prefixed string instruction: single-stepping it under a
    /// kprobe runs one iteration at a time, so it is never probed.
    pub(crate) repeated: bool,
}

/// How to recognise the stack-protector guard load.
#[derive(Debug, Clone, Default)]
pub(crate) struct CanaryForms {
    /// Addresses of the per-CPU guard symbols (`__stack_chk_guard`,
    /// `__ref_stack_chk_guard`) for kernels built with
    /// `-mstack-protector-guard-symbol`.
    pub(crate) guard_symbols: Vec<u64>,
    /// For a `.ko`: offsets (in the function) of displacements relocated
    /// against one of those symbols.
    pub(crate) relocated_guard_at: Vec<u64>,
}

/// The argument registers in order, as decoded and as DWARF numbers them.
const ARGUMENT_REGISTERS: [(Register, crate::register::Register); 6] = [
    (Register::RDI, crate::register::Register::Rdi),
    (Register::RSI, crate::register::Register::Rsi),
    (Register::RDX, crate::register::Register::Rdx),
    (Register::RCX, crate::register::Register::Rcx),
    (Register::R8, crate::register::Register::R8),
    (Register::R9, crate::register::Register::R9),
];

const CALLER_SAVED: [Register; 9] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];

/// CFA − SP right after a stack realignment (`and $-N, %rsp`) when the
/// caller asks to follow SP across it: the CFA is then no fixed distance
/// from SP, and offsets after it are relative to this synthetic base (far
/// from any real frame offset, so the two never mix up).
pub(crate) const REALIGNED_BASE: i64 = 1 << 20;

/// Decode and annotate the function whose bytes are `code` at `address`.
/// With `follow_realignment`, SP is tracked across a stack realignment
/// from [`REALIGNED_BASE`]; without it, CFA − SP is unknown after one.
pub(crate) fn analyse(
    code: &[u8],
    address: u64,
    cfi: Option<&[CfaRow]>,
    canary: &CanaryForms,
    follow_realignment: bool,
) -> Vec<Step> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut formatter = GasFormatter::new();
    let mut info_factory = InstructionInfoFactory::new();
    let mut steps = Vec::new();
    let mut tracked: Option<i64> = Some(8); // CFA - SP at entry: the return address
    let mut tracked_rbp: Option<i64> = None; // CFA - rbp
    let mut body: Option<i64> = None; // SP state of the body, restored after exits
    let mut known: Vec<(Register, i64)> = Vec::new(); // register == CFA + k
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        let at = instruction.ip();
        let next = instruction.next_ip();
        let mut text = String::new();
        formatter.format(&instruction, &mut text);

        let cfi_before = cfi.and_then(|rows| row_at(rows, at));
        let cfi_after = cfi.and_then(|rows| row_at(rows, next));
        let before = cfi_before.and_then(|r| r.rsp_offset).or(tracked);
        let rbp_k = cfi_before.and_then(|r| r.rbp_offset).or(tracked_rbp);

        let flow = match instruction.flow_control() {
            FlowControl::Next => Flow::Next,
            FlowControl::Call | FlowControl::IndirectCall => Flow::Call,
            _ => Flow::Branch,
        };

        // Stack bytes written.
        let info = info_factory.info(&instruction);
        let mut writes = Vec::new();
        for memory in info.used_memory() {
            if !matches!(
                memory.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            ) {
                continue;
            }
            // push/call write below SP: never inside a frame's locals.
            if instruction.is_stack_instruction() && memory.base() == Register::RSP {
                continue;
            }
            let base = cfa_relative(memory.base(), before, rbp_k, &known);
            if let Some(base) = base {
                let rep = instruction.has_rep_prefix() || instruction.has_repe_prefix();
                writes.push(StackWrite {
                    cfa_offset: base.wrapping_add(memory.displacement() as i64),
                    len: if rep {
                        None
                    } else {
                        Some(memory.memory_size().size() as u64)
                    },
                    indexed: memory.index() != Register::None,
                });
            }
        }
        let written_registers: Vec<Register> = info
            .used_registers()
            .iter()
            .filter(|r| {
                matches!(
                    r.access(),
                    OpAccess::Write
                        | OpAccess::CondWrite
                        | OpAccess::ReadWrite
                        | OpAccess::ReadCondWrite
                )
            })
            .map(|r| r.register().full_register())
            .collect();
        let modifies_rsp = written_registers.contains(&Register::RSP)
            && !matches!(flow, Flow::Call | Flow::Branch);

        let pointer_args = if flow == Flow::Call {
            ARGUMENT_REGISTERS
                .iter()
                .enumerate()
                .filter_map(|(i, (reg, name))| {
                    known
                        .iter()
                        .find(|(r, _)| r == reg)
                        .map(|(_, k)| (i, *name, *k))
                })
                .collect()
        } else {
            Vec::new()
        };

        // Canary load: mov reg, %gs:0x28 or mov reg, %gs:__stack_chk_guard(%rip).
        let mut canary_load = None;
        if instruction.mnemonic() == Mnemonic::Mov
            && instruction.op_count() == 2
            && instruction.op0_kind() == OpKind::Register
            && instruction.op1_kind() == OpKind::Memory
            && matches!(instruction.memory_segment(), Register::GS | Register::FS)
        {
            // The kernel keeps the guard at %gs:0x28 (or in the per-CPU
            // `__stack_chk_guard`); user space at %fs:0x28, which lets
            // user-space fixtures exercise the same code.
            let absolute = instruction.memory_base() == Register::None
                && instruction.memory_index() == Register::None
                && instruction.memory_displacement64() == 0x28;
            let target = if instruction.is_ip_rel_memory_operand() {
                Some(instruction.ip_rel_memory_address())
            } else if instruction.memory_base() == Register::None
                && instruction.memory_index() == Register::None
            {
                Some(instruction.memory_displacement64())
            } else {
                None
            };
            let symbol_guard = target.is_some_and(|t| canary.guard_symbols.contains(&t))
                || canary
                    .relocated_guard_at
                    .iter()
                    .any(|&off| off >= at - address && off < next - address);
            if absolute || symbol_guard {
                canary_load = Some(instruction.op0_register().full_register());
            }
        }
        // A register stored into the frame (for the canary's slot).
        let mut register_store = None;
        if instruction.mnemonic() == Mnemonic::Mov
            && instruction.op0_kind() == OpKind::Memory
            && instruction.op1_kind() == OpKind::Register
            && instruction.memory_index() == Register::None
        {
            if let Some(base) = cfa_relative(instruction.memory_base(), before, rbp_k, &known) {
                register_store = Some((
                    instruction.op1_register().full_register(),
                    base.wrapping_add(instruction.memory_displacement64() as i64),
                ));
            }
        }

        // Update the tracked SP and rbp.
        let mut after = before;
        if instruction.is_stack_instruction() && flow == Flow::Next {
            after =
                before.map(|b| b.wrapping_sub(i64::from(instruction.stack_pointer_increment())));
        } else if modifies_rsp {
            after = sp_after_explicit(&instruction, before, rbp_k);
            let realigns = instruction.mnemonic() == Mnemonic::And
                && instruction.op0_kind() == OpKind::Register
                && instruction.op0_register() == Register::RSP;
            if follow_realignment && realigns && before.is_some() {
                after = Some(REALIGNED_BASE);
            }
        }
        if instruction.mnemonic() == Mnemonic::Mov
            && instruction.op0_kind() == OpKind::Register
            && instruction.op0_register() == Register::RBP
            && instruction.op1_kind() == OpKind::Register
            && instruction.op1_register() == Register::RSP
        {
            tracked_rbp = before;
        } else if written_registers.contains(&Register::RBP) {
            tracked_rbp = None;
        }

        // Update registers known to hold CFA + k.
        let new_value = match instruction.mnemonic() {
            Mnemonic::Lea if instruction.memory_index() == Register::None => {
                cfa_relative(instruction.memory_base(), before, rbp_k, &known)
                    .map(|b| b.wrapping_add(instruction.memory_displacement64() as i64))
            }
            Mnemonic::Mov
                if instruction.op1_kind() == OpKind::Register
                    && instruction.op0_kind() == OpKind::Register =>
            {
                cfa_relative(instruction.op1_register(), before, rbp_k, &known)
            }
            _ => None,
        };
        known.retain(|(r, _)| !written_registers.contains(r));
        if flow == Flow::Call {
            known.retain(|(r, _)| !CALLER_SAVED.contains(r));
        }
        if let Some(value) = new_value {
            if instruction.op0_kind() == OpKind::Register {
                let reg = instruction.op0_register().full_register();
                if reg != Register::RSP
                    && reg != Register::RBP
                    && instruction.op0_register().size() == 8
                {
                    known.push((reg, value));
                }
            }
        }

        let tracked_after = after;
        if flow == Flow::Branch {
            // Code after an exit, in address order, continues with the
            // body's frame, not with the epilogue's: the body's SP is the
            // one in force at the first exit of the entry region.
            if body.is_none() {
                body = before;
            }
            tracked = body;
            known.clear();
        } else {
            tracked = after;
        }
        let (cfa_minus_sp_after, after_from_cfi) = match cfi_after.and_then(|r| r.rsp_offset) {
            Some(k) => (Some(k), true),
            None => match (cfi_after.and_then(|r| r.rbp_offset), tracked_after) {
                (Some(_), Some(t)) => (Some(t), false),
                _ => (tracked_after, false),
            },
        };
        steps.push(Step {
            address: at,
            next,
            text,
            flow,
            cfa_minus_sp_before: before,
            cfa_minus_sp_after,
            after_from_cfi,
            tracked_after,
            writes,
            pointer_args,
            call_target: (flow == Flow::Call && instruction.op0_kind() == OpKind::NearBranch64)
                .then(|| instruction.near_branch_target()),
            modifies_rsp,
            canary_load,
            register_store,
            is_nop: instruction.mnemonic() == Mnemonic::Nop
                || instruction.mnemonic() == Mnemonic::Endbr64,
            repeated: instruction.has_rep_prefix()
                || instruction.has_repe_prefix()
                || instruction.has_repne_prefix(),
        });
        if instruction.is_invalid() {
            break;
        }
    }
    steps
}

/// CFA-relative value of `register` before an instruction, when known.
fn cfa_relative(
    register: Register,
    sp: Option<i64>,
    rbp: Option<i64>,
    known: &[(Register, i64)],
) -> Option<i64> {
    match register.full_register() {
        Register::RSP => sp.map(|s| -s),
        Register::RBP => rbp.map(|k| -k),
        other => known.iter().find(|(r, _)| *r == other).map(|(_, k)| *k),
    }
}

/// CFA − SP after an instruction that writes rsp explicitly.
fn sp_after_explicit(
    instruction: &Instruction,
    before: Option<i64>,
    rbp: Option<i64>,
) -> Option<i64> {
    let before = before?;
    let immediate = || match instruction.op1_kind() {
        OpKind::Immediate8to64
        | OpKind::Immediate32to64
        | OpKind::Immediate8
        | OpKind::Immediate32 => Some(instruction.immediate(1) as i64),
        _ => None,
    };
    match instruction.mnemonic() {
        Mnemonic::Sub if instruction.op0_register() == Register::RSP => {
            immediate().map(|i| before.wrapping_add(i))
        }
        Mnemonic::Add if instruction.op0_register() == Register::RSP => {
            immediate().map(|i| before.wrapping_sub(i))
        }
        Mnemonic::Lea if instruction.memory_index() == Register::None => {
            match instruction.memory_base() {
                Register::RSP => {
                    Some(before.wrapping_sub(instruction.memory_displacement64() as i64))
                }
                Register::RBP => {
                    rbp.map(|k| k.wrapping_sub(instruction.memory_displacement64() as i64))
                }
                _ => None,
            }
        }
        Mnemonic::Mov
            if instruction.op1_kind() == OpKind::Register
                && instruction.op1_register() == Register::RBP =>
        {
            rbp
        }
        Mnemonic::Leave => rbp.map(|k| k.wrapping_sub(8)),
        _ => None,
    }
}
