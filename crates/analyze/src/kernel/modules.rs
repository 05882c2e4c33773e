//! Loaded modules, from the kernel's `modules` list.
//!
//! For each: its name, state, memory regions (6.1's `core_layout` and
//! `init_layout`; 6.4+'s `mem[MOD_*]`), its own symbol table
//! (`mod->kallsyms`: ELF symbols with sizes, and the kernel's type letter
//! per symbol) and its ORC table (`mod->arch`). All offsets come from BTF
//! ([`super::layout::ModuleLayout`]).

use std::collections::HashSet;

use ksw_vmcore::{KernelMemory, VirtAddr};

use super::layout::{ModuleLayout, ModuleRegions};
use super::{KernelError, Result};

/// More modules than a kernel loads; a longer list is corrupt.
const MAX_MODULES: usize = 8192;
/// More symbols than one module has.
const MAX_MODULE_SYMBOLS: u32 = 1 << 20;

/// A module's life-cycle state (`enum module_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModuleState {
    /// Initialised and running.
    Live,
    /// Being loaded: its init function may be running.
    Coming,
    /// Being unloaded.
    Going,
    /// Not yet set up.
    Unformed,
    /// A value this build does not know.
    Unknown(u32),
}

/// One memory region of a module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleRegion {
    /// `text`, `data`, `rodata`, `ro_after_init`, `init_text`, ...
    pub name: &'static str,
    /// Its start.
    pub base: u64,
    /// Its size.
    pub size: u64,
}

/// One loaded module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Module {
    /// The `struct module` address.
    pub address: u64,
    /// The name.
    pub name: String,
    /// The state.
    pub state: ModuleState,
    /// Memory regions.
    pub regions: Vec<ModuleRegion>,
    /// Text ranges `[start, end)` (core and, while loaded, init).
    pub text: Vec<(u64, u64)>,
    /// `mod->arch.orc_unwind_ip`, `orc_unwind`, `num_orcs`.
    #[serde(skip)]
    pub orc: Option<(u64, u64, u64)>,
}

/// The region names of 6.4+'s `enum mod_mem_type`, in order.
const MOD_MEM_TYPES: [&str; 7] = [
    "text",
    "data",
    "rodata",
    "ro_after_init",
    "init_text",
    "init_data",
    "init_rodata",
];

fn mem_err(what: String) -> impl FnOnce(ksw_vmcore::Error) -> KernelError {
    move |source| KernelError::Memory { what, source }
}

/// The loaded modules, from the list at `modules` (the list head).
pub fn walk(mem: &dyn KernelMemory, l: &ModuleLayout, head: u64) -> Result<Vec<Module>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut node = head;
    loop {
        let next = mem
            .read_u64(VirtAddr(node))
            .map_err(mem_err(format!("the module list at {node:#x}")))?;
        if next == head {
            return Ok(out);
        }
        if !seen.insert(next) || out.len() >= MAX_MODULES {
            return Err(KernelError::Corrupt(format!(
                "the module list loops at {next:#x}"
            )));
        }
        // `next` may be garbage: wrap, and let the read fail
        out.push(read_module(mem, l, next.wrapping_sub(l.list))?);
        node = next;
    }
}

fn read_module(mem: &dyn KernelMemory, l: &ModuleLayout, at: u64) -> Result<Module> {
    let e = || mem_err(format!("struct module at {at:#x}"));
    // addresses inside a module that may be garbage: wrap, never overflow
    let field = |o: u64| VirtAddr(at.wrapping_add(o));
    let name = mem.read_vec(field(l.name), 56).map_err(e())?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    let state = match mem.read_u32(field(l.state)).map_err(e())? {
        0 => ModuleState::Live,
        1 => ModuleState::Coming,
        2 => ModuleState::Going,
        3 => ModuleState::Unformed,
        v => ModuleState::Unknown(v),
    };
    let mut regions = Vec::new();
    let mut text = Vec::new();
    match l.regions {
        ModuleRegions::Layouts {
            core,
            init,
            base,
            size,
            text_size,
        } => {
            for (prefix, o) in [("", core), ("init_", init)] {
                let b = mem.read_u64(field(o.wrapping_add(base))).map_err(e())?;
                let s = u64::from(mem.read_u32(field(o.wrapping_add(size))).map_err(e())?);
                let t = u64::from(
                    mem.read_u32(field(o.wrapping_add(text_size)))
                        .map_err(e())?,
                );
                if b != 0 && s != 0 {
                    regions.push(ModuleRegion {
                        name: if prefix.is_empty() { "core" } else { "init" },
                        base: b,
                        size: s,
                    });
                    text.push((b, b.saturating_add(t)));
                }
            }
        }
        ModuleRegions::Memory {
            mem: m,
            elem,
            base,
            size,
        } => {
            for (i, name) in MOD_MEM_TYPES.iter().enumerate() {
                let o = m.wrapping_add(i as u64 * elem);
                let b = mem.read_u64(field(o.wrapping_add(base))).map_err(e())?;
                let s = u64::from(mem.read_u32(field(o.wrapping_add(size))).map_err(e())?);
                if b != 0 && s != 0 {
                    regions.push(ModuleRegion {
                        name,
                        base: b,
                        size: s,
                    });
                    if name.ends_with("text") {
                        text.push((b, b.saturating_add(s)));
                    }
                }
            }
        }
    }
    let n = u64::from(mem.read_u32(field(l.num_orcs)).map_err(e())?);
    let ip = mem.read_u64(field(l.orc_ip)).map_err(e())?;
    let entries = mem.read_u64(field(l.orc)).map_err(e())?;
    Ok(Module {
        address: at,
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
        state,
        regions,
        text,
        orc: (n > 0 && ip != 0 && entries != 0).then_some((ip, entries, n)),
    })
}

