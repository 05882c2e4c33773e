//! The struct offsets the kernel model reads, resolved once from the
//! kernel's own BTF.
//!
//! Every offset the model uses is here, by name, so that the tests can
//! check each against DWARF, and so that a kernel whose layout lacks one
//! fails with the name of what is missing.

use std::cell::RefCell;

use super::types::KernelTypes;

use super::{KernelError, Result};

/// One member offset the model read from BTF.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberRead {
    /// The struct (`task_struct`).
    pub strukt: String,
    /// The member path (`thread.sp`).
    pub path: String,
    /// Its byte offset.
    pub offset: u64,
}

/// Offsets into `struct module` and its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLayout {
    /// `module.list`.
    pub list: u64,
    /// `module.name`.
    pub name: u64,
    /// `module.state`.
    pub state: u64,
    /// `module.kallsyms`.
    pub kallsyms: u64,
    /// `module.arch.orc_unwind_ip`.
    pub orc_ip: u64,
    /// `module.arch.orc_unwind`.
    pub orc: u64,
    /// `module.arch.num_orcs`.
    pub num_orcs: u64,
    /// Where the memory regions are.
    pub regions: ModuleRegions,
    /// Where the section addresses are (`mod->sect_attrs`), when the
    /// kernel keeps them (`CONFIG_KALLSYMS` and sysfs).
    pub sections: Option<SectionAttrsLayout>,
}

/// Offsets of the rethook list (see [`KernelLayout::rethook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RethookLayout {
    /// `task_struct.rethooks` (an `llist_head`).
    pub task_rethooks: u64,
    /// `rethook_node.llist`.
    pub llist: u64,
    /// `rethook_node.ret_addr`.
    pub ret_addr: u64,
    /// `rethook_node.frame`.
    pub frame: u64,
}

/// Offsets of `struct module_sect_attrs` and its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionAttrsLayout {
    /// `module.sect_attrs`.
    pub sect_attrs: u64,
    /// `module_sect_attrs.nsections`.
    pub nsections: u64,
    /// `module_sect_attrs.attrs` (the array).
    pub attrs: u64,
    /// `sizeof(struct module_sect_attr)`.
    pub attr_size: u64,
    /// `module_sect_attr.battr.attr.name`.
    pub name: u64,
    /// `module_sect_attr.address`.
    pub address: u64,
}

/// Where a module's memory regions are described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRegions {
    /// Up to 6.3: `core_layout` and `init_layout` (offsets into
    /// `module`), and `base`, `size`, `text_size` inside each.
    Layouts {
        /// `module.core_layout`.
        core: u64,
        /// `module.init_layout`.
        init: u64,
        /// `module_layout.base`.
        base: u64,
        /// `module_layout.size`.
        size: u64,
        /// `module_layout.text_size`.
        text_size: u64,
    },
    /// 6.4+: `mem[MOD_*]`, elements of `sizeof(struct module_memory)`.
    Memory {
        /// `module.mem`.
        mem: u64,
        /// `sizeof(struct module_memory)`.
        elem: u64,
        /// `module_memory.base`.
        base: u64,
        /// `module_memory.size`.
        size: u64,
    },
}

/// Looks offsets up and keeps a list of what it looked up.
struct Reader<'t> {
    types: &'t dyn KernelTypes,
    read: RefCell<Vec<MemberRead>>,
}

impl Reader<'_> {
    fn off(&self, strukt: &str, path: &str) -> Result<u64> {
        let offset = self
            .types
            .member_offset(strukt, path)
            .map_err(|e| KernelError::Layout(format!("{strukt}.{path}: {e}")))?;
        self.read.borrow_mut().push(MemberRead {
            strukt: strukt.into(),
            path: path.into(),
            offset,
        });
        Ok(offset)
    }
}

