//! Opening a dump: format detection, and the kernel view over it.
//!
//! [`Dump::open`] looks at the first bytes of a file and picks the reader:
//! kdump-compressed, flattened (indexed in place), an ELF core (kdump,
//! makedumpfile `-E`, QEMU) or `/proc/kcore`. Whatever the format, the
//! result is one [`Dump`]: physical memory, the ELF notes, VMCOREINFO,
//! and, when VMCOREINFO allows it, kernel virtual memory through the page
//! tables. Kallsyms and per-CPU registers are decoded on first use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use crate::addr::{PhysAddr, VirtAddr};
use crate::cpu::{CpuMatch, CpuState, CrashNotesLayout, PrStatus};
use crate::elf::{self, CoreHeader, NT_TASKSTRUCT, NoteIter, PT_NOTE};
use crate::elf_core::ElfPhysicalMemory;
use crate::error::{Error, Result};
use crate::flattened::{FLATTENED_SIGNATURE, FlattenedFile};
use crate::kallsyms::{Kallsyms, KallsymsNameIndex};
use crate::kdump::{self, Compression, KdumpCompressed, KdumpHeader, PageStats};
use crate::memory::{KernelMemory, PhysicalMemory};
use crate::source::{ByteSource, MappedFile, OwnedBytes, PositionedFile};
use crate::vmcoreinfo::Vmcoreinfo;
use crate::x86_64::{PageTableWalker, Translation};

/// Where a live kernel says where its VMCOREINFO note is.
const SYS_VMCOREINFO: &str = "/sys/kernel/vmcoreinfo";

/// `statfs` magic of procfs.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Which kind of file a dump is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DumpFormat {
    /// An ELF vmcore written by the kernel (`/proc/vmcore` copied as is).
    ElfKdump,
    /// An ELF vmcore filtered by makedumpfile (`-E`; `p_filesz < p_memsz`).
    ElfMakedumpfile,
    /// QEMU's `dump-guest-memory` ELF output.
    ElfQemu,
    /// makedumpfile's kdump-compressed format.
    KdumpCompressed,
    /// The flattened form of the kdump-compressed format.
    KdumpFlattened,
    /// `/proc/kcore` of the running kernel.
    Kcore,
}

impl DumpFormat {
    /// A short human-readable name.
    pub fn describe(self) -> &'static str {
        match self {
            DumpFormat::ElfKdump => "ELF vmcore (kdump /proc/vmcore)",
            DumpFormat::ElfMakedumpfile => "ELF vmcore (makedumpfile -E, filtered)",
            DumpFormat::ElfQemu => "ELF (QEMU dump-guest-memory)",
            DumpFormat::KdumpCompressed => "kdump-compressed (makedumpfile)",
            DumpFormat::KdumpFlattened => {
                "kdump-compressed, flattened (makedumpfile -F / QEMU kdump-*)"
            }
            DumpFormat::Kcore => "/proc/kcore (live kernel)",
        }
    }
}

/// Options for [`Dump::open_with`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// A file holding VMCOREINFO text, used instead of (or in the absence
    /// of) the dump's own.
    pub vmcoreinfo_override: Option<PathBuf>,
}

/// The physical memory readers, one per format.
enum Physical {
    Elf(ElfPhysicalMemory<MappedFile>),
    ElfOwned(ElfPhysicalMemory<OwnedBytes>),
    Kcore(ElfPhysicalMemory<PositionedFile>),
    Kdump(KdumpCompressed<MappedFile>),
    KdumpOwned(KdumpCompressed<OwnedBytes>),
    Flattened(KdumpCompressed<FlattenedFile<MappedFile>>),
}

impl Physical {
    fn memory(&self) -> &dyn PhysicalMemory {
        match self {
            Physical::Elf(m) => m,
            Physical::ElfOwned(m) => m,
            Physical::Kcore(m) => m,
            Physical::Kdump(m) => m,
            Physical::KdumpOwned(m) => m,
            Physical::Flattened(m) => m,
        }
    }
}

