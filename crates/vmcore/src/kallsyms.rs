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
//!
//! Decoding every name costs a few milliseconds and a megabyte or two of
//! pages; a command that only needs a handful of addresses uses
//! [`KallsymsNameIndex`] instead, the kernel's own name order
//! (`kallsyms_seqs_of_names`, since 6.2 and in Debian's 6.1), searched as
//! `kallsyms_lookup_name()` searches it.

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
        let offsets_at = info.require_symbol("kallsyms_offsets")?;
        let base = mem.read_u64(info.require_symbol("kallsyms_relative_base")?)?;
        let tokens = Tokens::from_memory(mem, info)?;

        let offsets_raw = mem.read_vec(offsets_at, num as usize * 4)?;
        let offsets: Vec<i32> = offsets_raw
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let absolute_percpu = offsets.iter().any(|&o| o < 0);

        let mut names = NameStream::new(mem, names_at, NAMES_WINDOW);
        // kallsyms.S puts kallsyms_names below kallsyms_token_table, with
        // only the markers (and since 6.2 the name order) between: all of
        // it is read at once where it can be, in pieces where it cannot
        if let Some(len) = token_table_at
            .0
            .checked_sub(names_at.0)
            .filter(|&l| l <= MAX_NAMES_SPAN)
            && let Ok(all) = mem.read_vec(names_at, len as usize)
        {
            names.buf = all;
            names.next = token_table_at;
        }
        let mut entries = Vec::with_capacity(num as usize);
        // every name as decoded, type character included (skipped by
        // `name_start`): one buffer, one copy of each token
        let mut all_names: Vec<u8> = Vec::with_capacity(num as usize * 24);
        for &offset in offsets.iter() {
            let start = all_names.len();
            tokens.expand(names.entry()?, &mut all_names);
            let Some(&kind) = all_names.get(start) else {
                return Err(Error::Corrupt("empty kallsyms name".into()));
            };
            let address = symbol_address(offset, base, absolute_percpu);
            let name_start = u32::try_from(start + 1)
                .map_err(|_| Error::Corrupt("kallsyms names exceed 4 GiB".into()))?;
            let name_len = u16::try_from(all_names.len() - start - 1).map_err(|_| {
                Error::Corrupt(format!(
                    "a kallsyms name of {} bytes",
                    all_names.len() - start - 1
                ))
            })?;
            entries.push(Entry {
                address,
                name_start,
                name_len,
                kind,
            });
        }
        // names are ASCII; anything else is shown, not trusted
        let all_names = match String::from_utf8(all_names) {
            Ok(text) => text,
            Err(e) => relabel_lossy(e.as_bytes(), &mut entries),
        };
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

/// A symbol's address from its `kallsyms_offsets` entry.
fn symbol_address(offset: i32, base: u64, absolute_percpu: bool) -> u64 {
    if !absolute_percpu {
        base.wrapping_add(offset as u32 as u64)
    } else if offset >= 0 {
        offset as u64
    } else {
        base.wrapping_sub(1).wrapping_sub(i64::from(offset) as u64)
    }
}

/// The token table: each token's text as a range of `table`.
#[derive(Debug, Clone)]
struct Tokens {
    table: Vec<u8>,
    ranges: Vec<std::ops::Range<usize>>,
}

impl Tokens {
    fn from_memory(mem: &dyn KernelMemory, info: &Vmcoreinfo) -> Result<Self> {
        let index_raw = mem.read_vec(info.require_symbol("kallsyms_token_index")?, 512)?;
        let index: Vec<u16> = index_raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let table_len = usize::from(index.iter().copied().max().unwrap_or(0)) + 256;
        let table = read_prefix(mem, info.require_symbol("kallsyms_token_table")?, table_len)?;
        let ranges = index
            .iter()
            .map(|&i| {
                let start = usize::from(i).min(table.len());
                start..start + crate::bytes::c_str(&table[start..]).len()
            })
            .collect();
        Ok(Tokens { table, ranges })
    }

    /// Appends the text of one encoded name (type character first).
    #[inline]
    fn expand(&self, encoded: &[u8], out: &mut Vec<u8>) {
        for &t in encoded {
            out.extend_from_slice(&self.table[self.ranges[usize::from(t)].clone()]);
        }
    }
}

