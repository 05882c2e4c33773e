//! The task list: every thread of every process, from `init_task`.
//!
//! Processes hang off `init_task.tasks`; the threads of each process off
//! `signal->thread_head`, linked through `task_struct.thread_node` (the
//! list that outlived `thread_group`). Walks are bounded and detect
//! cycles, since a dump may hold a list caught mid-update or corrupted.

use std::collections::HashSet;

use ksw_vmcore::{KernelMemory, VirtAddr};

use super::{KernelError, KernelLayout, Result};

/// More tasks than any kernel has; a longer list is corrupt.
const MAX_TASKS: usize = 1 << 22;

/// A task's scheduling state, as `ps` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TaskState {
    /// `R`: running or runnable.
    Running,
    /// `S`: interruptible sleep.
    Sleeping,
    /// `D`: uninterruptible sleep.
    DiskSleep,
    /// `T`: stopped.
    Stopped,
    /// `t`: stopped by a tracer.
    Traced,
    /// `X`: dead.
    Dead,
    /// `Z`: zombie.
    Zombie,
    /// `P`: parked.
    Parked,
    /// `I`: idle kernel thread.
    Idle,
}

impl TaskState {
    /// Decodes `__state` and `exit_state` as the kernel's
    /// `task_state_index()` does.
    pub fn decode(state: u32, exit_state: u32) -> Self {
        const TASK_IDLE: u32 = 0x0002 | 0x0400;
        if state == TASK_IDLE {
            return Self::Idle;
        }
        let s = (state | exit_state) & 0x7f;
        match s {
            0 => Self::Running,
            _ if s & 0x01 != 0 => Self::Sleeping,
            _ if s & 0x02 != 0 => Self::DiskSleep,
            _ if s & 0x04 != 0 => Self::Stopped,
            _ if s & 0x08 != 0 => Self::Traced,
            _ if s & 0x10 != 0 => Self::Dead,
            _ if s & 0x20 != 0 => Self::Zombie,
            _ => Self::Parked,
        }
    }

    /// The one-letter code `ps` prints.
    pub fn letter(self) -> char {
        match self {
            Self::Running => 'R',
            Self::Sleeping => 'S',
            Self::DiskSleep => 'D',
            Self::Stopped => 'T',
            Self::Traced => 't',
            Self::Dead => 'X',
            Self::Zombie => 'Z',
            Self::Parked => 'P',
            Self::Idle => 'I',
        }
    }
}

/// One task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Task {
    /// The `task_struct` address.
    pub address: u64,
    /// The thread ID.
    pub pid: i32,
    /// The process ID.
    pub tgid: i32,
    /// `comm`.
    pub comm: String,
    /// The state.
    pub state: TaskState,
    /// The CPU it last ran on.
    pub cpu: u32,
    /// `on_cpu`: it is running now (or being switched).
    pub on_cpu: bool,
    /// The stack's lowest address (`task->stack`).
    pub stack: u64,
    /// `thread.sp`: where `__switch_to_asm` left its frame.
    pub saved_sp: u64,
}

impl Task {
    /// Reads the task at `address`.
    pub fn read(mem: &dyn KernelMemory, l: &KernelLayout, address: u64) -> Result<Self> {
        let at = |o: u64| VirtAddr(address.wrapping_add(o));
        let err = |e| KernelError::Memory {
            what: format!("task_struct at {address:#x}"),
            source: e,
        };
        let comm = mem.read_vec(at(l.task_comm), 16).map_err(err)?;
        let end = comm.iter().position(|&b| b == 0).unwrap_or(16);
        Ok(Self {
            address,
            pid: mem.read_u32(at(l.task_pid)).map_err(err)? as i32,
            tgid: mem.read_u32(at(l.task_tgid)).map_err(err)? as i32,
            comm: String::from_utf8_lossy(&comm[..end]).into_owned(),
            state: TaskState::decode(
                mem.read_u32(at(l.task_state)).map_err(err)?,
                mem.read_u32(at(l.task_exit_state)).map_err(err)?,
            ),
            cpu: mem.read_u32(at(l.task_cpu)).map_err(err)?,
            on_cpu: mem.read_u32(at(l.task_on_cpu)).map_err(err)? != 0,
            stack: mem.read_u64(at(l.task_stack)).map_err(err)?,
            saved_sp: mem.read_u64(at(l.task_thread_sp)).map_err(err)?,
        })
    }

