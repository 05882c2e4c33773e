//! Source positions for kernel addresses, from debug files' DWARF.
//!
//! The physical frames of a trace come from memory (kallsyms, ORC); debug
//! files only add to them: `file:line` and the chain of inlined functions
//! at each pc (through the addr2line crate). A debug vmlinux is accepted
//! only when its build ID is the dump's, and addresses are moved back by
//! the KASLR offset before lookup. A module's `.ko` is accepted only when
//! its build ID is the one the module has in memory, and its DWARF is
//! relocated with the section addresses the kernel chose
//! ([`ModuleDebugFile`]).

use std::path::PathBuf;

use ksw_vmcore::VirtAddr;
use object::{Object, ObjectSection};

use crate::dwarf::{DebugSections, Reader};
use crate::elf::{DebugFile, ElfImage};
use crate::kernel::KernelModel;
use crate::locate::hex;

/// One level of the inline chain at a pc.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourcePosition {
    /// The function's source name (`crash_setup_regs`).
    pub function: Option<String>,
    /// The source file.
    pub file: Option<String>,
    /// The line.
    pub line: Option<u32>,
    /// True for a function inlined into the next level.
    pub inlined: bool,
}

/// A debug vmlinux of another build than the dump's.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path} is not this dump's kernel: its build ID is {file}, the dump's is {dump} (find the -dbg package of the dump's exact build)"
)]
pub struct WrongBuild {
    /// The file.
    pub path: PathBuf,
    /// The file's build ID.
    pub file: String,
    /// The dump's.
    pub dump: String,
}

/// Refuses a debug vmlinux whose build ID is not `dump_build_id` (when
/// both have one).
pub fn check_build(image: &ElfImage<'_>, dump_build_id: Option<&str>) -> Result<(), WrongBuild> {
    match (image.build_id().map(hex), dump_build_id) {
        (Some(file), Some(dump)) if !dump.eq_ignore_ascii_case(&file) => Err(WrongBuild {
            path: image.path().to_path_buf(),
            file,
            dump: dump.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A debug vmlinux's DWARF placed at the dump's KASLR offset.
///
/// addr2line indexes every unit of the file it is given before its first
/// answer, which for a distribution vmlinux (thousands of units, half a
/// gigabyte of DWARF) costs more than everything else a command does. So
/// each unit gets its own small addr2line context, made the first time an
/// address in it is asked for: `.debug_aranges` names the unit, and the
/// context sees that unit alone. A file whose `.debug_info` is relocated,
/// or an address aranges do not cover, falls back to one context over the
/// whole file, also made once.
pub struct VmlinuxSource<'s> {
    sections: &'s DebugSections<'s>,
    info: crate::dwarf::DebugInfo<'s>,
    /// Per unit offset: its context (`None`: it could not be made).
    units: std::cell::RefCell<std::collections::HashMap<usize, Option<std::rc::Rc<Context<'s>>>>>,
    whole: std::cell::OnceCell<Option<Context<'s>>>,
    kaslr_offset: u64,
}

type Context<'s> = addr2line::Context<Reader<'s>>;

impl std::fmt::Debug for VmlinuxSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmlinuxSource")
            .field("kaslr_offset", &self.kaslr_offset)
            .finish_non_exhaustive()
    }
}

impl<'s> VmlinuxSource<'s> {
    /// Lines and inline chains from `sections` (a vmlinux checked with
    /// [`check_build`]), whose kernel text moved by `kaslr_offset`.
    pub fn new(sections: &'s DebugSections<'s>, kaslr_offset: u64) -> crate::Result<Self> {
        Ok(Self {
            sections,
            info: crate::dwarf::DebugInfo::new(sections)?,
            units: std::cell::RefCell::default(),
            whole: std::cell::OnceCell::new(),
            kaslr_offset,
        })
    }

    /// The inline chain at runtime address `pc`, innermost first; the last
    /// entry is the physical function. Empty when DWARF does not cover it.
    pub fn positions(&self, pc: u64) -> Vec<SourcePosition> {
        let probe = pc.wrapping_sub(self.kaslr_offset);
        let find = |c: &Context<'s>| {
            c.find_frames(probe)
                .skip_all_loads()
                .map(chain)
                .unwrap_or_default()
        };
        if let Some(context) = self.unit_context(probe) {
            return find(&context);
        }
        match self
            .whole
            .get_or_init(|| Context::from_dwarf(self.sections.dwarf().ok()?).ok())
        {
            Some(c) => find(c),
            None => Vec::new(),
        }
    }

    fn unit_context(&self, probe: u64) -> Option<std::rc::Rc<Context<'s>>> {
        let offset = self.info.unit_offset_for_address(probe).ok()??;
        let mut units = self.units.borrow_mut();
        units
            .entry(offset)
            .or_insert_with(|| {
                let dwarf = self.sections.unit_dwarf(offset).ok()??;
                Context::from_dwarf(dwarf).ok().map(std::rc::Rc::new)
            })
            .clone()
    }
}

