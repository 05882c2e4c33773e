//! The corruption report: from kstackwatch's catch record to the line that
//! wrote, the variable it hit and the frame that held it; for a dump with
//! no catch, the panic and the next step.
//!
//! One data model ([`Report`]) serves the text and the JSON output; the
//! CLI renders it. Building a report reads only the dump's memory and the
//! debug files it is given ([`DebugInputs`]); whatever is missing is said
//! in [`Report::gaps`] rather than guessed.
//!
//! - `record`: finding the ring (its symbol, or a scan of the module's
//!   data for the magic) and checking it;
//! - `writer`: the storing instruction before the `#DB`'s ip, its source
//!   line and text, the pointer it wrote through;
//! - `victim`: the victim's frame that holds the watched address, the
//!   variable there, the depth rebuilt from the stack;
//! - `panic`: the report of a dump without a catch;
//! - `live`: the module's state and every catch, for `ksw live`;
//! - `source`: source files found from `--source-dir` and `--source-map`.

mod live;
mod panic;
mod record;
mod source;
mod victim;
mod writer;

use std::path::PathBuf;

use serde::Serialize;

use crate::dwarf::DebugSections;
use crate::elf::DebugFile;
use crate::kernel::KernelModel;
use crate::symbolize::{ModuleDebugFile, SourcePosition, VmlinuxSource};
use crate::unwind::TaskTrace;

pub use live::{LiveReport, build_live};
pub use panic::PanicReport;
pub use record::{CatchLog, find_catch_log};
pub use source::SourceFinder;
pub use victim::{DepthCheck, Slot, Value, Victim};
pub use writer::{StoreInstruction, Writer};

/// The debug files a report may use. All are optional: a catch in module
/// code needs only the module's `.ko`.
pub struct DebugInputs<'a> {
    /// The debug vmlinux: the file, its sections, its lines and CFI.
    pub vmlinux: Option<VmlinuxDebug<'a>>,
    /// The loaded modules' `.ko` files, checked against memory.
    pub modules: &'a [ModuleDebugFile],
    /// Where source files are looked for.
    pub sources: SourceFinder,
    /// Where the debug vmlinux would be, to name it when it is missing.
    pub vmlinux_hint: Option<PathBuf>,
}

/// The debug vmlinux, loaded once.
#[derive(Clone, Copy)]
pub struct VmlinuxDebug<'a> {
    /// The file (for `resolve` and frame layouts).
    pub file: &'a DebugFile,
    /// Its sections.
    pub sections: &'a DebugSections<'a>,
    /// Its lines.
    pub lines: &'a VmlinuxSource<'a>,
    /// The KASLR offset of the dump.
    pub kaslr: u64,
}

/// What `ksw analyze` reports about one dump.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The kernel release.
    pub release: Option<String>,
    /// The panic message from the kernel log, when there is one.
    pub panic_message: Option<String>,
    /// Every catch in kstackwatch's ring, oldest first; `None` when
    /// kstackwatch is not loaded.
    pub catches: Option<Vec<CatchSummary>>,
    /// The catch explained (the newest, or the one asked for).
    pub catch: Option<CatchReport>,
    /// Without a catch: the panic, and what to run next.
    pub panic: Option<PanicReport>,
    /// What the report could not say, and which file would let it.
    pub gaps: Vec<Gap>,
    /// Disagreements and doubts; never hidden.
    pub warnings: Vec<String>,
}

/// One line of the ring's list.
#[derive(Debug, Clone, Serialize)]
pub struct CatchSummary {
    /// The catch number.
    pub seq: u64,
    /// `local_clock()` at the catch, ns.
    pub timestamp_ns: u64,
    /// The CPU that took the `#DB`.
    pub cpu: u32,
    /// The watched function.
    pub function: String,
    /// The watched address.
    pub watch_address: u64,
    /// The writer's ip at the `#DB`, as `sym+off/size [mod]`.
    pub writer: String,
    /// The writer's comm and pid.
    pub writer_task: String,
}