/// An opened dump (or live kernel).
pub struct Dump {
    path: PathBuf,
    format: DumpFormat,
    physical: Physical,
    notes: Vec<u8>,
    vmcoreinfo: Option<Vmcoreinfo>,
    vmcoreinfo_source: &'static str,
    walker: Option<PageTableWalker>,
    kallsyms: OnceLock<std::result::Result<Kallsyms, String>>,
    /// Name lookups without decoding kallsyms; `None` when the kernel has
    /// no usable name order (or its tables cannot be read).
    name_index: OnceLock<Option<KallsymsNameIndex>>,
    /// What the name order answered (a lookup decodes a dozen names).
    looked_up: Mutex<HashMap<String, Option<VirtAddr>>>,
    warnings: Vec<String>,
    /// True if QEMU wrote the dump (it has `QEMU` notes).
    qemu: bool,
}

impl std::fmt::Debug for Dump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dump")
            .field("path", &self.path)
            .field("format", &self.format)
            .finish()
    }
}

impl Dump {
    /// Opens a dump with default options.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens a dump.
    pub fn open_with(path: &Path, options: &OpenOptions) -> Result<Self> {
        if is_procfs(path) {
            let src = PositionedFile::open(path).map_err(|e| live_refusal(path, e))?;
            return Self::from_elf(path, src, options, true);
        }
        let map = MappedFile::open(path)?;
        let head = map.as_slice();
        if kdump::has_kdump_signature(head) {
            let k = KdumpCompressed::new(map)?;
            Self::from_kdump(
                path,
                Physical::Kdump(k),
                DumpFormat::KdumpCompressed,
                options,
            )
        } else if head.starts_with(FLATTENED_SIGNATURE) {
            let flat = FlattenedFile::new(map)?;
            let trunc = flat.truncation();
            // A cut stream leaves holes in the file it describes; whatever
            // then fails to parse, the cause is the truncation.
            let k = KdumpCompressed::new(flat).map_err(|e| match trunc {
                Some((needed, len)) => Error::Truncated {
                    what: "flattened record stream",
                    needed: crate::addr::FileOffset(needed),
                    len,
                },
                None => e,
            })?;
            let mut d = Self::from_kdump(
                path,
                Physical::Flattened(k),
                DumpFormat::KdumpFlattened,
                options,
            )?;
            if let Some((needed, len)) = trunc {
                d.warnings.push(format!(
                    "truncated flattened stream: needs {needed} bytes, file has {len}"
                ));
            }
            Ok(d)
        } else if elf::has_elf_magic(head) {
            Self::from_elf(path, map, options, false)
        } else {
            Err(Error::NotADump(format!(
                "{}: unknown format (no ELF, KDUMP or flattened makedumpfile signature)",
                path.display()
            )))
        }
    }

    /// Opens a dump held in memory (tests and fuzzing): ELF or
    /// kdump-compressed.
    pub fn from_bytes(bytes: Vec<u8>, options: &OpenOptions) -> Result<Self> {
        let path = PathBuf::from("<memory>");
        if kdump::has_kdump_signature(&bytes) {
            let k = KdumpCompressed::new(OwnedBytes(bytes))?;
            Self::from_kdump(
                &path,
                Physical::KdumpOwned(k),
                DumpFormat::KdumpCompressed,
                options,
            )
        } else if elf::has_elf_magic(&bytes) {
            Self::from_elf(&path, OwnedBytes(bytes), options, false)
        } else {
            Err(Error::NotADump("unknown format".into()))
        }
    }

