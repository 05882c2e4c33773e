//! Independent readers: the test's own small re-readings of raw ELF
//! vmcores and zlib kdump-compressed files, and its own x86_64 page-table
//! walk, written apart from ksw-vmcore (no ksw type or function is used
//! here) so that ksw's answers are compared with something that does not
//! share its code. Layouts follow the ELF specification, makedumpfile's
//! `diskdump_mod.h` and the Intel SDM (4- and 5-level paging).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use memmap2::Mmap;

use super::Outcome;

const PAGE: u64 = 4096;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn map(path: &Path) -> Mmap {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: fixture files are not modified while the tests run.
    unsafe { Mmap::map(&f) }.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Why physical bytes could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Described by the dump (RAM) but left out of it.
    Excluded,
    /// Not described at all.
    Absent,
}

/// Physical memory, as an independent reader sees it.
pub trait Phys {
    /// Fills `buf` from physical `addr`; the first part that cannot be
    /// read decides the answer.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Miss>;
}

/// A note: its name, type and descriptor.
pub type Note = (String, u32, Vec<u8>);

/// The notes of an ELF note segment: (name, type, descriptor).
pub fn parse_notes(buf: &[u8]) -> Vec<Note> {
    let mut out = Vec::new();
    let mut p = 0usize;
    while p + 12 <= buf.len() {
        let namesz = u32_at(buf, p) as usize;
        let descsz = u32_at(buf, p + 4) as usize;
        let ty = u32_at(buf, p + 8);
        p += 12;
        if namesz == 0 && descsz == 0 {
            continue;
        }
        let name = &buf[p..p + namesz];
        let name = String::from_utf8_lossy(name.split(|&c| c == 0).next().unwrap_or(&[]));
        p += namesz.div_ceil(4) * 4;
        let desc = buf[p..p + descsz].to_vec();
        p += descsz.div_ceil(4) * 4;
        out.push((name.into_owned(), ty, desc));
    }
    out
}

/// One `PT_LOAD`: (file offset, physical address, file size, memory size).
type Load = (u64, u64, u64, u64);

