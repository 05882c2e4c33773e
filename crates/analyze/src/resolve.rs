//! `resolve`: from a function and a variable's name to a kstackwatch watch.
//!
//! The steps, each answering from the debug files alone:
//! 1. the function's symbol (and its `.isra`/`.constprop`/`.cold` copies)
//!    from `.symtab`, refusing ambiguous names;
//! 2. its compilation unit through `.debug_aranges`, and its subprogram DIE;
//! 3. the variable, its location (CFA + offset, from `DW_OP_fbreg` with a
//!    `DW_OP_call_frame_cfa` frame base) and, through the member/index path,
//!    the bytes to watch (1, 2, 4 or 8, naturally aligned);
//! 4. the probe point: an instruction after the prologue and after the
//!    function's own initialising stores to those bytes, found by
//!    disassembly, where the variable is in its slot until the function
//!    returns;
//! 5. `sp_offset` = (CFA − SP after the probed instruction, from CFI) +
//!    the watched bytes' CFA offset.
//!
//! The answer is a [`Resolution`], plain data that the CLI renders as a
//! table or JSON.

use serde::Serialize;

use crate::cfi;
use crate::disasm::{self, CanaryForms, Flow, Step};
use crate::dwarf::{self, DebugSections, FrameBase, Location, Place, Variable};
use crate::elf::{DebugFile, ElfImage, FunctionSymbol, ImageKind};
use crate::error::{Candidate, Error, Result};
use crate::types::VariablePath;
use crate::watch::Watch;

/// What to resolve.
#[derive(Debug, Clone, Default)]
pub struct ResolveRequest {
    /// The function, by name or by exact symbol (`foo.isra.0`).
    pub function: String,
    /// The variable path (`req.hdr.len`); ignored with `canary`.
    pub variable: Option<String>,
    /// Watch the stack-protector canary instead of a variable.
    pub canary: bool,
    /// `dp=`: the recursion depth to watch.
    pub depth: Option<u16>,
    /// `ph=1`: panic on a hit.
    pub panic: bool,
}

/// A write by the function itself to the watched bytes, after the probe:
/// the module will report it, and it is not corruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedHit {
    /// Offset of the writing instruction in the function.
    pub offset: u64,
    /// The instruction (AT&T syntax).
    pub instruction: String,
    /// Source file and line.
    pub source: Option<String>,
    /// Why it counts.
    pub why: String,
}

/// Everything `resolve` found, with the watch it recommends.
#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    /// The watch to arm.
    pub watch: Watch,
    /// `watch` in the key=value grammar.
    pub key_value: String,
    /// `watch` in the positional grammar; `None` when it cannot say it
    /// (it has no panic flag).
    pub positional: Option<String>,
    /// The debug file the function came from.
    pub object: String,
    /// The function's symbol and address (SVMA).
    pub symbol: String,
    /// Function address as stated in the file.
    pub function_address: u64,
    /// The compilation unit.
    pub unit: String,
    /// The variable path, or `<canary>`.
    pub variable: String,
    /// The C type of the watched object.
    pub type_name: String,
    /// Size of the selected object.
    pub object_size: u64,
    /// Which bytes of it are watched: `[start, start + watch_len)`.
    pub watched_part: (u64, u64),
    /// The variable's location as DWARF states it.
    pub location: String,
    /// CFA-relative offset of the first watched byte.
    pub cfa_offset: i64,
    /// CFA − SP after the probed instruction.
    pub cfa_to_sp: i64,
    /// Where `cfa_to_sp` came from (`.debug_frame` or disassembly).
    pub cfa_source: String,
    /// The probed instruction.
    pub probe_instruction: String,
    /// Source file and line of the probe point.
    pub probe_source: Option<String>,
    /// Why this probe point.
    pub probe_reason: String,
    /// The function's own later writes to the watched bytes.
    pub expected_hits: Vec<ExpectedHit>,
    /// Things the user should know.
    pub caveats: Vec<String>,
}

