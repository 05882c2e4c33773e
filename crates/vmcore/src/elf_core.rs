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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::VirtAddr;
    use crate::elf::{PT_NOTE, ProgramHeader};
    use crate::source::OwnedBytes;

    fn load(paddr: u64, offset: u64, filesz: u64, memsz: u64) -> ProgramHeader {
        ProgramHeader {
            p_type: PT_LOAD,
            offset: FileOffset(offset),
            vaddr: VirtAddr(0),
            paddr: PhysAddr(paddr),
            filesz,
            memsz,
        }
    }

    fn header(phs: Vec<ProgramHeader>) -> CoreHeader {
        CoreHeader {
            e_type: 4,
            machine: 62,
            flags: 0,
            program_headers: phs,
        }
    }

    /// File byte `i` is `i % 251`, so every read shows where it came from.
    fn file(len: usize) -> OwnedBytes {
        OwnedBytes((0..len).map(|i| (i % 251) as u8).collect())
    }

    fn expect(off: usize, len: usize) -> Vec<u8> {
        (off..off + len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn reads_segments_and_tells_excluded_from_absent() {
        // RAM at 0x1000 (two pages in the file, a third left out), RAM at
        // 0x10000 (one page), kernel text inside the first range (its own
        // copy in the file), a note, a kcore-style segment without a
        // physical address, and an empty one.
        let mut note = load(0, 0, 16, 16);
        note.p_type = PT_NOTE;
        let h = header(vec![
            load(0x10000, 0x3000, 0x1000, 0x1000),
            load(0x1000, 0x1000, 0x2000, 0x3000),
            load(0x1800, 0x4000, 0x100, 0x100),
            note,
            load(u64::MAX, 0, 0x1000, 0x1000),
            load(0x50000, 0, 0, 0),
        ]);
        let m = ElfPhysicalMemory::new(file(0x5000), &h, 4096).unwrap();
        assert_eq!(m.page_size(), 4096);
        assert!(format!("{m:?}").contains("segments: 3"));
        let mut buf = vec![0u8; 0x20];
        // The text copy wins inside its range, RAM around it.
        m.read_phys(PhysAddr(0x1800), &mut buf).unwrap();
        assert_eq!(buf, expect(0x4000, 0x20));
        m.read_phys(PhysAddr(0x1900), &mut buf).unwrap();
        assert_eq!(buf, expect(0x1900, 0x20));
        // A read that starts in RAM stays in RAM up to its page's end.
        m.read_phys(PhysAddr(0x17f0), &mut buf).unwrap();
        assert_eq!(buf, expect(0x17f0, 0x20));
        // Across a page boundary inside one segment.
        let mut two = vec![0u8; 0x1000];
        m.read_phys(PhysAddr(0x1f00), &mut two).unwrap();
        assert_eq!(&two[..0x100], &expect(0x1f00, 0x100)[..]);
        assert_eq!(&two[0x100..], &expect(0x2000, 0xf00)[..]);
        m.read_phys(PhysAddr(0x10ff0), &mut buf[..0x10]).unwrap();
        assert_eq!(&buf[..0x10], &expect(0x3ff0, 0x10)[..]);
        // Past p_filesz: excluded; past p_memsz and between: not in dump.
        assert!(matches!(
            m.read_phys(PhysAddr(0x3000), &mut buf),
            Err(Error::Excluded(crate::addr::Pfn(3)))
        ));
        assert!(matches!(
            m.read_phys(PhysAddr(0x2ff0), &mut buf),
            Err(Error::Excluded(crate::addr::Pfn(3)))
        ));
        assert!(matches!(
            m.read_phys(PhysAddr(0x4000), &mut buf),
            Err(Error::NotInDump(PhysAddr(0x4000)))
        ));
        assert!(matches!(
            m.read_phys(PhysAddr(0x0), &mut buf),
            Err(Error::NotInDump(_))
        ));
        assert!(matches!(
            m.read_phys(PhysAddr(0x10ff0), &mut buf),
            Err(Error::NotInDump(PhysAddr(0x11000)))
        ));
        assert!(matches!(
            m.read_phys(PhysAddr(u64::MAX - 4), &mut buf),
            Err(Error::NotInDump(_))
        ));
        assert_eq!(m.excluded_pages(), 1);
        // 0x1000..0x4000 and 0x10000..0x11000; the text copy counts once.
        assert_eq!(m.described_pages(), 4);
        assert_eq!(m.truncation(), None);
    }

    #[test]
    fn a_segment_past_the_end_of_the_file_is_truncation() {
        let h = header(vec![
            load(0x1000, 0x1000, 0x2000, 0x2000),
            load(0x8000, 0x100, 0x100, 0x100),
        ]);
        let m = ElfPhysicalMemory::new(file(0x2800), &h, 4096).unwrap();
        assert_eq!(m.truncation(), Some((0x3000, 0x2800)));
        let mut buf = [0u8; 8];
        m.read_phys(PhysAddr(0x1000), &mut buf).unwrap();
        match m.read_phys(PhysAddr(0x2800), &mut buf) {
            Err(Error::PageTruncated { pfn, needed, len }) => {
                assert_eq!((pfn.0, needed.0, len), (2, 0x2808, 0x2800));
            }
            other => panic!("{other:?}"),
        }
        // A file exactly long enough is not truncated.
        let m = ElfPhysicalMemory::new(file(0x3000), &h, 4096).unwrap();
        assert_eq!(m.truncation(), None);
    }

    #[test]
    fn a_truncated_read_names_the_page_it_fails_in() {
        // The file ends at a page boundary inside the segment: a read
        // across that boundary fails in the second page, not the first.
        let h = header(vec![load(0x1000, 0x1000, 0x2000, 0x2000)]);
        let m = ElfPhysicalMemory::new(file(0x2000), &h, 4096).unwrap();
        let mut buf = [0u8; 16];
        match m.read_phys(PhysAddr(0x1ff8), &mut buf) {
            Err(Error::PageTruncated { pfn, needed, .. }) => {
                assert_eq!((pfn.0, needed.0), (2, 0x2008));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_segment_whose_file_data_ends_mid_page() {
        // makedumpfile may end a segment's file data inside a page: the
        // bytes after p_filesz are excluded, even where the file goes on.
        let h = header(vec![load(0x1000, 0x1000, 0x800, 0x2000)]);
        let m = ElfPhysicalMemory::new(file(0x4000), &h, 4096).unwrap();
        let mut buf = [0u8; 0x20];
        assert!(matches!(
            m.read_phys(PhysAddr(0x17f0), &mut buf),
            Err(Error::Excluded(crate::addr::Pfn(1)))
        ));
        m.read_phys(PhysAddr(0x17e0), &mut buf).unwrap();
        assert_eq!(&buf[..], &expect(0x17e0, 0x20)[..]);
    }

    #[test]
    fn overlapping_and_overflowing_segments() {
        // A long segment, then a short one inside it that ends first: an
        // address past the short one's end is still found in the long one.
        let h = header(vec![
            load(0x0, 0x0, 0x4000, 0x4000),
            load(0x1000, 0x0, 0x1000, 0x1000),
            load(0x2000, 0x0, 0x0, 0x800),
        ]);
        let m = ElfPhysicalMemory::new(file(0x4000), &h, 4096).unwrap();
        let mut buf = [0u8; 4];
        m.read_phys(PhysAddr(0x3000), &mut buf).unwrap();
        assert_eq!(&buf[..], &expect(0x3000, 4)[..]);
        // Where a segment without data overlaps one with data, the data wins.
        m.read_phys(PhysAddr(0x2000), &mut buf).unwrap();
        assert_eq!(&buf[..], &expect(0x2000, 4)[..]);
        assert_eq!(m.described_pages(), 4);
        // p_filesz larger than p_memsz counts as p_memsz.
        let h = header(vec![load(0x0, 0x0, 0x2000, 0x1000)]);
        let m = ElfPhysicalMemory::new(file(0x2000), &h, 4096).unwrap();
        assert!(matches!(
            m.read_phys(PhysAddr(0x1000), &mut buf),
            Err(Error::NotInDump(_))
        ));
        assert_eq!(m.excluded_pages(), 0);
        for bad in [load(u64::MAX - 1, 0, 1, 2), load(0, u64::MAX, 2, 2)] {
            assert!(matches!(
                ElfPhysicalMemory::new(file(16), &header(vec![bad]), 4096),
                Err(Error::Corrupt(_))
            ));
        }
    }
}
