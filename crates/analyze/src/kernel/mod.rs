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
//! - [`catch_log`]: kstackwatch's catch ring, when it is loaded.

pub mod catch_log;
pub mod layout;
pub mod modules;
pub mod orc_table;
pub mod stacks;
pub mod symbols;
pub mod tasks;
pub mod types;

use std::sync::Arc;

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

/// The largest BTF a kernel is believed to have.
const MAX_BTF: u64 = 64 << 20;
/// `THREAD_SIZE` on x86_64 without KASAN (16 KiB), also the IRQ stack size.
pub const THREAD_SIZE: u64 = 16 << 10;

/// The kernel, as read from memory.
pub struct KernelModel<'m> {
    mem: &'m dyn KernelMemory,
    dump: &'m Dump,
    symbols: SymbolTable<'m>,
    btf: Option<Arc<Btf>>,
    layout: KernelLayout,
    orc: OrcTable<'m>,
    stacks: StackMap,
    per_cpu_offsets: Vec<u64>,
    modules: Vec<Module>,
    warnings: Vec<String>,
    call_frames: Option<&'m dyn crate::unwind::CallFrameRules>,
}

impl std::fmt::Debug for KernelModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelModel")
            .field("symbols", &self.symbols.len())
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl<'m> KernelModel<'m> {
    /// Reads the model from a dump (or `/proc/kcore`).
    pub fn from_dump(dump: &'m Dump) -> Result<Self> {
        Self::from_dump_with(dump, None)
    }

    /// Reads the model from a dump, taking struct layouts from
    /// `fallback_types` (a debug vmlinux's DWARF) when the kernel's own
    /// BTF is missing or unreadable.
    pub fn from_dump_with(
        dump: &'m Dump,
        fallback_types: Option<&dyn types::KernelTypes>,
    ) -> Result<Self> {
        let mem: &dyn KernelMemory = dump;
        let kallsyms = dump.kallsyms().map_err(|e| KernelError::Memory {
            what: "kallsyms".into(),
            source: e,
        })?;
        let mut symbols = SymbolTable::from_kallsyms(kallsyms);
        let sym = |name: &str| -> Result<u64> {
            dump.symbol(name)
                .map(|a| a.0)
                .map_err(|_| KernelError::NoSymbol(name.into()))
        };
        let mut warnings = Vec::new();
        // the kernel's own BTF; a debug vmlinux's DWARF when it has none
        let btf = sym("__start_BTF")
            .and_then(|start| read_btf(mem, start, sym("__stop_BTF")?))
            .map(Arc::new);
        let (btf, layout) = match (btf, fallback_types) {
            (Ok(btf), _) => {
                let layout = KernelLayout::from_btf(&btf)?;
                (Some(btf), layout)
            }
            (Err(e), Some(types)) => {
                warnings.push(format!(
                    "{e}; struct layouts come from the vmlinux's DWARF instead"
                ));
                (None, KernelLayout::from_types(types)?)
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
        let mut module_symbols = Vec::new();
        for m in &modules {
            match modules::symbols(mem, &layout.module, m) {
                Ok(s) => module_symbols.push((m.name.clone(), s)),
                Err(e) => warnings.push(format!("module {}: {e}", m.name)),
            }
            if let Some((ip, entries, n)) = m.orc
                && let Err(e) = orc.add(ip, entries, n, m.text.clone())
            {
                warnings.push(format!("module {}'s ORC table: {e}", m.name));
            }
        }
        symbols.add_modules(module_symbols);
        Ok(Self {
            mem,
            dump,
            symbols,
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
    /// symbols, say); the rest of the model is still good.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
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
        &self.symbols
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
            .symbols
            .address_of("init_task")
            .ok_or_else(|| KernelError::NoSymbol("init_task".into()))?;
        let (mut tasks, mut warnings) = tasks::walk(self.mem, &self.layout, init)?;
        // the idle tasks of CPUs other than 0 are on no list but their
        // runqueue's (`rq->idle`)
        if let Some(rq) = self.symbols.address_of("runqueues") {
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

fn read_btf(mem: &dyn KernelMemory, start: u64, stop: u64) -> Result<Btf> {
    let len = stop
        .checked_sub(start)
        .filter(|&l| l > 0 && l <= MAX_BTF)
        .ok_or_else(|| {
            KernelError::Btf(format!("__start_BTF..__stop_BTF is {start:#x}..{stop:#x}"))
        })?;
    let bytes = mem
        .read_vec(VirtAddr(start), len as usize)
        .map_err(|e| KernelError::Memory {
            what: "the kernel's BTF".into(),
            source: e,
        })?;
    Btf::parse(bytes).map_err(|e| KernelError::Btf(e.to_string()))
}
