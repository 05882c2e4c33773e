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

/// The `container_of` addresses along a `list_head` list that starts at
/// `head`, each minus `member_offset`.
fn list(mem: &dyn KernelMemory, head: u64, member_offset: u64, what: &str) -> Result<Vec<u64>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut node = head;
    loop {
        let next = mem
            .read_u64(VirtAddr(node))
            .map_err(|e| KernelError::Memory {
                what: format!("{what}: list node {node:#x}"),
                source: e,
            })?;
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

/// The list from `head`; when a node cannot be read, the rest is taken
/// backwards from the head through `prev` (the second word), so one
/// excluded page loses only the entries on it. The second value names the
/// node that could not be read.
fn list_both_ways(
    mem: &dyn KernelMemory,
    head: u64,
    member_offset: u64,
    what: &str,
) -> Result<(Vec<u64>, Option<KernelError>)> {
    match list(mem, head, member_offset, what) {
        Ok(v) => Ok((v, None)),
        Err(e @ KernelError::Memory { .. }) => {
            let mut forward = Vec::new();
            let mut node = head;
            while let Ok(next) = mem.read_u64(VirtAddr(node)) {
                if next == head
                    || forward.len() >= MAX_TASKS
                    || forward.contains(&next.wrapping_sub(member_offset))
                {
                    break;
                }
                forward.push(next.wrapping_sub(member_offset));
                node = next;
            }
            // `forward` ends with the node whose `next` could not be read
            let mut backward = Vec::new();
            let mut node = head;
            while let Ok(prev) = mem.read_u64(VirtAddr(node + 8)) {
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
    let (rest, err) = list_both_ways(mem, init + l.task_tasks, l.task_tasks, "the process list")?;
    leaders.extend(rest);
    warnings.extend(err.map(|e| e.to_string()));
    let mut out = Vec::new();
    for p in leaders {
        let signal = match mem.read_u64(VirtAddr(p + l.task_signal)) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("task {p:#x}'s signal: {e}"));
                continue;
            }
        };
        let (threads, err) = list_both_ways(
            mem,
            signal + l.signal_thread_head,
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

    #[test]
    fn a_looping_list_is_named() {
        // head at 0x1000 -> 0x2000 -> 0x3000 -> 0x2000 ...
        let mem = ksw_vmcore::RegionMemory::new()
            .with(VirtAddr(0x1000), 0x2000u64.to_le_bytes().to_vec())
            .with(VirtAddr(0x2000), 0x3000u64.to_le_bytes().to_vec())
            .with(VirtAddr(0x3000), 0x2000u64.to_le_bytes().to_vec());
        let e = list(&mem, 0x1000, 0, "the process list").unwrap_err();
        assert!(e.to_string().contains("loops"), "{e}");
        let short = ksw_vmcore::RegionMemory::new()
            .with(VirtAddr(0x1000), 0x2000u64.to_le_bytes().to_vec());
        assert!(matches!(
            list(&short, 0x1000, 0, "x"),
            Err(KernelError::Memory { .. })
        ));
    }
}