    /// The stack's bounds, `[stack, stack + THREAD_SIZE)`.
    pub fn stack_range(&self) -> (u64, u64) {
        (self.stack, self.stack.wrapping_add(super::THREAD_SIZE))
    }
}

/// The node after `node` (`node->next`), checked as `CONFIG_DEBUG_LIST`
/// checks it: the next node must point back (`next->prev == node`), so
/// that a pointer into garbage is not taken for a list entry.
fn next_of(mem: &dyn KernelMemory, node: u64, what: &str) -> Result<u64> {
    let read = |at: u64, which: String| {
        mem.read_u64(VirtAddr(at)).map_err(|e| KernelError::Memory {
            what: which,
            source: e,
        })
    };
    let next = read(node, format!("{what}: list node {node:#x}"))?;
    let back = read(
        next.wrapping_add(8),
        format!("{what}: list node {next:#x} (after {node:#x})"),
    )?;
    if back != node {
        return Err(KernelError::Corrupt(format!(
            "{what}: list node {next:#x} (after {node:#x}) does not point back to it (its prev is {back:#x})"
        )));
    }
    Ok(next)
}

/// The node before `node` (`node->prev`), checked as [`next_of`] is.
fn prev_of(mem: &dyn KernelMemory, node: u64) -> Option<u64> {
    let prev = mem.read_u64(VirtAddr(node.wrapping_add(8))).ok()?;
    let forth = mem.read_u64(VirtAddr(prev)).ok()?;
    (forth == node).then_some(prev)
}

/// The `container_of` addresses along a `list_head` list that starts at
/// `head`, each minus `member_offset`.
fn list(mem: &dyn KernelMemory, head: u64, member_offset: u64, what: &str) -> Result<Vec<u64>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut node = head;
    loop {
        let next = next_of(mem, node, what)?;
        if next == head {
            return Ok(out);
        }
        if !seen.insert(next) || out.len() >= MAX_TASKS {
            return Err(KernelError::Corrupt(format!(
                "{what}: the list loops at {next:#x} without returning to its head"
            )));
        }
        out.push(next.wrapping_sub(member_offset));
        node = next;
    }
}

/// The list from `head`; when a node cannot be read or a link is broken
/// (a node that does not point back), the rest is taken backwards from
/// the head through `prev` (the second word), so one excluded page or one
/// bad pointer loses only the entries there. The second value names where
/// the forward walk stopped.
fn list_both_ways(
    mem: &dyn KernelMemory,
    head: u64,
    member_offset: u64,
    what: &str,
) -> Result<(Vec<u64>, Option<KernelError>)> {
    match list(mem, head, member_offset, what) {
        Ok(v) => Ok((v, None)),
        Err(e @ (KernelError::Memory { .. } | KernelError::Corrupt(_))) => {
            let mut forward = Vec::new();
            let mut node = head;
            while let Ok(next) = next_of(mem, node, what) {
                if next == head
                    || forward.len() >= MAX_TASKS
                    || forward.contains(&next.wrapping_sub(member_offset))
                {
                    break;
                }
                forward.push(next.wrapping_sub(member_offset));
                node = next;
            }
            // `forward` ends with the last node whose successor is sound
            let mut backward = Vec::new();
            let mut node = head;
            while let Some(prev) = prev_of(mem, node) {
                let item = prev.wrapping_sub(member_offset);
                if prev == head
                    || forward.contains(&item)
                    || backward.contains(&item)
                    || backward.len() >= MAX_TASKS
                {
                    break;
                }
                backward.push(item);
                node = prev;
            }
            backward.reverse();
            forward.extend(backward);
            Ok((forward, Some(e)))
        }
        Err(e) => Err(e),
    }
}

