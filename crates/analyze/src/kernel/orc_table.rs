//! The kernel's ORC tables, looked up in memory.
//!
//! vmlinux keeps two parallel arrays: `__start_orc_unwind_ip` holds, for
//! each entry, the entry's first text address as an `int` relative to the
//! slot itself, sorted; `__start_orc_unwind` holds the six-byte entries.
//! An address's entry is the last one whose ip is not above it. For core
//! text the kernel narrows the search with `orc_lookup`, one index per
//! 256 bytes of text from `_stext`; this module does the same, so a lookup
//! reads a few words of the tables instead of the 4 MB they take. Modules
//! have the same pair of arrays (`mod->arch`).
//!
//! Nothing is cached here: the dump's page cache already keeps the pages
//! a walk touches.

use ksw_vmcore::{KernelMemory, VirtAddr};

use super::{KernelError, Result};
use crate::unwind::orc::{ORC_ENTRY_SIZE, OrcEntry, OrcLayout};

/// More ORC entries than a kernel has; guards against a corrupt range.
const MAX_ENTRIES: u64 = 4_000_000;
/// Bytes of text per `orc_lookup` slot (`LOOKUP_BLOCK_SIZE`).
const LOOKUP_BLOCK: u64 = 256;

/// vmlinux's `orc_lookup`: where it is and what text it covers.
#[derive(Debug, Clone, Copy)]
pub struct OrcFastLookup {
    /// `orc_lookup`.
    pub table: u64,
    /// Its number of slots (`orc_lookup_end - orc_lookup`, in words).
    pub blocks: u64,
    /// `_stext`.
    pub text_start: u64,
    /// `_etext`.
    pub text_end: u64,
}

/// One table: vmlinux's or a module's.
#[derive(Debug, Clone)]
struct Table {
    ip_table: u64,
    entries: u64,
    n: u64,
    /// The text ranges `[start, end)` the table covers.
    text: Vec<(u64, u64)>,
    fast: Option<OrcFastLookup>,
}

/// Why no entry could be had for an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrcLookupError {
    /// A word of the table could not be read.
    #[error("the ORC table word at {0:#x} cannot be read")]
    Unreadable(u64),
    /// No entry of the searched range starts at or below the address.
    #[error("the ORC table at {0:#x} has no entry at or below {1:#x}")]
    NoEntry(u64, u64),
    /// The entry does not decode.
    #[error("{0}")]
    Decode(#[from] crate::unwind::orc::OrcDecodeError),
}

/// The ORC tables of vmlinux and of the loaded modules.
pub struct OrcTable<'m> {
    mem: &'m dyn KernelMemory,
    layout: OrcLayout,
    tables: Vec<Table>,
}

impl std::fmt::Debug for OrcTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrcTable")
            .field("layout", &self.layout)
            .field("tables", &self.tables)
            .finish()
    }
}

