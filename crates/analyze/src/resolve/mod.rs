//! `resolve`: from a function and a variable's name to a kstackwatch watch.
//!
//! The steps, each answering from the debug files alone:
//! 1. the function's symbol (and its `.isra`/`.constprop`/`.cold` copies)
//!    from `.symtab`, refusing ambiguous names;
//! 2. its compilation unit through `.debug_aranges`, and its subprogram DIE;
//! 3. the variable, its location (CFA + offset, from `DW_OP_fbreg` with a
//!    `DW_OP_call_frame_cfa` frame base; or `DW_OP_breg7`/`DW_OP_breg6`,
//!    SP or rbp + offset, related to the CFA by CFI and disassembly, which
//!    follows SP across a stack realignment) and, through the member/index
//!    path, the bytes to watch (1, 2, 4 or 8, naturally aligned);
//! 4. the probe point: an instruction after the prologue and after the
//!    function's own initialising stores to those bytes, found by
//!    disassembly, where the variable is in its slot until the function
//!    returns;
//! 5. `sp_offset` = (CFA − SP after the probed instruction, from CFI) +
//!    the watched bytes' CFA offset (for an SP-based slot: its SP offset,
//!    with SP unchanged since the prologue).
//!
//! The answer is a [`Resolution`], plain data that the CLI renders as a
//! table or JSON.
//!
//! The parts: [`choose`] picks the function symbol and the variable,
//! [`frame`] knows where locals live and what is watched, and [`probe`]
//! decides where the watch is armed and what SP is there.

mod choose;
mod frame;
mod probe;

use serde::Serialize;

use crate::cfi::{self, CfaRow};
use crate::disasm::{self, Step};
use crate::dwarf::{DebugInfo, DebugSections, UnitContext};
use crate::elf::{DebugFile, ElfImage, FunctionSymbol, ImageKind};
use crate::error::{Error, Result};
use crate::watch::Watch;

pub use frame::{FrameLayout, FrameSlot, StackLocation, VariableLocation, frame_layout};

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
    /// The watched object's slot, as DWARF (or, for the canary, the
    /// prologue) states it.
    pub location: StackLocation,
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
    let images = parse_images(files)?;
    let (image, symbol, mut caveats) = choose::function(&images, &request.function)?;
    let sections = DebugSections::load(image)?;
    let info = DebugInfo::new(&sections)?;
    let unit = info.unit_for_address(symbol.address)?.ok_or_else(|| {
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
    let (plain, rows) = disassemble(image, &sections, &symbol, false)?;
    // SP followed across a realignment: what SP-based locations
    // (`DW_OP_breg7`) are relative to in a realigned frame.
    let (realigned, _) = disassemble(image, &sections, &symbol, true)?;
    let cfa_source = if rows.is_some() {
        ".debug_frame"
    } else {
        caveats.push(
            "no .debug_frame entry for this function: CFA−SP comes from disassembly".to_string(),
        );
        "prologue disassembly (no CFI)"
    };
    let regs = frame::FrameRegs::new(
        &realigned,
        rows.as_deref(),
        &probe::Prologue::find(&realigned),
    );

    // What to watch, and which part of it one breakpoint holds.
    let plain_prologue = probe::Prologue::find(&plain);
    let target = if request.canary {
        frame::canary_target(&symbol, &plain, plain_prologue.canary)?
    } else {
        frame::variable_target(
            &unit,
            &function,
            &regs,
            request.variable.as_deref(),
            &mut caveats,
        )?
    };
    let watched = frame::watched_part(&target, &mut caveats)?;
    // An SP-based slot is found in SP-relative terms throughout.
    let (steps, prologue) = if target.sp_based {
        let prologue = probe::Prologue::find(&realigned);
        (&realigned, prologue)
    } else {
        (&plain, plain_prologue)
    };

    // Where to arm it.
    let scope = probe::Scope {
        image,
        info: &info,
        unit: &unit,
    };
    let extents = frame::slot_extents(&unit, &function, &regs);
    let writes = probe::own_writes(
        &scope,
        steps,
        &target,
        watched,
        &extents,
        target.sp_based && regs.realigned(),
    );
    let point = probe::choose(
        steps,
        &writes,
        &prologue,
        target.forced_probe,
        &symbol,
        &mut caveats,
    )?;
    let step = &steps[point.index];
    frame::check_in_slot(&target, step, &symbol, &function, &mut caveats)?;
    frame::overlap_caveats(&unit, &function, &regs, &target, watched, &mut caveats)?;
    let (cfa_to_sp, cfa_source) = probe::cfa_to_sp(image, step, &symbol, cfa_source)?;
    // An SP-based slot's CFA offset assumed the body's CFA − SP.
    if target.sp_based && Some(cfa_to_sp) != regs.body_cfa_minus_sp() {
        return Err(Error::NoProbePoint {
            function: symbol.name.to_string(),
            reason: format!(
                "`{}` is located relative to SP, and CFA−SP after +{:#x} is {cfa_to_sp}, not \
                 the body's {}",
                target.path,
                step.address - symbol.address,
                regs.body_cfa_minus_sp()
                    .map_or("(unknown)".to_string(), |k| k.to_string())
            ),
        });
    }
    let sp_offset = cfa_to_sp.saturating_add(watched.cfa_offset);
    if sp_offset < 0 || sp_offset > i64::from(u16::MAX) {
        return Err(Error::NoProbePoint {
            function: symbol.name.to_string(),
            reason: format!(
                "the watched bytes are at SP{sp_offset:+}, outside what so= (0..65535) can express"
            ),
        });
    }
    // In a realigned frame, report offsets from the SP right after the
    // realignment; there is no fixed CFA offset to report.
    let (reported_cfa_to_sp, reported_offset, cfa_source) = if target.sp_based && regs.realigned() {
        caveats.push(
            "a realigned frame (`and $-N, %rsp`): the slot is known relative to SP only, and SP \
             must not move between the probe and the writes that matter (it does not in the \
             function body)"
                .to_string(),
        );
        (
            cfa_to_sp - disasm::REALIGNED_BASE,
            watched.cfa_offset + disasm::REALIGNED_BASE,
            "SP followed across the stack realignment by disassembly; offsets are from SP \
             after the realignment"
                .to_string(),
        )
    } else {
        (cfa_to_sp, watched.cfa_offset, cfa_source)
    };
    let line_of = |address: u64| line_text(&unit, address);
    let expected_hits = probe::expected_hits(steps, &writes, &point, &symbol, line_of);
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
        function_offset: step.address - symbol.address,
        sp_offset: sp_offset as u64,
        watch_len: watched.len,
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
        watched_part: (watched.part, watched.part + u64::from(watched.len)),
        location: target.location,
        cfa_offset: reported_offset,
        cfa_to_sp: reported_cfa_to_sp,
        cfa_source,
        probe_instruction: step.text.clone(),
        probe_source: line_text(&unit, step.address),
        probe_reason: point.reason,
        expected_hits,
        caveats,
    })
}