/// A module's symbols from `mod->kallsyms`: (name, address, size). Only
/// symbols with an address inside the module's regions are kept (the
/// table also holds undefined and absolute ones). The size is the one the
/// kernel prints: up to the next symbol of the module, or to the end of
/// the region for the last (not the ELF `st_size`).
pub fn symbols(
    mem: &dyn KernelMemory,
    l: &ModuleLayout,
    module: &Module,
) -> Result<Vec<(String, u64, u64)>> {
    let e = || mem_err(format!("module {}'s kallsyms", module.name));
    let ks = mem
        .read_u64(VirtAddr(module.address.wrapping_add(l.kallsyms)))
        .map_err(e())?;
    if ks == 0 {
        return Ok(Vec::new());
    }
    let symtab = mem.read_u64(VirtAddr(ks)).map_err(e())?;
    let num = mem.read_u32(VirtAddr(ks.wrapping_add(8))).map_err(e())?;
    let strtab = mem.read_u64(VirtAddr(ks.wrapping_add(16))).map_err(e())?;
    if num > MAX_MODULE_SYMBOLS {
        return Err(KernelError::Corrupt(format!(
            "module {} claims {num} symbols",
            module.name
        )));
    }
    let raw = mem
        .read_vec(VirtAddr(symtab), num as usize * 24)
        .map_err(e())?;
    let inside = |a: u64| {
        module
            .regions
            .iter()
            .any(|r| a >= r.base && a < r.base.saturating_add(r.size))
    };
    let mut out = Vec::new();
    for sym in raw.chunks_exact(24) {
        let name_off = u64::from(u32::from_le_bytes([sym[0], sym[1], sym[2], sym[3]]));
        let value = u64::from_le_bytes(sym[8..16].try_into().unwrap_or_default());
        let size = u64::from_le_bytes(sym[16..24].try_into().unwrap_or_default());
        if name_off == 0 || !inside(value) {
            continue;
        }
        let name = read_cstr(mem, strtab.wrapping_add(name_off)).map_err(e())?;
        // unnamed and mapping symbols ($x, $d) are not symbols to the kernel
        if !name.is_empty() && !name.starts_with('$') {
            out.push((name, value, size));
        }
    }
    out.sort_by_key(|s| s.1);
    let ends: Vec<u64> = out
        .iter()
        .map(|s| {
            module
                .regions
                .iter()
                .find(|r| s.1 >= r.base && s.1 < r.base.saturating_add(r.size))
                .map_or(s.1.saturating_add(s.2), |r| r.base.saturating_add(r.size))
        })
        .collect();
    for i in 0..out.len() {
        let end = ends[i];
        let next = out[i + 1..]
            .iter()
            .map(|s| s.1)
            .find(|&a| a > out[i].1 && a < end);
        out[i].2 = next.unwrap_or(end) - out[i].1;
    }
    Ok(out)
}