/// Offsets (bytes) into the structs the model walks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KernelLayout {
    /// `task_struct.tasks` (the process list).
    pub task_tasks: u64,
    /// `task_struct.pid`.
    pub task_pid: u64,
    /// `task_struct.tgid`.
    pub task_tgid: u64,
    /// `task_struct.comm`.
    pub task_comm: u64,
    /// `task_struct.stack`.
    pub task_stack: u64,
    /// `task_struct.thread.sp`.
    pub task_thread_sp: u64,
    /// `task_struct.__state`.
    pub task_state: u64,
    /// `task_struct.exit_state`.
    pub task_exit_state: u64,
    /// `task_struct.on_cpu`.
    pub task_on_cpu: u64,
    /// `task_struct.cpu`, or `thread_info.cpu` inside it.
    pub task_cpu: u64,
    /// `task_struct.signal`.
    pub task_signal: u64,
    /// `task_struct.thread_node`.
    pub task_thread_node: u64,
    /// `signal_struct.thread_head`.
    pub signal_thread_head: u64,
    /// `struct inactive_task_frame`'s `bp`.
    pub frame_bp: u64,
    /// `struct inactive_task_frame`'s `ret_addr`.
    pub frame_ret_addr: u64,
    /// `sizeof(struct inactive_task_frame)`.
    pub frame_size: u64,
    /// The ORC entry layout (see [`crate::unwind::orc::OrcLayout`]).
    #[serde(skip)]
    pub orc_layout: crate::unwind::orc::OrcLayout,
    /// The exception stacks inside `struct cea_exception_stacks`: name
    /// (`DF`, `NMI`, `DB`, `MCE`, `VC`, `VC2`), offset and size.
    pub exception_stacks: Vec<(String, u64, u64)>,
    /// `rq.idle`: each CPU's idle task (not on the task list).
    pub rq_idle: u64,
    /// With `CONFIG_RETHOOK`: `task_struct.rethooks`, and
    /// `rethook_node.llist`, `.ret_addr` and `.frame` (where kretprobes
    /// and fprobes keep the return addresses they replaced).
    pub rethook: Option<RethookLayout>,
    /// 6.2+: `pcpu_hot.current_task` and `pcpu_hot.hardirq_stack_ptr`
    /// (before, they are per-CPU variables of their own).
    pub pcpu_hot: Option<(u64, u64)>,
    /// `struct module`.
    #[serde(skip)]
    pub module: ModuleLayout,
    /// Every member offset above, as read from BTF (for the tests that
    /// check each against DWARF).
    pub members_read: Vec<MemberRead>,
}

impl KernelLayout {
    /// Resolves every offset from the kernel's BTF.
    pub fn from_btf(btf: &crate::btf::Btf) -> Result<Self> {
        Self::from_types(btf)
    }

