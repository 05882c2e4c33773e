//! Stack traces: ORC rules applied over kernel memory, across exception
//! frames, with every stop named.
//!
//! [`orc`] holds the pure rules; this module drives them: it finds the
//! entry for each pc in the kernel's own tables ([`crate::kernel`]), reads
//! stack words through [`KernelMemory`], labels the stack each frame is on,
//! and stops with a [`StopReason`] instead of ever looping or guessing
//! silently.
//!
//! Starting points: a CPU's registers saved at the crash
//! ([`start_from_registers`]), a sleeping task's `inactive_task_frame`
//! ([`start_from_task`]), or any `pt_regs` a caller has (a kstackwatch
//! catch record).

pub mod orc;
pub mod sp_track;

use ksw_vmcore::{KernelMemory, VirtAddr};

use crate::kernel::stacks::aligned_task_stack;
use crate::kernel::{KernelModel, StackKind, SymbolHit, Task};
use orc::{OrcFrameKind, OrcStepError, PtRegs, RegsFrame, StackWords, UnwindRegs};

/// Frames beyond this many are not followed.
pub const MAX_FRAMES: usize = 256;

/// One frame of a trace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    /// The pc: exact for the first frame and after an exception, else a
    /// return address.
    pub pc: u64,
    /// The stack pointer in this frame.
    pub sp: u64,
    /// True when `pc` is exact rather than a return address.
    pub exact: bool,
    /// The symbol of `pc` (of `pc - 1` for a return address, but with
    /// the offset of `pc` itself, as the kernel prints it).
    pub symbol: Option<SymbolHit>,
    /// The stack this frame is on.
    pub stack: StackKind,
    /// The address of the `pt_regs` this frame was entered through.
    pub regs_at: Option<u64>,
    /// How this frame's caller was found.
    pub caller_rule: CallerRule,
    /// True when `pc` was not on the stack but recovered: a kretprobe or
    /// fprobe had replaced the return address with its trampoline, and
    /// kept the original in the task's rethook list.
    pub recovered: bool,
    /// With debug info: the inline chain at `pc`, innermost first (see
    /// [`crate::symbolize`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<crate::symbolize::SourcePosition>,
    /// Every register of this frame, when it started from a full register
    /// set (the first frame of a walk from saved registers, or a frame
    /// entered through a full `pt_regs`).
    #[serde(skip)]
    pub registers: Option<PtRegs>,
    /// With debug info and when asked: the function's parameters and
    /// locals at `pc` (see [`crate::locals`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<crate::locals::FrameVariable>,
}

impl Frame {
    /// A frame at the exact address `pc`, not found by a walk: what the
    /// annotators (`symbolize`, `locals`) take to describe an address.
    pub fn at(pc: u64, symbol: Option<SymbolHit>) -> Frame {
        Frame {
            pc,
            sp: 0,
            exact: true,
            symbol,
            stack: StackKind::Unknown,
            regs_at: None,
            caller_rule: CallerRule::Orc,
            recovered: false,
            source: Vec::new(),
            registers: None,
            variables: Vec::new(),
        }
    }
}

/// Why a walk ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum StopReason {
    /// The kernel's end-of-stack marker: the trace is complete.
    EndOfStack,
    /// A `pt_regs` from user mode: the kernel part is complete.
    UserMode {
        /// The user-mode pc.
        pc: u64,
        /// The user-mode sp.
        sp: u64,
    },
    /// No ORC entry covers this pc (not kernel text, or a module whose
    /// table is not loaded).
    NoUnwindInfo {
        /// The pc.
        pc: u64,
    },
    /// The ORC entry here says "undefined".
    UndefinedUnwindInfo {
        /// The pc.
        pc: u64,
    },
    /// The ORC entry could not be decoded.
    BadUnwindInfo {
        /// The pc.
        pc: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// A stack word could not be read (excluded page, unmapped, not on a
    /// known stack).
    UnreadableStack {
        /// The address.
        addr: u64,
    },
    /// The rule needs a register only a full `pt_regs` gives.
    RegisterUnknown {
        /// The pc.
        pc: u64,
    },
    /// The caller's sp is not above this frame's on the same stack, or a
    /// stack was entered twice: the chain loops or is corrupt.
    NotProgressing {
        /// This frame's sp.
        sp: u64,
        /// The caller's sp.
        next_sp: u64,
    },
    /// The return address is not in kernel text.
    NotKernelText {
        /// The address.
        pc: u64,
    },
    /// [`MAX_FRAMES`] frames.
    TooManyFrames,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EndOfStack => write!(f, "end of stack"),
            Self::UserMode { pc, sp } => write!(f, "user mode (pc {pc:#x}, sp {sp:#x})"),
            Self::NoUnwindInfo { pc } => write!(f, "no ORC entry covers {pc:#x}"),
            Self::UndefinedUnwindInfo { pc } => write!(f, "the ORC entry for {pc:#x} is undefined"),
            Self::BadUnwindInfo { pc, detail } => write!(f, "bad ORC entry for {pc:#x}: {detail}"),
            Self::UnreadableStack { addr } => write!(f, "stack word at {addr:#x} cannot be read"),
            Self::RegisterUnknown { pc } => {
                write!(f, "the rule at {pc:#x} needs a register no pt_regs gave")
            }
            Self::NotProgressing { sp, next_sp } => {
                write!(
                    f,
                    "the stack goes the wrong way (sp {sp:#x} -> {next_sp:#x})"
                )
            }
            Self::NotKernelText { pc } => write!(f, "return address {pc:#x} is not kernel text"),
            Self::TooManyFrames => write!(f, "more than {MAX_FRAMES} frames"),
        }
    }
}

