//! The victim of a catch: its stack, the frame whose range holds the
//! watched address, the variable (or canary, or return address) there,
//! its values, and the recursion depth rebuilt from the stack.
//!
//! A frame's bytes run from its SP up to its CFA (its caller's SP); a
//! slot is named by its CFA-relative offset against the function's frame
//! layout, the same layout `ksw resolve` computes from DWARF.

use serde::Serialize;

use super::{
    DebugInputs, Gap, ResolveCheck, WatchFacts, annotate_trace, frame_gaps, frame_variables,
};
use crate::elf::DebugFile;
use crate::kernel::stacks::aligned_task_stack;
use crate::kernel::{KernelModel, THREAD_SIZE, Task};
use crate::locals::FrameVariable;
use crate::resolve::{ResolveRequest, VariableLocation, frame_layout, resolve};
use crate::unwind::{self, TaskTrace};
use kstackwatch_contract::record::Catch;

/// The victim's side of a catch.
#[derive(Debug, Clone, Serialize)]
pub struct Victim {
    /// Its pid, as recorded.
    pub pid: i32,
    /// Its comm, as recorded.
    pub comm: String,
    /// Its `task_struct`.
    pub task: u64,
    /// Its stack at the dump, when it could be read.
    pub stack: Option<TaskTrace>,
    /// Index in `stack` of the frame that holds the watched address.
    pub frame: Option<usize>,
    /// That frame's function symbol.
    pub function: Option<String>,
    /// The watched address.
    pub address: u64,
    /// Watched bytes.
    pub len: u32,
    /// What is at the watched address.
    pub slot: Slot,
    /// The value before the write.
    pub old_value: Value,
    /// The value after the write.
    pub new_value: Value,
    /// The frame's parameters and locals, with their values.
    pub locals: Vec<FrameVariable>,
}

/// What the watched address holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Slot {
    /// A parameter or local (or a member or element of one).
    Variable {
        /// `name`, `hdr.cookie`, `buf[2]`.
        path: String,
        /// The variable's C type.
        type_name: String,
        /// The type of the watched part, when it is a whole element.
        part_type: Option<String>,
        /// The variable's CFA-relative offset.
        cfa_offset: i64,
        /// Declared at this line of the function's file.
        decl_line: Option<u64>,
        /// True for a parameter.
        parameter: bool,
    },
    /// The stack-protector canary.
    Canary {
        /// Its CFA-relative offset.
        cfa_offset: i64,
    },
    /// The return address.
    ReturnAddress,
    /// In the frame, but no variable, canary or return address: a saved
    /// register, a spill or padding.
    Unnamed {
        /// The CFA-relative offset.
        cfa_offset: i64,
        /// Why no name.
        why: String,
    },
    /// Not in any frame of the victim's stack.
    NotInAFrame {
        /// Why.
        why: String,
    },
}

/// A watched value, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Value {
    /// The raw bytes as a little-endian integer.
    pub raw: u64,
    /// Decoded by the slot's type: a pointer's symbol, a signed number.
    pub decoded: Option<String>,
}

/// The recursion depth, rebuilt from the victim's stack.
#[derive(Debug, Clone, Serialize)]
pub struct DepthCheck {
    /// The depth in the record.
    pub recorded: u32,
    /// Activations of the watched function on the victim's stack.
    pub activations: Option<u32>,
    /// The watched frame's depth, counted from the outermost activation.
    pub frame_depth: Option<u32>,
    /// The SP the probe saw, from the record.
    pub armed_sp: u64,
    /// The same SP from the unwound frame: its CFA less the CFA−SP
    /// distance after the probed instruction.
    pub unwound_sp: Option<u64>,
    /// Every disagreement, said.
    pub disagreements: Vec<String>,
}