/// Name lookups through the kernel's own name order, reading only the
/// pages a binary search touches (a few dozen) instead of decoding the
/// whole table.
///
/// `kallsyms_seqs_of_names` lists the symbols' table indices sorted by
/// name (type character excluded, `strcmp` order, equal names by
/// address), three bytes each, big-endian; `kallsyms_markers[k]` is where
/// name `256 k` starts in `kallsyms_names`. VMCOREINFO names neither, so
/// both are found from the tables it does name and the layout
/// `scripts/kallsyms` writes (each table 8-byte aligned):
///
/// * names, markers, name order, token table (Debian's 6.1);
/// * names, markers, token table, token index, offsets, relative base,
///   name order (Debian's 6.12).
///
/// A layout is used only once its markers are well formed and it finds
/// `_stext` and `init_uts_ns` where VMCOREINFO says they are; a kernel
/// without a name order gets `None`, and its callers decode the table.
#[derive(Debug, Clone)]
pub struct KallsymsNameIndex {
    num: u32,
    names: VirtAddr,
    markers: Vec<u32>,
    seqs: VirtAddr,
    offsets: VirtAddr,
    base: u64,
    absolute_percpu: bool,
    tokens: Tokens,
}

/// The symbols VMCOREINFO gives on every x86_64 kernel, against which a
/// guessed layout is checked.
const INDEX_CHECKS: [&str; 2] = ["_stext", "init_uts_ns"];