/// A stack trace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trace {
    /// The frames, innermost first.
    pub frames: Vec<Frame>,
    /// Why the walk ended.
    pub stop: StopReason,
}

/// Where a walk starts.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// The registers.
    pub regs: UnwindRegs,
    /// The CPU whose IRQ and exception stacks apply, if known.
    pub cpu: Option<u32>,
    /// The task's stack bounds, if known.
    pub task_stack: Option<(u64, u64)>,
    /// The task's `task_struct`, if known (for return addresses that
    /// kretprobes or fprobes replaced).
    pub task: Option<u64>,
}

/// A start from a full register set (a CPU's `crash_notes`, a catch
/// record's `pt_regs`).
pub fn start_from_registers(regs: PtRegs, cpu: Option<u32>, task: Option<&Task>) -> Start {
    Start {
        regs: UnwindRegs {
            ip: regs.0[PtRegs::IP],
            sp: regs.0[PtRegs::SP],
            bp: regs.0[PtRegs::BP],
            exact_ip: true,
            regs: RegsFrame::Full(0, regs),
        },
        cpu,
        task_stack: task.map(Task::stack_range),
        task: task.map(|t| t.address),
    }
}

/// A start from a task that is not running: the frame `__switch_to_asm`
/// left at `thread.sp`.
pub fn start_from_task(model: &KernelModel<'_>, task: &Task) -> Result<Start, ksw_vmcore::Error> {
    let l = model.layout();
    let mem = model.memory();
    let bp = mem.read_u64(VirtAddr(task.saved_sp + l.frame_bp))?;
    let ip = mem.read_u64(VirtAddr(task.saved_sp + l.frame_ret_addr))?;
    // a task that never ran resumes at ret_from_fork: an exact pc
    let forked = ["ret_from_fork_asm", "ret_from_fork"]
        .iter()
        .any(|n| model.symbols().address_of(n) == Some(ip));
    Ok(Start {
        regs: UnwindRegs {
            ip,
            sp: task.saved_sp + l.frame_size,
            bp,
            exact_ip: forked,
            regs: RegsFrame::None,
        },
        cpu: Some(task.cpu),
        task_stack: Some(task.stack_range()),
        task: Some(task.address),
    })
}

/// More rethook nodes than a task has; the list is corrupt beyond.
const MAX_RETHOOKS: usize = 4096;

/// The return address a kretprobe or fprobe saved when it replaced the
/// one in the stack slot at `slot` with its trampoline, from `task`'s
/// rethook list (nodes record the slot as `frame`).
fn rethook_return_address(model: &KernelModel<'_>, task: u64, slot: u64) -> Option<u64> {
    let l = model.layout().rethook?;
    let mem = model.memory();
    let mut node = mem
        .read_u64(VirtAddr(task.wrapping_add(l.task_rethooks)))
        .ok()?;
    for _ in 0..MAX_RETHOOKS {
        if node == 0 {
            return None;
        }
        let at = node.wrapping_sub(l.llist);
        if mem.read_u64(VirtAddr(at.wrapping_add(l.frame))).ok()? == slot {
            return mem.read_u64(VirtAddr(at.wrapping_add(l.ret_addr))).ok();
        }
        node = mem.read_u64(VirtAddr(node)).ok()?;
    }
    None
}

struct Words<'a>(&'a dyn KernelMemory);

impl StackWords for Words<'_> {
    fn word(&self, addr: u64) -> Option<u64> {
        self.0.read_u64(VirtAddr(addr)).ok()
    }
    fn bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.0.read_vec(VirtAddr(addr), len).ok()
    }
}