pub(super) fn explain(
    model: &KernelModel<'_>,
    debug: &DebugInputs<'_>,
    c: &Catch,
    watch: Option<&WatchFacts>,
    gaps: &mut Vec<Gap>,
    warnings: &mut Vec<String>,
) -> (Victim, DepthCheck, Option<ResolveCheck>) {
    let mut victim = Victim {
        pid: c.victim_pid,
        comm: c.victim_comm(),
        task: c.victim_task,
        stack: None,
        frame: None,
        function: None,
        address: c.watch_addr,
        len: c.watch_len,
        slot: Slot::NotInAFrame {
            why: "the victim's stack could not be read".into(),
        },
        old_value: Value {
            raw: c.old_value,
            decoded: None,
        },
        new_value: Value {
            raw: c.new_value,
            decoded: None,
        },
        locals: Vec::new(),
    };
    let mut depth = DepthCheck {
        recorded: c.depth,
        activations: None,
        frame_depth: None,
        armed_sp: c.armed_sp,
        unwound_sp: None,
        disagreements: Vec::new(),
    };
    let (low, high, traced) = match Task::read(model.memory(), model.layout(), c.victim_task) {
        Ok(task) => {
            if task.pid != c.victim_pid {
                let why = format!(
                    "the task_struct at {:#x} now belongs to pid {} ({}), not the victim pid {} ({}): the victim has exited and its task_struct was reused",
                    c.victim_task, task.pid, task.comm, c.victim_pid, victim.comm
                );
                warnings.push(format!("victim: {why}"));
                victim.slot = Slot::NotInAFrame { why };
                return (victim, depth, None);
            }
            let (low, high) = task.stack_range();
            (low, high, unwind::trace_task(model, &task))
        }
        // the victim wrote its own frame: the catch record holds its
        // registers at the write, and its stack follows from alignment
        Err(e) if c.victim_task != 0 && c.victim_task == c.writer_task => {
            warnings.push(format!(
                "victim: its task_struct at {:#x} is not readable ({e}); it is the writer, so its stack is the catch record's, at the write",
                c.victim_task
            ));
            let (low, high) = aligned_task_stack(c.watch_addr);
            (low, high, Ok(unwind::trace_catch(model, c)))
        }
        Err(e) => {
            victim.slot = Slot::NotInAFrame {
                why: format!(
                    "the victim's task_struct at {:#x} is not readable ({e}): it has exited and its memory was freed, or the dump left it out",
                    c.victim_task
                ),
            };
            warnings.push(format!("victim: {}", slot_why(&victim.slot)));
            return (victim, depth, None);
        }
    };
    if !(low..high).contains(&c.watch_addr) {
        let why = format!(
            "the watched address {:#x} is not on the victim's stack [{low:#x}, {high:#x})",
            c.watch_addr
        );
        warnings.push(format!("victim: {why}"));
        victim.slot = Slot::NotInAFrame { why };
    }
    let mut check = None;
    let mut trace = match traced {
        Ok(t) => t,
        Err(e) => {
            let why = format!("the victim's stack could not be unwound: {e}");
            warnings.push(format!("victim: {why}"));
            victim.slot = Slot::NotInAFrame { why };
            return (victim, depth, None);
        }
    };
    annotate_trace(debug, &mut trace, warnings);
    frame_gaps(&trace, debug, gaps);
    let frames = &trace.trace.frames;
    // frame i spans [sp_i, sp_{i+1}): its caller's SP is its CFA
    let found = (0..frames.len().saturating_sub(1)).find(|&i| {
        let (sp, cfa) = (frames[i].sp, frames[i + 1].sp);
        sp <= c.watch_addr && c.watch_addr < cfa && cfa - sp <= THREAD_SIZE
    });
    let func_name = c.func_name();
    let is_watched = |f: &unwind::Frame| {
        f.symbol
            .as_ref()
            .is_some_and(|s| s.name == func_name || source_name(&s.name) == func_name)
    };
    let activations: Vec<usize> = (0..frames.len())
        .filter(|&i| is_watched(&frames[i]))
        .collect();
    depth.activations = Some(activations.len() as u32);
    match found {
        None => {
            if (low..high).contains(&c.watch_addr) {
                let why = match frames.first() {
                    Some(f) if c.watch_addr < f.sp => format!(
                        "the watched address is below the victim's SP {:#x}: the watched frame has returned (dead stack)",
                        f.sp
                    ),
                    _ => "no unwound frame of the victim covers the watched address".to_string(),
                };
                victim.slot = Slot::NotInAFrame { why };
            }
        }
        Some(i) if !is_watched(&frames[i]) => {
            // the watched frame has returned and another call's frame now
            // covers the address: naming that frame's variable would name
            // the wrong victim
            let now = frames[i]
                .symbol
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("{:#x}", frames[i].pc));
            victim.slot = Slot::NotInAFrame {
                why: format!(
                    "no activation of {func_name} covers the watched address now: it lies in the frame of {now} (frame #{i}), so the watched frame has returned and its stack was reused"
                ),
            };
        }
        Some(i) => {
            let cfa = frames[i + 1].sp;
            victim.frame = Some(i);
            victim.function = frames[i].symbol.as_ref().map(|s| s.name.clone());
            victim.locals = frame_variables(model, debug, &trace, i, warnings);
            let file = debug_file_of(debug, &frames[i]);
            let offset = c.watch_addr as i64 - cfa as i64;
            victim.slot = match (&victim.function, file) {
                // the return address needs no debug info
                _ if offset == -8 => Slot::ReturnAddress,
                (Some(f), Some(file)) => name_slot(file, f, offset),
                (Some(_), None) => Slot::Unnamed {
                    cfa_offset: offset,
                    why: "no debug file for this frame's code".into(),
                },
                (None, _) => Slot::Unnamed {
                    cfa_offset: offset,
                    why: "the frame's code has no symbol".into(),
                },
            };
            if let Some(p) = activations.iter().position(|&a| a == i) {
                depth.frame_depth = Some((activations.len() - 1 - p) as u32);
            }
            if file.is_some() {
                super::check_frame_source(debug, &frames[i]);
                if let Slot::Variable {
                    path,
                    decl_line: Some(line),
                    ..
                } = &victim.slot
                {
                    if let Some(p) = frames[i].source.iter().find(|p| !p.inlined) {
                        let name = path.split(['.', '[']).next().unwrap_or(path);
                        if let Some(f) = &p.file {
                            debug.sources.check(f, *line, name);
                        }
                    }
                }
            }
            if let (Some(file), Some(w)) = (file, watch) {
                check = resolve_check(file, &victim.slot, c.watch_addr as i64 - cfa as i64, w, c);
                // the probe's SP from the unwound frame: its CFA less the
                // CFA-SP distance after the probed instruction
                match crate::resolve::cfa_to_sp_after(
                    &[file],
                    &w.function,
                    u64::from(w.func_offset),
                ) {
                    Ok(k) => depth.unwound_sp = Some(cfa.wrapping_sub(k as u64)),
                    Err(e) => {
                        warnings.push(format!("depth: the SP at the probe is not checked: {e}"))
                    }
                }
            }
        }
    }
    if let Some(d) = depth.frame_depth {
        if d != c.depth {
            depth.disagreements.push(format!(
                "the record says depth {}, but the watched frame is activation {d} (from the outermost) of {} on the victim's stack",
                c.depth,
                activations.len()
            ));
        }
    }
    if let Some(sp) = depth.unwound_sp {
        if sp != c.armed_sp {
            depth.disagreements.push(format!(
                "the probe saw SP {:#x}, but the unwound frame puts SP after the probed instruction at {sp:#x}",
                c.armed_sp
            ));
        }
    }
    for d in &depth.disagreements {
        warnings.push(format!("depth: {d}"));
    }
    let pointer = matches!(&victim.slot, Slot::Variable { part_type: Some(t), .. } if t.contains('*'))
        || matches!(&victim.slot, Slot::ReturnAddress);
    for v in [&mut victim.old_value, &mut victim.new_value] {
        v.decoded = decode(model, v.raw, c.watch_len, pointer);
    }
    victim.stack = Some(trace);
    (victim, depth, check)
}

