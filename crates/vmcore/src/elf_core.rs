//! Physical memory of an ELF core: `/proc/vmcore` copies, makedumpfile's
//! `-E` output, QEMU's ELF dumps and `/proc/kcore`.
//!
//! Each `PT_LOAD` with a physical address maps `[p_paddr, p_paddr +
//! p_memsz)`. Bytes past `p_filesz` were left out by makedumpfile (it
//! splits segments at long runs of excluded pages), so they read as
//! [`Error::Excluded`], not as zeros.

use crate::addr::{FileOffset, PhysAddr};
use crate::elf::{CoreHeader, PT_LOAD};
use crate::error::{Error, Result};
use crate::memory::PhysicalMemory;
use crate::source::ByteSource;

/// A `PT_LOAD` segment that has a physical address.
#[derive(Debug, Clone, Copy)]
struct PhysSegment {
    paddr: u64,
    memsz: u64,
    filesz: u64,
    offset: u64,
}

/// Physical memory read from an ELF core's `PT_LOAD` segments.
pub struct ElfPhysicalMemory<S> {
    src: S,
    /// Sorted by `paddr`.
    segments: Vec<PhysSegment>,
    /// `max_end[i]`: the largest `paddr + memsz` among `segments[..=i]`, so
    /// a lookup can stop walking back through overlapping segments.
    max_end: Vec<u64>,
    page_size: u64,
}

impl<S> std::fmt::Debug for ElfPhysicalMemory<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfPhysicalMemory")
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl<S: ByteSource> ElfPhysicalMemory<S> {
    /// Indexes the `PT_LOAD` segments of `header`. Segments without a
    /// physical address (`p_paddr == -1` in kcore) are left out.
    pub fn new(src: S, header: &CoreHeader, page_size: u64) -> Result<Self> {
        let mut segments: Vec<PhysSegment> = header
            .program_headers
            .iter()
            .filter(|ph| ph.p_type == PT_LOAD && ph.paddr.0 != u64::MAX && ph.memsz > 0)
            .map(|ph| PhysSegment {
                paddr: ph.paddr.0,
                memsz: ph.memsz,
                filesz: ph.filesz.min(ph.memsz),
                offset: ph.offset.0,
            })
            .collect();
        for s in &segments {
            if s.paddr.checked_add(s.memsz).is_none() || s.offset.checked_add(s.filesz).is_none() {
                return Err(Error::Corrupt(format!(
                    "PT_LOAD at physical {:#x} overflows",
                    s.paddr
                )));
            }
        }
        segments.sort_by_key(|s| s.paddr);
        let mut max_end = Vec::with_capacity(segments.len());
        let mut m = 0;
        for s in &segments {
            m = m.max(s.paddr + s.memsz);
            max_end.push(m);
        }
        Ok(ElfPhysicalMemory {
            src,
            segments,
            max_end,
            page_size,
        })
    }

    /// The underlying bytes.
    pub fn source(&self) -> &S {
        &self.src
    }

    /// The first segment (in `paddr` order, latest start first) containing
    /// `addr`, preferring one whose file data covers it.
    fn find(&self, addr: u64) -> Option<&PhysSegment> {
        let idx = self.segments.partition_point(|s| s.paddr <= addr);
        let mut fallback = None;
        for i in (0..idx).rev() {
            if self.max_end[i] <= addr {
                break;
            }
            let s = &self.segments[i];
            if addr < s.paddr + s.memsz {
                if addr < s.paddr + s.filesz {
                    return Some(s);
                }
                fallback.get_or_insert(s);
            }
        }
        fallback
    }

    /// Pages that are inside a segment but not in the file
    /// (`p_filesz < p_memsz`): what makedumpfile's ELF output excluded.
    pub fn excluded_pages(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| (s.memsz - s.filesz) / self.page_size)
            .sum()
    }

    /// Pages described by the segments (including excluded ones), counting
    /// overlapping segments (kernel text inside a RAM range) once.
    pub fn described_pages(&self) -> u64 {
        let mut total = 0;
        let mut covered_to = 0u64;
        for s in &self.segments {
            let end = s.paddr + s.memsz;
            if end > covered_to {
                total += end - s.paddr.max(covered_to);
                covered_to = end;
            }
        }
        total / self.page_size
    }

    /// The first segment whose file data runs past the end of the file:
    /// `(needed, file length)`.
    pub fn truncation(&self) -> Option<(u64, u64)> {
        let len = self.src.len();
        self.segments
            .iter()
            .map(|s| s.offset + s.filesz)
            .filter(|&end| end > len)
            .max()
            .map(|end| (end, len))
    }
}

impl<S: ByteSource> PhysicalMemory for ElfPhysicalMemory<S> {
    fn page_size(&self) -> u64 {
        self.page_size
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr
                .0
                .checked_add(done as u64)
                .ok_or(Error::NotInDump(addr))?;
            let seg = self.find(a).ok_or(Error::NotInDump(PhysAddr(a)))?;
            let rel = a - seg.paddr;
            if rel >= seg.filesz {
                return Err(Error::Excluded(PhysAddr(a).pfn(self.page_size)));
            }
            let to_page_end = self.page_size - a % self.page_size;
            let n = ((seg.filesz - rel).min(to_page_end) as usize).min(buf.len() - done);
            let off = FileOffset(seg.offset + rel);
            let bytes = self
                .src
                .bytes(off, n, "segment data")
                .map_err(|e| match e {
                    Error::Truncated { needed, len, .. } => Error::PageTruncated {
                        pfn: PhysAddr(a).pfn(self.page_size),
                        needed,
                        len,
                    },
                    other => other,
                })?;
            buf[done..done + n].copy_from_slice(&bytes);
            done += n;
        }
        Ok(())
    }
}