/// The stack `sp` is on. When the trace's task is known but its
/// `task_struct` could not be read (a page the dump left out), an `sp` on
/// none of the CPUs' own stacks is on that task's stack, whose bounds
/// follow from its alignment ([`aligned_task_stack`]).
fn classify(model: &KernelModel<'_>, start: &Start, sp: u64) -> (StackKind, Option<(u64, u64)>) {
    let found = model.stacks().classify(sp, start.cpu, start.task_stack);
    match found {
        (StackKind::Unknown, _)
            if start.task_stack.is_none() && start.task.is_some() && sp >= KERNEL_SPACE =>
        {
            (StackKind::Task, Some(aligned_task_stack(sp)))
        }
        found => found,
    }
}

/// Where the kernel's half of the address space begins with 5-level
/// paging (with 4 levels, what lies below 0xffff800000000000 is not
/// canonical, so no stack is there).
const KERNEL_SPACE: u64 = 0xff00_0000_0000_0000;

/// Walks the stack from `start`.
pub fn unwind(model: &KernelModel<'_>, start: Start) -> Trace {
    let words = Words(model.memory());
    let mut state = start.regs;
    let mut frames = Vec::new();
    let mut left: Vec<(u64, u64)> = Vec::new();
    let (mut kind, mut bounds) = classify(model, &start, state.sp);
    let mut regs_at = None;
    let mut recovered = false;
    let trampoline = model.symbols().address_of("arch_rethook_trampoline");
    let stop = loop {
        if frames.len() >= MAX_FRAMES {
            break StopReason::TooManyFrames;
        }
        let pc = state.lookup_ip();
        let symbol = model.symbols().lookup(pc).map(|mut s| {
            // the kernel prints the offset of the address itself
            s.offset += state.ip - pc;
            s
        });
        if symbol.is_none() && frames.is_empty() && !is_kernel(state.ip) {
            break StopReason::NotKernelText { pc: state.ip };
        }
        let func = symbol
            .as_ref()
            .map(|s| (pc - (s.offset - (state.ip - pc)), s.size));
        frames.push(Frame {
            pc: state.ip,
            sp: state.sp,
            exact: state.exact_ip,
            symbol,
            stack: kind.clone(),
            regs_at,
            caller_rule: CallerRule::Orc,
            recovered,
            source: Vec::new(),
            registers: match state.regs {
                RegsFrame::Full(_, r) => Some(r),
                _ => None,
            },
            variables: Vec::new(),
        });
        // ORC first; where it has nothing, a debug file's CFI, then SP
        // tracking through the function's code, then a frame-pointer guess
        let (orc_entry, covered) = match model.orc().find(pc) {
            None => (None, false),
            Some(Err(e)) => {
                break StopReason::BadUnwindInfo {
                    pc: state.ip,
                    detail: e.to_string(),
                };
            }
            Some(Ok(e)) if e.kind == OrcFrameKind::EndOfStack => break StopReason::EndOfStack,
            Some(Ok(e)) if e.kind == OrcFrameKind::Undefined => (None, true),
            Some(Ok(e)) => (Some(e), true),
        };
        let cfi = || model.call_frames().and_then(|c| c.entry_at(pc));
        let (entry, rule) = match orc_entry {
            Some(e) => (e, CallerRule::Orc),
            None if let Some(e) = cfi() => (e, CallerRule::DwarfCfi),
            None => match func.and_then(|f| derived_entry(model, f, pc)) {
                Some(e) => (e, CallerRule::SpTracking),
                // objtool said "undefined": not frame-pointer code either
                None if covered => break StopReason::UndefinedUnwindInfo { pc: state.ip },
                // code with a symbol but no table (a module without ORC)
                None if func.is_some() => (FRAME_POINTER_GUESS, CallerRule::FramePointerGuess),
                None => break StopReason::NoUnwindInfo { pc: state.ip },
            },
        };
        if let Some(f) = frames.last_mut() {
            f.caller_rule = rule;
        }
        let mut next = match orc::step(&entry, &state, &words) {
            Ok(n) => n,
            Err(OrcStepError::Unreadable(addr)) => break StopReason::UnreadableStack { addr },
            Err(OrcStepError::RegisterUnknown(_)) => {
                break StopReason::RegisterUnknown { pc: state.ip };
            }
            Err(OrcStepError::BadRule(r)) => {
                break StopReason::BadUnwindInfo {
                    pc: state.ip,
                    detail: format!("rule {r:?}"),
                };
            }
        };
        if let RegsFrame::Full(_, r) | RegsFrame::Partial(_, r) = next.regs
            && r.user_mode()
        {
            break StopReason::UserMode {
                pc: next.ip,
                sp: next.sp,
            };
        }
        let (next_kind, next_bounds) = classify(model, &start, next.sp);
        if next_bounds == bounds {
            if next.sp <= state.sp {
                break StopReason::NotProgressing {
                    sp: state.sp,
                    next_sp: next.sp,
                };
            }
        } else {
            // each stack is left at most once
            if let Some(b) = bounds {
                left.push(b);
            }
            if next_bounds.is_some_and(|b| left.contains(&b)) {
                break StopReason::NotProgressing {
                    sp: state.sp,
                    next_sp: next.sp,
                };
            }
        }
        // a return address replaced by a kretprobe or fprobe
        recovered = false;
        if next.regs == RegsFrame::None
            && Some(next.ip) == trampoline
            && let Some(task) = start.task
            && let Some(ret) = rethook_return_address(model, task, next.sp.wrapping_sub(8))
        {
            next.ip = ret;
            recovered = true;
        }
        if !is_kernel(next.ip) {
            break StopReason::NotKernelText { pc: next.ip };
        }
        regs_at = match next.regs {
            RegsFrame::Full(a, _) | RegsFrame::Partial(a, _) => Some(a),
            RegsFrame::None => None,
        };
        (kind, bounds) = (next_kind, next_bounds);
        state = next;
    };
    Trace { frames, stop }
}