    fn from_kdump(
        path: &Path,
        physical: Physical,
        format: DumpFormat,
        options: &OpenOptions,
    ) -> Result<Self> {
        let (notes, raw_info, header) = match &physical {
            Physical::Kdump(k) => (k.notes()?, k.vmcoreinfo_text()?, k.header().clone()),
            Physical::KdumpOwned(k) => (k.notes()?, k.vmcoreinfo_text()?, k.header().clone()),
            Physical::Flattened(k) => (k.notes()?, k.vmcoreinfo_text()?, k.header().clone()),
            _ => return Err(Error::NotADump("internal: not a kdump reader".into())),
        };
        let notes = notes.unwrap_or_default();
        let qemu = NoteIter::new(&notes)
            .filter_map(|n| n.ok())
            .any(|n| n.name == b"QEMU");
        let mut found = vmcoreinfo_note(&notes)?.map(|v| (v, "ELF note"));
        if found.is_none()
            && let Some(text) = raw_info
        {
            found = Some((text, "kdump sub-header"));
        }
        let mut dump = Self::finish(path, format, physical, notes, found, options)?;
        dump.qemu = qemu;
        if header.status & kdump::DUMP_DH_COMPRESSED_INCOMPLETE != 0 {
            dump.warnings.push(
                "the dump is marked incomplete (makedumpfile ran out of space or failed)".into(),
            );
        }
        if let Some((needed, len)) = dump.kdump_truncation() {
            dump.warnings.push(format!(
                "truncated dump: page data needs {needed} bytes, file has {len}"
            ));
        }
        if let Some(info) = &dump.vmcoreinfo
            && let Some(r) = &info.osrelease
            && !header.release.is_empty()
            && *r != header.release
        {
            dump.warnings.push(format!(
                "header release {:?} differs from VMCOREINFO's {r:?}",
                header.release
            ));
        }
        Ok(dump)
    }

    fn from_elf<S: ElfSource>(
        path: &Path,
        src: S,
        options: &OpenOptions,
        procfs: bool,
    ) -> Result<Self> {
        let header = CoreHeader::parse(&src)?;
        let mut notes = Vec::new();
        for ph in header
            .program_headers
            .iter()
            .filter(|p| p.p_type == PT_NOTE)
        {
            if ph.filesz > 64 << 20 {
                return Err(Error::Corrupt(format!("PT_NOTE of {} bytes", ph.filesz)));
            }
            let bytes = src.bytes(ph.offset, ph.filesz as usize, "PT_NOTE segment")?;
            notes.extend_from_slice(&bytes);
            // Keep each segment's notes 4-byte aligned after concatenation.
            while notes.len() % 4 != 0 {
                notes.push(0);
            }
        }
        let mut has_qemu = false;
        let mut has_taskstruct = false;
        let mut other_names = Vec::new();
        for note in NoteIter::new(&notes) {
            let note = note?;
            match note.name {
                b"QEMU" => has_qemu = true,
                b"CORE" if note.n_type == NT_TASKSTRUCT => has_taskstruct = true,
                b"CORE" | b"VMCOREINFO" => {}
                other => other_names.push(String::from_utf8_lossy(other).into_owned()),
            }
        }
        let info = vmcoreinfo_note(&notes)?;
        let filtered = header
            .program_headers
            .iter()
            .any(|p| p.p_type == elf::PT_LOAD && p.filesz < p.memsz);
        let format = if procfs || (has_taskstruct && info.is_some()) {
            DumpFormat::Kcore
        } else if has_qemu {
            DumpFormat::ElfQemu
        } else if info.is_some() {
            if filtered {
                DumpFormat::ElfMakedumpfile
            } else {
                DumpFormat::ElfKdump
            }
        } else if options.vmcoreinfo_override.is_some() {
            DumpFormat::ElfKdump
        } else {
            let hint = if other_names.is_empty() {
                String::new()
            } else {
                format!(" (notes from {})", other_names.join(", "))
            };
            return Err(Error::NotADump(format!(
                "an ELF core with neither VMCOREINFO nor QEMU notes: a userspace core dump?{hint}"
            )));
        };
        let page_size = info
            .as_deref()
            .and_then(|t| Vmcoreinfo::parse(t).ok())
            .and_then(|i| i.page_size)
            .unwrap_or(4096);
        let flags = header.flags;
        let physical = S::wrap(ElfPhysicalMemory::new(src, &header, page_size)?);
        let found = info.map(|v| (v, "ELF note"));
        let mut dump = Self::finish(path, format, physical, notes, found, options)?;
        if flags & elf::DUMP_ELF_INCOMPLETE != 0 && format != DumpFormat::Kcore {
            dump.warnings.push(
                "the ELF dump is marked incomplete (makedumpfile could not finish writing it)"
                    .into(),
            );
        }
        if let Some((needed, len)) = dump.elf_truncation() {
            dump.warnings.push(format!(
                "truncated dump: segments need {needed} bytes, file has {len}"
            ));
        }
        Ok(dump)
    }

