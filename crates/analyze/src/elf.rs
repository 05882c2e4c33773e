//! ELF images of vmlinux and kernel modules: the memory map, symbols,
//! section data (decompressed when SHF_COMPRESSED) and relocations.
//!
//! A [`DebugFile`] is a memory-mapped file; an [`ElfImage`] borrows it and
//! answers the questions the DWARF and disassembly layers ask. Nothing is
//! read eagerly beyond the section and symbol headers.
//!
//! Addresses: in vmlinux (ET_EXEC) an address is the one stated in the file
//! (the SVMA, before KASLR). A `.ko` (ET_REL) has no addresses, so each
//! allocated section gets a synthetic base here, and symbols, DWARF
//! addresses and CFI all use those bases consistently. Offsets inside a
//! function, the only thing a kprobe needs, do not depend on them.
//!
//! A loaded module's sections can be placed at the addresses found in
//! memory instead ([`ElfImage::parse_loaded`]).
//!
//! Relocations of debug sections are applied lazily while gimli reads, by
//! [`RelocationView`]: vmlinux built with `--emit-relocs` (Debian 6.1) keeps
//! millions of `.rela.debug_info` entries, so they are binary-searched in the
//! mapped file rather than loaded into a map.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, Rela, SectionHeader, Sym};
use object::{LittleEndian as LE, Object, ObjectSection};

use ksw_vmcore::VirtAddr;

use crate::error::{Error, Result};

/// A memory-mapped debug file (vmlinux or `.ko`).
#[derive(Debug)]
pub struct DebugFile {
    path: PathBuf,
    bytes: FileBytes,
}

#[derive(Debug)]
enum FileBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl DebugFile {
    /// Map `path` into memory. A `.ko.xz` is not handled here: decompress it
    /// first and use [`DebugFile::from_bytes`].
    pub fn open(path: impl AsRef<Path>) -> Result<DebugFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        // SAFETY: the map is read-only and private. Debug files are not
        // expected to change while ksw runs; if one is truncated underneath
        // us the process may fault, which is the documented mmap caveat that
        // every DWARF consumer (gdb, drgn) shares. The caller opts in by
        // opening a file rather than passing bytes.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(DebugFile {
            path,
            bytes: FileBytes::Mapped(map),
        })
    }

    /// Wrap bytes already in memory (a decompressed `.ko.xz`, a test image).
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> DebugFile {
        DebugFile {
            path: path.into(),
            bytes: FileBytes::Owned(bytes),
        }
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

/// The kind of ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ImageKind {
    /// A linked kernel image (vmlinux).
    Executable,
    /// A relocatable object: a kernel module (`.ko`) or a `.o`.
    Relocatable,
}

/// A function symbol from `.symtab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSymbol<'f> {
    /// The symbol name (`foo`, `foo.isra.0`, `foo.cold`).
    pub name: &'f str,
    /// Its address (synthetic in a `.ko`, see the module docs).
    pub address: u64,
    /// Its size in bytes.
    pub size: u64,
    /// `true` for STB_LOCAL (a static function).
    pub local: bool,
}

/// A parsed ELF image borrowing a [`DebugFile`].
pub struct ElfImage<'f> {
    path: &'f Path,
    file: ElfFile64<'f, LE>,
    kind: ImageKind,
    /// Per section index: the address the section's bytes start at.
    section_bases: Vec<u64>,
    symbols: &'f [elf::Sym64<LE>],
    strings: object::read::StringTable<'f>,
    /// The defined function symbols, built on first use.
    functions: OnceCell<FunctionTable<'f>>,
}

/// The defined function symbols of an image, read once: in `.symtab`
/// order, and as indices sorted by address for lookups by address.
struct FunctionTable<'f> {
    symbols: Vec<FunctionSymbol<'f>>,
    /// Indices into `symbols`, by (address, `.symtab` order).
    by_address: Vec<usize>,
    /// The largest extent (`max(size, 1)`): how far back an address
    /// lookup has to look.
    longest: u64,
}

impl std::fmt::Debug for ElfImage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfImage")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The first address given to a `.ko`'s sections; non-zero so that no real
/// code sits at address 0, which DWARF consumers treat as "absent".
const RELOCATABLE_BASE: u64 = 0x10000;