/// Resolve `request` against the debug files (vmlinux first, then modules).
pub fn resolve(files: &[&DebugFile], request: &ResolveRequest) -> Result<Resolution> {
    if files.is_empty() {
        return Err(Error::Unsupported("no debug files given".to_string()));
    }
    let images = files
        .iter()
        .map(|f| ElfImage::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let (image, symbol, mut caveats) = choose_function(&images, &request.function)?;
    let sections = DebugSections::load(image)?;
    let dwarf = sections.dwarf()?;
    let unit = dwarf::unit_for_address(&sections, &dwarf, symbol.address)?.ok_or_else(|| {
        Error::Unsupported(format!(
            "no DWARF unit covers `{}` at {:#x} (assembly, or built without -g)",
            symbol.name, symbol.address
        ))
    })?;
    let subprogram = unit.subprogram_at(symbol.address)?.ok_or_else(|| {
        Error::Unsupported(format!(
            "unit {} has no subprogram starting at `{}` ({:#x})",
            unit.name(),
            symbol.name,
            symbol.address
        ))
    })?;
    let function = unit.function(subprogram)?;
    let code = function_code(image, &symbol)?;
    let rows = cfi::rows_for(&sections, symbol.address)?;
    let canary_forms = canary_forms(image, &symbol);
    let steps = disasm::analyse(code, symbol.address, rows.as_deref(), &canary_forms);
    let cfa_source = if rows.is_some() {
        ".debug_frame"
    } else {
        "prologue disassembly (no CFI)"
    };
    if rows.is_none() {
        caveats.push(
            "no .debug_frame entry for this function: CFA−SP comes from disassembly".to_string(),
        );
    }
    let entry_end = steps
        .iter()
        .position(|s| s.flow == Flow::Branch)
        .unwrap_or(steps.len());
    let canary = find_canary(&steps[..entry_end]);
    // The prologue: up to the last instruction that grows the frame (or
    // stores the canary) before the frame first shrinks, which is where an
    // epilogue starts in a function without branches.
    let frame_grows = |s: &Step| match (s.cfa_minus_sp_before, s.cfa_minus_sp_after) {
        (Some(b), Some(a)) => a > b,
        _ => s.modifies_rsp,
    };
    let frame_shrinks = |s: &Step| matches!((s.cfa_minus_sp_before, s.cfa_minus_sp_after), (Some(b), Some(a)) if a < b);
    let body_end = steps[..entry_end]
        .iter()
        .position(frame_shrinks)
        .unwrap_or(entry_end);
    let prologue_end = steps[..body_end]
        .iter()
        .enumerate()
        .filter(|(i, s)| frame_grows(s) || Some(*i) == canary.map(|c| c.1))
        .map(|(i, _)| i)
        .max();

    let line_of = |address: u64| -> Option<String> {
        unit.line_of(address)
            .ok()
            .flatten()
            .map(|(f, l)| format!("{f}:{l}"))
    };

    // What to watch: CFA-relative start, object size, type, location text.
    let target = if request.canary {
        let (_, store, slot) = canary.ok_or_else(|| Error::NoCanary {
            function: symbol.name.to_string(),
            reason: "its prologue does not copy the stack-protector guard (%gs:0x28 or \
                     __stack_chk_guard) into the frame, so the function has no canary slot. \
                     `ac=1` would make the module search upward from SP and find a caller's \
                     canary instead; use it only if that is what you want"
                .to_string(),
        })?;
        Target {
            path: "<canary>".to_string(),
            variable_start: slot,
            variable_size: 8,
            start: slot,
            size: 8,
            type_name: "unsigned long (stack-protector canary)".to_string(),
            location: format!(
                "CFA{slot:+} (stored at +{:#x})",
                steps[store].address - symbol.address
            ),
            block_ranges: None,
            stack_ranges: None,
            forced_probe: Some(store),
        }
    } else {
        let text = request.variable.as_deref().ok_or_else(|| {
            Error::Unsupported("no variable given (use --canary to watch the canary)".into())
        })?;
        let path = VariablePath::parse(text)?;
        let variable = choose_variable(&function, &path.root)?;
        let (cfa_offset, stack_ranges, location) = stack_slot(&function, variable)?;
        if function.frame_base != FrameBase::Cfa {
            return Err(Error::Unsupported(format!(
                "`{}`'s frame base is not DW_OP_call_frame_cfa; only CFA-based frames are supported",
                function.name
            )));
        }
        let selection = unit.select(&path, variable.type_offset)?;
        let variable_size = variable
            .type_offset
            .map(|t| unit.type_size(t))
            .transpose()?
            .flatten()
            .unwrap_or(selection.size);
        if selection.bitfield {
            caveats.push("a bit-field: the watch covers its storage bytes, and writes to neighbouring bit-fields hit too".into());
        }
        if let Some(callee) = &variable.inlined_from {
            caveats.push(format!(
                "`{}` is a local of `{callee}`, inlined into `{}`",
                variable.name, function.name
            ));
        }
        Target {
            path: path.text.clone(),
            variable_start: cfa_offset,
            variable_size,
            start: cfa_offset.saturating_add(selection.offset as i64),
            size: selection.size,
            type_name: selection.type_name,
            location,
            block_ranges: variable.block_ranges.clone(),
            stack_ranges,
            forced_probe: None,
        }
    };
    if target.size == 0 {
        return Err(Error::Unsupported(format!(
            "`{}` has no size in DWARF",
            target.path
        )));
    }

    // The watched part: naturally aligned, 1/2/4/8 bytes. The CFA is
    // 8-byte aligned on x86_64 (the kernel keeps an 8-byte stack boundary),
    // so CFA-relative alignment is address alignment.
    let (part, watch_len) = choose_part(target.start, target.size).ok_or_else(|| {
        Error::Unsupported(format!(
            "no naturally aligned 1/2/4/8-byte part inside `{}`",
            target.path
        ))
    })?;
    let watched = target.start.saturating_add(part as i64);
    if target.size > u64::from(watch_len) {
        caveats.push(format!(
            "`{}` is {} bytes; the watch covers bytes [{part}, {}) of it (one breakpoint holds at most 8). \
             Name a member or element to watch another part",
            target.path,
            target.size,
            part + u64::from(watch_len)
        ));
    } else if target.size != u64::from(watch_len) {
        caveats.push(format!(
            "`{}` is {} bytes and not naturally aligned; only bytes [{part}, {}) are watched",
            target.path,
            target.size,
            part + u64::from(watch_len)
        ));
    }
    let variable_end = target
        .variable_start
        .saturating_add(target.variable_size as i64);

    // Own writes: direct stores to the watched bytes, and calls that get a
    // pointer into the variable through a parameter that is not
    // pointer-to-const.
    let extents: Vec<(i64, i64)> = function
        .variables
        .iter()
        .filter_map(|v| {
            let (offset, _, _) = stack_slot(&function, v).ok()?;
            let size = v
                .type_offset
                .and_then(|t| unit.type_size(t).ok().flatten())?;
            Some((offset, offset.saturating_add(size as i64)))
        })
        .collect();
    let extent_end = |at: i64| -> i64 {
        extents
            .iter()
            .filter(|(b, e)| *b <= at && at < *e)
            .map(|(_, e)| *e)
            .max()
            .unwrap_or(at.saturating_add(8))
    };
    let mut callee_cache: Vec<(u64, usize, bool)> = Vec::new();
    let mut own_write = |s: &Step| -> Option<String> {
        if let Some(w) = s
            .writes
            .iter()
            .find(|w| w.overlaps(watched, u64::from(watch_len), extent_end))
        {
            return Some(if w.len.is_none() {
                "string store into the variable".to_string()
            } else if w.indexed {
                "indexed store into the variable".to_string()
            } else {
                "store to the watched bytes".to_string()
            });
        }
        for (position, reg, k) in &s.pointer_args {
            if *k < target.variable_start || *k >= variable_end {
                continue;
            }
            // In a `.ko` the call's target is only known by its relocation.
            let callee = match image.kind() {
                ImageKind::Relocatable => {
                    image.section_of(s.address).and_then(|(section, offset)| {
                        image.relocation_symbol_in(
                            section,
                            offset + 1,
                            (s.next - s.address).saturating_sub(1),
                        )
                    })
                }
                ImageKind::Executable => None,
            };
            let key = s.call_target.unwrap_or(s.address);
            let writes = match callee_cache
                .iter()
                .find(|(c, p, _)| *c == key && p == position)
            {
                Some((_, _, w)) => *w,
                None => {
                    let w = match (s.call_target, callee) {
                        (_, Some(name)) => callee_may_write_by_name(&unit, name, *position),
                        (Some(target), None) => {
                            callee_may_write(image, &sections, &dwarf, &unit, target, *position)
                        }
                        (None, None) => true,
                    };
                    callee_cache.push((key, *position, w));
                    w
                }
            };
            if writes {
                return Some(format!(
                    "call gets a pointer into the variable (%{reg} = CFA{k:+})"
                ));
            }
        }
        None
    };
    let writes: Vec<(usize, String)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| own_write(s).map(|w| (i, w)))
        .collect();

    // The probe point.
    let floor = prologue_end.unwrap_or(0);
    // The write that ends the initialisation in the straight-line run (up
    // to the next branch) that starts at `from`.
    //
    // A call that gets a pointer to the variable may initialise it
    // (`init(&x)`) or use it (`wait_on(&x)`, while another thread corrupts
    // it; `consume(&x)`, which overruns it). So initialisation is the
    // stores up to the first such call, and that call; without one, every
    // store of the run. Later writes are expected hits.
    let last_in_run = |from: usize| -> Option<&(usize, String)> {
        let run_end = steps[from..]
            .iter()
            .position(|s| s.flow == Flow::Branch)
            .map_or(steps.len(), |p| from + p);
        let in_run = |i: usize| i >= from && i < run_end;
        let is_call = |i: usize| steps[i].flow == Flow::Call;
        let first_call = writes.iter().find(|(i, _)| in_run(*i) && is_call(*i));
        first_call.or_else(|| writes.iter().rfind(|(i, _)| in_run(*i)))
    };
    // `anchor`: the write the probe comes after; writes up to it in its
    // run are initialisation, not expected hits.
    let (mut probe, mut reason, anchor) = if let Some(store) = target.forced_probe {
        (
            store,
            "the store of the canary into its slot".to_string(),
            Some(store),
        )
    } else if let Some((i, why)) = last_in_run(0) {
        if *i >= floor {
            (
                *i,
                format!(
                    "after the function's last initialising write before its first branch ({why})"
                ),
                Some(*i),
            )
        } else {
            (
                floor,
                "end of the prologue, after the function's initialising writes".to_string(),
                Some(*i),
            )
        }
    } else if let Some((first, _)) = writes.iter().find(|(i, _)| *i >= floor) {
        caveats.push(
            "the probe follows the first own writes after a branch: calls that take another path arm no watch"
                .to_string(),
        );
        let (i, why) = last_in_run(*first).unwrap_or(&writes[0]);
        (
            *i,
            format!("after the function's first own writes ({why})"),
            Some(*i),
        )
    } else {
        (
            floor,
            "end of the prologue (the function itself never writes the watched bytes)".to_string(),
            None,
        )
    };
    let run_start = anchor.map(|a| {
        steps[..a]
            .iter()
            .rposition(|s| s.flow == Flow::Branch)
            .map_or(0, |p| p + 1)
    });
    // A call's writes are done when it returns, and a `rep` string
    // instruction is not single-stepped whole: probe the next instruction.
    if steps.get(probe).is_some_and(|s| s.flow == Flow::Call) {
        probe += 1;
        reason.push_str("; probing the instruction after the call");
    } else if steps.get(probe).is_some_and(|s| s.repeated) {
        probe += 1;
        reason.push_str("; probing the instruction after the string operation");
    }
    // Skip what a kprobe must not or cannot sit on usefully.
    while let Some(s) = steps.get(probe) {
        if s.address == symbol.address || s.is_nop {
            probe += 1;
            continue;
        }
        break;
    }
    let step = steps.get(probe).ok_or_else(|| Error::NoProbePoint {
        function: symbol.name.to_string(),
        reason: "the function ends before a probe point".into(),
    })?;
    if step.flow != Flow::Next || step.repeated {
        return Err(Error::NoProbePoint {
            function: symbol.name.to_string(),
            reason: format!(
                "the instruction at +{:#x} (`{}`) transfers control, so SP after it is not this frame's",
                step.address - symbol.address,
                step.text
            ),
        });
    }

    // The variable must be in its slot from the probe to the end.
    if let Some(blocks) = &target.block_ranges {
        if !blocks
            .iter()
            .any(|(b, e)| *b <= step.address && step.address < *e)
        {
            return Err(Error::NoProbePoint {
                function: symbol.name.to_string(),
                reason: format!(
                    "`{}` is declared in a block ({}) that does not contain the probe point +{:#x}",
                    target.path,
                    ranges_text(blocks, symbol.address),
                    step.address - symbol.address
                ),
            });
        }
        caveats.push(format!(
            "`{}` is block-scoped ({}): outside the block its slot may be reused, and those writes would hit",
            target.path,
            ranges_text(blocks, symbol.address)
        ));
    }
    if let Some(ranges) = &target.stack_ranges {
        let end = symbol.address.saturating_add(symbol.size);
        if !covers(ranges, step.next, end) {
            return Err(Error::NotOnStack {
                function: function.name.clone(),
                name: target.path.clone(),
                reason: format!(
                    "its location list puts it in the stack slot only over {} (and in registers \
                     elsewhere); no probe point keeps it in the slot until the function returns",
                    ranges_text(ranges, symbol.address)
                ),
            });
        }
    }
    // Other variables sharing the slot.
    for other in &function.variables {
        if let Ok((offset, _, _)) = stack_slot(&function, other) {
            let size = other
                .type_offset
                .map(|t| unit.type_size(t))
                .transpose()?
                .flatten()
                .unwrap_or(0) as i64;
            let overlaps = offset < watched.saturating_add(i64::from(watch_len))
                && watched < offset.saturating_add(size);
            if overlaps && offset != target.variable_start {
                caveats.push(format!(
                    "the slot overlaps `{}` (CFA{offset:+}, {size} bytes): its writes hit too",
                    other.name
                ));
            }
        }
    }

    // ORC, where vmlinux has it, is a second opinion (or the only one).
    let orc = crate::orc::cfa_minus_sp(image, step.next);
    let (cfa_to_sp, cfa_source) = match (step.cfa_minus_sp_after, step.after_from_cfi, orc) {
        (Some(c), true, Some(o)) if c != o => {
            return Err(Error::NoProbePoint {
                function: symbol.name.to_string(),
                reason: format!(
                    "CFI says CFA−SP = {c} after +{:#x}, ORC says {o}; refusing to guess",
                    step.address - symbol.address
                ),
            });
        }
        (Some(c), true, Some(_)) => (Some(c), ".debug_frame; ORC agrees".to_string()),
        (Some(t), false, Some(o)) if t != o => {
            return Err(Error::NoProbePoint {
                function: symbol.name.to_string(),
                reason: format!(
                    "ORC says CFA−SP = {o} after +{:#x}, disassembly says {t}; refusing to guess",
                    step.address - symbol.address
                ),
            });
        }
        (_, _, Some(o)) => (Some(o), ".orc_unwind".to_string()),
        (c, _, None) => (c, cfa_source.to_string()),
    };
    let cfa_to_sp = cfa_to_sp.ok_or_else(|| Error::NoProbePoint {
        function: symbol.name.to_string(),
        reason: "CFA−SP after the probe point is unknown (no CFI, and the prologue could not be followed)".into(),
    })?;
    if step.after_from_cfi {
        if let Some(t) = step.tracked_after {
            if t != cfa_to_sp {
                return Err(Error::NoProbePoint {
                    function: symbol.name.to_string(),
                    reason: format!(
                        "CFI says CFA−SP = {cfa_to_sp} after +{:#x}, disassembly says {t}; refusing to guess",
                        step.address - symbol.address
                    ),
                });
            }
        }
    }
    let sp_offset = cfa_to_sp.saturating_add(watched);
    if sp_offset < 0 || sp_offset > i64::from(u16::MAX) {
        return Err(Error::NoProbePoint {
            function: symbol.name.to_string(),
            reason: format!(
                "the watched bytes are at SP{sp_offset:+}, outside what so= (0..65535) can express"
            ),
        });
    }

    let probe_offset = step.address - symbol.address;
    let mut expected_hits = Vec::new();
    for (i, why) in &writes {
        let initialising = match (anchor, run_start) {
            (Some(a), Some(r)) => *i >= r && *i <= a,
            _ => false,
        };
        if initialising || *i == probe {
            continue;
        }
        let s = &steps[*i];
        expected_hits.push(ExpectedHit {
            offset: s.address - symbol.address,
            instruction: s.text.clone(),
            source: line_of(s.address),
            why: why.clone(),
        });
    }
    if request.depth.is_some() {
        caveats.push(
            "dp= counts recursion depth of this function on the current task (0 = outermost)"
                .into(),
        );
    }
    if image.kind() == ImageKind::Relocatable {
        caveats.push("a module function: load the module before arming the watch".into());
    }

    let watch = Watch {
        function: symbol.name.to_string(),
        function_offset: probe_offset,
        sp_offset: sp_offset as u64,
        watch_len,
        depth: request.depth,
        panic: request.panic,
    };
    let (key_value, positional) = watch.render().map_err(|reason| Error::NoProbePoint {
        function: symbol.name.to_string(),
        reason,
    })?;
    Ok(Resolution {
        key_value,
        positional,
        watch,
        object: image.path().display().to_string(),
        symbol: symbol.name.to_string(),
        function_address: symbol.address,
        unit: function.unit_name.clone(),
        variable: target.path.clone(),
        type_name: target.type_name,
        object_size: target.size,
        watched_part: (part, part + u64::from(watch_len)),
        location: target.location,
        cfa_offset: watched,
        cfa_to_sp,
        cfa_source,
        probe_instruction: step.text.clone(),
        probe_source: line_of(step.address),
        probe_reason: reason,
        expected_hits,
        caveats,
    })
}