impl<'m> OrcTable<'m> {
    /// vmlinux's table: `ip_start..ip_stop` (4-byte relative ips) and the
    /// entries at `entries`, covering text up to `text_end`; `fast` is the
    /// kernel's `orc_lookup`, when its symbols are known.
    pub fn from_memory(
        mem: &'m dyn KernelMemory,
        ip_start: u64,
        ip_stop: u64,
        entries: u64,
        text_end: u64,
        fast: Option<OrcFastLookup>,
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
            mem,
            layout,
            tables: Vec::new(),
        };
        let first = t
            .ip_at(ip_start, 0)
            .map_err(|e| KernelError::Corrupt(e.to_string()))?;
        let last = t
            .ip_at(ip_start, n - 1)
            .map_err(|e| KernelError::Corrupt(e.to_string()))?;
        if first > last {
            return Err(KernelError::Corrupt(format!(
                "the ORC table at {ip_start:#x} is not sorted"
            )));
        }
        // vmlinux's table covers its text, init and exit text, up to its
        // last entry (which ends the table)
        let text = vec![(first, text_end.max(last.saturating_add(1)))];
        t.tables.push(Table {
            ip_table: ip_start,
            entries,
            n,
            text,
            fast,
        });
        Ok(t)
    }

    /// Adds a table of `n` entries (a module's `orc_unwind_ip`,
    /// `orc_unwind`, `num_orcs`) covering the text ranges `text`.
    pub fn add(
        &mut self,
        ip_table: u64,
        entries: u64,
        n: u64,
        text: Vec<(u64, u64)>,
    ) -> Result<()> {
        if n == 0 || n > MAX_ENTRIES {
            return Err(KernelError::Corrupt(format!("{n} ORC entries")));
        }
        self.tables.push(Table {
            ip_table,
            entries,
            n,
            text,
            fast: None,
        });
        Ok(())
    }

    /// The layout entries are decoded with.
    pub fn layout(&self) -> OrcLayout {
        self.layout
    }

    fn ip_at(&self, ip_table: u64, i: u64) -> std::result::Result<u64, OrcLookupError> {
        let slot = ip_table + i * 4;
        let rel = self
            .mem
            .read_u32(VirtAddr(slot))
            .map_err(|_| OrcLookupError::Unreadable(slot))? as i32;
        Ok(slot.wrapping_add_signed(i64::from(rel)))
    }

    /// The entry covering `ip`: `None` if no table covers it.
    pub fn find(&self, ip: u64) -> Option<std::result::Result<OrcEntry, OrcLookupError>> {
        let t = self
            .tables
            .iter()
            .find(|t| t.text.iter().any(|&(s, e)| ip >= s && ip < e))?;
        Some(self.find_in(t, ip))
    }

    fn find_in(&self, t: &Table, ip: u64) -> std::result::Result<OrcEntry, OrcLookupError> {
        // the search range: narrowed by orc_lookup for core text
        let (mut lo, mut hi) = (0u64, t.n);
        if let Some(f) = t.fast
            && ip >= f.text_start
            && ip < f.text_end
        {
            let idx = (ip - f.text_start) / LOOKUP_BLOCK;
            if idx + 1 < f.blocks {
                let word = |k: u64| {
                    let a = f.table + k * 4;
                    self.mem
                        .read_u32(VirtAddr(a))
                        .map(u64::from)
                        .map_err(|_| OrcLookupError::Unreadable(a))
                };
                let (start, stop) = (word(idx)?, word(idx + 1)? + 1);
                if start < stop && stop <= t.n {
                    (lo, hi) = (start, stop);
                }
            }
        }
        // the last entry in [lo, hi) whose ip is not above `ip`
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let mid = a + (b - a) / 2;
            if self.ip_at(t.ip_table, mid)? <= ip {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        // the kernel sorted its tables (at build time, and modules' at
        // load), so the search needs no further check
        let i = a
            .checked_sub(1)
            .filter(|&i| i >= lo)
            .ok_or(OrcLookupError::NoEntry(t.ip_table, ip))?;
        let at = t.entries + i * ORC_ENTRY_SIZE as u64;
        let mut e = [0u8; ORC_ENTRY_SIZE];
        self.mem
            .read_virt(VirtAddr(at), &mut e)
            .map_err(|_| OrcLookupError::Unreadable(at))?;
        Ok(OrcEntry::decode(e, self.layout)?)
    }

    /// The number of entries in all tables.
    pub fn len(&self) -> u64 {
        self.tables.iter().map(|t| t.n).sum()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksw_vmcore::RegionMemory;

    /// A table at 0x1000 whose entries start at 0x10000, 0x10010, 0x10020
    /// (relative ints), and entries at 0x2000.
    fn memory() -> RegionMemory {
        let ips: [u64; 3] = [0x10000, 0x10010, 0x10020];
        let mut table = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            table.extend(((*ip as i64 - (0x1000 + i as i64 * 4)) as i32).to_le_bytes());
        }
        let mut entries = Vec::new();
        for sp in [8i16, 16, 24] {
            entries.extend(sp.to_le_bytes());
            entries.extend([0, 0, 5, 0]);
        }
        RegionMemory::new()
            .with(VirtAddr(0x1000), table)
            .with(VirtAddr(0x2000), entries)
    }

    #[test]
    fn finds_the_last_entry_not_above() {
        let mem = memory();
        let t = OrcTable::from_memory(
            &mem,
            0x1000,
            0x100c,
            0x2000,
            0x10030,
            None,
            OrcLayout::TypeEnd,
        )
        .unwrap();
        let sp = |ip| t.find(ip).unwrap().unwrap().sp_offset;
        assert_eq!(sp(0x10000), 8);
        assert_eq!(sp(0x1000f), 8);
        assert_eq!(sp(0x10010), 16);
        assert_eq!(sp(0x1002f), 24);
        assert!(t.find(0xffff).is_none());
        assert!(t.find(0x10030).is_none());
        // a table whose words cannot be read is named
        let short = RegionMemory::new().with(VirtAddr(0x1000), vec![0; 4]);
        assert!(
            OrcTable::from_memory(
                &short,
                0x1000,
                0x100c,
                0x2000,
                0x10030,
                None,
                OrcLayout::TypeEnd
            )
            .is_err()
        );
    }
}