/// The program headers of an ELF64 little-endian core: loads and notes.
/// With `head_only`, segments past the end of `data` are tolerated (the
/// kept head of `/proc/kcore`).
fn parse_elf(data: &[u8], head_only: bool) -> (Vec<Load>, Vec<Note>) {
    assert_eq!(&data[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((data[4], data[5]), (2, 1), "not ELF64 little-endian");
    let phoff = u64_at(data, 32) as usize;
    let phentsize = u16_at(data, 54) as usize;
    let phnum = u16_at(data, 56) as usize;
    assert_ne!(phnum, 0xffff, "PN_XNUM cores are not read here");
    let mut loads = Vec::new();
    let mut notes = Vec::new();
    for i in 0..phnum {
        let ph = &data[phoff + i * phentsize..phoff + (i + 1) * phentsize];
        let (ty, off, paddr, filesz, memsz) = (
            u32_at(ph, 0),
            u64_at(ph, 8),
            u64_at(ph, 24),
            u64_at(ph, 32),
            u64_at(ph, 40),
        );
        match ty {
            1 => {
                if !head_only {
                    assert!(off + filesz <= data.len() as u64, "segment {i} truncated");
                }
                loads.push((off, paddr, filesz, memsz));
            }
            4 if (off + filesz) as usize <= data.len() => {
                notes.extend(parse_notes(&data[off as usize..(off + filesz) as usize]));
            }
            _ => {}
        }
    }
    (loads, notes)
}

/// A raw ELF vmcore (`/proc/vmcore`, QEMU's ELF, makedumpfile `-E`), read
/// straight from its program headers.
pub struct RawElf {
    data: Mmap,
    loads: Vec<Load>,
    notes: Vec<Note>,
}

impl RawElf {
    pub fn open(path: &Path) -> RawElf {
        let data = map(path);
        let (loads, notes) = parse_elf(&data, false);
        RawElf { data, loads, notes }
    }

    /// The first note with this name.
    pub fn note(&self, name: &str) -> Option<&[u8]> {
        self.notes
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(.., d)| &d[..])
    }

    /// Physical page frames with file data, in order (each counted once).
    pub fn pfns(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .loads
            .iter()
            .flat_map(|&(_, paddr, filesz, _)| (paddr / PAGE)..(paddr + filesz).div_ceil(PAGE))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Physical page frames any segment describes (with file data or
    /// left out of the file), in order.
    pub fn described_pfns(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .loads
            .iter()
            .flat_map(|&(_, paddr, _, memsz)| (paddr / PAGE)..(paddr + memsz).div_ceil(PAGE))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The largest physical address any segment describes.
    pub fn phys_end(&self) -> u64 {
        self.loads.iter().map(|l| l.1 + l.3).max().unwrap_or(0)
    }
}

impl Phys for RawElf {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Miss> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr + done as u64;
            let mut described = false;
            let mut copied = false;
            for &(off, paddr, filesz, memsz) in &self.loads {
                if a >= paddr && a < paddr + filesz {
                    let n = ((paddr + filesz - a) as usize).min(buf.len() - done);
                    let at = (off + (a - paddr)) as usize;
                    buf[done..done + n].copy_from_slice(&self.data[at..at + n]);
                    done += n;
                    copied = true;
                    break;
                }
                described |= a >= paddr && a < paddr + memsz;
            }
            if !copied {
                return Err(if described {
                    Miss::Excluded
                } else {
                    Miss::Absent
                });
            }
        }
        Ok(())
    }
}

/// A kdump-compressed file whose pages are zlib or stored as is (what
/// makedumpfile `-c` writes).
pub struct KdumpZlib {
    data: Mmap,
    block: u64,
    max_mapnr: u64,
    bitmap1: usize,
    bitmap2: usize,
    half: usize,
    descs: usize,
    /// Set bits of the second bitmap before each of its bytes.
    rank: Vec<u64>,
}

impl KdumpZlib {
    pub fn open(path: &Path) -> KdumpZlib {
        let data = map(path);
        assert_eq!(&data[..8], b"KDUMP   ", "{}", path.display());
        let version = u32_at(&data, 8);
        let block = u32_at(&data, 428) as u64;
        let sub_hdr_size = u32_at(&data, 432) as u64;
        let bitmap_blocks = u32_at(&data, 436) as u64;
        let max_mapnr = if version >= 6 {
            u64_at(&data, block as usize + 96)
        } else {
            u64::from(u32_at(&data, 440))
        };
        let bitmap1 = ((1 + sub_hdr_size) * block) as usize;
        let half = (bitmap_blocks / 2 * block) as usize;
        let bitmap2 = bitmap1 + half;
        let mut rank = Vec::with_capacity(half + 1);
        let mut total = 0u64;
        for &b in &data[bitmap2..bitmap2 + half] {
            rank.push(total);
            total += u64::from(b.count_ones());
        }
        KdumpZlib {
            block,
            max_mapnr,
            bitmap1,
            bitmap2,
            half,
            descs: bitmap2 + half,
            rank,
            data,
        }
    }

    fn bit(&self, bitmap: usize, pfn: u64) -> bool {
        let byte = (pfn / 8) as usize;
        byte < self.half && self.data[bitmap + byte] & (1 << (pfn % 8)) != 0
    }

    /// The contents of page `pfn`.
    pub fn page(&self, pfn: u64) -> Result<Cow<'_, [u8]>, Miss> {
        if pfn >= self.max_mapnr {
            return Err(Miss::Absent);
        }
        if !self.bit(self.bitmap2, pfn) {
            return Err(if self.bit(self.bitmap1, pfn) {
                Miss::Excluded
            } else {
                Miss::Absent
            });
        }
        let byte = (pfn / 8) as usize;
        let below =
            u64::from((self.data[self.bitmap2 + byte] & ((1u8 << (pfn % 8)) - 1)).count_ones());
        let d = self.descs + ((self.rank[byte] + below) * 24) as usize;
        let (off, size, flags) = (
            u64_at(&self.data, d) as usize,
            u32_at(&self.data, d + 8) as usize,
            u32_at(&self.data, d + 12),
        );
        let raw = &self.data[off..off + size];
        match flags {
            0 => Ok(Cow::Borrowed(raw)),
            1 => {
                let mut out = Vec::with_capacity(self.block as usize);
                flate2::read::ZlibDecoder::new(raw)
                    .read_to_end(&mut out)
                    .unwrap_or_else(|e| panic!("page {pfn:#x}: zlib: {e}"));
                assert_eq!(out.len() as u64, self.block, "page {pfn:#x}");
                Ok(Cow::Owned(out))
            }
            f => panic!("page {pfn:#x}: flags {f:#x}: this reader knows zlib and raw pages only"),
        }
    }
}

impl Phys for KdumpZlib {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Miss> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr + done as u64;
            let page = self.page(a / self.block)?;
            let at = (a % self.block) as usize;
            let n = (self.block as usize - at).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[at..at + n]);
            done += n;
        }
        Ok(())
    }
}

