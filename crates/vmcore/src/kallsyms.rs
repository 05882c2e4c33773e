//! The kernel's own symbol table, decoded from memory.
//!
//! Since Linux 6.0 VMCOREINFO gives the addresses of the compressed
//! kallsyms tables, so symbol addresses (runtime, KASLR applied) can be had
//! without any vmlinux. This module only decodes the tables; it is what the
//! dump reader needs to find `crash_notes`, `__per_cpu_offset` and
//! `panic_cpu`. Symbolization policy lives in the analysis crate.
//!
//! Encoding: `kallsyms_names` is a sequence of entries, each a length (one
//! byte, or two when the first has bit 7 set, since 6.1) and that many
//! token indices; `kallsyms_token_index[i]` is the offset of token `i`'s
//! NUL-terminated text in `kallsyms_token_table`. The first character of a
//! decoded name is its type (`T`, `d`, ...). Addresses are
//! `kallsyms_offsets[i]`, relative to `kallsyms_relative_base`; with
//! `CONFIG_KALLSYMS_ABSOLUTE_PERCPU` (x86_64 SMP before 6.15) a
//! non-negative offset is an absolute per-CPU address and a negative one
//! means `relative_base - 1 - offset`.

use crate::addr::VirtAddr;
use crate::error::{Error, Result};
use crate::memory::KernelMemory;
use crate::vmcoreinfo::Vmcoreinfo;

/// One kernel symbol, borrowed from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSymbol<'a> {
    /// The name.
    pub name: &'a str,
    /// The runtime address.
    pub address: VirtAddr,
    /// The `nm`-style type character.
    pub kind: char,
}

/// One entry: where its name is in [`Kallsyms::names`].
#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u64,
    name_start: u32,
    name_len: u16,
    kind: u8,
}

/// The decoded kallsyms table: all names in one string, entries in table
/// order, and an open-addressing hash index by name (no per-symbol
/// allocation: a kernel has some 150,000 symbols).
#[derive(Debug, Clone)]
pub struct Kallsyms {
    names: String,
    entries: Vec<Entry>,
    /// Slots of entry index + 1 (0 = empty), a power of two long.
    by_name: Vec<u32>,
}

/// FNV-1a: cheap, and good enough for symbol names.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// More symbols than any kernel has; guards against a corrupt count.
const MAX_SYMBOLS: u32 = 4_000_000;

impl Kallsyms {
    /// Decodes the tables VMCOREINFO points at.
    pub fn from_memory(mem: &dyn KernelMemory, info: &Vmcoreinfo) -> Result<Self> {
        let num = mem.read_u32(info.require_symbol("kallsyms_num_syms")?)?;
        if num == 0 || num > MAX_SYMBOLS {
            return Err(Error::Corrupt(format!("kallsyms_num_syms is {num}")));
        }
        let names_at = info.require_symbol("kallsyms_names")?;
        let token_table_at = info.require_symbol("kallsyms_token_table")?;
        let token_index_at = info.require_symbol("kallsyms_token_index")?;
        let offsets_at = info.require_symbol("kallsyms_offsets")?;
        let base = mem.read_u64(info.require_symbol("kallsyms_relative_base")?)?;

        let index_raw = mem.read_vec(token_index_at, 512)?;
        let token_index: Vec<u16> = index_raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let table_len = usize::from(token_index.iter().copied().max().unwrap_or(0)) + 256;
        let token_table = read_prefix(mem, token_table_at, table_len)?;
        // each token's text as a range of `token_table`
        let tokens: Vec<std::ops::Range<usize>> = token_index
            .iter()
            .map(|&i| {
                let start = usize::from(i).min(token_table.len());
                start..start + crate::bytes::c_str(&token_table[start..]).len()
            })
            .collect();

        let offsets_raw = mem.read_vec(offsets_at, num as usize * 4)?;
        let offsets: Vec<i32> = offsets_raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let absolute_percpu = offsets.iter().any(|&o| o < 0);

        let mut names = NameStream {
            mem,
            next: names_at,
            buf: Vec::new(),
            pos: 0,
        };
        let mut entries = Vec::with_capacity(num as usize);
        // all names, one after another
        let mut all_names: Vec<u8> = Vec::with_capacity(num as usize * 24);
        let mut text = Vec::with_capacity(128);
        for &offset in offsets.iter() {
            let mut len = usize::from(names.byte()?);
            if len & 0x80 != 0 {
                len = (len & 0x7f) | (usize::from(names.byte()?) << 7);
            }
            text.clear();
            for &t in names.take(len)? {
                text.extend_from_slice(&token_table[tokens[usize::from(t)].clone()]);
            }
            let Some((&kind, name)) = text.split_first() else {
                return Err(Error::Corrupt("empty kallsyms name".into()));
            };
            let address = if absolute_percpu {
                if offset >= 0 {
                    offset as u64
                } else {
                    base.wrapping_sub(1).wrapping_sub(i64::from(offset) as u64)
                }
            } else {
                base.wrapping_add(offset as u32 as u64)
            };
            let name_start = u32::try_from(all_names.len())
                .map_err(|_| Error::Corrupt("kallsyms names exceed 4 GiB".into()))?;
            // names are ASCII; anything else is shown, not trusted
            match std::str::from_utf8(name) {
                Ok(_) => all_names.extend_from_slice(name),
                Err(_) => all_names.extend_from_slice(String::from_utf8_lossy(name).as_bytes()),
            }
            let name_len = u16::try_from(all_names.len() - name_start as usize)
                .map_err(|_| Error::Corrupt(format!("a kallsyms name of {} bytes", name.len())))?;
            entries.push(Entry {
                address,
                name_start,
                name_len,
                kind,
            });
        }
        // every name pushed was valid UTF-8 on its own
        let all_names = String::from_utf8(all_names)
            .map_err(|_| Error::Corrupt("kallsyms names are not UTF-8".into()))?;
        let mut t = Kallsyms {
            names: all_names,
            entries,
            by_name: Vec::new(),
        };
        let slots = (t.entries.len() * 2).next_power_of_two().max(16);
        let mut by_name = vec![0u32; slots];
        for i in 0..t.entries.len() {
            let name = t.name(i);
            let mut slot = name_hash(name) as usize & (slots - 1);
            loop {
                match by_name[slot] {
                    0 => {
                        by_name[slot] = i as u32 + 1;
                        break;
                    }
                    // the first of equal names keeps the slot
                    j if t.name(j as usize - 1) == name => break,
                    _ => slot = (slot + 1) & (slots - 1),
                }
            }
        }
        t.by_name = by_name;
        Ok(t)
    }