/// One catch, explained.
#[derive(Debug, Clone, Serialize)]
pub struct CatchReport {
    /// The catch number.
    pub seq: u64,
    /// `local_clock()` at the catch, ns.
    pub timestamp_ns: u64,
    /// The CPU that took the `#DB`.
    pub cpu: u32,
    /// The watch was on the stack canary.
    pub canary: bool,
    /// The writer is the victim task itself.
    pub self_write: bool,
    /// The module panicked after it.
    pub panicked: bool,
    /// The config string of the watch.
    pub config: String,
    /// The config, parsed; `None` with the reason in `warnings`.
    pub watch: Option<WatchFacts>,
    /// Who wrote.
    pub writer: Writer,
    /// What was hit.
    pub victim: Victim,
    /// The recursion depth, rebuilt.
    pub depth: DepthCheck,
    /// `ksw resolve FUNC VAR` against the config.
    pub resolve: Option<ResolveCheck>,
}

/// The parsed watch of a catch.
#[derive(Debug, Clone, Serialize)]
pub struct WatchFacts {
    /// The watched function.
    pub function: String,
    /// The probe offset.
    pub func_offset: u16,
    /// The activation watched (0 = outermost).
    pub depth: u16,
    /// SP offset of the watched slot.
    pub sp_offset: u16,
    /// Watch length.
    pub len: u16,
    /// The canary was watched.
    pub canary: bool,
    /// Panic on a hit.
    pub panic: bool,
}

impl WatchFacts {
    /// A watch string, parsed by the module's grammar; `None` when empty.
    pub fn parse(config: &str) -> Result<Option<Self>, kstackwatch_contract::ConfigError> {
        Ok(
            kstackwatch_contract::config::parse(config)?.map(|w| WatchFacts {
                function: w.func_name,
                func_offset: w.func_offset,
                depth: w.depth,
                sp_offset: w.sp_offset,
                len: w.watch_len,
                canary: w.canary,
                panic: w.panic_hit,
            }),
        )
    }
}

/// Whether `ksw resolve` gives back the watch that was armed.
#[derive(Debug, Clone, Serialize)]
pub struct ResolveCheck {
    /// The command that was checked.
    pub command: String,
    /// What it produced (key=value grammar).
    pub produced: Option<String>,
    /// It watches the same bytes (CFA offset and length) of the same
    /// function and activation as the catch's config.
    pub same_watch: bool,
    /// ... and with the same string (probe offset and SP offset too).
    pub same_string: bool,
    /// Why not, or why it could not run.
    pub note: Option<String>,
}

/// Something the report could not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// What is missing.
    pub what: String,
    /// The file that would fill it.
    pub wanted: String,
}

/// A place in the source: function, file, line, and the line's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceLine {
    /// The function (source name; inlined callee first in a chain).
    pub function: Option<String>,
    /// The file as DWARF names it.
    pub file: Option<String>,
    /// The line.
    pub line: Option<u32>,
    /// The line's text, when the file was found.
    pub text: Option<String>,
    /// An inlined callee's position (the next entry is its caller's).
    pub inlined: bool,
}

impl SourceLine {
    fn from_position(p: &SourcePosition, sources: &SourceFinder) -> Self {
        let text = match (&p.file, p.line) {
            (Some(f), Some(l)) => sources.line(f, l),
            _ => None,
        };
        SourceLine {
            function: p.function.clone(),
            file: p.file.clone(),
            line: p.line,
            text,
            inlined: p.inlined,
        }
    }
}

/// The options of one report.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// The catch to explain; `None` for the newest.
    pub catch: Option<u64>,
}

/// Why no report could be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The catch asked for is not in the ring.
    #[error(
        "no catch {asked} in kstackwatch's ring (it holds {held:?}); list them with `ksw analyze DUMP` and pick one with --catch"
    )]
    NoSuchCatch {
        /// The number asked for.
        asked: u64,
        /// The numbers the ring holds.
        held: Vec<u64>,
    },
    /// The ring is there but cannot be read or decoded.
    #[error("kstackwatch's catch ring: {0}")]
    Ring(String),
}