impl<'f> ElfImage<'f> {
    /// Parse the headers of `debug_file`.
    pub fn parse(debug_file: &'f DebugFile) -> Result<ElfImage<'f>> {
        let path = debug_file.path();
        let not_elf = |reason: String| Error::NotElf {
            path: path.to_path_buf(),
            reason,
        };
        let file = ElfFile64::<LE>::parse(debug_file.bytes())
            .map_err(|e| not_elf(format!("{e} (only 64-bit little-endian ELF is supported)")))?;
        let header = file.elf_header();
        if header.e_machine(LE) != elf::EM_X86_64 {
            return Err(not_elf(format!(
                "machine {} is not x86_64",
                header.e_machine(LE)
            )));
        }
        let kind = match header.e_type(LE) {
            elf::ET_EXEC | elf::ET_DYN => ImageKind::Executable,
            elf::ET_REL => ImageKind::Relocatable,
            other => {
                return Err(not_elf(format!(
                    "ELF type {other} is neither executable nor relocatable"
                )));
            }
        };
        let sections = file.elf_section_table();
        let mut section_bases = Vec::with_capacity(sections.len());
        let mut cursor = RELOCATABLE_BASE;
        for section in sections.iter() {
            let base = match kind {
                ImageKind::Executable => section.sh_addr(LE),
                ImageKind::Relocatable if section.sh_flags(LE) & u64::from(elf::SHF_ALLOC) != 0 => {
                    let align = section.sh_addralign(LE).max(1);
                    cursor = cursor.div_ceil(align).saturating_mul(align);
                    let base = cursor;
                    cursor = cursor
                        .saturating_add(section.sh_size(LE))
                        .saturating_add(16);
                    base
                }
                ImageKind::Relocatable => 0,
            };
            section_bases.push(base);
        }
        let symtab = file.elf_symbol_table();
        Ok(ElfImage {
            path,
            kind,
            section_bases,
            symbols: symtab.symbols(),
            strings: symtab.strings(),
            functions: OnceCell::new(),
            file,
        })
    }

    /// Parse a `.ko` placed where the kernel loaded it: each named
    /// allocated section at the address found in memory (the module's
    /// section attributes), so that symbols, DWARF and CFI use run-time
    /// addresses. Sections not named keep their synthetic bases; for a
    /// vmlinux, whose addresses are fixed at link time, this is `parse`.
    pub fn parse_loaded(
        debug_file: &'f DebugFile,
        placed: &[(&str, VirtAddr)],
    ) -> Result<ElfImage<'f>> {
        let mut image = ElfImage::parse(debug_file)?;
        if image.kind == ImageKind::Relocatable {
            for (name, address) in placed {
                let Some(section) = image.file.section_by_name(name) else {
                    continue;
                };
                let index = section.index().0;
                let allocated = image
                    .file
                    .elf_section_table()
                    .section(object::SectionIndex(index))
                    .is_ok_and(|h| h.sh_flags(LE) & u64::from(elf::SHF_ALLOC) != 0);
                if let (true, Some(base)) = (allocated, image.section_bases.get_mut(index)) {
                    *base = address.get();
                }
            }
        }
        Ok(image)
    }

