//! Probe policy: where in the function the watch is armed. The prologue
//! and the canary, the function's own writes to the watched bytes (direct
//! stores, and calls that get a pointer into the variable), the probed
//! instruction after the initialising writes, and CFA − SP there, from CFI
//! cross-checked with disassembly and ORC.

use super::ExpectedHit;
use super::frame::{Target, WatchedPart};
use crate::disasm::{CanaryForms, Flow, Step};
use crate::dwarf::{DebugInfo, UnitContext};
use crate::elf::{ElfImage, FunctionSymbol, ImageKind};
use crate::error::{Error, Result};

/// The entry region of a function, as far as the probe policy needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prologue {
    /// The canary: (load index, store index, CFA-relative slot).
    pub(super) canary: Option<(usize, usize, i64)>,
    /// The last instruction of the prologue, when there is one.
    pub(super) end: Option<usize>,
}

impl Prologue {
    /// The prologue: up to the last instruction that grows the frame (or
    /// stores the canary) before the frame first shrinks, which is where an
    /// epilogue starts in a function without branches.
    pub(super) fn find(steps: &[Step]) -> Prologue {
        let entry_end = steps
            .iter()
            .position(|s| s.flow == Flow::Branch)
            .unwrap_or(steps.len());
        let canary = find_canary(&steps[..entry_end]);
        let frame_grows = |s: &Step| match (s.cfa_minus_sp_before, s.cfa_minus_sp_after) {
            (Some(b), Some(a)) => a > b,
            _ => s.modifies_rsp,
        };
        let frame_shrinks = |s: &Step| matches!((s.cfa_minus_sp_before, s.cfa_minus_sp_after), (Some(b), Some(a)) if a < b);
        let body_end = steps[..entry_end]
            .iter()
            .position(frame_shrinks)
            .unwrap_or(entry_end);
        let end = steps[..body_end]
            .iter()
            .enumerate()
            .filter(|(i, s)| frame_grows(s) || Some(*i) == canary.map(|c| c.1))
            .map(|(i, _)| i)
            .max();
        Prologue { canary, end }
    }
}

/// One of the function's own writes to the watched bytes: the step's index
/// and why it counts.
pub(super) type OwnWrite = (usize, String);

/// The debug information own-write detection reads: the image, its DWARF
/// and the function's unit.
pub(super) struct Scope<'a, 'f, 'd, 's> {
    pub(super) image: &'a ElfImage<'f>,
    pub(super) info: &'a DebugInfo<'s>,
    pub(super) unit: &'a UnitContext<'d, 's>,
}

/// The function's own writes: direct stores to the watched bytes, and
/// calls that get a pointer into the variable through a parameter that is
/// not pointer-to-const.
pub(super) fn own_writes(
    scope: &Scope<'_, '_, '_, '_>,
    steps: &[Step],
    target: &Target,
    watched: WatchedPart,
    extents: &[(i64, i64)],
    realigned: bool,
) -> Vec<OwnWrite> {
    let image = scope.image;
    let variable_end = target
        .variable_start
        .saturating_add(target.variable_size as i64);
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
            .find(|w| w.overlaps(watched.cfa_offset, u64::from(watched.len), extent_end))
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
                        (_, Some(name)) => callee_may_write_by_name(scope.unit, name, *position),
                        (Some(target), None) => callee_may_write(scope, target, *position),
                        (None, None) => true,
                    };
                    callee_cache.push((key, *position, w));
                    w
                }
            };
            if writes {
                let name = reg.name().unwrap_or("?");
                return Some(if realigned {
                    // Offsets from SP after the realignment, as reported.
                    let k = k.saturating_add(crate::disasm::REALIGNED_BASE);
                    format!(
                        "call gets a pointer into the variable (%{name} = the realigned SP{k:+})"
                    )
                } else {
                    format!("call gets a pointer into the variable (%{name} = CFA{k:+})")
                });
            }
        }
        None
    };
    steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| own_write(s).map(|w| (i, w)))
        .collect()
}

/// The probed instruction and why it was chosen.
#[derive(Debug, Clone)]
pub(super) struct ProbePoint {
    /// Index of the probed instruction.
    pub(super) index: usize,
    /// Why this one.
    pub(super) reason: String,
    /// The write the probe comes after; writes up to it in its run are
    /// initialisation, not expected hits.
    anchor: Option<usize>,
    /// The first instruction of the anchor's straight-line run.
    run_start: Option<usize>,
}