/// `file:line` of `address`, when the unit's line table has it.
fn line_text(unit: &UnitContext<'_, '_>, address: u64) -> Option<String> {
    unit.line_of(address)
        .ok()
        .flatten()
        .map(|(f, l)| format!("{f}:{l}"))
}

/// Parse every debug file's ELF headers.
fn parse_images<'f>(files: &[&'f DebugFile]) -> Result<Vec<ElfImage<'f>>> {
    files.iter().map(|f| ElfImage::parse(f)).collect()
}

/// The function's instructions, annotated, and its `.debug_frame` rows
/// (`None`: CFA − SP comes from disassembly alone). With
/// `follow_realignment`, SP offsets continue across a stack realignment
/// from `disasm::REALIGNED_BASE`.
fn disassemble(
    image: &ElfImage<'_>,
    sections: &DebugSections<'_>,
    symbol: &FunctionSymbol<'_>,
    follow_realignment: bool,
) -> Result<(Vec<Step>, Option<Vec<CfaRow>>)> {
    let code = function_code(image, symbol)?;
    let rows = cfi::rows_for(sections, symbol.address)?;
    let steps = disasm::analyse(
        code,
        symbol.address,
        rows.as_deref(),
        &probe::canary_forms(image, symbol),
        follow_realignment,
    );
    Ok((steps, rows))
}

/// CFA − SP after the instruction at `function + offset` executes (the SP a
/// kprobe post-handler sees there), from CFI or, without it, disassembly.
/// Fails when `offset` is not an instruction boundary of the function.
pub fn cfa_to_sp_after(files: &[&DebugFile], function: &str, offset: u64) -> Result<i64> {
    let images = parse_images(files)?;
    let (image, symbol, _) = choose::function(&images, function)?;
    let sections = DebugSections::load(image)?;
    let (steps, _) = disassemble(image, &sections, &symbol, false)?;
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

/// The machine code of a function symbol, from the file's allocated sections.
fn function_code<'f>(image: &ElfImage<'f>, symbol: &FunctionSymbol<'_>) -> Result<&'f [u8]> {
    image
        .bytes_at(symbol.address, symbol.size)
        .ok_or_else(|| Error::Malformed {
            path: image.path().to_path_buf(),
            what: format!("no code bytes for `{}`", symbol.name),
        })
}