/// Builds the report of the dump behind `model`.
pub fn build(
    model: &KernelModel<'_>,
    debug: &DebugInputs<'_>,
    options: &ReportOptions,
) -> Result<Report, ReportError> {
    let mut warnings = Vec::new();
    let mut gaps = Vec::new();
    let log = model.dump().kernel_log().ok();
    let panic_message = log.as_deref().and_then(panic::panic_message);
    let ring = record::find_catch_log(model).map_err(ReportError::Ring)?;
    let mut report = Report {
        release: model.dump().vmcoreinfo().and_then(|i| i.osrelease.clone()),
        panic_message: panic_message.clone(),
        catches: None,
        catch: None,
        panic: None,
        gaps: Vec::new(),
        warnings: Vec::new(),
    };
    if let Some(ring) = ring {
        warnings.extend(ring.warnings.iter().cloned());
        report.catches = Some(
            ring.catches
                .iter()
                .map(|c| record::summary(model, c))
                .collect(),
        );
        let chosen = match options.catch {
            None => ring.catches.last(),
            Some(seq) => Some(ring.catches.iter().find(|c| c.seq == seq).ok_or_else(|| {
                ReportError::NoSuchCatch {
                    asked: seq,
                    held: ring.catches.iter().map(|c| c.seq).collect(),
                }
            })?),
        };
        if let Some(c) = chosen {
            report.catch = Some(explain(model, debug, c, &mut gaps, &mut warnings));
        }
    }
    if report.catch.is_none() {
        report.panic = Some(panic::report(
            model,
            debug,
            panic_message.as_deref(),
            &mut gaps,
            &mut warnings,
        ));
    }
    for w in debug.sources.warnings() {
        warnings.push(format!(
            "{w}; point --source-dir or --source-map at the sources of this build"
        ));
    }
    gaps.dedup();
    report.gaps = gaps;
    report.warnings = warnings;
    Ok(report)
}

fn explain(
    model: &KernelModel<'_>,
    debug: &DebugInputs<'_>,
    c: &kstackwatch_contract::record::Catch,
    gaps: &mut Vec<Gap>,
    warnings: &mut Vec<String>,
) -> CatchReport {
    use kstackwatch_contract::record::{FLAG_CANARY, FLAG_PANIC, FLAG_SELF};
    let config = c.config();
    let watch = match WatchFacts::parse(&config) {
        Ok(Some(w)) => Some(w),
        Ok(None) => {
            warnings.push("the catch's config string is empty".into());
            None
        }
        Err(e) => {
            warnings.push(format!(
                "the catch's config string {config:?} does not parse: {e}"
            ));
            None
        }
    };
    let writer = writer::explain(model, debug, c, gaps, warnings);
    let (victim, depth, resolve) = victim::explain(model, debug, c, watch.as_ref(), gaps, warnings);
    CatchReport {
        seq: c.seq,
        timestamp_ns: c.timestamp_ns,
        cpu: c.cpu,
        canary: c.flags & FLAG_CANARY != 0,
        self_write: c.flags & FLAG_SELF != 0,
        panicked: c.flags & FLAG_PANIC != 0,
        config,
        watch,
        writer,
        victim,
        depth,
        resolve,
    }
}

/// Where a trace's frames are described: every frame's source lines,
/// from vmlinux and the modules' `.ko` files. Notes say what could not be
/// read.
pub(crate) fn annotate_trace(
    debug: &DebugInputs<'_>,
    trace: &mut TaskTrace,
    warnings: &mut Vec<String>,
) {
    warnings.extend(crate::symbolize::annotate_all(
        &mut trace.trace,
        debug.vmlinux.map(|v| v.lines),
        debug.modules,
    ));
}