/// The probe point: after the prologue, and after the function's own
/// initialising writes (`forced` for the canary: right after its store).
pub(super) fn choose(
    steps: &[Step],
    writes: &[OwnWrite],
    prologue: &Prologue,
    forced: Option<usize>,
    symbol: &FunctionSymbol<'_>,
    caveats: &mut Vec<String>,
) -> Result<ProbePoint> {
    let floor = prologue.end.unwrap_or(0);
    // The write that ends the initialisation in the straight-line run (up
    // to the next branch) that starts at `from`.
    //
    // A call that gets a pointer to the variable may initialise it
    // (`init(&x)`) or use it (`wait_on(&x)`, while another thread corrupts
    // it; `consume(&x)`, which overruns it). So initialisation is the
    // stores up to the first such call, and that call; without one, every
    // store of the run. Later writes are expected hits.
    let last_in_run = |from: usize| -> Option<&OwnWrite> {
        let run_end = steps[from..]
            .iter()
            .position(|s| s.flow == Flow::Branch)
            .map_or(steps.len(), |p| from + p);
        let in_run = |i: usize| i >= from && i < run_end;
        let is_call = |i: usize| steps[i].flow == Flow::Call;
        let first_call = writes.iter().find(|(i, _)| in_run(*i) && is_call(*i));
        first_call.or_else(|| writes.iter().rfind(|(i, _)| in_run(*i)))
    };
    let (mut probe, mut reason, anchor) = if let Some(store) = forced {
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
    Ok(ProbePoint {
        index: probe,
        reason,
        anchor,
        run_start,
    })
}

/// CFA − SP after the probed instruction, and where it came from: CFI or
/// disassembly (`fallback_source`), with ORC, where vmlinux has it, as a
/// second opinion (or the only one). Disagreement is an error.
pub(super) fn cfa_to_sp(
    image: &ElfImage<'_>,
    step: &Step,
    symbol: &FunctionSymbol<'_>,
    fallback_source: &str,
) -> Result<(i64, String)> {
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
        (c, _, None) => (c, fallback_source.to_string()),
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
    Ok((cfa_to_sp, cfa_source))
}

/// The own writes after the probe that are not initialisation: the module
/// will report them, and they are not corruption.
pub(super) fn expected_hits(
    steps: &[Step],
    writes: &[OwnWrite],
    point: &ProbePoint,
    symbol: &FunctionSymbol<'_>,
    line_of: impl Fn(u64) -> Option<String>,
) -> Vec<ExpectedHit> {
    let mut hits = Vec::new();
    for (i, why) in writes {
        let initialising = match (point.anchor, point.run_start) {
            (Some(a), Some(r)) => *i >= r && *i <= a,
            _ => false,
        };
        if initialising || *i == point.index {
            continue;
        }
        let s = &steps[*i];
        hits.push(ExpectedHit {
            offset: s.address - symbol.address,
            instruction: s.text.clone(),
            source: line_of(s.address),
            why: why.clone(),
        });
    }
    hits
}

/// Whether the function at `callee` may write through its parameter number
/// `position`: `false` only when DWARF says that parameter is a pointer to
/// const (`copy_to_user(to, const void *from, n)`).
fn callee_may_write(scope: &Scope<'_, '_, '_, '_>, callee: u64, position: usize) -> bool {
    let image = scope.image;
    let Some(symbol) = image.function_containing(callee) else {
        return true;
    };
    // A compiler-made copy may have dropped or reordered parameters.
    if symbol.address != callee || symbol.name.contains('.') {
        return true;
    }
    if let Ok(Some(unit)) = scope.info.unit_for_address(callee) {
        if let Ok(Some(subprogram)) = unit.subprogram_at(callee) {
            return !matches!(
                unit.parameter_is_const_pointer(subprogram, position),
                Ok(Some(true))
            );
        }
    }
    // No definition with DWARF: the caller's unit may declare it.
    callee_may_write_by_name(scope.unit, symbol.name, position)
}

/// Like [`callee_may_write`], from the callee's declaration in the caller's
/// unit (all a `.ko` has for a function defined elsewhere).
fn callee_may_write_by_name(unit: &UnitContext<'_, '_>, name: &str, position: usize) -> bool {
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

pub(super) fn canary_forms(image: &ElfImage<'_>, symbol: &FunctionSymbol<'_>) -> CanaryForms {
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