    fn finish(
        path: &Path,
        format: DumpFormat,
        physical: Physical,
        notes: Vec<u8>,
        found: Option<(Vec<u8>, &'static str)>,
        options: &OpenOptions,
    ) -> Result<Self> {
        let mut warnings = Vec::new();
        let (vmcoreinfo, vmcoreinfo_source) = if let Some(p) = &options.vmcoreinfo_override {
            let text = std::fs::read(p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            let text = override_text(&text, physical.memory())?;
            (Some(Vmcoreinfo::parse(&text)?), "override file")
        } else if let Some((text, source)) = found {
            (Some(Vmcoreinfo::parse(&text)?), source)
        } else if format == DumpFormat::Kcore
            && let Ok(line) = std::fs::read(SYS_VMCOREINFO)
        {
            // Before 4.19 kcore had no VMCOREINFO note; the kernel still
            // says where its note is in physical memory.
            let text = override_text(&line, physical.memory())?;
            (Some(Vmcoreinfo::parse(&text)?), "/sys/kernel/vmcoreinfo")
        } else {
            (None, "none")
        };
        let walker = match &vmcoreinfo {
            Some(info) => match PageTableWalker::from_vmcoreinfo(info) {
                Ok(w) => Some(w),
                Err(e) => {
                    warnings.push(format!("no address translation: {e}"));
                    None
                }
            },
            None => None,
        };
        if let Some(info) = &vmcoreinfo
            && info.build_id_is_known_bad()
        {
            warnings.push(
                "this kernel release writes a garbage BUILD-ID into VMCOREINFO; ignoring it".into(),
            );
        }
        Ok(Dump {
            path: path.to_owned(),
            format,
            physical,
            notes,
            vmcoreinfo,
            vmcoreinfo_source,
            walker,
            kallsyms: OnceLock::new(),
            name_index: OnceLock::new(),
            looked_up: Mutex::new(HashMap::new()),
            warnings,
            qemu: format == DumpFormat::ElfQemu,
        })
    }

    /// The file this dump was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format.
    pub fn format(&self) -> DumpFormat {
        self.format
    }

    /// Physical memory.
    pub fn physical(&self) -> &dyn PhysicalMemory {
        self.physical.memory()
    }

    /// VMCOREINFO, if the dump has one (or an override was given).
    pub fn vmcoreinfo(&self) -> Option<&Vmcoreinfo> {
        self.vmcoreinfo.as_ref()
    }

    /// VMCOREINFO, or the error explaining its absence.
    pub fn require_vmcoreinfo(&self) -> Result<&Vmcoreinfo> {
        self.vmcoreinfo
            .as_ref()
            .ok_or(Error::MissingVmcoreinfo(if self.qemu {
                "QEMU dump made without -device vmcoreinfo"
            } else {
                "not in the dump"
            }))
    }

    /// Where VMCOREINFO came from (`"ELF note"`, `"kdump sub-header"`,
    /// `"override file"`, `"/sys/kernel/vmcoreinfo"` or `"none"`).
    pub fn vmcoreinfo_source(&self) -> &'static str {
        self.vmcoreinfo_source
    }

    /// Problems noticed while opening (truncation, incomplete dump, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// True if QEMU's `dump-guest-memory` wrote this dump.
    pub fn is_qemu(&self) -> bool {
        self.qemu
    }

    /// The raw ELF notes (for kdump-compressed files, the notes blob).
    pub fn notes(&self) -> &[u8] {
        &self.notes
    }

    /// The page-table walker, if VMCOREINFO allows translation.
    pub fn page_table_walker(&self) -> Result<&PageTableWalker> {
        self.require_vmcoreinfo()?;
        self.walker
            .as_ref()
            .ok_or_else(|| Error::Vmcoreinfo("no page-table root".into()))
    }

    /// Translates a kernel virtual address.
    pub fn translate(&self, addr: VirtAddr) -> Result<Translation> {
        self.page_table_walker()?.translate(self.physical(), addr)
    }

    /// Reads physical memory.
    pub fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
        self.physical().read_phys(addr, buf)
    }