    /// The file's path.
    pub fn path(&self) -> &'f Path {
        self.path
    }

    /// Executable (vmlinux) or relocatable (`.ko`).
    pub fn kind(&self) -> ImageKind {
        self.kind
    }

    fn malformed(&self, what: impl Into<String>) -> Error {
        Error::Malformed {
            path: self.path.to_path_buf(),
            what: what.into(),
        }
    }

    /// The address of a symbol as used throughout this crate.
    fn symbol_address(&self, sym: &elf::Sym64<LE>) -> u64 {
        let value = sym.st_value(LE);
        match self.kind {
            ImageKind::Executable => value,
            ImageKind::Relocatable => {
                let shndx = usize::from(sym.st_shndx(LE));
                match sym.st_shndx(LE) {
                    elf::SHN_UNDEF | elf::SHN_ABS | elf::SHN_COMMON => value,
                    _ => self
                        .section_bases
                        .get(shndx)
                        .copied()
                        .unwrap_or(0)
                        .wrapping_add(value),
                }
            }
        }
    }

    fn symbol_name(&self, sym: &elf::Sym64<LE>) -> Option<&'f str> {
        let bytes = sym.name(LE, self.strings).ok()?;
        std::str::from_utf8(bytes).ok()
    }

    /// The defined function symbols, read from `.symtab` on first use.
    fn functions(&self) -> &FunctionTable<'f> {
        self.functions.get_or_init(|| {
            let symbols: Vec<FunctionSymbol<'f>> = self
                .symbols
                .iter()
                .filter(|sym| sym.st_type() == elf::STT_FUNC && sym.st_shndx(LE) != elf::SHN_UNDEF)
                .filter_map(|sym| {
                    Some(FunctionSymbol {
                        name: self.symbol_name(sym)?,
                        address: self.symbol_address(sym),
                        size: sym.st_size(LE),
                        local: sym.st_bind() == elf::STB_LOCAL,
                    })
                })
                .collect();
            let mut by_address: Vec<usize> = (0..symbols.len()).collect();
            by_address.sort_by_key(|&i| (symbols[i].address, i));
            let longest = symbols.iter().map(|s| s.size.max(1)).max().unwrap_or(1);
            FunctionTable {
                symbols,
                by_address,
                longest,
            }
        })
    }

    /// Defined function symbols whose name satisfies `wanted`, in
    /// `.symtab` order.
    pub fn function_symbols(
        &self,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Vec<FunctionSymbol<'f>> {
        self.functions()
            .symbols
            .iter()
            .filter(|s| wanted(s.name))
            .cloned()
            .collect()
    }

    /// The address of the first defined symbol called `name`, any type.
    pub fn symbol_address_by_name(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .filter(|s| s.st_shndx(LE) != elf::SHN_UNDEF)
            .find(|s| self.symbol_name(s) == Some(name))
            .map(|s| self.symbol_address(s))
    }

    /// The function symbol covering `address`, preferring global names
    /// (the first in `.symtab` order of those that cover it).
    pub fn function_containing(&self, address: u64) -> Option<FunctionSymbol<'f>> {
        let table = self.functions();
        let after = table
            .by_address
            .partition_point(|&i| table.symbols[i].address <= address);
        let covering = table.by_address[..after]
            .iter()
            .rev()
            .take_while(|&&i| table.symbols[i].address.saturating_add(table.longest) > address)
            .copied()
            .filter(|&i| {
                let s = &table.symbols[i];
                address < s.address.saturating_add(s.size.max(1))
            });
        // Global before static, then `.symtab` order.
        let best = covering.min_by_key(|&i| (table.symbols[i].local, i))?;
        table.symbols.get(best).cloned()
    }

    /// The bytes at `[address, address + len)` in an allocated section
    /// with file contents.
    pub fn bytes_at(&self, address: u64, len: u64) -> Option<&'f [u8]> {
        let data = self.file.data();
        for (index, section) in self.file.elf_section_table().iter().enumerate() {
            if section.sh_flags(LE) & u64::from(elf::SHF_ALLOC) == 0
                || section.sh_type(LE) == elf::SHT_NOBITS
            {
                continue;
            }
            let base = self.section_bases.get(index).copied().unwrap_or(0);
            let size = section.sh_size(LE);
            if address >= base && address.checked_add(len)? <= base.checked_add(size)? {
                let bytes = section.data(LE, data).ok()?;
                let start = usize::try_from(address - base).ok()?;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                return bytes.get(start..end);
            }
        }
        None
    }

    /// The index of the allocated section holding `address`, and the offset
    /// of `address` in it.
    pub fn section_of(&self, address: u64) -> Option<(usize, u64)> {
        for (index, section) in self.file.elf_section_table().iter().enumerate() {
            if section.sh_flags(LE) & u64::from(elf::SHF_ALLOC) == 0 {
                continue;
            }
            let base = self.section_bases.get(index).copied().unwrap_or(0);
            if address >= base && address < base.saturating_add(section.sh_size(LE)) {
                return Some((index, address - base));
            }
        }
        None
    }

    /// The name of the symbol a relocation at `[offset, offset + len)` of
    /// section `section_index` refers to (a `.ko`'s code is unrelocated, so
    /// RIP-relative operands are only known through their relocation).
    pub fn relocation_symbol_in(
        &self,
        section_index: usize,
        offset: u64,
        len: u64,
    ) -> Option<&'f str> {
        let data = self.file.data();
        for header in self.file.elf_section_table().iter() {
            if header.sh_type(LE) != elf::SHT_RELA || header.sh_info(LE) as usize != section_index {
                continue;
            }
            let (relas, _) = header.rela(LE, data).ok()??;
            for rela in relas {
                let at = rela.r_offset(LE);
                if at >= offset && at < offset.saturating_add(len) {
                    let sym = self.symbols.get(rela.r_sym(LE, false) as usize)?;
                    return self.symbol_name(sym);
                }
            }
        }
        None
    }

    /// Relocations of section `section_index` whose offset is in
    /// `[start, end)`: (offset, symbol name).
    pub fn relocations_in(
        &self,
        section_index: usize,
        start: u64,
        end: u64,
    ) -> Vec<(u64, &'f str)> {
        let data = self.file.data();
        let mut found = Vec::new();
        for header in self.file.elf_section_table().iter() {
            if header.sh_type(LE) != elf::SHT_RELA || header.sh_info(LE) as usize != section_index {
                continue;
            }
            let Ok(Some((relas, _))) = header.rela(LE, data) else {
                continue;
            };
            for rela in relas {
                let at = rela.r_offset(LE);
                if at >= start && at < end {
                    if let Some(name) = self
                        .symbols
                        .get(rela.r_sym(LE, false) as usize)
                        .and_then(|s| self.symbol_name(s))
                    {
                        found.push((at, name));
                    }
                }
            }
        }
        found
    }

    /// An allocated section's address and bytes, as stored in the file.
    pub fn alloc_section(&self, name: &str) -> Option<(u64, &'f [u8])> {
        let section = self.file.section_by_name(name)?;
        let index = section.index().0;
        let base = self.section_bases.get(index).copied()?;
        Some((base, section.data().ok()?))
    }

    /// The bytes of the named section, decompressed if SHF_COMPRESSED.
    pub fn section_data(&self, name: &str) -> Result<Option<(usize, Cow<'f, [u8]>)>> {
        let Some(section) = self.file.section_by_name(name) else {
            return Ok(None);
        };
        let data = section
            .uncompressed_data()
            .map_err(|e| self.malformed(format!("section {name}: {e}")))?;
        Ok(Some((section.index().0, data)))
    }

    /// The relocations that apply to section `section_index`, for gimli.
    /// Only a relocatable file (`.ko`) has any: an executable's sections
    /// already hold the linked values, and the `.rela` sections a
    /// `--emit-relocs` vmlinux keeps (hundreds of megabytes for its DWARF)
    /// only repeat them.
    pub fn relocations_for(&self, section_index: usize) -> Result<RelocationView> {
        if self.kind == ImageKind::Executable {
            return Ok(RelocationView::None);
        }
        let data = self.file.data();
        for header in self.file.elf_section_table().iter() {
            if header.sh_type(LE) != elf::SHT_RELA || header.sh_info(LE) as usize != section_index {
                continue;
            }
            let Some((relas, _)) = header
                .rela(LE, data)
                .map_err(|e| self.malformed(format!("relocation section: {e}")))?
            else {
                continue;
            };
            // few entries: resolve them all now into a map
            let mut map = HashMap::with_capacity(relas.len());
            for rela in relas {
                if let Some(value) = self.relocation_value(rela) {
                    map.insert(rela.r_offset(LE), value);
                }
            }
            return Ok(RelocationView::Resolved(std::sync::Arc::new(map)));
        }
        Ok(RelocationView::None)
    }

    /// S + A for the relocation types DWARF uses; `None` for others.
    fn relocation_value(&self, rela: &elf::Rela64<LE>) -> Option<u64> {
        dwarf_relocation(rela, self.symbols, |sym| self.symbol_address(sym))
    }

    /// The GNU build ID, from the `.note.gnu.build-id` or `.notes` section.
    pub fn build_id(&self) -> Option<&'f [u8]> {
        self.file.build_id().ok().flatten()
    }

    /// The kernel's `linux_banner` string ("Linux version 6.1.0-... ").
    pub fn linux_banner(&self) -> Option<String> {
        let sym = self.symbols.iter().find(|s| {
            s.st_type() == elf::STT_OBJECT && self.symbol_name(s) == Some("linux_banner")
        })?;
        let size = sym.st_size(LE).clamp(1, 512);
        let bytes = self.bytes_at(self.symbol_address(sym), size)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Some(
            String::from_utf8_lossy(&bytes[..end])
                .trim_end()
                .to_string(),
        )
    }

    /// The kernel release named in `linux_banner` (`6.1.0-54-cloud-amd64`).
    pub fn kernel_release(&self) -> Option<String> {
        let banner = self.linux_banner()?;
        banner
            .strip_prefix("Linux version ")?
            .split_whitespace()
            .next()
            .map(str::to_string)
    }

    /// The module's `vermagic` from `.modinfo` (for a `.ko`).
    pub fn module_vermagic(&self) -> Option<String> {
        let (_, data) = self.section_data(".modinfo").ok()??;
        data.split(|&b| b == 0)
            .filter_map(|entry| std::str::from_utf8(entry).ok())
            .find_map(|entry| entry.strip_prefix("vermagic=").map(str::to_string))
    }
}