    fn name(&self, i: usize) -> &str {
        let e = &self.entries[i];
        let start = e.name_start as usize;
        self.names
            .get(start..start + usize::from(e.name_len))
            .unwrap_or("")
    }

    /// Symbol `i` in table order.
    pub fn get(&self, i: usize) -> Option<KernelSymbol<'_>> {
        let e = self.entries.get(i)?;
        Some(KernelSymbol {
            name: self.name(i),
            address: VirtAddr(e.address),
            kind: char::from(e.kind),
        })
    }

    /// The address of the first symbol called `name`.
    pub fn address_of(&self, name: &str) -> Option<VirtAddr> {
        let mask = self.by_name.len().checked_sub(1)?;
        let mut slot = name_hash(name) as usize & mask;
        loop {
            match *self.by_name.get(slot)? {
                0 => return None,
                j if self.name(j as usize - 1) == name => {
                    return Some(VirtAddr(self.entries[j as usize - 1].address));
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// All symbols, in table order (sorted by address for text).
    pub fn symbols(&self) -> impl ExactSizeIterator<Item = KernelSymbol<'_>> + '_ {
        (0..self.entries.len()).map(|i| KernelSymbol {
            name: self.name(i),
            address: VirtAddr(self.entries[i].address),
            kind: char::from(self.entries[i].kind),
        })
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Reads up to `len` bytes, stopping early at an unreadable page.
fn read_prefix(mem: &dyn KernelMemory, at: VirtAddr, len: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let a = at.0 + done as u64;
        let n = (4096 - (a % 4096) as usize).min(len - done);
        match mem.read_virt(VirtAddr(a), &mut out[done..done + n]) {
            Ok(()) => done += n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    out.truncate(done);
    Ok(out)
}

/// How much of `kallsyms_names` is read at a time.
const NAMES_WINDOW: usize = 64 << 10;

/// `kallsyms_names`, read a window at a time (one window kept).
struct NameStream<'a> {
    mem: &'a dyn KernelMemory,
    /// The address just past `buf`.
    next: VirtAddr,
    buf: Vec<u8>,
    pos: usize,
}

impl NameStream<'_> {
    #[inline]
    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// The next `n` bytes.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.buf.len() - self.pos < n {
            self.refill(n)?;
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Keeps the unread bytes and reads on until `n` are there (or the
    /// window is full); an unreadable page ends the read early, and is an
    /// error only when fewer than `n` bytes could be had.
    #[cold]
    fn refill(&mut self, n: usize) -> Result<()> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        let want = NAMES_WINDOW.max(n) - self.buf.len();
        let more = read_prefix(self.mem, self.next, want)?;
        self.next = VirtAddr(self.next.0.wrapping_add(more.len() as u64));
        self.buf.extend_from_slice(&more);
        if self.buf.len() < n {
            return Err(Error::Corrupt(format!(
                "kallsyms_names ends in an unreadable page at {:#x}",
                self.next.0
            )));
        }
        Ok(())
    }
}