/// Every task reachable from `init_task` at `init`, and what could not be
/// read on the way (the tasks on an excluded page are missing).
pub fn walk(
    mem: &dyn KernelMemory,
    l: &KernelLayout,
    init: u64,
) -> Result<(Vec<Task>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut leaders = vec![init];
    let (rest, err) = list_both_ways(
        mem,
        init.wrapping_add(l.task_tasks),
        l.task_tasks,
        "the process list",
    )?;
    leaders.extend(rest);
    warnings.extend(err.map(|e| e.to_string()));
    let mut out = Vec::new();
    for p in leaders {
        let signal = match mem.read_u64(VirtAddr(p.wrapping_add(l.task_signal))) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("task {p:#x}'s signal: {e}"));
                continue;
            }
        };
        let (threads, err) = list_both_ways(
            mem,
            signal.wrapping_add(l.signal_thread_head),
            l.task_thread_node,
            "a thread list",
        )?;
        warnings.extend(err.map(|e| e.to_string()));
        let threads = if threads.is_empty() { vec![p] } else { threads };
        for t in threads {
            match Task::read(mem, l, t) {
                Ok(task) => out.push(task),
                Err(e) => warnings.push(e.to_string()),
            }
        }
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_decode_as_ps_shows_them() {
        assert_eq!(TaskState::decode(0, 0).letter(), 'R');
        assert_eq!(TaskState::decode(1, 0).letter(), 'S');
        assert_eq!(TaskState::decode(2, 0).letter(), 'D');
        assert_eq!(TaskState::decode(0x402, 0).letter(), 'I');
        assert_eq!(TaskState::decode(0, 0x20).letter(), 'Z');
        assert_eq!(TaskState::decode(0x40, 0).letter(), 'P');
    }

    /// A `list_head` at `at`: `next`, then `prev`.
    fn node(
        mem: ksw_vmcore::RegionMemory,
        at: u64,
        next: u64,
        prev: u64,
    ) -> ksw_vmcore::RegionMemory {
        let mut b = next.to_le_bytes().to_vec();
        b.extend(prev.to_le_bytes());
        mem.with(VirtAddr(at), b)
    }

    #[test]
    fn a_link_that_does_not_point_back_is_named() {
        // head 0x1000 <-> 0x2000 <-> 0x3000 <-> head, but 0x3000's next
        // goes back to 0x2000: following it would loop
        let mem = ksw_vmcore::RegionMemory::new();
        let mem = node(mem, 0x1000, 0x2000, 0x3000);
        let mem = node(mem, 0x2000, 0x3000, 0x1000);
        let mem = node(mem, 0x3000, 0x2000, 0x2000);
        let e = list(&mem, 0x1000, 0, "the process list").unwrap_err();
        assert!(e.to_string().contains("does not point back"), "{e}");
        let (items, e) = list_both_ways(&mem, 0x1000, 0, "x").unwrap();
        assert_eq!(items, [0x2000, 0x3000]);
        assert!(e.is_some());
        let short = ksw_vmcore::RegionMemory::new()
            .with(VirtAddr(0x1000), 0x2000u64.to_le_bytes().to_vec());
        assert!(matches!(
            list(&short, 0x1000, 0, "x"),
            Err(KernelError::Memory { .. })
        ));
    }

    #[test]
    fn a_pointer_into_garbage_is_not_an_entry() {
        // head's next points at two words of garbage; prev is sound
        let mem = ksw_vmcore::RegionMemory::new();
        let mem = node(mem, 0x1000, 0x5000, 0x3000);
        let mem = node(mem, 0x2000, 0x3000, 0x1000);
        let mem = node(mem, 0x3000, 0x1000, 0x2000);
        let mem = node(mem, 0x5000, 0xaaaa, 0xbbbb);
        let (items, e) = list_both_ways(&mem, 0x1000, 0, "the process list").unwrap();
        assert_eq!(items, [0x2000, 0x3000]);
        let e = e.expect("the broken link is named").to_string();
        assert!(
            e.contains("0x5000") && e.contains("does not point back"),
            "{e}"
        );
    }
}