/// `KEY=value` lines of VMCOREINFO text.
pub fn vmcoreinfo_map(text: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The VMCOREINFO note the guest's `/proc/kcore` had (the kept head of it
/// in `ground-truth/kcore.head`): the guest's own description of the
/// running kernel, independent of any dump file.
pub fn guest_vmcoreinfo(run_dir: &Path) -> Vec<u8> {
    let head_path = run_dir.join("ground-truth/kcore.head");
    let head = std::fs::read(&head_path).unwrap_or_else(|e| panic!("{}: {e}", head_path.display()));
    let (_, notes) = parse_elf(&head, true);
    notes
        .into_iter()
        .find(|(n, ..)| n == "VMCOREINFO")
        .map(|(.., d)| d)
        .unwrap_or_else(|| panic!("{}: no VMCOREINFO note", head_path.display()))
}

/// The x86_64 kernel page-table walk, from `swapper_pg_dir`.
pub struct Walker {
    top: u64,
    levels: u32,
    mask: u64,
}

impl Walker {
    /// From VMCOREINFO: `SYMBOL(swapper_pg_dir)` (or `init_top_pgt`),
    /// `NUMBER(phys_base)`, `NUMBER(pgtable_l5_enabled)`, `NUMBER(sme_mask)`.
    pub fn from_vmcoreinfo(text: &[u8]) -> Walker {
        let m = vmcoreinfo_map(text);
        let sym = m
            .get("SYMBOL(init_top_pgt)")
            .or(m.get("SYMBOL(swapper_pg_dir)"))
            .expect("no SYMBOL(swapper_pg_dir)");
        let pgd = u64::from_str_radix(sym, 16).unwrap();
        let phys_base: i64 = m["NUMBER(phys_base)"].parse().unwrap();
        let l5 = m
            .get("NUMBER(pgtable_l5_enabled)")
            .is_some_and(|v| v != "0");
        let sme: u64 = m.get("NUMBER(sme_mask)").map_or(0, |v| v.parse().unwrap());
        Walker {
            top: (pgd - 0xffff_ffff_8000_0000).wrapping_add(phys_base as u64),
            levels: if l5 { 5 } else { 4 },
            mask: 0x000f_ffff_ffff_f000 & !sme,
        }
    }

    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// The top-level table's physical address.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The physical address `va` maps to and the physical pages of the
    /// tables walked, or `None` if it is not mapped (non-canonical, an
    /// entry not present, or a table the dump does not hold).
    pub fn walk(&self, mem: &dyn Phys, va: u64) -> Option<(u64, Vec<u64>)> {
        let bits = 12 + 9 * self.levels;
        let upper = (va as i64) >> (bits - 1);
        if upper != 0 && upper != -1 {
            return None;
        }
        let mut table = self.top;
        let mut tables = Vec::new();
        for level in (1..=self.levels).rev() {
            tables.push(table / PAGE);
            let shift = 12 + 9 * (level - 1);
            let index = (va >> shift) & 511;
            let mut e = [0u8; 8];
            mem.read(table + index * 8, &mut e).ok()?;
            let entry = u64::from_le_bytes(e);
            if entry & 1 == 0 {
                return None;
            }
            let huge = (level == 2 || level == 3) && entry & 0x80 != 0;
            if level == 1 || huge {
                let size = 1u64 << shift;
                return Some((
                    (entry & self.mask & !(size - 1)) | (va & (size - 1)),
                    tables,
                ));
            }
            table = entry & self.mask;
        }
        None
    }

    /// What reading `len` bytes at `va` gives, page by page: the first
    /// page that cannot be translated or read decides.
    pub fn read(&self, mem: &dyn Phys, va: u64, len: usize) -> Outcome {
        let mut out = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            let a = va.wrapping_add(done as u64);
            let Some((pa, _)) = self.walk(mem, a) else {
                return Outcome::Unmapped;
            };
            let n = ((PAGE - a % PAGE) as usize).min(len - done);
            match mem.read(pa, &mut out[done..done + n]) {
                Ok(()) => {}
                Err(Miss::Excluded) => return Outcome::Excluded,
                Err(Miss::Absent) => return Outcome::NotInDump,
            }
            done += n;
        }
        Outcome::Bytes(out)
    }
}