/// A local or parameter of a function, as `frame_layout` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FrameSlot {
    /// Its name.
    pub name: String,
    /// `true` for a parameter.
    pub parameter: bool,
    /// CFA-relative offset when it has one fixed stack slot.
    pub cfa_offset: Option<i64>,
    /// Size of its type in bytes.
    pub size: Option<u64>,
    /// Its C type.
    pub type_name: String,
    /// Where it lives, or why it is not on the stack.
    pub location: String,
    /// Declared in a lexical block rather than at function level.
    pub in_block: bool,
    /// The inlined function it belongs to, if any.
    pub inlined_from: Option<String>,
}

/// A function's locals and parameters with their stack slots.
#[derive(Debug, Clone, Serialize)]
pub struct FrameLayout {
    /// The function's symbol.
    pub symbol: String,
    /// Its address as stated in the file.
    pub function_address: u64,
    /// Its compilation unit.
    pub unit: String,
    /// Its variables, in DWARF order.
    pub variables: Vec<FrameSlot>,
}

/// List where each local and parameter of `function` lives.
pub fn frame_layout(files: &[&DebugFile], function: &str) -> Result<FrameLayout> {
    let images = files
        .iter()
        .map(|f| ElfImage::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let (image, symbol, _) = choose_function(&images, function)?;
    let sections = DebugSections::load(image)?;
    let dwarf = sections.dwarf()?;
    let unit = dwarf::unit_for_address(&sections, &dwarf, symbol.address)?
        .ok_or_else(|| Error::Unsupported(format!("no DWARF unit covers `{}`", symbol.name)))?;
    let subprogram = unit
        .subprogram_at(symbol.address)?
        .ok_or_else(|| Error::Unsupported(format!("no subprogram starts at `{}`", symbol.name)))?;
    let described = unit.function(subprogram)?;
    let mut variables = Vec::new();
    for v in &described.variables {
        let size = v
            .type_offset
            .map(|t| unit.type_size(t))
            .transpose()?
            .flatten();
        let (cfa_offset, location) = match stack_slot(&described, v) {
            Ok((offset, None, text)) => (Some(offset), text),
            Ok((offset, Some(_), text)) => (Some(offset), text),
            Err(Error::NotOnStack { reason, .. }) => (None, reason),
            Err(e) => return Err(e),
        };
        variables.push(FrameSlot {
            name: v.name.clone(),
            parameter: v.parameter,
            cfa_offset,
            size,
            type_name: unit.type_name(v.type_offset)?,
            location,
            in_block: v.block_ranges.is_some(),
            inlined_from: v.inlined_from.clone(),
        });
    }
    Ok(FrameLayout {
        symbol: symbol.name.to_string(),
        function_address: symbol.address,
        unit: described.unit_name,
        variables,
    })
}

/// Whether the function at `callee` may write through its parameter number
/// `position`: `false` only when DWARF says that parameter is a pointer to
/// const (`copy_to_user(to, const void *from, n)`).
fn callee_may_write(
    image: &ElfImage<'_>,
    sections: &DebugSections<'_>,
    dwarf: &gimli::Dwarf<dwarf::Reader<'_>>,
    caller_unit: &dwarf::UnitContext<'_, '_>,
    callee: u64,
    position: usize,
) -> bool {
    let Some(symbol) = image.function_containing(callee) else {
        return true;
    };
    // A compiler-made copy may have dropped or reordered parameters.
    if symbol.address != callee || symbol.name.contains('.') {
        return true;
    }
    if let Ok(Some(unit)) = dwarf::unit_for_address(sections, dwarf, callee) {
        if let Ok(Some(subprogram)) = unit.subprogram_at(callee) {
            return !matches!(
                unit.parameter_is_const_pointer(subprogram, position),
                Ok(Some(true))
            );
        }
    }
    // No definition with DWARF: the caller's unit may declare it.
    callee_may_write_by_name(caller_unit, symbol.name, position)
}

/// Like [`callee_may_write`], from the callee's declaration in the caller's
/// unit (all a `.ko` has for a function defined elsewhere).
fn callee_may_write_by_name(
    unit: &dwarf::UnitContext<'_, '_>,
    name: &str,
    position: usize,
) -> bool {
    if name.contains('.') {
        return true;
    }
    match unit.subprogram_named(name) {
        Ok(Some(subprogram)) => !matches!(
            unit.parameter_is_const_pointer(subprogram, position),
            Ok(Some(true))
        ),
        _ => true,
    }
}

struct Target {
    path: String,
    variable_start: i64,
    variable_size: u64,
    start: i64,
    size: u64,
    type_name: String,
    location: String,
    block_ranges: Option<Vec<(u64, u64)>>,
    stack_ranges: Option<Vec<(u64, u64)>>,
    forced_probe: Option<usize>,
}

/// The largest naturally aligned 8/4/2/1-byte window inside
/// `[start, start + size)`, lowest first: (offset in the object, length).
pub(crate) fn choose_part(start: i64, size: u64) -> Option<(u64, u8)> {
    for len in [8u8, 4, 2, 1] {
        let l = i64::from(len);
        let first = start.div_euclid(l) * l + if start.rem_euclid(l) == 0 { 0 } else { l };
        let offset = (first - start) as u64;
        if offset + u64::from(len) <= size {
            return Some((offset, len));
        }
    }
    None
}

fn covers(ranges: &[(u64, u64)], from: u64, to: u64) -> bool {
    let mut at = from;
    let mut sorted = ranges.to_vec();
    sorted.sort();
    for (b, e) in sorted {
        if b <= at && at < e {
            at = e;
        }
    }
    at >= to
}

fn ranges_text(ranges: &[(u64, u64)], base: u64) -> String {
    ranges
        .iter()
        .map(|(b, e)| format!("+{:#x}..+{:#x}", b.wrapping_sub(base), e.wrapping_sub(base)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The canary: (load index, store index, CFA-relative slot).
fn find_canary(entry: &[Step]) -> Option<(usize, usize, i64)> {
    let load = entry.iter().position(|s| s.canary_load.is_some())?;
    let register = entry[load].canary_load?;
    entry
        .iter()
        .enumerate()
        .skip(load + 1)
        .find_map(|(i, s)| match s.register_store {
            Some((r, slot)) if r == register => Some((load, i, slot)),
            _ => None,
        })
}

fn canary_forms(image: &ElfImage<'_>, symbol: &FunctionSymbol<'_>) -> CanaryForms {
    const GUARDS: [&str; 2] = ["__stack_chk_guard", "__ref_stack_chk_guard"];
    let mut forms = CanaryForms {
        guard_symbols: GUARDS
            .iter()
            .filter_map(|name| image.symbol_address_by_name(name))
            .collect(),
        relocated_guard_at: Vec::new(),
    };
    if image.kind() == ImageKind::Relocatable {
        if let Some((section, offset)) = image.section_of(symbol.address) {
            // Relocations against the guard inside the function.
            for (at, name) in image.relocations_in(section, offset, offset + symbol.size) {
                if GUARDS.contains(&name) {
                    forms.relocated_guard_at.push(at - offset);
                }
            }
        }
    }
    forms
}

/// CFA − SP after the instruction at `function + offset` executes (the SP a
/// kprobe post-handler sees there), from CFI or, without it, disassembly.
/// Fails when `offset` is not an instruction boundary of the function.
pub fn cfa_to_sp_after(files: &[&DebugFile], function: &str, offset: u64) -> Result<i64> {
    let images = files
        .iter()
        .map(|f| ElfImage::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let (image, symbol, _) = choose_function(&images, function)?;
    let sections = DebugSections::load(image)?;
    let code = function_code(image, &symbol)?;
    let rows = cfi::rows_for(&sections, symbol.address)?;
    let steps = disasm::analyse(
        code,
        symbol.address,
        rows.as_deref(),
        &canary_forms(image, &symbol),
    );
    let no_point = |reason: String| Error::NoProbePoint {
        function: symbol.name.to_string(),
        reason,
    };
    let step = steps
        .iter()
        .find(|s| Some(s.address) == symbol.address.checked_add(offset))
        .ok_or_else(|| no_point(format!("+{offset:#x} is not an instruction boundary")))?;
    step.cfa_minus_sp_after
        .ok_or_else(|| no_point(format!("CFA−SP after +{offset:#x} is unknown")))
}

/// A stack slot: CFA offset, the pc ranges of a location list that puts
/// the variable there (`None`: everywhere in scope), and a description.
type StackSlot = (i64, Option<Vec<(u64, u64)>>, String);

/// Where `variable` lives on the stack, or why it is not there.
fn stack_slot(function: &dwarf::Function, variable: &Variable) -> Result<StackSlot> {
    let refuse = |reason: String| Error::NotOnStack {
        function: function.name.clone(),
        name: variable.name.clone(),
        reason,
    };
    let describe = |place: &Place| match place {
        Place::Stack { cfa_offset } => format!("stack CFA{cfa_offset:+}"),
        Place::Static { address } => format!("static at {address:#x}"),
        Place::Register { register } => format!("register %{register}"),
        Place::Other { what } => what.clone(),
    };
    match &variable.location {
        Location::Absent => Err(refuse("it is optimised out: no location at any pc".into())),
        Location::Single(Place::Stack { cfa_offset }) => Ok((
            *cfa_offset,
            None,
            format!("DW_OP_fbreg {cfa_offset} (CFA{cfa_offset:+})"),
        )),
        Location::Single(Place::Static { address }) => Err(refuse(format!(
            "it is a static variable at {address:#x}, not on the stack; watch it with an ordinary \
             data breakpoint (perf mem / hw_breakpoint) instead"
        ))),
        Location::Single(Place::Register { register }) => Err(refuse(format!(
            "it lives only in register %{register}; registers cannot be watched"
        ))),
        Location::Single(place) => Err(refuse(format!("its location is {}", describe(place)))),
        Location::List(entries) => {
            let stack: Vec<(u64, u64, i64)> = entries
                .iter()
                .filter_map(|(b, e, p)| match p {
                    Place::Stack { cfa_offset } => Some((*b, *e, *cfa_offset)),
                    _ => None,
                })
                .collect();
            let Some(first) = stack.first() else {
                let mut places: Vec<String> = Vec::new();
                for (_, _, p) in entries {
                    let text = describe(p);
                    if !places.contains(&text) {
                        places.push(text);
                    }
                }
                let more = if places.len() > 4 { ", …" } else { "" };
                places.truncate(4);
                return Err(refuse(if entries.is_empty() {
                    "it is optimised out: its location list is empty".to_string()
                } else {
                    format!(
                        "it never lives in stack memory (register-only: {}{more})",
                        places.join(", ")
                    )
                }));
            };
            if stack.iter().any(|s| s.2 != first.2) {
                return Err(refuse("its location list uses several stack slots".into()));
            }
            let ranges = stack.iter().map(|(b, e, _)| (*b, *e)).collect();
            Ok((
                first.2,
                Some(ranges),
                format!(
                    "location list; stack CFA{:+} over part of the function",
                    first.2
                ),
            ))
        }
    }
}

fn choose_variable<'v>(function: &'v dwarf::Function, name: &str) -> Result<&'v Variable> {
    let own: Vec<&Variable> = function
        .variables
        .iter()
        .filter(|v| v.name == name && v.inlined_from.is_none())
        .collect();
    let matches = if own.is_empty() {
        function
            .variables
            .iter()
            .filter(|v| v.name == name)
            .collect()
    } else {
        own
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut names: Vec<String> =
                function.variables.iter().map(|v| v.name.clone()).collect();
            names.sort();
            names.dedup();
            let mut suggestions = nearest(name, names.iter().map(String::as_str), 6);
            if suggestions.is_empty() && names.len() <= 8 {
                // Nothing close: a short function's whole list helps more.
                suggestions = names;
            }
            Err(Error::UnknownVariable {
                function: function.name.clone(),
                name: name.to_string(),
                suggestions,
            })
        }
        many => {
            // The same declaration seen twice (a concrete and an inlined
            // copy with one location) is not an ambiguity.
            let first = many[0];
            if many
                .iter()
                .all(|v| v.location == first.location && v.decl_line == first.decl_line)
            {
                return Ok(first);
            }
            // Only one of them has a stack slot: that is the one to watch.
            let on_stack: Vec<&&Variable> = many
                .iter()
                .filter(|v| stack_slot(function, v).is_ok())
                .collect();
            if let [only] = on_stack.as_slice() {
                return Ok(only);
            }
            Err(Error::AmbiguousVariable {
                function: function.name.clone(),
                name: name.to_string(),
                places: many
                    .iter()
                    .map(|v| {
                        format!(
                            "declared at line {}{}{}",
                            v.decl_line.map_or("?".into(), |l| l.to_string()),
                            v.inlined_from
                                .as_ref()
                                .map_or(String::new(), |c| format!(", inlined from {c}")),
                            if v.block_ranges.is_some() {
                                ", in a block"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect(),
            })
        }
    }
}

/// Names near `name`: by edit distance, and those containing it.
pub(crate) fn nearest<'a>(
    name: &str,
    names: impl Iterator<Item = &'a str>,
    limit: usize,
) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = names
        .filter(|n| *n != name)
        .filter_map(|n| {
            let d = edit_distance(name, n);
            let close = d <= (name.len() / 3).max(2) || (name.len() >= 4 && n.contains(name));
            close.then_some((d, n))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(limit)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a = a.as_bytes();
    let b = b.as_bytes();
    if a.len().abs_diff(b.len()) > 8 {
        return usize::MAX / 2;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current[j + 1] = (previous[j] + cost)
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// GCC's suffixes for function copies: the part after the first `.`.
fn is_copy_of(symbol: &str, name: &str) -> bool {
    symbol.len() > name.len() + 1
        && symbol.starts_with(name)
        && symbol.as_bytes()[name.len()] == b'.'
}

fn choose_function<'i, 'f>(
    images: &'i [ElfImage<'f>],
    name: &str,
) -> Result<(&'i ElfImage<'f>, FunctionSymbol<'f>, Vec<String>)> {
    let mut found: Vec<(usize, FunctionSymbol<'f>)> = Vec::new();
    for (index, image) in images.iter().enumerate() {
        for symbol in image.function_symbols(|n| n == name || is_copy_of(n, name)) {
            if !found
                .iter()
                .any(|(i, s)| *i == index && s.address == symbol.address)
            {
                found.push((index, symbol));
            }
        }
    }
    let mut caveats = Vec::new();
    let exact: Vec<&(usize, FunctionSymbol<'f>)> =
        found.iter().filter(|(_, s)| s.name == name).collect();
    let cold = |s: &FunctionSymbol<'_>| s.name.ends_with(".cold") || s.name.contains(".cold.");
    let callable: Vec<&(usize, FunctionSymbol<'f>)> =
        found.iter().filter(|(_, s)| !cold(s)).collect();
    let candidates = |list: &[&(usize, FunctionSymbol<'f>)]| -> Vec<Candidate> {
        list.iter()
            .map(|(i, s)| Candidate {
                symbol: s.name.to_string(),
                address: s.address,
                defined_in: unit_name_for(&images[*i], s.address),
                note: if cold(s) {
                    "cold part: not an entry point".into()
                } else if s.name == name {
                    if s.local {
                        "static".into()
                    } else {
                        "global".into()
                    }
                } else {
                    "compiler-made copy (parameters may differ)".into()
                },
            })
            .collect()
    };
    let chosen = if exact.len() == 1 && callable.len() == 1 {
        exact[0]
    } else if exact.is_empty() && callable.len() == 1 {
        let only = callable[0];
        caveats.push(format!(
            "`{name}` exists only as the compiler-made copy `{}`; the probe is on that copy",
            only.1.name
        ));
        only
    } else if callable.len() > 1 || exact.len() > 1 {
        let all: Vec<&(usize, FunctionSymbol<'f>)> = found.iter().collect();
        return Err(Error::AmbiguousFunction {
            name: name.to_string(),
            candidates: candidates(&all),
        });
    } else {
        // No callable copy: inlined everywhere, only a cold part, or unknown.
        if let Some(callers) = inlined_callers(images, name)? {
            return Err(Error::InlinedOnly {
                name: name.to_string(),
                callers,
            });
        }
        let mut suggestions = Vec::new();
        for image in images {
            let names = image.function_symbols(|_| true);
            suggestions.extend(nearest(name, names.iter().map(|s| s.name), 6));
        }
        suggestions.sort();
        suggestions.dedup();
        suggestions.truncate(6);
        return Err(Error::UnknownFunction {
            name: name.to_string(),
            searched: images
                .iter()
                .map(|i| i.path().display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            suggestions,
        });
    };
    if found.iter().any(|(_, s)| cold(s)) {
        caveats.push(format!(
            "`{name}` has a .cold part: the watch stays armed while it runs there too"
        ));
    }
    Ok((&images[chosen.0], chosen.1.clone(), caveats))
}

fn unit_name_for(image: &ElfImage<'_>, address: u64) -> String {
    let Ok(sections) = DebugSections::load(image) else {
        return image.path().display().to_string();
    };
    let Ok(dwarf) = sections.dwarf() else {
        return image.path().display().to_string();
    };
    match dwarf::unit_for_address(&sections, &dwarf, address) {
        Ok(Some(unit)) => unit.name(),
        _ => image.path().display().to_string(),
    }
}

/// Largest `.debug_info` scanned to tell "inlined only" from "unknown".
/// This is an error path, and the scan is parallel: on the 589 MB 6.1
/// vmlinux it takes about 3 s, so there is no practical limit.
const INLINE_SCAN_LIMIT: usize = 1 << 40;

/// When `name` is a subprogram that only appears inlined, some callers.
fn inlined_callers(images: &[ElfImage<'_>], name: &str) -> Result<Option<String>> {
    for image in images {
        let sections = match DebugSections::load(image) {
            Ok(s) => s,
            Err(Error::NoDebugInfo { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(found) = crate::index::inlined_into(&sections, name, INLINE_SCAN_LIMIT)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The machine code of a function symbol, from the file's allocated sections.
fn function_code<'f>(image: &ElfImage<'f>, symbol: &FunctionSymbol<'f>) -> Result<&'f [u8]> {
    image
        .bytes_at(symbol.address, symbol.size)
        .ok_or_else(|| Error::Malformed {
            path: image.path().to_path_buf(),
            what: format!("no code bytes for `{}`", symbol.name),
        })
}