/// The relocations of one debug section, as gimli's [`gimli::Relocate`].
#[derive(Debug, Clone)]
pub enum RelocationView {
    /// The section has no relocations.
    None,
    /// All relocations resolved up front (a `.ko`).
    Resolved(std::sync::Arc<HashMap<u64, u64>>),
}

/// S + A for the relocation types DWARF uses, truncated for the 32-bit
/// kinds; `None` for other kinds or a symbol index out of range. `address`
/// gives S: the symbol's value as the caller places it.
fn dwarf_relocation(
    rela: &elf::Rela64<LE>,
    symbols: &[elf::Sym64<LE>],
    address: impl Fn(&elf::Sym64<LE>) -> u64,
) -> Option<u64> {
    let kind = rela.r_type(LE, false);
    if !matches!(
        kind,
        elf::R_X86_64_64 | elf::R_X86_64_32 | elf::R_X86_64_32S
    ) {
        return None;
    }
    let sym = symbols.get(rela.r_sym(LE, false) as usize)?;
    let value = address(sym).wrapping_add(rela.r_addend(LE) as u64);
    Some(if kind == elf::R_X86_64_64 {
        value
    } else {
        value & 0xffff_ffff
    })
}

impl RelocationView {
    fn lookup(&self, offset: usize) -> Option<u64> {
        match self {
            RelocationView::None => None,
            RelocationView::Resolved(map) => map.get(&(offset as u64)).copied(),
        }
    }
}