    /// The kdump-compressed header, for kdump and flattened dumps.
    pub fn kdump_header(&self) -> Option<&KdumpHeader> {
        match &self.physical {
            Physical::Kdump(k) => Some(k.header()),
            Physical::KdumpOwned(k) => Some(k.header()),
            Physical::Flattened(k) => Some(k.header()),
            _ => None,
        }
    }

    fn kdump_truncation(&self) -> Option<(u64, u64)> {
        match &self.physical {
            Physical::Kdump(k) => k.truncation(),
            Physical::KdumpOwned(k) => k.truncation(),
            Physical::Flattened(k) => k.truncation().or(k.source().truncation()),
            _ => None,
        }
    }

    fn elf_truncation(&self) -> Option<(u64, u64)> {
        match &self.physical {
            Physical::Elf(e) => e.truncation(),
            Physical::ElfOwned(e) => e.truncation(),
            _ => None,
        }
    }

    /// `(bytes needed, file length)` if the file is shorter than its
    /// headers say.
    pub fn truncation(&self) -> Option<(u64, u64)> {
        self.kdump_truncation().or_else(|| self.elf_truncation())
    }

    /// The page compression, for kdump-compressed dumps.
    pub fn compression(&self) -> Option<Compression> {
        match &self.physical {
            Physical::Kdump(k) => Some(k.compression()),
            Physical::KdumpOwned(k) => Some(k.compression()),
            Physical::Flattened(k) => Some(k.compression()),
            _ => None,
        }
    }

    /// Present, dumped and excluded page counts.
    pub fn page_stats(&self) -> PageStats {
        match &self.physical {
            Physical::Kdump(k) => k.page_stats(),
            Physical::KdumpOwned(k) => k.page_stats(),
            Physical::Flattened(k) => k.page_stats(),
            Physical::Elf(e) => elf_stats(e),
            Physical::ElfOwned(e) => elf_stats(e),
            Physical::Kcore(e) => elf_stats(e),
        }
    }

    /// The kernel's symbol table, decoded from memory (cached).
    pub fn kallsyms(&self) -> Result<&Kallsyms> {
        let r = self.kallsyms.get_or_init(|| {
            let info = self.require_vmcoreinfo().map_err(|e| e.to_string())?;
            Kallsyms::from_memory(self, info).map_err(|e| e.to_string())
        });
        r.as_ref()
            .map_err(|e| Error::Vmcoreinfo(format!("kallsyms: {e}")))
    }

