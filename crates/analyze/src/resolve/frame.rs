//! The frame layout of a function: where each local lives relative to the
//! CFA (or why it is not on the stack), what a request selects inside one
//! (the target), and which naturally aligned part of it a breakpoint holds.

use serde::Serialize;

use super::choose;
use super::probe::Prologue;
use crate::cfi::{CfaRow, row_at};
use crate::disasm::{REALIGNED_BASE, Step};
use crate::dwarf::{
    self, DebugInfo, DebugSections, FrameBase, Location, Place, UnitContext, Variable,
};
use crate::elf::{DebugFile, FunctionSymbol};
use crate::error::{Error, OffStack, Result};
use crate::register::Register;
use crate::types::VariablePath;

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
    pub location: VariableLocation,
    /// Declared in a lexical block rather than at function level.
    pub in_block: bool,
    /// The inlined function it belongs to, if any.
    pub inlined_from: Option<String>,
    /// The line of its declaration.
    pub decl_line: Option<u64>,
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
    let images = super::parse_images(files)?;
    let (image, symbol, _) = choose::function(&images, function)?;
    let sections = DebugSections::load(image)?;
    let info = DebugInfo::new(&sections)?;
    let unit = info
        .unit_for_address(symbol.address)?
        .ok_or_else(|| Error::Unsupported(format!("no DWARF unit covers `{}`", symbol.name)))?;
    let subprogram = unit
        .subprogram_at(symbol.address)?
        .ok_or_else(|| Error::Unsupported(format!("no subprogram starts at `{}`", symbol.name)))?;
    let described = unit.function(subprogram)?;
    let (steps, rows) = super::disassemble(image, &sections, &symbol, true)?;
    let prologue = Prologue::find(&steps);
    let regs = FrameRegs::new(&steps, rows.as_deref(), &prologue);
    let mut variables = Vec::new();
    for v in &described.variables {
        let size = v
            .type_offset
            .map(|t| unit.type_size(t))
            .transpose()?
            .flatten();
        let (cfa_offset, location) = match stack_place(v, &regs) {
            Ok(slot) => (
                slot.location.cfa_offset(),
                VariableLocation::Stack(slot.location),
            ),
            Err(reason) => (None, VariableLocation::NotOnStack(reason)),
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
            decl_line: v.decl_line,
        });
    }
    Ok(FrameLayout {
        symbol: symbol.name.to_string(),
        function_address: symbol.address,
        unit: described.unit_name,
        variables,
    })
}

/// What to watch, CFA-relative: the variable and the part of it selected.
pub(super) struct Target {
    pub(super) path: String,
    pub(super) variable_start: i64,
    pub(super) variable_size: u64,
    pub(super) start: i64,
    pub(super) size: u64,
    pub(super) type_name: String,
    pub(super) location: StackLocation,
    pub(super) block_ranges: Option<Vec<(u64, u64)>>,
    pub(super) stack_ranges: Option<Vec<(u64, u64)>>,
    /// The slot is known relative to SP only.
    pub(super) sp_based: bool,
    pub(super) forced_probe: Option<usize>,
}

