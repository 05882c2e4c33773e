//! ELF64 core files: the header, program headers and notes.
//!
//! This is the layer under three formats: kdump's `/proc/vmcore` copies,
//! makedumpfile's `-E` output, QEMU's `dump-guest-memory` ELF, and
//! `/proc/kcore`. Only little-endian x86_64 cores are accepted.

use crate::addr::{FileOffset, PhysAddr, VirtAddr};
use crate::bytes::{align_up, c_str, le_u16, le_u32, le_u64};
use crate::error::{Error, Result};
use crate::source::ByteSource;

/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = 4;
/// `ET_CORE`.
pub const ET_CORE: u16 = 4;
/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `NT_PRSTATUS`.
pub const NT_PRSTATUS: u32 = 1;
/// `NT_TASKSTRUCT` (only `/proc/kcore` has it).
pub const NT_TASKSTRUCT: u32 = 4;
/// makedumpfile's `e_flags` bit for an ELF dump whose writing failed.
pub const DUMP_ELF_INCOMPLETE: u32 = 1;

/// One program header of a core file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramHeader {
    /// `p_type`.
    pub p_type: u32,
    /// `p_offset`.
    pub offset: FileOffset,
    /// `p_vaddr`.
    pub vaddr: VirtAddr,
    /// `p_paddr` (`u64::MAX` in kcore means "no physical address").
    pub paddr: PhysAddr,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
}

/// The parts of an ELF64 core header this crate uses.
#[derive(Debug, Clone)]
pub struct CoreHeader {
    /// `e_type`.
    pub e_type: u16,
    /// `e_machine`.
    pub machine: u16,
    /// `e_flags`.
    pub flags: u32,
    /// All program headers, in file order.
    pub program_headers: Vec<ProgramHeader>,
}

/// True if `b` starts with the ELF magic.
pub fn has_elf_magic(b: &[u8]) -> bool {
    b.starts_with(b"\x7fELF")
}

impl CoreHeader {
    /// Parses the ELF header and program headers of a 64-bit little-endian
    /// core file.
    pub fn parse(src: &dyn ByteSource) -> Result<Self> {
        let ehdr = src.bytes(FileOffset(0), 64, "ELF header")?;
        if !has_elf_magic(&ehdr) {
            return Err(Error::NotADump("no ELF magic".into()));
        }
        if ehdr[4] != 2 {
            return Err(Error::Unsupported("32-bit ELF cores".into()));
        }
        if ehdr[5] != 1 {
            return Err(Error::Unsupported("big-endian ELF cores".into()));
        }
        let field = |v: Option<u64>| v.ok_or_else(|| Error::Corrupt("short ELF header".into()));
        let e_type = field(le_u16(&ehdr, 16).map(u64::from))? as u16;
        let machine = field(le_u16(&ehdr, 18).map(u64::from))? as u16;
        let phoff = field(le_u64(&ehdr, 32))?;
        let flags = field(le_u32(&ehdr, 48).map(u64::from))? as u32;
        let phentsize = field(le_u16(&ehdr, 54).map(u64::from))?;
        let mut phnum = field(le_u16(&ehdr, 56).map(u64::from))?;
        if e_type != ET_CORE {
            return Err(Error::NotADump(format!(
                "ELF file of type {e_type}, not a core file (ET_CORE)"
            )));
        }
        if machine != EM_X86_64 {
            return Err(Error::Unsupported(format!(
                "ELF core for machine {machine}; only x86_64 (62) is read"
            )));
        }
        if phentsize != 56 {
            return Err(Error::Corrupt(format!(
                "program header size {phentsize}, expected 56"
            )));
        }
        if phnum == 0xffff {
            // PN_XNUM: the real count is in section header 0's sh_info.
            let shoff = field(le_u64(&ehdr, 40))?;
            let sh0 = src.bytes(FileOffset(shoff), 64, "section header 0")?;
            phnum = u64::from(field(le_u32(&sh0, 44).map(u64::from))? as u32);
        }
        let table_len = phnum
            .checked_mul(56)
            .filter(|&l| l <= 1 << 30)
            .ok_or_else(|| Error::Corrupt("program header count overflows".into()))?;
        let table = src.bytes(FileOffset(phoff), table_len as usize, "program headers")?;
        let mut program_headers = Vec::with_capacity(phnum as usize);
        for raw in table.chunks_exact(56) {
            let get = |off| le_u64(raw, off).unwrap_or(0);
            program_headers.push(ProgramHeader {
                p_type: le_u32(raw, 0).unwrap_or(0),
                offset: FileOffset(get(8)),
                vaddr: VirtAddr(get(16)),
                paddr: PhysAddr(get(24)),
                filesz: get(32),
                memsz: get(40),
            });
        }
        Ok(CoreHeader {
            e_type,
            machine,
            flags,
            program_headers,
        })
    }
}

