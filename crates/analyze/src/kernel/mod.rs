//! A model of the crashed (or running) kernel, read out of its memory.
//!
//! Nothing here needs a vmlinux: symbols come from kallsyms, struct
//! layouts from the kernel's own BTF (between `__start_BTF` and
//! `__stop_BTF`), unwind tables from the kernel's ORC sections, and the
//! per-CPU state from `__per_cpu_offset`. Debug files are an optional
//! upgrade on top (source lines, variables), not a requirement.
//!
//! - [`symbols`]: address → `name+off/size [module]`;
//! - [`layout`]: every struct offset the model reads, through [`types`]
//!   (BTF, or a vmlinux's DWARF);
//! - [`tasks`]: the task list;
//! - [`stacks`]: which stack an address is on (task, IRQ, exception);
//! - [`orc_table`]: the kernel's ORC tables, for [`crate::unwind`];
//! - [`modules`]: the loaded modules, their symbols and ORC tables;
//! - [`kstackwatch`]: kstackwatch's live state (slots, tasks, counters).

pub mod kstackwatch;
pub mod layout;
pub mod modules;
pub mod orc_table;
pub mod stacks;
pub mod symbols;
pub mod tasks;
pub mod types;

use std::sync::{Arc, OnceLock};

use ksw_vmcore::cpu::CpuState;
use ksw_vmcore::{Dump, KernelMemory, VirtAddr};

use crate::btf::Btf;

pub use layout::KernelLayout;
pub use modules::{Module, ModuleState};
pub use orc_table::{OrcFastLookup, OrcTable};
pub use stacks::{StackKind, StackMap};
pub use symbols::{SymbolHit, SymbolTable};
pub use tasks::{Task, TaskState};

/// Why the kernel model could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Reading the dump failed.
    #[error("{what}: {source}")]
    Memory {
        /// What was being read.
        what: String,
        /// The reader's error.
        source: ksw_vmcore::Error,
    },
    /// A symbol the model needs is not in kallsyms.
    #[error("symbol {0} is not in the kernel's kallsyms")]
    NoSymbol(String),
    /// The kernel's BTF could not be read.
    #[error("the kernel's BTF: {0}")]
    Btf(String),
    /// A struct member the model needs is missing from BTF.
    #[error("kernel layout: {0}")]
    Layout(String),
    /// A kernel data structure is inconsistent (a list that loops, a
    /// count out of range).
    #[error("{0}")]
    Corrupt(String),
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, KernelError>;

/// What the model looks up while it reads the BTF.
#[derive(Clone, Copy)]
enum Lookups {
    /// The symbols it needs itself, through the kernel's name order.
    Few,
    /// Every symbol: kallsyms is decoded, for a caller that names
    /// addresses.
    All,
}

/// The symbols the model and its task walk look up once the BTF is read:
/// text bounds, ORC, per-CPU data, stacks, the module and task lists.
const LATER_SYMBOLS: &[&str] = &[
    "_etext",
    "_einittext",
    "__exittext_end",
    "orc_lookup",
    "orc_lookup_end",
    "_stext",
    "__start_orc_unwind_ip",
    "__stop_orc_unwind_ip",
    "__start_orc_unwind",
    "nr_cpu_ids",
    "__per_cpu_offset",
    "pcpu_hot",
    "current_task",
    "hardirq_stack_ptr",
    "cea_exception_stacks",
    "modules",
    "init_task",
    "runqueues",
];

/// The largest BTF a kernel is believed to have.
const MAX_BTF: u64 = 64 << 20;
/// `THREAD_SIZE` on x86_64 without KASAN (16 KiB), also the IRQ stack size.
pub const THREAD_SIZE: u64 = 16 << 10;

/// What a debug vmlinux that matches the dump lends the model.
pub struct VmlinuxLoan<'a> {
    /// Its `.BTF` section, byte for byte what the kernel has between
    /// `__start_BTF` and `__stop_BTF` (checked before use).
    pub btf: Option<&'a [u8]>,
    /// Its DWARF types: the struct layouts when the kernel's BTF is
    /// missing or damaged.
    pub types: &'a dyn types::KernelTypes,
}

/// The kernel, as read from memory.
pub struct KernelModel<'m> {
    mem: &'m dyn KernelMemory,
    dump: &'m Dump,
    /// Built on first use: listing tasks or modules needs no names.
    symbols: OnceLock<ModelSymbols<'m>>,
    btf: Option<Arc<Btf>>,
    layout: KernelLayout,
    orc: OrcTable<'m>,
    stacks: StackMap,
    per_cpu_offsets: Vec<u64>,
    modules: Vec<Module>,
    warnings: Vec<String>,
    call_frames: Option<&'m dyn crate::unwind::CallFrameRules>,
}