/// The parameters and locals of frame `index` of `trace` (its caller's
/// frame gives its CFA), from vmlinux or its module's `.ko`.
pub(crate) fn frame_variables(
    model: &KernelModel<'_>,
    debug: &DebugInputs<'_>,
    trace: &TaskTrace,
    index: usize,
    warnings: &mut Vec<String>,
) -> Vec<crate::locals::FrameVariable> {
    let mut two = trace.trace.clone();
    two.frames = trace
        .trace
        .frames
        .iter()
        .skip(index)
        .take(2)
        .cloned()
        .collect();
    let Some(module) = two
        .frames
        .first()
        .and_then(|f| f.symbol.as_ref())
        .map(|s| s.module.clone())
    else {
        return Vec::new();
    };
    let done = match &module {
        None => match &debug.vmlinux {
            Some(v) => crate::locals::FrameVariables::new(v.sections, v.kaslr)
                .and_then(|fv| fv.annotate(&mut two, model.symbols(), model.memory())),
            None => Ok(()),
        },
        Some(name) => match debug.modules.iter().find(|m| &m.module == name) {
            Some(m) => m.with_sections(|s| {
                crate::locals::FrameVariables::for_module(s, name)?.annotate(
                    &mut two,
                    model.symbols(),
                    model.memory(),
                )
            }),
            None => Ok(()),
        },
    };
    if let Err(e) = done {
        warnings.push(format!(
            "the variables of {}: {e}",
            module.as_deref().unwrap_or("vmlinux")
        ));
    }
    two.frames
        .into_iter()
        .next()
        .map(|f| f.variables)
        .unwrap_or_default()
}

/// The declaration (name, line) of the function at run-time address
/// `entry` of `module` (`None`: vmlinux), from its DWARF.
pub(crate) fn function_decl(
    debug: &DebugInputs<'_>,
    module: Option<&str>,
    entry: u64,
) -> Option<(String, u64)> {
    let find = |sections: &DebugSections<'_>, link: u64| -> crate::Result<Option<(String, u64)>> {
        let info = crate::dwarf::DebugInfo::new(sections)?;
        let Some(unit) = info.unit_for_address(link)? else {
            return Ok(None);
        };
        let Some(sub) = unit.subprogram_at(link)? else {
            return Ok(None);
        };
        Ok(unit
            .name_of(sub)?
            .zip(unit.udata_of(sub, gimli::DW_AT_decl_line)?))
    };
    match module {
        None => {
            let v = debug.vmlinux.as_ref()?;
            find(v.sections, entry.wrapping_sub(v.kaslr)).ok().flatten()
        }
        Some(m) => debug
            .modules
            .iter()
            .find(|d| d.module == m)?
            .with_sections(|s| find(s, entry))
            .ok()
            .flatten(),
    }
}

/// Checks the source file of `frame`'s own (not inlined) position
/// against its function's declaration line, so that a file edited since
/// the build shows no lines (see [`SourceFinder::check`]).
pub(crate) fn check_frame_source(debug: &DebugInputs<'_>, frame: &crate::unwind::Frame) {
    let (Some(sym), Some(p)) = (&frame.symbol, frame.source.iter().find(|p| !p.inlined)) else {
        return;
    };
    let Some(file) = &p.file else { return };
    let entry = frame.pc.wrapping_sub(sym.offset);
    if let Some((name, line)) = function_decl(debug, sym.module.as_deref(), entry) {
        debug.sources.check(file, line, &name);
    }
}

/// The gap a frame without source lines leaves: which file would fill it.
pub(crate) fn frame_gaps(trace: &TaskTrace, debug: &DebugInputs<'_>, gaps: &mut Vec<Gap>) {
    for f in &trace.trace.frames {
        let Some(sym) = &f.symbol else { continue };
        if !f.source.is_empty() {
            continue;
        }
        let gap = match &sym.module {
            None if debug.vmlinux.is_none() => Gap {
                what: "source lines and variables of vmlinux frames".into(),
                wanted: debug
                    .vmlinux_hint
                    .as_ref()
                    .map(|p| format!("{} (--vmlinux)", p.display()))
                    .unwrap_or_else(|| "the debug vmlinux of this release (--vmlinux)".into()),
            },
            Some(m) if !debug.modules.iter().any(|d| &d.module == m) => Gap {
                what: format!("source lines and variables of module {m}"),
                wanted: format!("{m}.ko of the loaded build (--module-dir)"),
            },
            _ => continue,
        };
        if !gaps.contains(&gap) {
            gaps.push(gap);
        }
    }
}