/// One ELF note, borrowed from its buffer.
#[derive(Debug, Clone, Copy)]
pub struct Note<'a> {
    /// The name without its NUL (`CORE`, `VMCOREINFO`, `QEMU`, ...).
    pub name: &'a [u8],
    /// `n_type`.
    pub n_type: u32,
    /// The descriptor.
    pub desc: &'a [u8],
}

/// Iterates the notes in a buffer (4-byte aligned, as Linux writes them).
/// Stops at the end of the buffer, at an all-zero header (the terminator
/// kdump leaves after each CPU's note), or at the first malformed note,
/// after yielding an error for it.
#[derive(Debug, Clone)]
pub struct NoteIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> NoteIter<'a> {
    /// Iterates the notes in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        NoteIter {
            buf,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for NoteIter<'a> {
    type Item = Result<Note<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos + 12 > self.buf.len() {
            return None;
        }
        let b = self.buf;
        let p = self.pos;
        let namesz = le_u32(b, p)? as usize;
        let descsz = le_u32(b, p + 4)? as usize;
        let n_type = le_u32(b, p + 8)?;
        if namesz == 0 && descsz == 0 && n_type == 0 {
            // Padding or the empty terminator note: skip it and go on, so
            // notes merged from several buffers are all found.
            self.pos += 12;
            return self.next();
        }
        let parsed = (|| {
            let name_start = p + 12;
            let name_end = name_start.checked_add(namesz)?;
            let desc_start = align_up(name_end, 4)?;
            let desc_end = desc_start.checked_add(descsz)?;
            let next = align_up(desc_end, 4)?;
            let name = b.get(name_start..name_end)?;
            let desc = b.get(desc_start..desc_end)?;
            Some((
                Note {
                    name: c_str(name),
                    n_type,
                    desc,
                },
                next,
            ))
        })();
        match parsed {
            Some((note, next)) => {
                self.pos = next;
                Some(Ok(note))
            }
            None => {
                self.done = true;
                Some(Err(Error::Corrupt(format!(
                    "ELF note at offset {p} runs past its buffer"
                ))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], n_type: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&n_type.to_le_bytes());
        v.extend_from_slice(name);
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    use crate::source::OwnedBytes;

    /// An x86_64 ET_CORE header with `phnum` program headers after it.
    fn core(phs: &[(u32, u64, u64, u64, u64, u64)]) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[48..52].copy_from_slice(&DUMP_ELF_INCOMPLETE.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for &(t, off, vaddr, paddr, filesz, memsz) in phs {
            let mut p = vec![0u8; 56];
            p[..4].copy_from_slice(&t.to_le_bytes());
            for (at, v) in [
                (8, off),
                (16, vaddr),
                (24, paddr),
                (32, filesz),
                (40, memsz),
            ] {
                p[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            f.extend_from_slice(&p);
        }
        f
    }

    fn parse(b: Vec<u8>) -> Result<CoreHeader> {
        CoreHeader::parse(&OwnedBytes(b))
    }

    #[test]
    fn parses_program_headers() {
        let f = core(&[
            (PT_NOTE, 0x100, 0, 0, 0x20, 0x20),
            (
                PT_LOAD,
                0x1000,
                0xffff_8880_0000_0000,
                0x10_0000,
                0x2000,
                0x3000,
            ),
        ]);
        let h = parse(f).unwrap();
        assert_eq!((h.e_type, h.machine, h.flags), (ET_CORE, EM_X86_64, 1));
        assert_eq!(
            h.program_headers[1],
            ProgramHeader {
                p_type: PT_LOAD,
                offset: FileOffset(0x1000),
                vaddr: VirtAddr(0xffff_8880_0000_0000),
                paddr: PhysAddr(0x10_0000),
                filesz: 0x2000,
                memsz: 0x3000,
            }
        );
        assert_eq!(h.program_headers[0].p_type, PT_NOTE);
        assert!(has_elf_magic(b"\x7fELF\x02") && !has_elf_magic(b"\x7fELG"));
    }

    #[test]
    fn refuses_what_is_not_an_x86_64_core() {
        let good = core(&[(PT_LOAD, 0, 0, 0, 0, 0)]);
        let with = |at: usize, bytes: &[u8]| {
            let mut f = good.clone();
            f[at..at + bytes.len()].copy_from_slice(bytes);
            parse(f)
        };
        assert!(matches!(with(0, b"\x7fELG"), Err(Error::NotADump(_))));
        assert!(matches!(with(4, &[1]), Err(Error::Unsupported(_))));
        assert!(matches!(with(5, &[2]), Err(Error::Unsupported(_))));
        assert!(matches!(
            with(16, &2u16.to_le_bytes()),
            Err(Error::NotADump(_))
        ));
        assert!(matches!(
            with(18, &183u16.to_le_bytes()),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            with(54, &64u16.to_le_bytes()),
            Err(Error::Corrupt(_))
        ));
        // Program headers past the end of the file.
        assert!(matches!(
            with(56, &2u16.to_le_bytes()),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn pn_xnum_takes_the_count_from_section_header_zero() {
        let mut f = core(&[(PT_LOAD, 0, 0, 0, 1, 1), (PT_LOAD, 0, 0, 0, 2, 2)]);
        let shoff = f.len() as u64;
        f[40..48].copy_from_slice(&shoff.to_le_bytes());
        f[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        let mut sh0 = vec![0u8; 64];
        sh0[44..48].copy_from_slice(&2u32.to_le_bytes());
        f.extend_from_slice(&sh0);
        let h = parse(f.clone()).unwrap();
        assert_eq!(h.program_headers.len(), 2);
        assert_eq!(h.program_headers[1].filesz, 2);
        // An absurd count is refused before anything is read.
        f[shoff as usize + 44..shoff as usize + 48].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse(f), Err(Error::Corrupt(_))));
    }

    #[test]
    fn the_program_header_table_limit_is_one_gib() {
        // 1 GiB / 56 headers fits; one more does not.
        let mut f = core(&[]);
        let shoff = f.len() as u64;
        f[40..48].copy_from_slice(&shoff.to_le_bytes());
        f[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        let mut sh0 = vec![0u8; 64];
        sh0[44..48].copy_from_slice(&(((1u32 << 30) / 56) + 1).to_le_bytes());
        f.extend_from_slice(&sh0);
        assert!(matches!(parse(f.clone()), Err(Error::Corrupt(_))));
        let at = shoff as usize + 44;
        f[at..at + 4].copy_from_slice(&((1u32 << 30) / 56).to_le_bytes());
        assert!(matches!(parse(f), Err(Error::Truncated { .. })));
    }

    #[test]
    fn note_iteration_stops_at_the_buffer_end() {
        let mut buf = note(b"CORE", 1, &[]);
        assert_eq!(buf.len(), 20);
        // Eleven trailing bytes are not a note header.
        buf.extend_from_slice(&[1; 11]);
        let notes: Vec<_> = NoteIter::new(&buf).collect();
        assert_eq!(notes.len(), 1);
        // A header of exactly twelve bytes with a zero-length name.
        let mut buf = vec![0u8; 12];
        buf[8] = 5;
        let notes: Vec<_> = NoteIter::new(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!((notes[0].name, notes[0].n_type), (&b""[..], 5));
        // A note with no name and no descriptor but a type is a note, not
        // padding; one with only a descriptor too.
        let mut buf = vec![0u8; 12];
        buf[4] = 4;
        buf.extend_from_slice(b"abcd");
        let notes: Vec<_> = NoteIter::new(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(notes[0].desc, b"abcd");
    }

    #[test]
    fn iterates_notes_across_terminators() {
        let mut buf = note(b"CORE", 1, &[7; 336]);
        buf.extend_from_slice(&[0; 12]);
        buf.extend(note(b"VMCOREINFO", 0, b"OSRELEASE=6.1\n"));
        let notes: Vec<_> = NoteIter::new(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].name, b"CORE");
        assert_eq!(notes[0].desc.len(), 336);
        assert_eq!(notes[1].name, b"VMCOREINFO");
        assert_eq!(notes[1].desc, b"OSRELEASE=6.1\n");
    }

    #[test]
    fn reports_a_note_running_past_its_buffer() {
        let mut buf = note(b"CORE", 1, &[7; 40]);
        buf.truncate(buf.len() - 8);
        let mut it = NoteIter::new(&buf);
        assert!(matches!(it.next(), Some(Err(Error::Corrupt(_)))));
        assert!(it.next().is_none());
    }
}