fn slot_why(s: &Slot) -> &str {
    match s {
        Slot::NotInAFrame { why } | Slot::Unnamed { why, .. } => why,
        _ => "",
    }
}

/// `foo` of `foo.isra.0`, `foo.constprop.0`, `foo.part.0`, `foo.cold`.
pub(crate) fn source_name(symbol: &str) -> &str {
    symbol.split('.').next().unwrap_or(symbol)
}

/// The debug file that describes `frame`'s code.
fn debug_file_of<'a>(debug: &'a DebugInputs<'_>, frame: &unwind::Frame) -> Option<&'a DebugFile> {
    match frame.symbol.as_ref()?.module.as_deref() {
        None => debug.vmlinux.as_ref().map(|v| v.file),
        Some(m) => debug
            .modules
            .iter()
            .find(|d| d.module == m)
            .map(|d| d.file()),
    }
}

/// What lies at CFA + `offset` in `function`'s frame.
fn name_slot(file: &DebugFile, function: &str, offset: i64) -> Slot {
    let layout = match frame_layout(&[file], function) {
        Ok(l) => l,
        Err(e) => {
            return Slot::Unnamed {
                cfa_offset: offset,
                why: format!("no frame layout for {function}: {e}"),
            };
        }
    };
    let covering = layout.variables.iter().find(|v| {
        matches!(v.location, VariableLocation::Stack(_))
            && v.cfa_offset
                .is_some_and(|o| o <= offset && offset < o + v.size.unwrap_or(1).max(1) as i64)
    });
    if let Some(v) = covering {
        let start = v.cfa_offset.unwrap_or(offset);
        let inside = (offset - start) as u64;
        let (path, part_type) = part_of(file, &v.name, &v.type_name, v.size, inside);
        return Slot::Variable {
            path,
            type_name: v.type_name.clone(),
            part_type,
            cfa_offset: start,
            decl_line: v.decl_line,
            parameter: v.parameter,
        };
    }
    let canary = resolve(
        &[file],
        &ResolveRequest {
            function: function.to_string(),
            variable: None,
            canary: true,
            depth: None,
            panic: false,
        },
    );
    if let Ok(r) = canary {
        if r.cfa_offset <= offset && offset < r.cfa_offset + 8 {
            return Slot::Canary {
                cfa_offset: r.cfa_offset,
            };
        }
    }
    Slot::Unnamed {
        cfa_offset: offset,
        why: "no variable, canary or return address of the function is there: a saved register, a spill slot or padding".into(),
    }
}