/// The largest naturally aligned 8/4/2/1-byte window inside
/// `[start, start + size)`, lowest first: (offset in the object, length).
fn choose_part(start: i64, size: u64) -> Option<(u64, u8)> {
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

pub(super) fn covers(ranges: &[(u64, u64)], from: u64, to: u64) -> bool {
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

pub(super) fn ranges_text(ranges: &[(u64, u64)], base: u64) -> String {
    ranges
        .iter()
        .map(|(b, e)| format!("+{:#x}..+{:#x}", b.wrapping_sub(base), e.wrapping_sub(base)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a stack object's slot is known. Plain data: the CLI renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StackLocation {
    /// `DW_OP_fbreg` with a CFA frame base, for the whole scope.
    FrameBase {
        /// Offset from the CFA.
        cfa_offset: i64,
    },
    /// A location list that puts it at CFA + offset over part of the
    /// function (and elsewhere, in registers, over the rest).
    LocationList {
        /// Offset from the CFA; `None` in a realigned frame when the list
        /// locates it relative to SP.
        cfa_offset: Option<i64>,
        /// Offset from SP in the function's body, when the list locates
        /// it relative to SP in a realigned frame.
        sp_offset: Option<i64>,
    },
    /// `DW_OP_bregN` on rsp or rbp for the whole scope: register +
    /// offset, which CFI relates to the CFA (rsp: CFA − SP in the body;
    /// rbp: the rbp-based CFA rule).
    RegisterBased {
        /// rsp or rbp.
        register: Register,
        /// The offset DWARF adds to the register.
        offset: i64,
        /// Offset from the CFA; `None` in a realigned frame
        /// (`and $-N, %rsp`), where SP is no fixed distance from the CFA.
        cfa_offset: Option<i64>,
    },
    /// The stack-protector canary's slot, which the prologue stores the
    /// guard into.
    Canary {
        /// Offset from the CFA.
        cfa_offset: i64,
        /// Offset of the storing instruction in the function.
        store_offset: u64,
    },
}

impl StackLocation {
    /// The slot's offset from the CFA, when it has a fixed one.
    pub fn cfa_offset(&self) -> Option<i64> {
        match *self {
            StackLocation::FrameBase { cfa_offset } | StackLocation::Canary { cfa_offset, .. } => {
                Some(cfa_offset)
            }
            StackLocation::LocationList { cfa_offset, .. }
            | StackLocation::RegisterBased { cfa_offset, .. } => cfa_offset,
        }
    }
}

/// Where a local lives: a stack slot, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum VariableLocation {
    /// In a stack slot.
    Stack(StackLocation),
    /// Not in stack memory a watch could use.
    NotOnStack(OffStack),
}

/// What relates rsp- and rbp-based locations to the CFA in one function:
/// CFA − SP per instruction (CFI, or disassembly without it), the body's
/// CFA − SP after the prologue, and CFA − rbp from rbp-based CFI rules.
pub(super) struct FrameRegs<'a> {
    steps: &'a [Step],
    rows: Option<&'a [CfaRow]>,
    body_cfa_minus_sp: Option<i64>,
}

impl<'a> FrameRegs<'a> {
    /// The relations of the function whose instructions are `steps`.
    pub(super) fn new(
        steps: &'a [Step],
        rows: Option<&'a [CfaRow]>,
        prologue: &Prologue,
    ) -> FrameRegs<'a> {
        let body_cfa_minus_sp = match prologue.end {
            Some(end) => steps.get(end).and_then(|s| s.cfa_minus_sp_after),
            None => steps.first().and_then(|s| s.cfa_minus_sp_before),
        };
        FrameRegs {
            steps,
            rows,
            body_cfa_minus_sp,
        }
    }

    /// CFA − SP when the instruction at `pc` is about to run.
    fn cfa_minus_sp_at(&self, pc: u64) -> Option<i64> {
        self.steps
            .iter()
            .find(|s| s.address == pc)
            .and_then(|s| s.cfa_minus_sp_before)
    }

    /// CFA − rbp at `pc`, when CFI computes the CFA from rbp there.
    fn cfa_minus_rbp_at(&self, pc: u64) -> Option<i64> {
        row_at(self.rows?, pc).and_then(|r| r.rbp_offset)
    }

    /// CFA − rbp in the function's body: the one rbp-based CFA rule its
    /// CFI uses (`None` when it has none, or several).
    fn body_cfa_minus_rbp(&self) -> Option<i64> {
        let mut rules = self.rows?.iter().filter_map(|r| r.rbp_offset);
        let first = rules.next()?;
        rules.all(|k| k == first).then_some(first)
    }

    /// CFA − SP in the body, after the prologue.
    pub(super) fn body_cfa_minus_sp(&self) -> Option<i64> {
        self.body_cfa_minus_sp
    }

    /// Whether SP was followed across a stack realignment: the body's
    /// SP offsets are then from a synthetic base, not from the CFA.
    pub(super) fn realigned(&self) -> bool {
        self.body_cfa_minus_sp
            .is_some_and(|k| k >= REALIGNED_BASE / 2)
    }

    /// Whether `place` is SP-based.
    fn sp_based(place: &Place) -> bool {
        matches!(
            place,
            Place::RegisterOffset {
                register: Register::Rsp,
                ..
            }
        )
    }

    /// The CFA offset of `register + offset` over the whole scope.
    fn cfa_offset_everywhere(&self, register: Register, offset: i64) -> Option<i64> {
        let register_to_cfa = match register {
            Register::Rsp => self.body_cfa_minus_sp?,
            Register::Rbp => self.body_cfa_minus_rbp()?,
            _ => return None,
        };
        offset.checked_sub(register_to_cfa)
    }

    /// The CFA offset of `register + offset` from `pc` on. An SP-based
    /// one only where CFA − SP is the body's: the one a probe sees.
    fn cfa_offset_from(&self, pc: u64, register: Register, offset: i64) -> Option<i64> {
        let register_to_cfa = match register {
            Register::Rsp => self
                .cfa_minus_sp_at(pc)
                .filter(|k| Some(*k) == self.body_cfa_minus_sp)?,
            Register::Rbp => self.cfa_minus_rbp_at(pc)?,
            _ => return None,
        };
        offset.checked_sub(register_to_cfa)
    }
}

/// A variable's stack slot, and the pc ranges of a location list that
/// puts the variable there (`None`: everywhere in scope).
pub(super) struct StackSlot {
    pub(super) location: StackLocation,
    /// Offset from the CFA, or in a realigned frame from the synthetic
    /// base SP is followed from (`disasm::REALIGNED_BASE`).
    pub(super) offset: i64,
    pub(super) ranges: Option<Vec<(u64, u64)>>,
    /// Known only relative to SP: right only where CFA − SP is the body's.
    pub(super) sp_based: bool,
}

impl StackSlot {
    pub(super) fn cfa_offset(&self) -> i64 {
        self.offset
    }
}

/// Where `variable` lives on the stack, or why it is not there.
pub(super) fn stack_slot(
    function: &dwarf::Function,
    variable: &Variable,
    regs: &FrameRegs<'_>,
) -> Result<StackSlot> {
    stack_place(variable, regs).map_err(|reason| Error::NotOnStack {
        function: function.name.clone(),
        name: variable.name.clone(),
        reason,
    })
}

fn stack_place(
    variable: &Variable,
    regs: &FrameRegs<'_>,
) -> std::result::Result<StackSlot, OffStack> {
    match &variable.location {
        Location::Absent => Err(OffStack::OptimisedOut),
        Location::Single(Place::Stack { cfa_offset }) => Ok(StackSlot {
            location: StackLocation::FrameBase {
                cfa_offset: *cfa_offset,
            },
            offset: *cfa_offset,
            ranges: None,
            sp_based: false,
        }),
        Location::Single(Place::Static { address }) => Err(OffStack::Static { address: *address }),
        Location::Single(Place::Register { register }) => Err(OffStack::RegisterOnly {
            register: *register,
        }),
        Location::Single(place @ Place::RegisterOffset { register, offset }) => {
            match regs.cfa_offset_everywhere(*register, *offset) {
                Some(cfa_offset) => Ok(StackSlot {
                    location: StackLocation::RegisterBased {
                        register: *register,
                        offset: *offset,
                        cfa_offset: (!regs.realigned()).then_some(cfa_offset),
                    },
                    offset: cfa_offset,
                    ranges: None,
                    sp_based: FrameRegs::sp_based(place),
                }),
                None => Err(OffStack::Elsewhere {
                    place: place.clone(),
                }),
            }
        }
        Location::Single(place) => Err(OffStack::Elsewhere {
            place: place.clone(),
        }),
        Location::List(entries) => {
            let stack: Vec<(u64, u64, i64)> = entries
                .iter()
                .filter_map(|(b, e, p)| match p {
                    Place::Stack { cfa_offset } => Some((*b, *e, *cfa_offset)),
                    Place::RegisterOffset { register, offset } => regs
                        .cfa_offset_from(*b, *register, *offset)
                        .map(|c| (*b, *e, c)),
                    _ => None,
                })
                .collect();
            let Some(first) = stack.first() else {
                if entries.is_empty() {
                    return Err(OffStack::EmptyLocationList);
                }
                let mut places: Vec<Place> = Vec::new();
                for (_, _, p) in entries {
                    if !places.contains(p) {
                        places.push(p.clone());
                    }
                }
                return Err(OffStack::NeverInMemory { places });
            };
            if stack.iter().any(|s| s.2 != first.2) {
                return Err(OffStack::SeveralSlots);
            }
            let sp_based = entries.iter().any(|(_, _, p)| FrameRegs::sp_based(p));
            let (cfa_offset, sp_offset) = if sp_based && regs.realigned() {
                let body = regs.body_cfa_minus_sp().unwrap_or(REALIGNED_BASE);
                (None, Some(first.2.saturating_add(body)))
            } else {
                (Some(first.2), None)
            };
            Ok(StackSlot {
                location: StackLocation::LocationList {
                    cfa_offset,
                    sp_offset,
                },
                offset: first.2,
                ranges: Some(stack.iter().map(|(b, e, _)| (*b, *e)).collect()),
                sp_based,
            })
        }
    }
}

/// The canary's slot as the target: the prologue stores the guard there,
/// and the probe goes right after that store.
pub(super) fn canary_target(
    symbol: &FunctionSymbol<'_>,
    steps: &[Step],
    canary: Option<(usize, usize, i64)>,
) -> Result<Target> {
    let (_, store, slot) = canary.ok_or_else(|| Error::NoCanary {
        function: symbol.name.to_string(),
        reason: "its prologue does not copy the stack-protector guard (%gs:0x28 or \
                 __stack_chk_guard) into the frame, so the function has no canary slot. \
                 `ac=1` would make the module search upward from SP and find a caller's \
                 canary instead; use it only if that is what you want"
            .to_string(),
    })?;
    Ok(Target {
        path: "<canary>".to_string(),
        variable_start: slot,
        variable_size: 8,
        start: slot,
        size: 8,
        type_name: "unsigned long (stack-protector canary)".to_string(),
        location: StackLocation::Canary {
            cfa_offset: slot,
            store_offset: steps[store].address - symbol.address,
        },
        block_ranges: None,
        stack_ranges: None,
        sp_based: false,
        forced_probe: Some(store),
    })
}

/// The variable path `text` as the target: its variable's stack slot and
/// the bytes the member/index path selects in it.
pub(super) fn variable_target(
    unit: &UnitContext<'_, '_>,
    function: &dwarf::Function,
    regs: &FrameRegs<'_>,
    text: Option<&str>,
    caveats: &mut Vec<String>,
) -> Result<Target> {
    let text = text.ok_or_else(|| {
        Error::Unsupported("no variable given (use --canary to watch the canary)".into())
    })?;
    let path = VariablePath::parse(text)?;
    let variable = choose::variable(function, &path.root, regs)?;
    let slot = stack_slot(function, variable, regs)?;
    let cfa_offset = slot.cfa_offset();
    // `DW_OP_fbreg` offsets are relative to the frame base.
    let frame_based = matches!(
        slot.location,
        StackLocation::FrameBase { .. }
            | StackLocation::LocationList {
                cfa_offset: Some(_),
                ..
            }
    );
    if frame_based && function.frame_base != FrameBase::Cfa {
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
    Ok(Target {
        path: path.text.clone(),
        variable_start: cfa_offset,
        variable_size,
        start: cfa_offset.saturating_add(selection.offset as i64),
        size: selection.size,
        type_name: selection.type_name,
        location: slot.location,
        block_ranges: variable.block_ranges.clone(),
        stack_ranges: slot.ranges,
        sp_based: slot.sp_based,
        forced_probe: None,
    })
}

/// The bytes one breakpoint watches inside the target.
#[derive(Debug, Clone, Copy)]
pub(super) struct WatchedPart {
    /// Offset of the first watched byte in the selected object.
    pub(super) part: u64,
    /// 1, 2, 4 or 8.
    pub(super) len: u8,
    /// CFA-relative offset of the first watched byte.
    pub(super) cfa_offset: i64,
}

/// The watched part: naturally aligned, 1/2/4/8 bytes. The CFA is 8-byte
/// aligned on x86_64 (the kernel keeps an 8-byte stack boundary), so
/// CFA-relative alignment is address alignment.
pub(super) fn watched_part(target: &Target, caveats: &mut Vec<String>) -> Result<WatchedPart> {
    if target.size == 0 {
        return Err(Error::Unsupported(format!(
            "`{}` has no size in DWARF",
            target.path
        )));
    }
    let (part, len) = choose_part(target.start, target.size).ok_or_else(|| {
        Error::Unsupported(format!(
            "no naturally aligned 1/2/4/8-byte part inside `{}`",
            target.path
        ))
    })?;
    if target.size > u64::from(len) {
        caveats.push(format!(
            "`{}` is {} bytes; the watch covers bytes [{part}, {}) of it (one breakpoint holds at most 8). \
             Name a member or element to watch another part",
            target.path,
            target.size,
            part + u64::from(len)
        ));
    } else if target.size != u64::from(len) {
        caveats.push(format!(
            "`{}` is {} bytes and not naturally aligned; only bytes [{part}, {}) are watched",
            target.path,
            target.size,
            part + u64::from(len)
        ));
    }
    Ok(WatchedPart {
        part,
        len,
        cfa_offset: target.start.saturating_add(part as i64),
    })
}

/// Check that the variable is in its slot from the probed instruction
/// `step` until the function returns (its block contains the probe, and a
/// location list keeps it in the slot).
pub(super) fn check_in_slot(
    target: &Target,
    step: &Step,
    symbol: &FunctionSymbol<'_>,
    function: &dwarf::Function,
    caveats: &mut Vec<String>,
) -> Result<()> {
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
                reason: OffStack::PartlyInSlot {
                    ranges: ranges
                        .iter()
                        .map(|(b, e)| {
                            (
                                b.wrapping_sub(symbol.address),
                                e.wrapping_sub(symbol.address),
                            )
                        })
                        .collect(),
                },
            });
        }
    }
    Ok(())
}

