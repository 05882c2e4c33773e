//! The writer of a catch: the instruction that stored, where it is in the
//! source, what it wrote through, and its stack.
//!
//! `#DB` for a data breakpoint is a trap: the saved ip is the instruction
//! after the store. x86 cannot be decoded backwards, so the function is
//! decoded from its start (a known instruction boundary) up to that ip,
//! and the store is the instruction that ends there. Its memory operand,
//! computed with the record's registers, must be the watched address; the
//! report says whether it is.

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction, OpKind, Register};
use ksw_vmcore::VirtAddr;
use serde::Serialize;

use super::{DebugInputs, Gap, SourceLine, annotate_trace, frame_gaps, frame_variables};
use crate::kernel::KernelModel;
use crate::locals::{FrameVariable, VariableValue};
use crate::unwind::{self, TaskTrace};
use kstackwatch_contract::record::Catch;

/// The writer's side of a catch.
#[derive(Debug, Clone, Serialize)]
pub struct Writer {
    /// The writing task's pid.
    pub pid: i32,
    /// Its comm.
    pub comm: String,
    /// Its `task_struct`.
    pub task: u64,
    /// The ip the `#DB` saved: the instruction after the store.
    pub trap_ip: u64,
    /// The store, when decoding found it.
    pub store: Option<StoreInstruction>,
    /// The function by its symbol (`foo.isra.0`).
    pub symbol: Option<String>,
    /// The function by its source name, when DWARF has it.
    pub function: Option<String>,
    /// The store's source position, innermost (inlined) first.
    pub source: Vec<SourceLine>,
    /// The writer's variable that held the store's address, if one did.
    pub through: Option<Pointer>,
    /// The writer's stack, from the record's registers.
    pub stack: TaskTrace,
}

/// The storing instruction.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInstruction {
    /// Its address.
    pub address: u64,
    /// `func+off/size [mod]`.
    pub symbol: Option<String>,
    /// AT&T disassembly.
    pub text: String,
    /// The address it writes, from the record's registers (`None` for a
    /// form this reader does not compute, such as a string store).
    pub writes_to: Option<u64>,
    /// The base register of its memory operand.
    pub base_register: Option<String>,
    /// True when the function decodes from its start to the trap's ip;
    /// false when the instruction was found by trying lengths back from it.
    pub decoded_from_function_start: bool,
}

/// A variable that held the store's address.
#[derive(Debug, Clone, Serialize)]
pub struct Pointer {
    /// Its name.
    pub name: String,
    /// Its C type.
    pub type_name: String,
    /// The address it held.
    pub value: u64,
    /// Where it was: `%rdx`, or a stack address.
    pub held_in: String,
}

/// Most bytes of a function decoded to find the store.
const MAX_FUNCTION: u64 = 64 << 10;

pub(super) fn explain(
    model: &KernelModel<'_>,
    debug: &DebugInputs<'_>,
    c: &Catch,
    gaps: &mut Vec<Gap>,
    warnings: &mut Vec<String>,
) -> Writer {
    let ip = c.regs.ip;
    // the symbol of the store: look up ip - 1 (the store may be the last
    // instruction of its function)
    let sym = model.symbols().lookup(ip.wrapping_sub(1));
    let store = match &sym {
        Some(s) => find_store(model, ip, ip.wrapping_sub(1).wrapping_sub(s.offset), c),
        None => find_store(model, ip, 0, c),
    };
    let store = match store {
        Some(mut st) => {
            st.symbol = model.symbols().lookup(st.address).map(|s| s.to_string());
            if let Some(w) = st.writes_to {
                let end = c.watch_addr.saturating_add(u64::from(c.watch_len.max(1)));
                if w >= end || w.saturating_add(8) <= c.watch_addr {
                    warnings.push(format!(
                        "the instruction before the trap ip ({} at {:#x}) writes {w:#x}, not the watched {:#x}: the store may be elsewhere (a string or vector instruction), so its line is only a guess",
                        st.text, st.address, c.watch_addr
                    ));
                }
            }
            Some(st)
        }
        None => {
            warnings.push(format!(
                "no store ending at the trap ip {ip:#x} was found in the dump's code; the writer's line is that of the trap ip"
            ));
            None
        }
    };
    let mut stack = unwind::trace_catch(model, c);
    if stack.task.is_none()
        && let Err(e) = crate::kernel::Task::read(model.memory(), model.layout(), c.writer_task)
    {
        warnings.push(format!(
            "the writer's task_struct at {:#x} cannot be read ({e}): its stack is not placed, and its comm and pid are the catch record's",
            c.writer_task
        ));
    }
    annotate_trace(debug, &mut stack, warnings);
    frame_gaps(&stack, debug, gaps);
    // the store's own line and the variables in scope there: the first
    // frame, moved to the store
    let mut at_store = stack.clone();
    at_store.trace.frames.truncate(2);
    if let (Some(first), Some(st)) = (at_store.trace.frames.first_mut(), &store) {
        first.pc = st.address;
        first.symbol = model.symbols().lookup(st.address);
        first.source.clear();
    }
    annotate_trace(debug, &mut at_store, warnings);
    let variables = frame_variables(model, debug, &at_store, 0, warnings);
    if let Some(f) = at_store.trace.frames.first_mut() {
        f.variables = variables;
    }
    let first = at_store.trace.frames.first();
    if let Some(f) = first {
        super::check_frame_source(debug, f);
    }
    let source: Vec<SourceLine> = first
        .map(|f| {
            f.source
                .iter()
                .map(|p| SourceLine::from_position(p, &debug.sources))
                .collect()
        })
        .unwrap_or_default();
    let function = first
        .and_then(|f| f.source.iter().find(|p| !p.inlined))
        .and_then(|p| p.function.clone());
    let through = match (&store, first) {
        (Some(st), Some(f)) => pointer(st, &f.variables, c),
        _ => None,
    };
    Writer {
        pid: c.writer_pid,
        comm: c.writer_comm(),
        task: c.writer_task,
        trap_ip: ip,
        symbol: sym.map(|s| s.name),
        function,
        source,
        through,
        store,
        stack,
    }
}