/// The path of byte `inside` of variable `name` of type `type_name`:
/// an element of an array (`buf[2]`), a member of a struct or union
/// (`hdr.cookie`), or the variable itself; with the part's type when known.
fn part_of(
    file: &DebugFile,
    name: &str,
    type_name: &str,
    size: Option<u64>,
    inside: u64,
) -> (String, Option<String>) {
    if let Some((element, count)) = array_type(type_name) {
        if let Some(elem_size) = size.and_then(|s| s.checked_div(count)).filter(|&e| e > 0) {
            return (
                format!("{name}[{}]", inside / elem_size),
                Some(element.to_string()),
            );
        }
    }
    if type_name.starts_with("struct ") || type_name.starts_with("union ") {
        if let Ok(Some(m)) = crate::types::member_at(file, type_name, inside) {
            let text = m.text();
            if !text.is_empty() {
                return (format!("{name}.{text}"), None);
            }
        }
        return (name.to_string(), None);
    }
    (name.to_string(), Some(type_name.to_string()))
}

/// `("u64", 192)` from `u64 [192]`.
fn array_type(type_name: &str) -> Option<(&str, u64)> {
    let open = type_name.rfind('[')?;
    let count = type_name[open + 1..].strip_suffix(']')?.parse().ok()?;
    Some((type_name[..open].trim_end(), count))
}

/// A value as its type reads: a pointer by its symbol.
fn decode(model: &KernelModel<'_>, raw: u64, len: u32, pointer: bool) -> Option<String> {
    if pointer && len == 8 {
        return model.symbols().lookup(raw).map(|s| s.to_string());
    }
    None
}

/// `ksw resolve FUNC VAR` (or `--canary`) for the slot that was hit,
/// against the watch that was armed. The same watch is the same bytes
/// (CFA offset and length) of the same activation; the probe point may
/// differ (any point after the slot is set up arms the same bytes).
fn resolve_check(
    file: &DebugFile,
    slot: &Slot,
    watched_cfa_offset: i64,
    w: &WatchFacts,
    c: &Catch,
) -> Option<ResolveCheck> {
    let (variable, canary) = match slot {
        Slot::Variable { path, .. } => (Some(path.clone()), false),
        Slot::Canary { .. } => (None, true),
        _ => return None,
    };
    let command = match &variable {
        Some(v) => format!("ksw resolve {} {v}", w.function),
        None => format!("ksw resolve {} --canary", w.function),
    };
    let request = ResolveRequest {
        function: w.function.clone(),
        variable,
        canary,
        depth: (w.depth != 0).then_some(w.depth),
        panic: w.panic,
    };
    Some(match resolve(&[file], &request) {
        Ok(r) => {
            let same_bytes = r.watch.function == w.function
                && r.cfa_offset == watched_cfa_offset
                && u32::from(r.watch.watch_len) == c.watch_len
                && r.watch.depth.unwrap_or(0) == w.depth;
            let same_string = same_bytes
                && r.watch.function_offset == u64::from(w.func_offset)
                && r.watch.sp_offset == u64::from(w.sp_offset);
            let note = if same_string {
                None
            } else if same_bytes {
                Some(format!(
                    "the same {} bytes at CFA{:+}, armed at another probe point: resolve probes at +{:#x} (so={}), the catch's config at +{:#x} (so={})",
                    c.watch_len,
                    r.cfa_offset,
                    r.watch.function_offset,
                    r.watch.sp_offset,
                    w.func_offset,
                    w.sp_offset
                ))
            } else {
                Some(format!(
                    "resolve watches {} bytes at CFA{:+} of {} (depth {}), the catch watched {} bytes at CFA{watched_cfa_offset:+} of {} (depth {})",
                    r.watch.watch_len,
                    r.cfa_offset,
                    r.watch.function,
                    r.watch.depth.unwrap_or(0),
                    c.watch_len,
                    w.function,
                    w.depth
                ))
            };
            ResolveCheck {
                command,
                produced: Some(r.key_value.clone()),
                same_watch: same_bytes,
                same_string,
                note,
            }
        }
        Err(e) => ResolveCheck {
            command,
            produced: None,
            same_watch: false,
            same_string: false,
            note: Some(e.to_string()),
        },
    })
}
