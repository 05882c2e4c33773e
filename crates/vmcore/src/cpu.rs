//! Per-CPU registers saved at the crash: `NT_PRSTATUS` notes, matched to
//! CPUs.
//!
//! The file's note order is not the CPU order: the capture kernel drops
//! the notes of CPUs that did not respond, and merges the rest. When kdump
//! saved the dump (VMCOREINFO has `CRASHTIME`), each CPU's note is read from
//! its own per-CPU `crash_notes` buffer in the dump's memory, which is
//! exact. QEMU's dumps put `cpu_index + 1` in `pr_pid`, which is used when
//! there is no `crash_notes`. Only as a last resort is note order used, and
//! the result says so.

use serde::Serialize;

use crate::addr::VirtAddr;
use crate::bytes::{le_u32, le_u64};
use crate::elf::{NT_PRSTATUS, NoteIter};
use crate::error::{Error, Result};

/// Size of x86_64 `struct elf_prstatus`.
pub const PRSTATUS_SIZE: usize = 336;
/// Offset of `pr_pid`.
const PR_PID: usize = 32;
/// Offset of `pr_reg`.
const PR_REG: usize = 112;

/// The names of `pr_reg`'s 27 slots (`struct user_regs_struct` order).
pub const REGISTER_NAMES: [&str; 27] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];

/// An x86_64 register set, in `user_regs_struct` order (a `pt_regs` is a
/// prefix of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86Registers(pub [u64; 27]);

impl X86Registers {
    /// The register called `name` (as in [`REGISTER_NAMES`]).
    pub fn get(&self, name: &str) -> Option<u64> {
        REGISTER_NAMES
            .iter()
            .position(|&n| n == name)
            .map(|i| self.0[i])
    }

    /// The instruction pointer.
    pub fn rip(&self) -> u64 {
        self.0[16]
    }

    /// The stack pointer.
    pub fn rsp(&self) -> u64 {
        self.0[19]
    }

    /// The frame pointer.
    pub fn rbp(&self) -> u64 {
        self.0[4]
    }
}

impl Serialize for X86Registers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(27))?;
        for (name, v) in REGISTER_NAMES.iter().zip(self.0.iter()) {
            m.serialize_entry(name, &format!("{v:#x}"))?;
        }
        m.end()
    }
}

/// A parsed `NT_PRSTATUS` descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrStatus {
    /// `pr_pid`: the task's PID for kdump, `cpu + 1` for QEMU.
    pub pid: u32,
    /// `pr_reg`.
    pub registers: X86Registers,
}

impl PrStatus {
    /// Parses an x86_64 `elf_prstatus`.
    pub fn parse(desc: &[u8]) -> Result<Self> {
        if desc.len() < PR_REG + 27 * 8 {
            return Err(Error::Corrupt(format!(
                "NT_PRSTATUS of {} bytes, expected {PRSTATUS_SIZE}",
                desc.len()
            )));
        }
        let pid = le_u32(desc, PR_PID).unwrap_or(0);
        let mut regs = [0u64; 27];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = le_u64(desc, PR_REG + i * 8).unwrap_or(0);
        }
        Ok(PrStatus {
            pid,
            registers: X86Registers(regs),
        })
    }

    /// All `CORE`/`NT_PRSTATUS` notes in a notes buffer, in order.
    pub fn all_in(notes: &[u8]) -> Result<Vec<PrStatus>> {
        let mut out = Vec::new();
        for note in NoteIter::new(notes) {
            let note = note?;
            if note.name == b"CORE" && note.n_type == NT_PRSTATUS {
                out.push(PrStatus::parse(note.desc)?);
            }
        }
        Ok(out)
    }
}

/// How a CPU's registers were matched to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuMatch {
    /// Read from the CPU's `crash_notes` buffer in the dump's memory.
    CrashNotes,
    /// QEMU's convention, `pr_pid == cpu + 1`.
    QemuPid,
    /// The file's note order; may be wrong if a CPU did not respond.
    NoteOrder,
}

/// One CPU's state at the crash.
#[derive(Debug, Clone, Serialize)]
pub struct CpuState {
    /// The CPU number.
    pub cpu: u32,
    /// `pr_pid`.
    pub pid: u32,
    /// The registers.
    pub registers: X86Registers,
    /// How the registers were matched to the CPU.
    pub matched_by: CpuMatch,
    /// True if this CPU called `panic()`.
    pub panicked: bool,
}

/// Where to find the `crash_notes` buffers in memory.
#[derive(Debug, Clone, Copy)]
pub struct CrashNotesLayout {
    /// The address of the `crash_notes` pointer variable.
    pub crash_notes: VirtAddr,
    /// The address of `__per_cpu_offset[]`.
    pub per_cpu_offset: VirtAddr,
    /// `nr_cpu_ids`.
    pub nr_cpu_ids: u32,
}

/// Reads each CPU's saved note from its `crash_notes` buffer. CPUs whose
/// buffer holds no note (they never ran the crash IPI handler) are left
/// out.
pub fn from_crash_notes(
    mem: &dyn crate::memory::KernelMemory,
    layout: CrashNotesLayout,
) -> Result<Vec<(u32, PrStatus)>> {
    let base = mem.read_u64(layout.crash_notes)?;
    if base == 0 {
        return Err(Error::Corrupt("crash_notes is NULL".into()));
    }
    let mut out = Vec::new();
    for cpu in 0..layout.nr_cpu_ids.min(8192) {
        let offset = mem.read_u64(VirtAddr(layout.per_cpu_offset.0 + u64::from(cpu) * 8))?;
        let at = VirtAddr(base.wrapping_add(offset));
        // Elf64_Nhdr, "CORE\0" padded to 8, then elf_prstatus.
        let buf = mem.read_vec(at, 12 + 8 + PRSTATUS_SIZE)?;
        let note = NoteIter::new(&buf).next().transpose().ok().flatten();
        if let Some(note) = note
            && note.name == b"CORE"
            && note.n_type == NT_PRSTATUS
        {
            out.push((cpu, PrStatus::parse(note.desc)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pid_and_registers() {
        let mut desc = vec![0u8; PRSTATUS_SIZE];
        desc[PR_PID..PR_PID + 4].copy_from_slice(&42u32.to_le_bytes());
        for i in 0..27 {
            desc[PR_REG + i * 8..PR_REG + i * 8 + 8]
                .copy_from_slice(&(1000 + i as u64).to_le_bytes());
        }
        let p = PrStatus::parse(&desc).unwrap();
        assert_eq!(p.pid, 42);
        assert_eq!(p.registers.rip(), 1016);
        assert_eq!(p.registers.rsp(), 1019);
        assert_eq!(p.registers.get("gs"), Some(1026));
        assert!(PrStatus::parse(&desc[..200]).is_err());
    }
}
