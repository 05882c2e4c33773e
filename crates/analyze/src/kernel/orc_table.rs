//! The kernel's ORC tables, read from memory.
//!
//! vmlinux keeps two parallel arrays: `__start_orc_unwind_ip` holds, for
//! each entry, the entry's first text address as an `int` relative to the
//! slot itself, sorted; `__start_orc_unwind` holds the six-byte entries.
//! An address's entry is the last one whose ip is not above it. The
//! table is read once and kept as absolute addresses; entries are decoded
//! on lookup.

use ksw_vmcore::{KernelMemory, VirtAddr};

use super::{KernelError, Result};
use crate::unwind::orc::{ORC_ENTRY_SIZE, OrcDecodeError, OrcEntry, OrcLayout};

/// More ORC entries than a kernel has; guards against a corrupt range.
const MAX_ENTRIES: u64 = 4_000_000;

/// One table: vmlinux's or a module's.
#[derive(Debug, Clone)]
struct Table {
    ips: Vec<u64>,
    entries: Vec<u8>,
    /// The text ranges `[start, end)` the table covers.
    text: Vec<(u64, u64)>,
}

/// The ORC tables of vmlinux and of the loaded modules.
#[derive(Debug, Clone)]
pub struct OrcTable {
    layout: OrcLayout,
    tables: Vec<Table>,
}

impl OrcTable {
    /// Reads vmlinux's table: `ip_start..ip_stop` (4-byte relative ips)
    /// and the entries at `entries`, covering text up to `text_end`.
    pub fn from_memory(
        mem: &dyn KernelMemory,
        ip_start: u64,
        ip_stop: u64,
        entries: u64,
        text_end: u64,
        layout: OrcLayout,
    ) -> Result<Self> {
        let n = ip_stop
            .checked_sub(ip_start)
            .map(|b| b / 4)
            .filter(|&n| n > 0 && n <= MAX_ENTRIES)
            .ok_or_else(|| {
                KernelError::Corrupt(format!(
                    "ORC ip table {ip_start:#x}..{ip_stop:#x} is not a table"
                ))
            })?;
        let mut t = Self {
            layout,
            tables: Vec::new(),
        };
        t.add(mem, ip_start, entries, n, Vec::new())?;
        // vmlinux's table covers its text, init and exit text, up to its
        // last entry (which ends the table)
        if let Some(v) = t.tables.last_mut() {
            let first = v.ips.first().copied().unwrap_or(0);
            let last = v.ips.last().copied().unwrap_or(0);
            v.text = vec![(first, text_end.max(last.saturating_add(1)))];
        }
        Ok(t)
    }

    /// Adds a table of `n` entries (a module's `orc_unwind_ip`,
    /// `orc_unwind`, `num_orcs`) covering the text ranges `text`.
    pub fn add(
        &mut self,
        mem: &dyn KernelMemory,
        ip_table: u64,
        entries: u64,
        n: u64,
        text: Vec<(u64, u64)>,
    ) -> Result<()> {
        if n > MAX_ENTRIES {
            return Err(KernelError::Corrupt(format!("{n} ORC entries")));
        }
        let what = |e| KernelError::Memory {
            what: "the ORC tables".into(),
            source: e,
        };
        let raw = mem
            .read_vec(VirtAddr(ip_table), (n * 4) as usize)
            .map_err(what)?;
        let entries = mem
            .read_vec(VirtAddr(entries), n as usize * ORC_ENTRY_SIZE)
            .map_err(what)?;
        let ips: Vec<u64> = raw
            .chunks_exact(4)
            .enumerate()
            .map(|(i, c)| {
                let rel = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                (ip_table + i as u64 * 4).wrapping_add_signed(i64::from(rel))
            })
            .collect();
        if ips.windows(2).any(|w| w[0] > w[1]) {
            return Err(KernelError::Corrupt(format!(
                "the ORC table at {ip_table:#x} is not sorted"
            )));
        }
        self.tables.push(Table { ips, entries, text });
        Ok(())
    }

    /// The layout entries are decoded with.
    pub fn layout(&self) -> OrcLayout {
        self.layout
    }

    /// The entry covering `ip`: `None` if no table covers it.
    pub fn find(&self, ip: u64) -> Option<std::result::Result<OrcEntry, OrcDecodeError>> {
        for t in &self.tables {
            let Some(&first) = t.ips.first() else {
                continue;
            };
            if ip < first || !t.text.iter().any(|&(s, e)| ip >= s && ip < e) {
                continue;
            }
            let i = t.ips.partition_point(|&a| a <= ip) - 1;
            let b = t
                .entries
                .get(i * ORC_ENTRY_SIZE..(i + 1) * ORC_ENTRY_SIZE)?;
            let mut e = [0u8; ORC_ENTRY_SIZE];
            e.copy_from_slice(b);
            return Some(OrcEntry::decode(e, self.layout));
        }
        None
    }

    /// The number of entries in all tables.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.ips.len()).sum()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