impl gimli::read::Relocate<usize> for RelocationView {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(self.lookup(offset).unwrap_or(value))
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        match self.lookup(offset) {
            Some(v) => usize::try_from(v).map_err(|_| gimli::Error::UnsupportedOffset),
            None => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relocatable object placed at run-time addresses: symbols move
    /// with their section, lookups by address follow, and the code bytes
    /// are found at the new address.
    #[test]
    fn sections_placed_where_loaded_move_their_symbols() {
        let dir = tempfile::tempdir().expect("temp dir");
        let object = crate::test_support::victims_object(dir.path(), &[]);
        let file = DebugFile::open(&object).expect("open");
        let synthetic = ElfImage::parse(&file).expect("parse");
        let victim = synthetic
            .function_symbols(|n| n == "victim")
            .pop()
            .expect("victim");
        let text_base = synthetic.alloc_section(".text").expect(".text").0;
        let loaded_at = VirtAddr(0xffff_ffff_c012_3000);
        let loaded = ElfImage::parse_loaded(&file, &[(".text", loaded_at)]).expect("parse");
        let moved = loaded
            .function_symbols(|n| n == "victim")
            .pop()
            .expect("victim");
        assert_eq!(moved.address, victim.address - text_base + loaded_at.get());
        assert_eq!(moved.size, victim.size);
        assert_eq!(
            loaded.function_containing(moved.address + 1),
            Some(moved.clone())
        );
        assert_eq!(loaded.function_containing(victim.address), None);
        assert_eq!(
            loaded.bytes_at(moved.address, moved.size),
            synthetic.bytes_at(victim.address, victim.size)
        );
    }
}