/// The instruction ending at `ip`: decoded from `start` when that is a
/// boundary that reaches `ip`, else the longest candidate that ends there.
fn find_store(model: &KernelModel<'_>, ip: u64, start: u64, c: &Catch) -> Option<StoreInstruction> {
    if start != 0 && ip > start && ip - start <= MAX_FUNCTION {
        if let Ok(code) = model
            .memory()
            .read_vec(VirtAddr(start), (ip - start) as usize)
        {
            let mut decoder = Decoder::with_ip(64, &code, start, DecoderOptions::NONE);
            let mut ins = Instruction::default();
            while decoder.can_decode() {
                decoder.decode_out(&mut ins);
                if ins.next_ip() == ip && !ins.is_invalid() {
                    return Some(describe(&ins, c, true));
                }
            }
        }
    }
    // no boundary known: try each length that ends exactly at ip and
    // writes memory, longest first
    let code = model
        .memory()
        .read_vec(VirtAddr(ip.checked_sub(15)?), 15)
        .ok()?;
    for back in (1..=15u64).rev() {
        let from = ip - back;
        let bytes = &code[(15 - back) as usize..];
        let mut decoder = Decoder::with_ip(64, bytes, from, DecoderOptions::NONE);
        let ins = decoder.decode();
        if !ins.is_invalid() && ins.next_ip() == ip && writes_memory(&ins) {
            return Some(describe(&ins, c, false));
        }
    }
    None
}

fn writes_memory(ins: &Instruction) -> bool {
    let mut factory = iced_x86::InstructionInfoFactory::new();
    factory.info(ins).used_memory().iter().any(|m| {
        matches!(
            m.access(),
            iced_x86::OpAccess::Write
                | iced_x86::OpAccess::CondWrite
                | iced_x86::OpAccess::ReadWrite
                | iced_x86::OpAccess::ReadCondWrite
        )
    })
}

fn describe(ins: &Instruction, c: &Catch, from_start: bool) -> StoreInstruction {
    let mut text = String::new();
    GasFormatter::new().format(ins, &mut text);
    let has_memory = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory);
    let base = ins.memory_base();
    let writes_to = has_memory.then(|| effective_address(ins, c)).flatten();
    StoreInstruction {
        address: ins.ip(),
        symbol: None,
        text,
        writes_to,
        base_register: (has_memory && base != Register::None && base != Register::RIP)
            .then(|| format!("{base:?}").to_lowercase()),
        decoded_from_function_start: from_start,
    }
}

/// The memory operand's address with the record's registers (`None` for
/// a segment-relative or RIP-relative form this does not compute).
fn effective_address(ins: &Instruction, c: &Catch) -> Option<u64> {
    if ins.segment_prefix() == Register::GS || ins.segment_prefix() == Register::FS {
        return None;
    }
    let value = |r: Register| -> Option<u64> {
        let g = &c.regs;
        Some(match r.full_register() {
            Register::None => 0,
            Register::RAX => g.ax,
            Register::RBX => g.bx,
            Register::RCX => g.cx,
            Register::RDX => g.dx,
            Register::RSI => g.si,
            Register::RDI => g.di,
            Register::RBP => g.bp,
            Register::RSP => g.sp,
            Register::R8 => g.r8,
            Register::R9 => g.r9,
            Register::R10 => g.r10,
            Register::R11 => g.r11,
            Register::R12 => g.r12,
            Register::R13 => g.r13,
            Register::R14 => g.r14,
            Register::R15 => g.r15,
            Register::RIP => return Some(ins.memory_displacement64()),
            _ => return None,
        })
    };
    if ins.memory_base() == Register::RIP {
        return Some(ins.memory_displacement64());
    }
    let base = value(ins.memory_base())?;
    let index = value(ins.memory_index())?;
    Some(
        base.wrapping_add(index.wrapping_mul(u64::from(ins.memory_index_scale())))
            .wrapping_add(ins.memory_displacement64()),
    )
}

/// The writer's variable whose value, at the store, is the address the
/// store wrote: in the base register, or in memory.
fn pointer(st: &StoreInstruction, vars: &[FrameVariable], c: &Catch) -> Option<Pointer> {
    let target = st.writes_to.unwrap_or(c.watch_addr);
    let base_value = st.base_register.as_deref().and_then(|b| {
        vars.iter().find_map(|v| match &v.value {
            VariableValue::Register { register, value } if register == b => Some((v, *value)),
            _ => None,
        })
    });
    if let Some((v, value)) = base_value {
        return Some(Pointer {
            name: v.name.clone(),
            type_name: v.type_name.clone(),
            value,
            held_in: format!("%{}", st.base_register.as_deref().unwrap_or("?")),
        });
    }
    vars.iter().find_map(|v| match &v.value {
        VariableValue::Memory {
            integer: Some(i),
            address,
            ..
        } if *i == target && v.type_name.contains('*') => Some(Pointer {
            name: v.name.clone(),
            type_name: v.type_name.clone(),
            value: *i,
            held_in: format!("{address:#x}"),
        }),
        VariableValue::Register { register, value }
            if *value == target && v.type_name.contains('*') =>
        {
            Some(Pointer {
                name: v.name.clone(),
                type_name: v.type_name.clone(),
                value: *value,
                held_in: format!("%{register}"),
            })
        }
        _ => None,
    })
}