/// Adds source positions to every frame of `trace` a debug file
/// describes: vmlinux frames from `vmlinux`, module frames from their
/// `.ko` in `modules`. Returns notes on `.ko` files whose DWARF could not
/// be read.
pub fn annotate_all(
    trace: &mut crate::unwind::Trace,
    vmlinux: Option<&VmlinuxSource<'_>>,
    modules: &[ModuleDebugFile],
) -> Vec<String> {
    if let Some(v) = vmlinux {
        annotate(trace, v);
    }
    annotate_modules(trace, modules)
}

/// Adds source positions to the vmlinux frames of `trace` (module frames
/// need their `.ko`).
pub fn annotate(trace: &mut crate::unwind::Trace, source: &VmlinuxSource<'_>) {
    for f in &mut trace.frames {
        if f.symbol.as_ref().is_some_and(|s| s.module.is_none()) {
            // a return address belongs to the call before it
            let pc = if f.exact { f.pc } else { f.pc.wrapping_sub(1) };
            f.source = source.positions(pc);
        }
    }
}

/// A module's debug file (`.ko`, `.ko.xz`), matched by build ID to the
/// module in memory, with the addresses of its sections there.
pub struct ModuleDebugFile {
    /// The module's name.
    pub module: String,
    /// The file.
    pub path: PathBuf,
    file: DebugFile,
    placed: Vec<(String, VirtAddr)>,
}

impl std::fmt::Debug for ModuleDebugFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleDebugFile")
            .field("module", &self.module)
            .field("path", &self.path)
            .finish()
    }
}

impl ModuleDebugFile {
    /// The file as read from disk (unrelocated: what `resolve` and
    /// `frame_layout` take).
    pub fn file(&self) -> &DebugFile {
        &self.file
    }

    /// Runs `f` over the file's debug sections, relocated to where the
    /// module's sections were loaded, so that its addresses are run-time
    /// addresses.
    pub fn with_sections<R>(
        &self,
        f: impl FnOnce(&DebugSections<'_>) -> crate::Result<R>,
    ) -> crate::Result<R> {
        let placed: Vec<(&str, VirtAddr)> =
            self.placed.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        let image = ElfImage::parse_loaded(&self.file, &placed)?;
        let sections = DebugSections::load(&image)?;
        f(&sections)
    }
}

/// Fetches a module's debug file by its name and build ID (debuginfod),
/// saying itself why it could not.
pub type FetchByBuildId<'a> = dyn Fn(&str, &[u8]) -> Option<PathBuf> + 'a;

/// The debug files of the modules loaded in `model`, looked up by name in
/// `dirs` (see [`crate::locate::find_module`]), else, with `fetch`, by
/// the build ID in the module's memory. A file whose build ID is not the
/// module's in memory is refused, with both IDs in the returned notes; so
/// is a module whose section addresses cannot be read.
pub fn module_debug_files(
    model: &KernelModel<'_>,
    dirs: &[PathBuf],
    fetch: Option<&FetchByBuildId<'_>>,
) -> (Vec<ModuleDebugFile>, Vec<String>) {
    let mut files = Vec::new();
    let mut notes = Vec::new();
    for m in model.modules() {
        let local = crate::locate::find_module(dirs, &m.name);
        if local.is_none() && fetch.is_none() {
            continue;
        }
        // where the kernel put each section: its section attributes, or,
        // where the dump lost those (makedumpfile drops slab pages it
        // does not recognise), the module's own symbols
        let sections =
            match crate::kernel::modules::sections(model.memory(), &model.layout().module, m) {
                Ok(s) if !s.is_empty() => Some(s),
                Ok(_) => None,
                Err(e) => {
                    notes.push(format!(
                        "module {}: {e}; its sections are placed by its symbols instead",
                        m.name
                    ));
                    None
                }
            };
        // not on disk: the build ID in memory, asked for by the fetcher
        let Some(path) = local.or_else(|| {
            let fetch = fetch?;
            let id = crate::kernel::modules::build_id(model.memory(), sections.as_ref()?)?;
            fetch(&m.name, &id)
        }) else {
            continue;
        };
        let file = match crate::locate::open(&path) {
            Ok(f) => f,
            Err(e) => {
                notes.push(format!("module {}: {e}", m.name));
                continue;
            }
        };
        let on_disk = ElfImage::parse(&file)
            .ok()
            .and_then(|i| i.build_id().map(<[u8]>::to_vec));
        let in_memory = match &sections {
            Some(s) => crate::kernel::modules::build_id(model.memory(), s),
            None => on_disk.as_deref().and_then(|id| {
                crate::kernel::modules::find_build_id(model.memory(), m, id).then(|| id.to_vec())
            }),
        };
        match (on_disk.as_deref().map(hex), in_memory.as_deref().map(hex)) {
            (Some(d), Some(m_id)) if d != m_id => {
                notes.push(format!(
                    "module {}: {} is another build (its build ID is {d}, the loaded module's is {m_id}); its frames get no source lines",
                    m.name,
                    path.display()
                ));
                continue;
            }
            (Some(d), None) => {
                notes.push(format!(
                    "module {}: the build ID {d} of {} is not in the module's memory; its frames get no source lines",
                    m.name,
                    path.display()
                ));
                continue;
            }
            (None, _) => notes.push(format!(
                "module {}: {} has no build ID to check; used as is",
                m.name,
                path.display()
            )),
            _ => {}
        }
        let sections = match sections {
            Some(s) => s,
            None => {
                let own =
                    crate::kernel::modules::symbols(model.memory(), &model.layout().module, m)
                        .unwrap_or_default();
                place_by_symbols(&file, &own)
            }
        };
        let placed = sections
            .into_iter()
            .map(|(n, a)| (n, VirtAddr(a)))
            .collect();
        files.push(ModuleDebugFile {
            module: m.name.clone(),
            path,
            file,
            placed,
        });
    }
    (files, notes)
}

/// Section addresses of a relocatable `file` from the run-time addresses
/// of its symbols (`own`: name, address, size): each allocated section
/// with a symbol the module's symbol table has is at that symbol's
/// address minus its value in the file.
fn place_by_symbols(file: &DebugFile, own: &[(String, u64, u64)]) -> Vec<(String, u64)> {
    use object::ObjectSymbol;
    let Ok(obj) = object::File::parse(file.bytes()) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64)> = Vec::new();
    for sym in obj.symbols() {
        let (Ok(name), Some(index)) = (sym.name(), sym.section_index()) else {
            continue;
        };
        let Ok(section) = obj.section_by_index(index) else {
            continue;
        };
        let Ok(section_name) = section.name() else {
            continue;
        };
        if out.iter().any(|(n, _)| n == section_name) {
            continue;
        }
        if let Some((_, at, _)) = own.iter().find(|(n, _, _)| n == name) {
            out.push((section_name.to_string(), at.wrapping_sub(sym.address())));
        }
    }
    out
}