/// Caveats for other variables whose slots overlap the watched bytes.
pub(super) fn overlap_caveats(
    unit: &UnitContext<'_, '_>,
    function: &dwarf::Function,
    regs: &FrameRegs<'_>,
    target: &Target,
    watched: WatchedPart,
    caveats: &mut Vec<String>,
) -> Result<()> {
    for other in &function.variables {
        if let Ok(slot) = stack_place(other, regs) {
            let offset = slot.cfa_offset();
            let size = other
                .type_offset
                .map(|t| unit.type_size(t))
                .transpose()?
                .flatten()
                .unwrap_or(0) as i64;
            let overlaps = offset < watched.cfa_offset.saturating_add(i64::from(watched.len))
                && watched.cfa_offset < offset.saturating_add(size);
            if overlaps && offset != target.variable_start {
                caveats.push(format!(
                    "the slot overlaps `{}` (CFA{offset:+}, {size} bytes): its writes hit too",
                    other.name
                ));
            }
        }
    }
    Ok(())
}

/// The CFA-relative extents `[start, end)` of the function's stack slots
/// whose size is known.
pub(super) fn slot_extents(
    unit: &UnitContext<'_, '_>,
    function: &dwarf::Function,
    regs: &FrameRegs<'_>,
) -> Vec<(i64, i64)> {
    function
        .variables
        .iter()
        .filter_map(|v| {
            let offset = stack_place(v, regs).ok()?.cfa_offset();
            let size = v
                .type_offset
                .and_then(|t| unit.type_size(t).ok().flatten())?;
            Some((offset, offset.saturating_add(size as i64)))
        })
        .collect()
}