    /// Resolves every offset from `types` (BTF, or a vmlinux's DWARF).
    pub fn from_types(types: &dyn KernelTypes) -> Result<Self> {
        let r = Reader {
            types,
            read: RefCell::new(Vec::new()),
        };
        let layout_err = |e: String| KernelError::Layout(e);
        let task_cpu = r
            .off("task_struct", "cpu")
            .or_else(|_| r.off("task_struct", "thread_info.cpu"))?;
        if !types.has_struct("orc_entry") {
            return Err(KernelError::Layout(
                "no struct orc_entry in the kernel's types".into(),
            ));
        }
        let orc_layout = match (
            types.member_offset("orc_entry", "signal"),
            types.member_offset("orc_entry", "end"),
        ) {
            (Ok(_), _) => crate::unwind::orc::OrcLayout::TypeSignal,
            (_, Ok(_)) => crate::unwind::orc::OrcLayout::TypeEnd,
            _ => {
                return Err(KernelError::Layout(
                    "struct orc_entry has neither `signal` nor `end`: an ORC layout this build does not know".into(),
                ));
            }
        };
        let frame_size = types
            .struct_size("inactive_task_frame")
            .map_err(layout_err)?;
        let mut exception_stacks = Vec::new();
        if types.has_struct("cea_exception_stacks") {
            for name in ["DF", "NMI", "DB", "MCE", "VC", "VC2"] {
                let member = format!("{name}_stack");
                if let Ok(size) = types.member_size("cea_exception_stacks", &member)
                    && size > 0
                {
                    exception_stacks.push((
                        name.to_string(),
                        r.off("cea_exception_stacks", &member)?,
                        size,
                    ));
                }
            }
        }
        let pcpu_hot = if types.has_struct("pcpu_hot") {
            Some((
                r.off("pcpu_hot", "current_task")?,
                r.off("pcpu_hot", "hardirq_stack_ptr")?,
            ))
        } else {
            None
        };
        let regions = match types.has_struct("module_memory") {
            true => ModuleRegions::Memory {
                mem: r.off("module", "mem")?,
                elem: types.struct_size("module_memory").map_err(layout_err)?,
                base: r.off("module_memory", "base")?,
                size: r.off("module_memory", "size")?,
            },
            false => ModuleRegions::Layouts {
                core: r.off("module", "core_layout")?,
                init: r.off("module", "init_layout")?,
                base: r.off("module_layout", "base")?,
                size: r.off("module_layout", "size")?,
                text_size: r.off("module_layout", "text_size")?,
            },
        };
        let rethook = match types.has_struct("rethook_node") {
            true => Some(RethookLayout {
                task_rethooks: r.off("task_struct", "rethooks")?,
                llist: r.off("rethook_node", "llist")?,
                ret_addr: r.off("rethook_node", "ret_addr")?,
                frame: r.off("rethook_node", "frame")?,
            }),
            false => None,
        };
        let sections = match types.has_struct("module_sect_attr") {
            true => Some(SectionAttrsLayout {
                sect_attrs: r.off("module", "sect_attrs")?,
                nsections: r.off("module_sect_attrs", "nsections")?,
                attrs: r.off("module_sect_attrs", "attrs")?,
                attr_size: types.struct_size("module_sect_attr").map_err(layout_err)?,
                name: r.off("module_sect_attr", "battr.attr.name")?,
                address: r.off("module_sect_attr", "address")?,
            }),
            false => None,
        };
        let module = ModuleLayout {
            list: r.off("module", "list")?,
            name: r.off("module", "name")?,
            state: r.off("module", "state")?,
            kallsyms: r.off("module", "kallsyms")?,
            orc_ip: r.off("module", "arch.orc_unwind_ip")?,
            orc: r.off("module", "arch.orc_unwind")?,
            num_orcs: r.off("module", "arch.num_orcs")?,
            regions,
            sections,
        };
        let mut layout = Self {
            task_tasks: r.off("task_struct", "tasks")?,
            task_pid: r.off("task_struct", "pid")?,
            task_tgid: r.off("task_struct", "tgid")?,
            task_comm: r.off("task_struct", "comm")?,
            task_stack: r.off("task_struct", "stack")?,
            task_thread_sp: r.off("task_struct", "thread.sp")?,
            task_state: r.off("task_struct", "__state")?,
            task_exit_state: r.off("task_struct", "exit_state")?,
            task_on_cpu: r.off("task_struct", "on_cpu")?,
            task_cpu,
            task_signal: r.off("task_struct", "signal")?,
            task_thread_node: r.off("task_struct", "thread_node")?,
            signal_thread_head: r.off("signal_struct", "thread_head")?,
            rq_idle: r.off("rq", "idle")?,
            rethook,
            frame_bp: r.off("inactive_task_frame", "bp")?,
            frame_ret_addr: r.off("inactive_task_frame", "ret_addr")?,
            frame_size,
            orc_layout,
            exception_stacks,
            pcpu_hot,
            module,
            members_read: Vec::new(),
        };
        // the mod_kallsyms and list_head words are read at fixed places;
        // check them here so that a kernel that moved them is refused
        for (strukt, path, want) in [
            ("mod_kallsyms", "symtab", 0),
            ("mod_kallsyms", "num_symtab", 8),
            ("mod_kallsyms", "strtab", 16),
            ("list_head", "next", 0),
            ("list_head", "prev", 8),
        ] {
            let got = r.off(strukt, path)?;
            if got != want {
                return Err(KernelError::Layout(format!(
                    "{strukt}.{path} is at {got}, not {want}"
                )));
            }
        }
        layout.members_read = r.read.into_inner();
        Ok(layout)
    }
}