    /// A symbol's address: VMCOREINFO's `SYMBOL()` first, then kallsyms.
    /// Until something needs the whole table, names are looked up in the
    /// kernel's name order (see [`KallsymsNameIndex`]); the decoded table
    /// answers when there is none, or when its pages cannot be read.
    pub fn symbol(&self, name: &str) -> Result<VirtAddr> {
        if let Some(a) = self.vmcoreinfo.as_ref().and_then(|i| i.symbol(name)) {
            return Ok(a);
        }
        let missing = || Error::NoSymbol(name.into());
        let memo = self
            .looked_up
            .lock()
            .ok()
            .and_then(|m| m.get(name).copied());
        if let Some(found) = memo {
            return found.ok_or_else(missing);
        }
        // (the name order also answers when decoding the table failed)
        if !matches!(self.kallsyms.get(), Some(Ok(_)))
            && let Some(index) = self.name_index()
            && let Ok(found) = index.address_of(self, name)
        {
            if let Ok(mut m) = self.looked_up.lock() {
                m.insert(name.to_owned(), found);
            }
            return found.ok_or_else(missing);
        }
        self.kallsyms()?.address_of(name).ok_or_else(missing)
    }

    fn name_index(&self) -> Option<&KallsymsNameIndex> {
        self.name_index
            .get_or_init(|| {
                let info = self.vmcoreinfo.as_ref()?;
                KallsymsNameIndex::from_memory(self, info).ok().flatten()
            })
            .as_ref()
    }

    /// The CPU that called `panic()` (`panic_cpu`, else `crashing_cpu`), if
    /// any.
    pub fn panic_cpu(&self) -> Result<Option<u32>> {
        for name in ["panic_cpu", "crashing_cpu"] {
            if let Ok(at) = self.symbol(name) {
                let v = self.read_u32(at)? as i32;
                return Ok((v >= 0).then_some(v as u32));
            }
        }
        Ok(None)
    }

    /// The `NT_PRSTATUS` notes in file order.
    pub fn prstatus_notes(&self) -> Result<Vec<PrStatus>> {
        PrStatus::all_in(&self.notes)
    }

    /// Each CPU's registers at the crash, matched to CPU numbers (see
    /// [`crate::cpu`]).
    pub fn cpus(&self) -> Result<Vec<CpuState>> {
        if self.format == DumpFormat::Kcore {
            // kcore's NT_PRSTATUS is all zeros: a running kernel has no
            // saved registers.
            return Ok(Vec::new());
        }
        let notes = self.prstatus_notes()?;
        let panic_cpu = self.panic_cpu().ok().flatten();
        let crashed = self
            .vmcoreinfo
            .as_ref()
            .is_some_and(|i| i.crash_time.is_some());
        let mut states: Vec<CpuState> = Vec::new();
        if crashed && let Ok(layout) = self.crash_notes_layout() {
            for (cpu, p) in crate::cpu::from_crash_notes(self, layout)? {
                states.push(CpuState {
                    cpu,
                    pid: p.pid,
                    registers: p.registers,
                    matched_by: CpuMatch::CrashNotes,
                    panicked: false,
                });
            }
        }
        if states.is_empty() {
            let qemu = self.qemu && notes.iter().all(|p| p.pid >= 1);
            for (i, p) in notes.iter().enumerate() {
                let (cpu, how) = if qemu {
                    (p.pid - 1, CpuMatch::QemuPid)
                } else {
                    (i as u32, CpuMatch::NoteOrder)
                };
                states.push(CpuState {
                    cpu,
                    pid: p.pid,
                    registers: p.registers,
                    matched_by: how,
                    panicked: false,
                });
            }
        }
        states.sort_by_key(|s| s.cpu);
        for s in &mut states {
            s.panicked = Some(s.cpu) == panic_cpu;
        }
        Ok(states)
    }

    fn crash_notes_layout(&self) -> Result<CrashNotesLayout> {
        Ok(CrashNotesLayout {
            crash_notes: self.symbol("crash_notes")?,
            per_cpu_offset: self.symbol("__per_cpu_offset")?,
            nr_cpu_ids: self.read_u32(self.symbol("nr_cpu_ids")?)?,
        })
    }

    /// The kernel log.
    pub fn kernel_log(&self) -> Result<Vec<crate::printk::LogRecord>> {
        crate::printk::read_log(self, self.require_vmcoreinfo()?)
    }
}