fn read_cstr(mem: &dyn KernelMemory, at: u64) -> ksw_vmcore::Result<String> {
    let mut out = Vec::new();
    let mut a = at;
    while out.len() < 512 {
        // never read past the page the string may end on
        let n = (32 - (a % 32)).min(4096 - (a % 4096)) as usize;
        let b = mem.read_vec(VirtAddr(a), n)?;
        if let Some(p) = b.iter().position(|&c| c == 0) {
            out.extend_from_slice(&b[..p]);
            break;
        }
        out.extend_from_slice(&b);
        a = a.wrapping_add(n as u64);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// More sections than a module has.
const MAX_SECTIONS: u32 = 4096;

/// A module's sections and where the kernel put them (`mod->sect_attrs`,
/// what `/sys/module/NAME/sections/` shows). Empty when the kernel keeps
/// no section attributes.
pub fn sections(
    mem: &dyn KernelMemory,
    l: &ModuleLayout,
    module: &Module,
) -> Result<Vec<(String, u64)>> {
    let Some(s) = &l.sections else {
        return Ok(Vec::new());
    };
    let e = || mem_err(format!("module {}'s section attributes", module.name));
    let attrs = mem
        .read_u64(VirtAddr(module.address.wrapping_add(s.sect_attrs)))
        .map_err(e())?;
    if attrs == 0 {
        return Ok(Vec::new());
    }
    let n = mem
        .read_u32(VirtAddr(attrs.wrapping_add(s.nsections)))
        .map_err(e())?;
    if n > MAX_SECTIONS {
        return Err(KernelError::Corrupt(format!(
            "module {} claims {n} sections",
            module.name
        )));
    }
    let mut out = Vec::new();
    for i in 0..u64::from(n) {
        // values from the dump: wrap rather than overflow
        let at = attrs.wrapping_add(s.attrs).wrapping_add(i * s.attr_size);
        let name = mem
            .read_u64(VirtAddr(at.wrapping_add(s.name)))
            .map_err(e())?;
        let address = mem
            .read_u64(VirtAddr(at.wrapping_add(s.address)))
            .map_err(e())?;
        out.push((read_cstr(mem, name).map_err(e())?, address));
    }
    Ok(out)
}

/// The GNU build ID in a module's `.note.gnu.build-id` section, read
/// from memory.
pub fn build_id(mem: &dyn KernelMemory, sections: &[(String, u64)]) -> Option<Vec<u8>> {
    let &(_, at) = sections.iter().find(|(n, _)| n == ".note.gnu.build-id")?;
    let head = mem.read_vec(VirtAddr(at), 12).ok()?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (namesz, descsz, kind) = (word(0), word(4), word(8));
    // NT_GNU_BUILD_ID, "GNU\0", a sane length
    if kind != 3 || namesz != 4 || !(8..=64).contains(&descsz) {
        return None;
    }
    let name = mem.read_vec(VirtAddr(at.wrapping_add(12)), 4).ok()?;
    (name == b"GNU\0").then(|| {
        mem.read_vec(VirtAddr(at.wrapping_add(16)), descsz as usize)
            .ok()
    })?
}

/// True if the GNU build-ID note with `id` lies in one of `module`'s
/// regions in memory: the check of a `.ko` against the loaded module
/// when its section attributes are lost. Pages the dump lacks are
/// skipped.
pub fn find_build_id(mem: &dyn KernelMemory, module: &Module, id: &[u8]) -> bool {
    // Elf64_Nhdr (namesz 4, descsz, type 3) and "GNU\0", then the ID
    let mut note = Vec::with_capacity(16 + id.len());
    note.extend(4u32.to_le_bytes());
    note.extend((id.len() as u32).to_le_bytes());
    note.extend(3u32.to_le_bytes());
    note.extend(b"GNU\0");
    note.extend(id);
    for r in &module.regions {
        let mut page = r.base & !0xfff;
        let end = r.base.saturating_add(r.size);
        let mut carry: Vec<u8> = Vec::new();
        while page < end {
            match mem.read_vec(VirtAddr(page), 4096) {
                Ok(b) => {
                    carry.extend(b);
                    if carry.windows(note.len()).any(|w| w == note.as_slice()) {
                        return true;
                    }
                    // keep a note's length across the page boundary
                    let keep = carry.len().saturating_sub(note.len());
                    carry.drain(..keep);
                }
                Err(_) => carry.clear(),
            }
            page = page.saturating_add(4096);
        }
    }
    false
}

/// Most bytes of one module region scanned by [`find_word`].
const MAX_SCAN: u64 = 16 << 20;

/// The first 8-byte aligned word equal to `word` in the module's data
/// (every region but text), read page by page; pages not in memory are
/// skipped. How a module's object is found by its magic when its symbol
/// table cannot be read.
pub fn find_word(mem: &dyn KernelMemory, module: &Module, word: u64) -> Option<u64> {
    const PAGE: u64 = 4096;
    let magic = word.to_le_bytes();
    for region in module
        .regions
        .iter()
        .filter(|r| !r.name.contains("text") && r.size > 0)
    {
        let end = region.base.saturating_add(region.size.min(MAX_SCAN));
        let mut at = region.base & !7;
        while at < end {
            let n = (PAGE - at % PAGE).min(end - at) as usize;
            if let Ok(bytes) = mem.read_vec(VirtAddr(at), n) {
                if let Some(i) = bytes.chunks_exact(8).position(|w| w == magic) {
                    return Some(at + i as u64 * 8);
                }
            }
            at += n as u64;
        }
    }
    None
}
