//! Which stack an address is on: a task's, a CPU's IRQ stack, or one of
//! its exception (IST) stacks, so that a trace can be cut into segments
//! and labelled as the kernel labels them (`<IRQ>`, `<NMI>`, `<#DB>`).
//!
//! Per CPU, read from memory: `current` (6.1: the per-CPU `current_task`;
//! 6.2+: `pcpu_hot.current_task`), the IRQ stack (`hardirq_stack_ptr`,
//! likewise, which points 8 bytes below its top) and the exception
//! stacks (the per-CPU `cea_exception_stacks` pointer, with the member
//! offsets of `struct cea_exception_stacks` from BTF).

use ksw_vmcore::{KernelMemory, VirtAddr};

use super::{KernelLayout, Result, THREAD_SIZE};

/// The bounds of the task stack that holds `addr`, from its alignment
/// alone, for a task whose `task_struct` cannot be read: a task stack is
/// `THREAD_SIZE` long and `THREAD_SIZE` aligned (vmalloc'd with
/// `THREAD_ALIGN`, or a naturally aligned block of pages).
pub fn aligned_task_stack(addr: u64) -> (u64, u64) {
    let base = addr & !(THREAD_SIZE - 1);
    (base, base + THREAD_SIZE)
}

/// The kind of stack an address is on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StackKind {
    /// A task's stack.
    Task,
    /// A CPU's hard-IRQ stack (softirqs run there too).
    Irq,
    /// A CPU's exception stack, by the kernel's name (`NMI`, `DB`, `DF`,
    /// `MCE`, `VC`, `VC2`).
    Exception(String),
    /// None that the model knows.
    Unknown,
}

impl StackKind {
    /// The kernel's label: `TASK`, `IRQ`, `NMI`, `#DB`, `#DF`, `#MC`.
    pub fn label(&self) -> String {
        match self {
            StackKind::Task => "TASK".into(),
            StackKind::Irq => "IRQ".into(),
            StackKind::Exception(n) if n == "NMI" => "NMI".into(),
            StackKind::Exception(n) if n == "MCE" => "#MC".into(),
            StackKind::Exception(n) => format!("#{n}"),
            StackKind::Unknown => "UNKNOWN".into(),
        }
    }
}

/// One CPU's stacks.
#[derive(Debug, Clone, Default)]
pub struct CpuStacks {
    /// `current` on this CPU.
    pub current: Option<u64>,
    /// The IRQ stack, `[start, end)`.
    pub irq: Option<(u64, u64)>,
    /// Exception stacks: name and `[start, end)`.
    pub exception: Vec<(String, u64, u64)>,
}

/// The stacks of every CPU.
#[derive(Debug, Clone, Default)]
pub struct StackMap {
    cpus: Vec<CpuStacks>,
    currents: Vec<Option<u64>>,
}

impl StackMap {
    /// Reads each CPU's stacks; a CPU whose per-CPU area cannot be read
    /// gets no stacks rather than failing the whole model.
    pub fn from_memory(
        mem: &dyn KernelMemory,
        layout: &KernelLayout,
        per_cpu_offsets: &[u64],
        symbol: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Self> {
        // 6.2+ gathers the hot per-CPU variables in `pcpu_hot`
        let (current_at, irq_at) = match (symbol("pcpu_hot"), layout.pcpu_hot) {
            (Some(h), Some((current, irq))) => (Some(h + current), Some(h + irq)),
            _ => (symbol("current_task"), symbol("hardirq_stack_ptr")),
        };
        let cea = symbol("cea_exception_stacks");
        let mut cpus = Vec::new();
        for &off in per_cpu_offsets {
            let word =
                |at: Option<u64>| at.and_then(|a| mem.read_u64(VirtAddr(a.wrapping_add(off))).ok());
            let mut c = CpuStacks {
                current: word(current_at).filter(|&t| t != 0),
                ..Default::default()
            };
            if let Some(top) = word(irq_at).filter(|&p| p != 0) {
                let end = top + 8;
                c.irq = Some((end - THREAD_SIZE, end));
            }
            if let Some(base) = word(cea).filter(|&p| p != 0) {
                for (name, o, size) in &layout.exception_stacks {
                    c.exception.push((name.clone(), base + o, base + o + size));
                }
            }
            cpus.push(c);
        }
        let currents = cpus.iter().map(|c| c.current).collect();
        Ok(Self { cpus, currents })
    }

    /// `current` per CPU.
    pub fn current_tasks(&self) -> &[Option<u64>] {
        &self.currents
    }

    /// One CPU's stacks.
    pub fn cpu(&self, cpu: u32) -> Option<&CpuStacks> {
        self.cpus.get(cpu as usize)
    }

    /// The stack `sp` is on, given the task stack `[task.0, task.1)`, and
    /// its bounds.
    pub fn classify(
        &self,
        sp: u64,
        cpu: Option<u32>,
        task: Option<(u64, u64)>,
    ) -> (StackKind, Option<(u64, u64)>) {
        if let Some((s, e)) = task
            && (s..e).contains(&sp)
        {
            return (StackKind::Task, Some((s, e)));
        }
        let cpus: Vec<&CpuStacks> = match cpu.and_then(|c| self.cpu(c)) {
            Some(c) => vec![c],
            None => self.cpus.iter().collect(),
        };
        for c in cpus {
            if let Some((s, e)) = c.irq
                && (s..e).contains(&sp)
            {
                return (StackKind::Irq, Some((s, e)));
            }
            for (name, s, e) in &c.exception {
                if (*s..*e).contains(&sp) {
                    return (StackKind::Exception(name.clone()), Some((*s, *e)));
                }
            }
        }
        (StackKind::Unknown, None)
    }
}