/// Call-frame rules from a debug file (DWARF `.debug_frame`), as ORC
/// entries, for pcs ORC does not describe.
pub trait CallFrameRules {
    /// The rule at runtime address `pc`, if the file has one this
    /// unwinder can apply (CFA from rsp or rbp, the return address just
    /// below the CFA).
    fn entry_at(&self, pc: u64) -> Option<orc::OrcEntry>;
}

/// How a frame's caller was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallerRule {
    /// The kernel's ORC entry for the pc.
    Orc,
    /// ORC has no rule here; a debug file's DWARF call-frame
    /// information does.
    DwarfCfi,
    /// ORC has no rule here (objtool left it undefined, or no table
    /// covers the pc): SP was tracked through the function's code.
    SpTracking,
    /// Neither: the frame-pointer convention was assumed (`push %rbp;
    /// mov %rsp,%rbp`), which kernels built without frame pointers do
    /// not follow. A guess.
    FramePointerGuess,
}

/// The frame-pointer convention as an unwind rule: CFA = rbp + 16, the
/// caller's rbp saved at CFA - 16.
const FRAME_POINTER_GUESS: orc::OrcEntry = orc::OrcEntry {
    sp_offset: 16,
    bp_offset: -16,
    sp_reg: orc::OrcReg::Bp,
    bp_reg: orc::OrcReg::PrevSp,
    kind: OrcFrameKind::Call,
    signal: false,
};

/// A call-frame rule for `pc` in the function `(start, size)`, from SP
/// tracking over its code (see [`sp_track`]).
fn derived_entry(
    model: &KernelModel<'_>,
    (start, size): (u64, u64),
    pc: u64,
) -> Option<orc::OrcEntry> {
    if size == 0 || size > 1 << 16 {
        return None;
    }
    let code = model
        .memory()
        .read_vec(VirtAddr(start), size as usize)
        .ok()?;
    let cfa = sp_track::cfa_offset_at(&code, start, pc)?;
    Some(orc::OrcEntry {
        sp_offset: i16::try_from(cfa).ok()?,
        bp_offset: 0,
        sp_reg: orc::OrcReg::Sp,
        bp_reg: orc::OrcReg::Undefined,
        kind: OrcFrameKind::Call,
        signal: false,
    })
}

fn is_kernel(addr: u64) -> bool {
    addr >= 0xffff_8000_0000_0000
}

/// Where a trace's first registers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceOrigin {
    /// The CPU's registers saved at the crash (`crash_notes`).
    CrashRegisters,
    /// The frame the task left when it was switched out.
    SwitchFrame,
    /// The writer's registers in a kstackwatch catch record, at the
    /// instruction after the caught store.
    CatchRecord,
    /// The task was running, but its CPU saved no registers: the frame
    /// it left when last switched out, which may be stale.
    StaleSwitchFrame,
}

/// A trace of one task or CPU, with what it is of.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskTrace {
    /// The task, when known.
    pub task: Option<Task>,
    /// The CPU, for a running task.
    pub cpu: Option<u32>,
    /// Where the first registers came from.
    pub origin: TraceOrigin,
    /// The trace.
    pub trace: Trace,
}