/// A byte source an ELF core can be read from, and the [`Physical`]
/// variant that holds it.
trait ElfSource: ByteSource + Sized {
    fn wrap(mem: ElfPhysicalMemory<Self>) -> Physical;
}

impl ElfSource for MappedFile {
    fn wrap(mem: ElfPhysicalMemory<Self>) -> Physical {
        Physical::Elf(mem)
    }
}

impl ElfSource for PositionedFile {
    fn wrap(mem: ElfPhysicalMemory<Self>) -> Physical {
        Physical::Kcore(mem)
    }
}

impl ElfSource for OwnedBytes {
    fn wrap(mem: ElfPhysicalMemory<Self>) -> Physical {
        Physical::ElfOwned(mem)
    }
}

fn elf_stats<S: ByteSource>(e: &ElfPhysicalMemory<S>) -> PageStats {
    let present = e.described_pages();
    let excluded = e.excluded_pages();
    PageStats {
        max_pfn: 0,
        present,
        dumped: present - excluded,
        excluded,
    }
}

/// Reads of at least this many bytes from a compressed dump are split
/// across threads (the kernel's BTF, kallsyms' names): each page
/// decompresses on its own.
const PARALLEL_READ: usize = 512 << 10;

impl Physical {
    /// Whether its pages are decompressed as they are read.
    fn is_compressed(&self) -> bool {
        matches!(
            self,
            Physical::Kdump(_) | Physical::KdumpOwned(_) | Physical::Flattened(_)
        )
    }
}