impl KallsymsNameIndex {
    /// Finds the name order, or `None` when this kernel has none that
    /// checks out. Errors are unreadable or corrupt tables.
    pub fn from_memory(mem: &dyn KernelMemory, info: &Vmcoreinfo) -> Result<Option<Self>> {
        let num = mem.read_u32(info.require_symbol("kallsyms_num_syms")?)?;
        if num == 0 || num > MAX_SYMBOLS {
            return Err(Error::Corrupt(format!("kallsyms_num_syms is {num}")));
        }
        let names = info.require_symbol("kallsyms_names")?;
        let token_table = info.require_symbol("kallsyms_token_table")?.0;
        let offsets = info.require_symbol("kallsyms_offsets")?;
        let base_at = info.require_symbol("kallsyms_relative_base")?;
        let base = mem.read_u64(base_at)?;
        let n = u64::from(num);
        let markers_len = n.div_ceil(256) * 4;
        let align_down = |a: u64| a & !7;
        let candidates = [
            // names, markers, name order, token table
            token_table
                .checked_sub(3 * n)
                .map(align_down)
                .and_then(|seqs| Some((seqs.checked_sub(markers_len).map(align_down)?, seqs))),
            // names, markers, token table, ..., relative base, name order
            token_table
                .checked_sub(markers_len)
                .map(|markers| (align_down(markers), base_at.0 + 8)),
        ];
        // an absolute per-CPU table gives kernel addresses negative
        // offsets, and the last symbol has the highest address
        let last = mem.read_u32(VirtAddr(offsets.0 + (n - 1) * 4))? as i32;
        let tokens = Tokens::from_memory(mem, info)?;
        for (markers_at, seqs) in candidates.into_iter().flatten() {
            if markers_at <= names.0 {
                continue;
            }
            let Ok(raw) = mem.read_vec(VirtAddr(markers_at), markers_len as usize) else {
                continue;
            };
            let markers: Vec<u32> = raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let span = markers_at - names.0;
            let well_formed = markers.first() == Some(&0)
                && markers.windows(2).all(|w| w[0] < w[1])
                && markers.last().is_some_and(|&m| u64::from(m) < span);
            if !well_formed {
                continue;
            }
            let index = KallsymsNameIndex {
                num,
                names,
                markers,
                seqs: VirtAddr(seqs),
                offsets,
                base,
                absolute_percpu: last < 0,
                tokens: tokens.clone(),
            };
            let checks_out = INDEX_CHECKS.iter().all(|name| {
                info.symbol(name).is_some_and(
                    |want| matches!(index.address_of(mem, name), Ok(Some(got)) if got == want),
                )
            });
            if checks_out {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// The address of the first symbol called `name` (the lowest, as the
    /// kernel's lookup gives it), or `None` if there is none.
    pub fn address_of(&self, mem: &dyn KernelMemory, name: &str) -> Result<Option<VirtAddr>> {
        let want = name.as_bytes();
        let mut text = Vec::with_capacity(64);
        let (mut lo, mut hi) = (0u32, self.num);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.name_of(mem, self.seq_at(mem, mid)?, &mut text)?;
            if text.get(1..).unwrap_or_default() < want {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == self.num {
            return Ok(None);
        }
        let seq = self.seq_at(mem, lo)?;
        self.name_of(mem, seq, &mut text)?;
        if text.get(1..) != Some(want) {
            return Ok(None);
        }
        let offset = mem.read_u32(VirtAddr(self.offsets.0 + u64::from(seq) * 4))? as i32;
        Ok(Some(VirtAddr(symbol_address(
            offset,
            self.base,
            self.absolute_percpu,
        ))))
    }

    /// The table index of the `i`th name in name order.
    fn seq_at(&self, mem: &dyn KernelMemory, i: u32) -> Result<u32> {
        let mut b = [0u8; 3];
        mem.read_virt(VirtAddr(self.seqs.0 + u64::from(i) * 3), &mut b)?;
        let seq = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        if seq >= self.num {
            return Err(Error::Corrupt(format!(
                "kallsyms_seqs_of_names[{i}] is {seq}, past {} symbols",
                self.num
            )));
        }
        Ok(seq)
    }

    /// Decodes the name of symbol `seq` (type character first) into
    /// `out`: from its block's marker, past the names before it.
    fn name_of(&self, mem: &dyn KernelMemory, seq: u32, out: &mut Vec<u8>) -> Result<()> {
        let block = self.markers[(seq / 256) as usize];
        let mut names =
            NameStream::new(mem, VirtAddr(self.names.0 + u64::from(block)), INDEX_WINDOW);
        for _ in 0..seq % 256 {
            names.entry()?;
        }
        out.clear();
        self.tokens.expand(names.entry()?, out);
        Ok(())
    }
}

/// `names` with every name that is not UTF-8 replaced by its lossy
/// rendering, and the entries moved to match.
fn relabel_lossy(names: &[u8], entries: &mut [Entry]) -> String {
    let mut out = String::with_capacity(names.len());
    for e in entries.iter_mut() {
        let start = e.name_start as usize;
        let name = &names[start..start + usize::from(e.name_len)];
        let shown = String::from_utf8_lossy(name);
        out.push(char::from(e.kind));
        // a lossy name is longer; cut at a character boundary to fit u16
        let mut end = shown.len().min(usize::from(u16::MAX));
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        e.name_start = (out.len()) as u32;
        e.name_len = end as u16;
        out.push_str(&shown[..end]);
    }
    out
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

/// The most bytes between `kallsyms_names` and `kallsyms_token_table` that
/// are read in one piece.
const MAX_NAMES_SPAN: u64 = 32 << 20;

/// How much of `kallsyms_names` is read at a time when decoding it all.
const NAMES_WINDOW: usize = 64 << 10;

/// How much of `kallsyms_names` is read at a time by a name lookup: a
/// block of 256 names is some 3 KiB.
const INDEX_WINDOW: usize = 4 << 10;

/// `kallsyms_names`, read a window at a time (one window kept).
struct NameStream<'a> {
    mem: &'a dyn KernelMemory,
    /// The address just past `buf`.
    next: VirtAddr,
    buf: Vec<u8>,
    pos: usize,
    window: usize,
}

impl<'a> NameStream<'a> {
    fn new(mem: &'a dyn KernelMemory, at: VirtAddr, window: usize) -> Self {
        NameStream {
            mem,
            next: at,
            buf: Vec::new(),
            pos: 0,
            window,
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// The next entry's token indices: a length (one byte, or two when the
    /// first has bit 7 set), then that many.
    #[inline]
    fn entry(&mut self) -> Result<&[u8]> {
        let mut len = usize::from(self.byte()?);
        if len & 0x80 != 0 {
            len = (len & 0x7f) | (usize::from(self.byte()?) << 7);
        }
        self.take(len)
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
        let want = self.window.max(n) - self.buf.len();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::RegionMemory;

    const NAMES: u64 = 0xffff_ffff_8200_0000;
    const TOKEN_TABLE: u64 = 0xffff_ffff_8210_0000;
    const TOKEN_INDEX: u64 = 0xffff_ffff_8210_1000;
    const OFFSETS: u64 = 0xffff_ffff_8220_0000;
    const BASE: u64 = 0xffff_ffff_8230_0000;
    const NUM: u64 = 0xffff_ffff_8230_0008;

    /// A token table and index in which token `b` is byte `b` (0 is 0xff).
    fn byte_tokens() -> (Vec<u8>, Vec<u8>) {
        let mut token_table = Vec::new();
        let mut token_index = Vec::new();
        for b in 0..=255u8 {
            token_index.extend_from_slice(&(token_table.len() as u16).to_le_bytes());
            token_table.push(if b == 0 { 0xff } else { b });
            token_table.push(0);
        }
        // the reader takes 256 bytes past the last token's start
        token_table.resize(1024, 0);
        (token_table, token_index)
    }

    /// A table of `names` (each with its type character first), one token
    /// per byte, at 0x1000 apart from `_text`, with a names stream that
    /// crosses 64 KiB windows when there are enough names. Memory is read
    /// a page at a time, so the stream is padded to a page's end unless
    /// `cut`, where it ends with the last name.
    fn table(names: &[&[u8]], cut: bool) -> (RegionMemory, Vmcoreinfo) {
        let (token_table, token_index) = byte_tokens();
        let mut stream = Vec::new();
        let mut offsets = Vec::new();
        for (i, name) in names.iter().enumerate() {
            assert!(name.len() < 0x80);
            stream.push(name.len() as u8);
            stream.extend_from_slice(name);
            offsets.extend_from_slice(&(0x1000 * i as u32).to_le_bytes());
        }
        if !cut {
            stream.resize(stream.len().next_multiple_of(4096), 0);
        }
        let mem = RegionMemory::new()
            .with(VirtAddr(NAMES), stream)
            .with(VirtAddr(TOKEN_TABLE), token_table)
            .with(VirtAddr(TOKEN_INDEX), token_index)
            .with(VirtAddr(OFFSETS), offsets)
            .with(
                VirtAddr(BASE),
                0xffff_ffff_8100_0000u64.to_le_bytes().to_vec(),
            )
            .with(VirtAddr(NUM), (names.len() as u32).to_le_bytes().to_vec());
        let info = Vmcoreinfo::parse(
            format!(
                "OSRELEASE=6.1.0\nSYMBOL(kallsyms_names)={NAMES:x}\n\
                 SYMBOL(kallsyms_token_table)={TOKEN_TABLE:x}\n\
                 SYMBOL(kallsyms_token_index)={TOKEN_INDEX:x}\n\
                 SYMBOL(kallsyms_offsets)={OFFSETS:x}\n\
                 SYMBOL(kallsyms_relative_base)={BASE:x}\n\
                 SYMBOL(kallsyms_num_syms)={NUM:x}\n"
            )
            .as_bytes(),
        )
        .unwrap();
        (mem, info)
    }

    #[test]
    fn names_kinds_addresses_and_lookups() {
        let many: Vec<Vec<u8>> = (0..20_000).map(|i| format!("Tf{i}").into_bytes()).collect();
        let mut names: Vec<&[u8]> = vec![b"T_text", b"dsome_data", b"T_text"];
        names.extend(many.iter().map(Vec::as_slice));
        let (mem, info) = table(&names, false);
        let k = Kallsyms::from_memory(&mem, &info).unwrap();
        assert_eq!(k.len(), names.len());
        let s = k.get(1).unwrap();
        assert_eq!((s.name, s.kind), ("some_data", 'd'));
        assert_eq!(s.address, VirtAddr(0xffff_ffff_8100_1000));
        // the first of equal names; names read across windows
        assert_eq!(k.address_of("_text"), Some(VirtAddr(0xffff_ffff_8100_0000)));
        let last = names.len() - 1;
        assert_eq!(
            k.address_of("f19999"),
            Some(VirtAddr(0xffff_ffff_8100_0000 + 0x1000 * last as u64))
        );
        assert_eq!(k.address_of("nope"), None);
    }

    /// Where the name order sits: after the markers (Debian's 6.1), or
    /// after the relative base (Debian's 6.12); or nowhere (6.1 upstream).
    #[derive(Clone, Copy, PartialEq)]
    enum Order {
        BeforeTokens,
        AfterBase,
        Absent,
    }

    /// A table of `names` (type character first, one token per byte,
    /// `0x1000 * i` past `_text`) laid out as `scripts/kallsyms` does,
    /// with VMCOREINFO naming `_stext` and `init_uts_ns` at `checks`.
    fn ordered_table(
        names: &[Vec<u8>],
        order: Order,
        checks: (u64, u64),
    ) -> (RegionMemory, Vmcoreinfo) {
        let align = |a: usize| a.next_multiple_of(8);
        let n = names.len();
        let mut image = Vec::new();
        let mut markers = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if i % 256 == 0 {
                markers.extend_from_slice(&(image.len() as u32).to_le_bytes());
            }
            image.push(name.len() as u8);
            image.extend_from_slice(name);
        }
        let mut sorted: Vec<usize> = (0..n).collect();
        sorted.sort_by(|&a, &b| names[a][1..].cmp(&names[b][1..]).then(a.cmp(&b)));
        let seqs: Vec<u8> = sorted
            .iter()
            .flat_map(|&i| (i as u32).to_be_bytes()[1..].to_vec())
            .collect();
        let put = |image: &mut Vec<u8>, bytes: &[u8]| {
            let at = align(image.len());
            image.resize(at, 0);
            image.extend_from_slice(bytes);
            at
        };
        put(&mut image, &markers);
        if order == Order::BeforeTokens {
            put(&mut image, &seqs);
        }
        let (token_table, token_index) = byte_tokens();
        let tokens_at = put(&mut image, &token_table);
        let index_at = put(&mut image, &token_index);
        let offsets: Vec<u8> = (0..n)
            .flat_map(|i| (0x1000 * i as u32).to_le_bytes())
            .collect();
        let offsets_at = put(&mut image, &offsets);
        let base_at = put(&mut image, &0xffff_ffff_8100_0000u64.to_le_bytes());
        if order == Order::AfterBase {
            put(&mut image, &seqs);
        }
        let num_at = put(&mut image, &(n as u32).to_le_bytes());
        image.resize(image.len().next_multiple_of(4096) + 4096, 0);
        let at = |off: usize| NAMES + off as u64;
        let mem = RegionMemory::new().with(VirtAddr(NAMES), image);
        let info = Vmcoreinfo::parse(
            format!(
                "OSRELEASE=6.1.0\nSYMBOL(kallsyms_names)={NAMES:x}\n\
                 SYMBOL(kallsyms_token_table)={:x}\n\
                 SYMBOL(kallsyms_token_index)={:x}\n\
                 SYMBOL(kallsyms_offsets)={:x}\n\
                 SYMBOL(kallsyms_relative_base)={:x}\n\
                 SYMBOL(kallsyms_num_syms)={:x}\n\
                 SYMBOL(_stext)={:x}\nSYMBOL(init_uts_ns)={:x}\n",
                at(tokens_at),
                at(index_at),
                at(offsets_at),
                at(base_at),
                at(num_at),
                checks.0,
                checks.1,
            )
            .as_bytes(),
        )
        .unwrap();
        (mem, info)
    }

    /// 700 names over three marker blocks: `_stext` first, `init_uts_ns`
    /// 300th, and names that two symbols share.
    fn indexed_names() -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = (0..700)
            .map(|i| format!("tf{}", i * 7919 % 1000).into_bytes())
            .collect();
        names[0] = b"T_stext".to_vec();
        names[300] = b"Dinit_uts_ns".to_vec();
        names[450] = b"tf0".to_vec();
        names[600] = b"tf8".to_vec();
        names
    }

    const TEXT: u64 = 0xffff_ffff_8100_0000;

    #[test]
    fn the_name_order_finds_every_name_where_the_table_has_it() {
        let names = indexed_names();
        let checks = (TEXT, TEXT + 300 * 0x1000);
        for order in [Order::BeforeTokens, Order::AfterBase] {
            let (mem, info) = ordered_table(&names, order, checks);
            let index = KallsymsNameIndex::from_memory(&mem, &info)
                .unwrap()
                .unwrap();
            let table = Kallsyms::from_memory(&mem, &info).unwrap();
            for s in table.symbols() {
                assert_eq!(
                    index.address_of(&mem, s.name).unwrap(),
                    table.address_of(s.name),
                    "{}",
                    s.name
                );
            }
            // shared names give the first (the lowest address)
            assert_eq!(
                index.address_of(&mem, "tf8").unwrap(),
                table.address_of("tf8")
            );
            assert_ne!(table.address_of("tf8"), Some(VirtAddr(TEXT + 600 * 0x1000)));
            for absent in ["", "tf", "tf9999", "zzz", "_stex"] {
                assert_eq!(index.address_of(&mem, absent).unwrap(), None, "{absent}");
            }
        }
    }

    #[test]
    fn no_name_order_or_one_that_does_not_check_out_is_none() {
        let names = indexed_names();
        let (mem, info) = ordered_table(&names, Order::Absent, (TEXT, TEXT + 300 * 0x1000));
        assert!(
            KallsymsNameIndex::from_memory(&mem, &info)
                .unwrap()
                .is_none()
        );
        // VMCOREINFO's _stext is not where the table puts it
        let (mem, info) =
            ordered_table(&names, Order::BeforeTokens, (TEXT + 8, TEXT + 300 * 0x1000));
        assert!(
            KallsymsNameIndex::from_memory(&mem, &info)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_name_order_entry_past_the_table_is_an_error() {
        let names = indexed_names();
        let (mem, info) = ordered_table(&names, Order::AfterBase, (TEXT, TEXT + 300 * 0x1000));
        let index = KallsymsNameIndex::from_memory(&mem, &info)
            .unwrap()
            .unwrap();
        // the middle entry of the name order, the search's first probe
        let at = index.seqs.0 + (names.len() as u64 / 2) * 3;
        let mem = mem.with(VirtAddr(at), vec![0xff, 0xff, 0xff]);
        let err = index.address_of(&mem, "tf5").unwrap_err();
        assert!(
            matches!(err, Error::Corrupt(ref m) if m.contains("past 700 symbols")),
            "{err:?}"
        );
    }

    #[test]
    fn a_name_that_is_not_utf8_is_shown_lossily() {
        let (mem, info) = table(&[b"Tgood", b"t\xc3(bad", b"Tafter"], false);
        let k = Kallsyms::from_memory(&mem, &info).unwrap();
        let names: Vec<&str> = k.symbols().map(|s| s.name).collect();
        assert_eq!(names, ["good", "\u{fffd}(bad", "after"]);
        assert_eq!(k.get(1).unwrap().kind, 't');
        assert_eq!(k.address_of("after"), Some(VirtAddr(0xffff_ffff_8100_2000)));
    }

    #[test]
    fn a_names_stream_cut_by_an_unreadable_page_is_an_error() {
        // 32 names of 127 bytes fill the stream's page exactly
        let long: Vec<Vec<u8>> = (0..32)
            .map(|i| format!("T{i:0>126}").into_bytes())
            .collect();
        let names: Vec<&[u8]> = long.iter().map(Vec::as_slice).collect();
        let (mem, info) = table(&names, true);
        assert_eq!(Kallsyms::from_memory(&mem, &info).unwrap().len(), 32);
        // the count claims one more name, past the stream's page
        let mem = mem
            .with(VirtAddr(NUM), 33u32.to_le_bytes().to_vec())
            .with(VirtAddr(OFFSETS + 32 * 4), 0u32.to_le_bytes().to_vec());
        let err = Kallsyms::from_memory(&mem, &info).unwrap_err();
        assert!(
            matches!(err, Error::Unmapped { addr, .. } if addr == VirtAddr(NAMES + 4096)),
            "{err:?}"
        );
    }
}