/// Why no trace could be started.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The dump has no registers for this CPU.
    #[error("CPU {0} saved no registers in this dump (it is not in crash_notes)")]
    NoRegisters(u32),
    /// The kernel model failed.
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
    /// The task's saved frame could not be read.
    #[error("task {pid}'s saved frame: {source}")]
    SavedFrame {
        /// The task.
        pid: i32,
        /// The reader's error.
        source: ksw_vmcore::Error,
    },
}

/// The trace of what `cpu` ran at the crash, from its saved registers.
pub fn trace_cpu(model: &KernelModel<'_>, cpu: u32) -> Result<TaskTrace, TraceError> {
    let regs = model
        .crash_registers()?
        .into_iter()
        .find(|c| c.cpu == cpu)
        .ok_or(TraceError::NoRegisters(cpu))?;
    let current = model.current_tasks().get(cpu as usize).copied().flatten();
    // read `current` itself: the task list may be cut by an excluded page
    let task = current.and_then(|a| Task::read(model.memory(), model.layout(), a).ok());
    let mut pt = [0u64; 21];
    pt.copy_from_slice(&regs.registers.0[..21]);
    let mut start = start_from_registers(PtRegs(pt), Some(cpu), task.as_ref());
    // unreadable, but known: its stack is still told from the others
    start.task = start.task.or(current);
    Ok(TaskTrace {
        task,
        cpu: Some(cpu),
        origin: TraceOrigin::CrashRegisters,
        trace: unwind(model, start),
    })
}

/// The trace of `task`: from its CPU's crash registers if it was running
/// there, else from the frame it left when switched out.
pub fn trace_task(model: &KernelModel<'_>, task: &Task) -> Result<TaskTrace, TraceError> {
    let running_on = model
        .current_tasks()
        .iter()
        .position(|&c| c == Some(task.address))
        .map(|c| c as u32);
    if let Some(cpu) = running_on {
        match trace_cpu(model, cpu) {
            Ok(t) => return Ok(t),
            Err(TraceError::NoRegisters(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let start = start_from_task(model, task).map_err(|e| TraceError::SavedFrame {
        pid: task.pid,
        source: e,
    })?;
    let origin = if running_on.is_some() || task.on_cpu {
        TraceOrigin::StaleSwitchFrame
    } else {
        TraceOrigin::SwitchFrame
    };
    Ok(TaskTrace {
        task: Some(task.clone()),
        cpu: running_on,
        origin,
        trace: unwind(model, start),
    })
}

/// The writer's trace at a kstackwatch catch, from the record's `pt_regs`
/// (saved by the `#DB` handler: the instruction after the store).
pub fn trace_catch(
    model: &KernelModel<'_>,
    catch: &kstackwatch_contract::record::Catch,
) -> TaskTrace {
    let r = &catch.regs;
    let regs = PtRegs([
        r.r15, r.r14, r.r13, r.r12, r.bp, r.bx, r.r11, r.r10, r.r9, r.r8, r.ax, r.cx, r.dx, r.si,
        r.di, r.orig_ax, r.ip, r.cs, r.flags, r.sp, r.ss,
    ]);
    let task = Task::read(model.memory(), model.layout(), catch.writer_task).ok();
    let mut start = start_from_registers(regs, Some(catch.cpu), task.as_ref());
    // unreadable, but known: its stack is still told from the others
    start.task = start.task.or(Some(catch.writer_task).filter(|&t| t != 0));
    TaskTrace {
        task,
        cpu: Some(catch.cpu),
        origin: TraceOrigin::CatchRecord,
        trace: unwind(model, start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Stack(Vec<(u64, u64)>);

    impl StackWords for Stack {
        fn word(&self, addr: u64) -> Option<u64> {
            self.0.iter().find(|(a, _)| *a == addr).map(|(_, v)| *v)
        }
        fn bytes(&self, _: u64, _: usize) -> Option<Vec<u8>> {
            None
        }
    }

    #[test]
    fn the_frame_pointer_guess_follows_the_rbp_chain() {
        // push %rbp; mov %rsp,%rbp: saved rbp at rbp, return address above
        let stack = Stack(vec![(0x1000, 0x2000), (0x1008, 0xffff_ffff_8100_1234)]);
        let s = UnwindRegs {
            ip: 0xffff_ffff_8100_0000,
            sp: 0xff0,
            bp: 0x1000,
            exact_ip: true,
            regs: RegsFrame::None,
        };
        let n = orc::step(&FRAME_POINTER_GUESS, &s, &stack).unwrap();
        assert_eq!((n.ip, n.sp, n.bp), (0xffff_ffff_8100_1234, 0x1010, 0x2000));
        assert!(!n.exact_ip);
    }
}