/// Adds source positions to the module frames of `trace` whose module
/// has a file in `files`. A file whose DWARF cannot be read is named in
/// the returned notes.
pub fn annotate_modules(
    trace: &mut crate::unwind::Trace,
    files: &[ModuleDebugFile],
) -> Vec<String> {
    let mut notes = Vec::new();
    for f in files {
        let wanted = |fr: &crate::unwind::Frame| {
            fr.symbol.as_ref().and_then(|s| s.module.as_deref()) == Some(f.module.as_str())
        };
        if !trace.frames.iter().any(wanted) {
            continue;
        }
        let positions = f.with_sections(|sections| {
            let dwarf = sections.dwarf()?;
            let context = addr2line::Context::from_dwarf(dwarf).map_err(|e| sections.err(e))?;
            let mut out = Vec::new();
            for (i, fr) in trace.frames.iter().enumerate() {
                if wanted(fr) {
                    let pc = if fr.exact {
                        fr.pc
                    } else {
                        fr.pc.wrapping_sub(1)
                    };
                    let found = context.find_frames(pc).skip_all_loads();
                    out.push((i, found.map(chain).unwrap_or_default()));
                }
            }
            Ok(out)
        });
        match positions {
            Ok(list) => {
                for (i, p) in list {
                    trace.frames[i].source = p;
                }
            }
            Err(e) => notes.push(format!("module {}: {}: {e}", f.module, f.path.display())),
        }
    }
    notes
}

/// An addr2line frame iterator as a chain of positions, innermost first.
fn chain<R: gimli::Reader>(mut frames: addr2line::FrameIter<'_, R>) -> Vec<SourcePosition> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = frames.next() {
        out.push(SourcePosition {
            function: f
                .function
                .as_ref()
                .and_then(|n| n.raw_name().ok())
                .map(|n| n.into_owned()),
            file: f.location.as_ref().and_then(|l| l.file).map(str::to_string),
            line: f.location.as_ref().and_then(|l| l.line),
            inlined: true,
        });
    }
    if let Some(last) = out.last_mut() {
        last.inlined = false;
    }
    out
}