/// The symbol table, and what could not be read for it.
struct ModelSymbols<'m> {
    table: SymbolTable<'m>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for KernelModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelModel")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl<'m> KernelModel<'m> {
    /// Reads the model from a dump (or `/proc/kcore`).
    /// Its symbol table is decoded when first asked for: a task or module
    /// listing never needs it.
    pub fn from_dump(dump: &'m Dump) -> Result<Self> {
        Self::build(dump, None, Lookups::Few)
    }

    /// Reads the model from a dump, with what a debug vmlinux that
    /// matches it (checked by build ID) lends: see [`VmlinuxLoan`]. The
    /// symbol table is decoded while the BTF is read.
    pub fn from_dump_with(dump: &'m Dump, vmlinux: Option<&VmlinuxLoan<'_>>) -> Result<Self> {
        Self::build(dump, vmlinux, Lookups::All)
    }

    fn build(dump: &'m Dump, vmlinux: Option<&VmlinuxLoan<'_>>, lookups: Lookups) -> Result<Self> {
        let mem: &dyn KernelMemory = dump;
        let sym = |name: &str| -> Result<u64> {
            dump.symbol(name).map(|a| a.0).map_err(|e| match e {
                ksw_vmcore::Error::NoSymbol(_) => KernelError::NoSymbol(name.into()),
                e => KernelError::Memory {
                    what: "kallsyms".into(),
                    source: e,
                },
            })
        };
        let mut warnings = Vec::new();
        // the kernel's own BTF; a debug vmlinux's DWARF when it has none.
        // Reading it is the longest step: symbols are looked up meanwhile
        // (the dump keeps the answers, and the decoded table)
        let btf = std::thread::scope(|scope| {
            scope.spawn(|| match lookups {
                Lookups::Few => {
                    for name in LATER_SYMBOLS {
                        let _ = dump.symbol(name);
                    }
                }
                Lookups::All => {
                    let _ = dump.kallsyms();
                }
            });
            sym("__start_BTF").and_then(|start| {
                let range = start..sym("__stop_BTF")?;
                let copy = vmlinux.and_then(|v| v.btf);
                read_btf(mem, range, copy, &mut warnings)
            })
        })
        .map(Arc::new);
        let (btf, layout) = match (btf, vmlinux) {
            (Ok(btf), _) => {
                let layout = KernelLayout::from_btf(&btf)?;
                (Some(btf), layout)
            }
            (Err(e), Some(v)) => {
                warnings.push(format!(
                    "{e}; struct layouts come from the vmlinux's DWARF instead"
                ));
                (None, KernelLayout::from_types(v.types)?)
            }
            (Err(e), None) => return Err(e),
        };
        // vmlinux's table covers its text, init text and exit text
        let text_end = ["_etext", "_einittext", "__exittext_end"]
            .iter()
            .filter_map(|n| sym(n).ok())
            .max()
            .unwrap_or(0);
        let fast = match (
            sym("orc_lookup"),
            sym("orc_lookup_end"),
            sym("_stext"),
            sym("_etext"),
        ) {
            (Ok(table), Ok(end), Ok(text_start), Ok(text_end)) if end > table => {
                Some(OrcFastLookup {
                    table,
                    blocks: (end - table) / 4,
                    text_start,
                    text_end,
                })
            }
            _ => None,
        };
        let mut orc = OrcTable::from_memory(
            mem,
            sym("__start_orc_unwind_ip")?,
            sym("__stop_orc_unwind_ip")?,
            sym("__start_orc_unwind")?,
            text_end,
            fast,
            layout.orc_layout,
        )?;
        let mem_err = |what: &'static str| {
            move |source| KernelError::Memory {
                what: what.into(),
                source,
            }
        };
        let nr_cpus = mem
            .read_u32(VirtAddr(sym("nr_cpu_ids")?))
            .map_err(mem_err("nr_cpu_ids"))?
            .min(8192);
        let pco = sym("__per_cpu_offset")?;
        let mut per_cpu_offsets = Vec::new();
        for cpu in 0..u64::from(nr_cpus) {
            per_cpu_offsets.push(
                mem.read_u64(VirtAddr(pco + cpu * 8))
                    .map_err(mem_err("__per_cpu_offset"))?,
            );
        }
        let stacks = StackMap::from_memory(mem, &layout, &per_cpu_offsets, &|n| sym(n).ok())?;
        // modules add symbols and unwind tables; a module that cannot be
        // read is named, not fatal
        let modules = match sym("modules").and_then(|head| modules::walk(mem, &layout.module, head))
        {
            Ok(m) => m,
            Err(e) => {
                warnings.push(format!("modules: {e}"));
                Vec::new()
            }
        };
        for m in &modules {
            if let Some((ip, entries, n)) = m.orc
                && let Err(e) = orc.add(ip, entries, n, m.text.clone())
            {
                warnings.push(format!("module {}'s ORC table: {e}", m.name));
            }
        }
        Ok(Self {
            mem,
            dump,
            symbols: OnceLock::new(),
            btf,
            layout,
            orc,
            stacks,
            per_cpu_offsets,
            modules,
            warnings,
            call_frames: None,
        })
    }

    /// Adds the call-frame rules of debug files (a vmlinux's
    /// `.debug_frame`), which the unwinder uses where ORC has no rule.
    pub fn set_call_frames(&mut self, rules: &'m dyn crate::unwind::CallFrameRules) {
        self.call_frames = Some(rules);
    }

    /// The debug files' call-frame rules, if any were added.
    pub fn call_frames(&self) -> Option<&'m dyn crate::unwind::CallFrameRules> {
        self.call_frames
    }

    /// The loaded modules.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// What could not be read while building the model (a module's
    /// ORC table, say; a module's symbols once they have been asked for);
    /// the rest of the model is still good.
    pub fn warnings(&self) -> impl Iterator<Item = &String> {
        let symbols = self
            .symbols
            .get()
            .map(|s| &s.warnings[..])
            .unwrap_or_default();
        self.warnings.iter().chain(symbols)
    }

    /// The memory the model reads.
    pub fn memory(&self) -> &'m dyn KernelMemory {
        self.mem
    }

    /// The dump.
    pub fn dump(&self) -> &'m Dump {
        self.dump
    }

    /// The symbol table.
    pub fn symbols(&self) -> &SymbolTable<'m> {
        &self
            .symbols
            .get_or_init(|| {
                let mut warnings = Vec::new();
                let mut table = match self.dump.kallsyms() {
                    Ok(k) => SymbolTable::from_kallsyms(k),
                    Err(e) => {
                        warnings.push(format!("{e}; the kernel's own addresses have no names"));
                        SymbolTable::default()
                    }
                };
                let mut module_symbols = Vec::new();
                for m in &self.modules {
                    match modules::symbols(self.mem, &self.layout.module, m) {
                        Ok(s) => module_symbols.push((m.name.clone(), s)),
                        Err(e) => warnings.push(format!("module {}: {e}", m.name)),
                    }
                }
                table.add_modules(module_symbols);
                ModelSymbols { table, warnings }
            })
            .table
    }

    /// The kernel's BTF, unless the layouts came from a vmlinux's DWARF.
    pub fn btf(&self) -> Option<&Arc<Btf>> {
        self.btf.as_ref()
    }

    /// The struct offsets in use.
    pub fn layout(&self) -> &KernelLayout {
        &self.layout
    }

    /// The ORC tables.
    pub fn orc(&self) -> &OrcTable<'m> {
        &self.orc
    }

    /// The stacks of every CPU.
    pub fn stacks(&self) -> &StackMap {
        &self.stacks
    }

    /// `__per_cpu_offset[]`.
    pub fn per_cpu_offsets(&self) -> &[u64] {
        &self.per_cpu_offsets
    }

    /// Each CPU's registers saved at the crash (empty for `/proc/kcore`).
    pub fn crash_registers(&self) -> Result<Vec<CpuState>> {
        self.dump.cpus().map_err(|e| KernelError::Memory {
            what: "crash_notes".into(),
            source: e,
        })
    }

    /// The CPU that panicked, if the dump says.
    pub fn panic_cpu(&self) -> Option<u32> {
        self.dump.panic_cpu().ok().flatten()
    }

    /// Every task (each thread of each process, from `init_task`, and
    /// each CPU's idle task), and what could not be read on the way.
    pub fn tasks(&self) -> Result<(Vec<Task>, Vec<String>)> {
        let init = self
            .dump
            .symbol("init_task")
            .map_err(|_| KernelError::NoSymbol("init_task".into()))?
            .0;
        let (mut tasks, mut warnings) = tasks::walk(self.mem, &self.layout, init)?;
        // the idle tasks of CPUs other than 0 are on no list but their
        // runqueue's (`rq->idle`)
        if let Ok(VirtAddr(rq)) = self.dump.symbol("runqueues") {
            for (cpu, off) in self.per_cpu_offsets.iter().enumerate() {
                let at = VirtAddr(rq.wrapping_add(*off) + self.layout.rq_idle);
                match self.mem.read_u64(at) {
                    Ok(idle) if idle != 0 && !tasks.iter().any(|t| t.address == idle) => {
                        match Task::read(self.mem, &self.layout, idle) {
                            Ok(t) => tasks.push(t),
                            Err(e) => warnings.push(format!("CPU {cpu}'s idle task: {e}")),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => warnings.push(format!("CPU {cpu}'s runqueue: {e}")),
                }
            }
        }
        Ok((tasks, warnings))
    }

    /// The address of the task running on each CPU (`current`).
    pub fn current_tasks(&self) -> Vec<Option<u64>> {
        self.stacks.current_tasks().to_vec()
    }
}

/// The kernel's BTF at `range`. A vmlinux's copy of it (its `.BTF`
/// section) saves decompressing some thousand dump pages; it is used when
/// its length and its first and last page equal memory's, and memory is
/// read otherwise, with a warning.
fn read_btf(
    mem: &dyn KernelMemory,
    range: std::ops::Range<u64>,
    copy: Option<&[u8]>,
    warnings: &mut Vec<String>,
) -> Result<Btf> {
    let (start, stop) = (range.start, range.end);
    let len = stop
        .checked_sub(start)
        .filter(|&l| l > 0 && l <= MAX_BTF)
        .ok_or_else(|| {
            KernelError::Btf(format!("__start_BTF..__stop_BTF is {start:#x}..{stop:#x}"))
        })? as usize;
    if let Some(copy) = copy {
        let ends = len.min(4096);
        let same = |at: usize| {
            mem.read_vec(VirtAddr(start + at as u64), ends)
                .is_ok_and(|m| copy.get(at..at + ends) == Some(&m[..]))
        };
        if copy.len() == len && same(0) && same(len - ends) {
            return Btf::parse(copy.to_vec()).map_err(|e| KernelError::Btf(e.to_string()));
        }
        warnings.push(format!(
            "the vmlinux's .BTF ({} bytes) differs from the kernel's ({len} bytes at \
             {start:#x}); reading the kernel's",
            copy.len()
        ));
    }
    let bytes = mem
        .read_vec(VirtAddr(start), len)
        .map_err(|e| KernelError::Memory {
            what: "the kernel's BTF".into(),
            source: e,
        })?;
    Btf::parse(bytes).map_err(|e| KernelError::Btf(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksw_vmcore::RegionMemory;

    const AT: u64 = 0xffff_ffff_8240_0000;

    /// BTF of one `int` named `name`, whose name sits between two long
    /// strings of `fill`, so that it is on neither the first nor the
    /// last page.
    fn btf_bytes(name: &str, fill: u8) -> Vec<u8> {
        let mut strings = vec![0u8];
        strings.extend(std::iter::repeat_n(fill, 6000));
        strings.push(0);
        let name_off = strings.len() as u32;
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        strings.extend(std::iter::repeat_n(fill, 6000));
        strings.push(0);
        let types: Vec<u8> = [name_off, 1 << 24, 4, 32]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let mut out = vec![0x9f, 0xeb, 1, 0];
        for word in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend(types);
        out.extend(strings);
        out
    }

    fn read(copy: &[u8], warnings: &mut Vec<String>) -> String {
        let memory = btf_bytes("mem_int", b'x');
        let range = AT..AT + memory.len() as u64;
        let mem = RegionMemory::new().with(VirtAddr(AT), memory);
        let btf = read_btf(&mem, range, Some(copy), warnings).unwrap();
        btf.type_name(crate::btf::TypeId(1)).unwrap()
    }

    #[test]
    fn vmlinux_btf_is_used_when_its_ends_match_memory() {
        let mut warnings = Vec::new();
        assert_eq!(read(&btf_bytes("cpy_int", b'x'), &mut warnings), "cpy_int");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn vmlinux_btf_that_differs_is_refused_with_a_warning() {
        for copy in [btf_bytes("cpy_int", b'y'), btf_bytes("cpy_int_", b'x')] {
            let mut warnings = Vec::new();
            assert_eq!(read(&copy, &mut warnings), "mem_int");
            assert_eq!(warnings.len(), 1);
            assert!(
                warnings[0].contains("differs from the kernel's"),
                "{warnings:?}"
            );
        }
    }
}