impl KernelMemory for Dump {
    fn read_virt(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<()> {
        if buf.len() < PARALLEL_READ || !self.physical.is_compressed() {
            return self.read_virt_serial(addr, buf);
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        if threads < 2 {
            return self.read_virt_serial(addr, buf);
        }
        let chunk = buf.len().div_ceil(threads).next_multiple_of(4096);
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let parts: Vec<_> = buf
                .chunks_mut(chunk)
                .enumerate()
                .map(|(i, part)| {
                    let at = VirtAddr(addr.0.wrapping_add((i * chunk) as u64));
                    scope.spawn(move || self.read_virt_serial(at, part))
                })
                .collect();
            parts
                .into_iter()
                .map(|p| {
                    p.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        // the first failure in address order, as a serial read gives it
        results.into_iter().collect()
    }
}

impl Dump {
    /// [`KernelMemory::read_virt`] in one thread, page by page.
    fn read_virt_serial(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<()> {
        let walker = self.page_table_walker()?;
        let mem = self.physical();
        let mut done = 0usize;
        while done < buf.len() {
            let a = VirtAddr(addr.0.wrapping_add(done as u64));
            let t = walker.translate(mem, a)?;
            let to_page_end = 4096 - (a.0 % 4096) as usize;
            let n = to_page_end.min(buf.len() - done);
            mem.read_phys(t.phys, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }
}

/// The VMCOREINFO text an override file gives. Three forms are accepted:
/// the text itself; an ELF file whose notes hold it (such as the head of a
/// guest's `/proc/kcore`); or `/sys/kernel/vmcoreinfo`'s "physical address
/// and size" line, in which case the note is read from the dump's own
/// physical memory (it is there even when QEMU was not told to export it).
fn override_text(file: &[u8], mem: &dyn PhysicalMemory) -> Result<Vec<u8>> {
    if elf::has_elf_magic(file) {
        let src = OwnedBytes(file.to_vec());
        let header = CoreHeader::parse(&src)?;
        for ph in header
            .program_headers
            .iter()
            .filter(|p| p.p_type == PT_NOTE)
        {
            let len = ph.filesz.min(src.len().saturating_sub(ph.offset.0)) as usize;
            let notes = src.bytes(ph.offset, len, "override notes")?;
            if let Some(text) = vmcoreinfo_note(&notes).ok().flatten() {
                return Ok(text);
            }
        }
        return Err(Error::Vmcoreinfo(
            "the override ELF file has no VMCOREINFO note".into(),
        ));
    }
    let text = String::from_utf8_lossy(file);
    let words: Vec<&str> = text.split_whitespace().collect();
    if let [addr, size] = words[..]
        && let (Ok(addr), Ok(size)) = (
            u64::from_str_radix(addr.trim_start_matches("0x"), 16),
            u64::from_str_radix(size.trim_start_matches("0x"), 16),
        )
    {
        if size > 1 << 20 {
            return Err(Error::Vmcoreinfo(format!(
                "a VMCOREINFO note of {size} bytes"
            )));
        }
        let mut note = vec![0u8; size as usize];
        mem.read_phys(PhysAddr(addr), &mut note)?;
        return vmcoreinfo_note(&note)?.ok_or_else(|| {
            Error::Vmcoreinfo(format!(
                "no VMCOREINFO note at physical {addr:#x} in the dump"
            ))
        });
    }
    Ok(file.to_vec())
}

/// The VMCOREINFO note's descriptor in a notes buffer.
fn vmcoreinfo_note(notes: &[u8]) -> Result<Option<Vec<u8>>> {
    for note in NoteIter::new(notes) {
        let note = note?;
        if note.name == b"VMCOREINFO" {
            return Ok(Some(note.desc.to_vec()));
        }
    }
    Ok(None)
}

/// True if `path` is on procfs (`/proc/kcore`).
/// An open of `/proc/kcore` that the kernel refused, told as its cause:
/// not root (EACCES: the file is root's, mode 0400), no CAP_SYS_RAWIO, or
/// lockdown (both EPERM; the lockdown level is in securityfs).
fn live_refusal(path: &Path, e: Error) -> Error {
    // Linux's errno values
    const EPERM: i32 = 1;
    const EACCES: i32 = 13;
    let Error::Io { source, .. } = &e else {
        return e;
    };
    if path.file_name() != Some(std::ffi::OsStr::new("kcore")) {
        return e;
    }
    let lockdown = std::fs::read_to_string("/sys/kernel/security/lockdown").unwrap_or_default();
    let reason = match source.raw_os_error() {
        Some(EACCES) => "only root may read it; run ksw as root (e.g. with sudo)",
        Some(EPERM) if lockdown.contains("[confidentiality]") => {
            "the kernel is locked down (lockdown=confidentiality), which closes it to everyone; \
             boot without that lockdown level, or take a dump with kdump and read the dump"
        }
        Some(EPERM) => {
            "reading it needs CAP_SYS_RAWIO, which this process does not have (a container, \
             or capabilities dropped); run ksw as root with CAP_SYS_RAWIO"
        }
        _ => return e,
    };
    Error::LiveRefused {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn is_procfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = std::mem::MaybeUninit::<libc_statfs::Statfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `buf` is large enough
    // for the kernel's struct statfs on x86_64.
    let rc = unsafe { libc_statfs::statfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: statfs returned 0, so it filled the struct.
    let st = unsafe { buf.assume_init() };
    st.f_type == PROC_SUPER_MAGIC
}

/// The one libc call this crate needs, declared by hand to avoid a
/// dependency.
mod libc_statfs {
    /// x86_64 `struct statfs`.
    #[repr(C)]
    pub struct Statfs {
        pub f_type: i64,
        pub f_bsize: i64,
        pub f_blocks: u64,
        pub f_bfree: u64,
        pub f_bavail: u64,
        pub f_files: u64,
        pub f_ffree: u64,
        pub f_fsid: [i32; 2],
        pub f_namelen: i64,
        pub f_frsize: i64,
        pub f_flags: i64,
        pub f_spare: [i64; 4],
    }

    unsafe extern "C" {
        pub fn statfs(path: *const std::ffi::c_char, buf: *mut Statfs) -> i32;
    }
}
