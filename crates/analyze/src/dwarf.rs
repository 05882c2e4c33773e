//! DWARF access for one question at a time: which compilation unit covers
//! an address, which subprogram starts there, what its locals are and
//! where they live, and which source line an address belongs to.
//!
//! Sections are loaded from an [`ElfImage`] as borrowed slices (decompressed
//! only when SHF_COMPRESSED) and read through gimli with relocations applied
//! on the fly ([`RelocationView`]). The unit for an address is found through
//! `.debug_aranges`; only that unit's abbreviations and DIEs are parsed.

use std::borrow::Cow;
use std::cell::OnceCell;

use gimli::{AttributeValue, EndianSlice, LittleEndian, Operation, Reader as _, UnitOffset};

use crate::elf::{ElfImage, RelocationView};
use crate::error::{Error, Result};
use crate::register::Register;

/// The reader every gimli structure here is instantiated with.
pub(crate) type Reader<'s> = gimli::RelocateReader<EndianSlice<'s, LittleEndian>, RelocationView>;

/// The DWARF sections of one image, owned or borrowed from the map.
#[derive(Debug)]
pub struct DebugSections<'f> {
    path: std::path::PathBuf,
    sections: Vec<(gimli::SectionId, Cow<'f, [u8]>, RelocationView)>,
    debug_frame: Option<(Cow<'f, [u8]>, RelocationView)>,
}

impl<'f> DebugSections<'f> {
    /// Load the DWARF sections of `image`; fails when it has no `.debug_info`.
    pub fn load(image: &ElfImage<'f>) -> Result<DebugSections<'f>> {
        let mut sections = Vec::new();
        let ids = [
            gimli::SectionId::DebugAbbrev,
            gimli::SectionId::DebugAddr,
            gimli::SectionId::DebugAranges,
            gimli::SectionId::DebugInfo,
            gimli::SectionId::DebugLine,
            gimli::SectionId::DebugLineStr,
            gimli::SectionId::DebugLoc,
            gimli::SectionId::DebugLocLists,
            gimli::SectionId::DebugRanges,
            gimli::SectionId::DebugRngLists,
            gimli::SectionId::DebugStr,
            gimli::SectionId::DebugStrOffsets,
        ];
        for id in ids {
            if let Some((index, data)) = image.section_data(id.name())? {
                let relocations = image.relocations_for(index)?;
                sections.push((id, data, relocations));
            }
        }
        if !sections
            .iter()
            .any(|(id, data, _)| *id == gimli::SectionId::DebugInfo && !data.is_empty())
        {
            return Err(Error::NoDebugInfo {
                path: image.path().to_path_buf(),
            });
        }
        let debug_frame = match image.section_data(".debug_frame")? {
            Some((index, data)) => Some((data, image.relocations_for(index)?)),
            None => None,
        };
        Ok(DebugSections {
            path: image.path().to_path_buf(),
            sections,
            debug_frame,
        })
    }

    fn reader<'s>(&'s self, data: &'s [u8], relocations: &RelocationView) -> Reader<'s> {
        gimli::RelocateReader::new(EndianSlice::new(data, LittleEndian), relocations.clone())
    }

    /// A gimli `Dwarf` over these sections.
    pub(crate) fn dwarf(&self) -> Result<gimli::Dwarf<Reader<'_>>> {
        let empty: &[u8] = &[];
        let load = |id: gimli::SectionId| -> std::result::Result<Reader<'_>, gimli::Error> {
            Ok(match self.sections.iter().find(|(sid, _, _)| *sid == id) {
                Some((_, data, relocations)) => self.reader(data, relocations),
                None => self.reader(empty, &RelocationView::None),
            })
        };
        gimli::Dwarf::load(load).map_err(|e| self.err(e))
    }

    /// A gimli `Dwarf` whose `.debug_info` is only the unit at `offset`
    /// (rebased to 0) and which has no `.debug_aranges`: what a reader
    /// that indexes every unit up front (addr2line) needs for one address.
    /// `None` when `.debug_info` is relocated (offsets would no longer
    /// match) or the unit's length is out of bounds.
    pub(crate) fn unit_dwarf(&self, offset: usize) -> Result<Option<gimli::Dwarf<Reader<'_>>>> {
        let Some((_, info, relocations)) = self
            .sections
            .iter()
            .find(|(id, _, _)| *id == gimli::SectionId::DebugInfo)
        else {
            return Ok(None);
        };
        if !matches!(relocations, RelocationView::None) {
            return Ok(None);
        }
        let word = |at: usize, n: usize| -> Option<u64> {
            let b = info.get(at..at + n)?;
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(b);
            Some(u64::from_le_bytes(w))
        };
        let Some(length) = word(offset, 4) else {
            return Ok(None);
        };
        let end = if length == 0xffff_ffff {
            word(offset + 4, 8).and_then(|l| usize::try_from(l).ok()?.checked_add(offset + 12))
        } else {
            (length as usize).checked_add(offset + 4)
        };
        let Some(unit) = end.and_then(|end| info.get(offset..end)) else {
            return Ok(None);
        };
        let empty: &[u8] = &[];
        let load = |id: gimli::SectionId| -> std::result::Result<Reader<'_>, gimli::Error> {
            Ok(match id {
                gimli::SectionId::DebugInfo => self.reader(unit, &RelocationView::None),
                gimli::SectionId::DebugAranges => self.reader(empty, &RelocationView::None),
                _ => match self.sections.iter().find(|(sid, _, _)| *sid == id) {
                    Some((_, data, relocations)) => self.reader(data, relocations),
                    None => self.reader(empty, &RelocationView::None),
                },
            })
        };
        gimli::Dwarf::load(load).map(Some).map_err(|e| self.err(e))
    }

    /// `.debug_frame`, when present.
    pub(crate) fn debug_frame(&self) -> Option<gimli::DebugFrame<Reader<'_>>> {
        let (data, relocations) = self.debug_frame.as_ref()?;
        let mut frame = gimli::DebugFrame::from(self.reader(data, relocations));
        frame.set_address_size(8);
        Some(frame)
    }

    /// Map a gimli error to this crate's error, naming the file.
    pub(crate) fn err(&self, source: gimli::Error) -> Error {
        Error::Dwarf {
            path: self.path.clone(),
            source,
        }
    }
}

/// Where a variable lives over some pc range, as its DWARF location
/// expression says. Plain data: the CLI renders it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Place {
    /// In memory at frame base + offset (`DW_OP_fbreg`); the frame base
    /// is the CFA for every function GCC builds for the x86_64 kernel.
    Stack {
        /// Offset from the canonical frame address.
        cfa_offset: i64,
    },
    /// In memory at a register's value + offset (`DW_OP_bregN`).
    RegisterOffset {
        /// The base register.
        register: Register,
        /// The offset added to it.
        offset: i64,
    },
    /// In memory at a fixed address (a `static` local).
    Static {
        /// The address.
        address: u64,
    },
    /// In a register.
    Register {
        /// The register.
        register: Register,
    },
    /// Split into pieces (registers, or partly optimised out).
    Pieces,
    /// Only its value at function entry is known (`DW_OP_entry_value`).
    EntryValue,
    /// A computed value with no memory behind it.
    ComputedValue,
    /// An empty expression: optimised out over this range.
    OptimisedOut,
    /// Any other DWARF expression.
    Expression,
    /// An expression gimli could not parse.
    Unparsable {
        /// gimli's description.
        reason: String,
    },
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Stack { cfa_offset } => write!(f, "stack CFA{cfa_offset:+}"),
            Place::Static { address } => write!(f, "static at {address:#x}"),
            Place::Register { register } => write!(f, "register %{}", register.text()),
            Place::RegisterOffset { .. } | Place::Expression => {
                f.write_str("a DWARF expression that is not a plain stack slot")
            }
            Place::Pieces => f.write_str("split into pieces (registers or partly optimised out)"),
            Place::EntryValue => f.write_str("only its value at function entry is known"),
            Place::ComputedValue => f.write_str("a computed value with no memory behind it"),
            Place::OptimisedOut => f.write_str("optimised out"),
            Place::Unparsable { reason } => write!(f, "unparsable expression ({reason})"),
        }
    }
}

/// Distinct places, at most four, with `…` for more.
pub fn places_summary(places: &[Place]) -> String {
    let mut shown: Vec<String> = Vec::new();
    for text in places.iter().map(Place::to_string) {
        if !shown.contains(&text) {
            shown.push(text);
        }
    }
    let more = if shown.len() > 4 { ", …" } else { "" };
    shown.truncate(4);
    format!("{}{more}", shown.join(", "))
}

/// A variable's location over its scope.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Location {
    /// No `DW_AT_location`: optimised out everywhere.
    Absent,
    /// One place for the whole scope.
    Single(Place),
    /// A location list: `[begin, end)` ranges with a place each.
    List(Vec<(u64, u64, Place)>),
}

/// A local variable or parameter of a function.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// `true` for a formal parameter.
    pub parameter: bool,
    /// The declaration line.
    pub decl_line: Option<u64>,
    /// The pc ranges of the lexical block it is declared in; `None` when it
    /// is declared at function level.
    pub block_ranges: Option<Vec<(u64, u64)>>,
    /// The inlined function it belongs to, when it is a local of an inlined
    /// call rather than of the function itself.
    pub inlined_from: Option<String>,
    /// Where it lives.
    pub location: Location,
    /// Its type DIE.
    pub type_offset: Option<UnitOffset>,
}

/// The frame base a function's `DW_OP_fbreg` offsets are relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameBase {
    /// `DW_OP_call_frame_cfa`: the CFA.
    Cfa,
    /// No frame base attribute.
    None,
    /// Anything else (not produced by GCC for x86_64 kernels).
    Unsupported,
}

/// A function's DWARF description.
#[derive(Debug, Clone)]
pub struct Function {
    /// The name in DWARF (for `foo.isra.0` this is `foo`).
    pub name: String,
    /// The compilation unit's name (source file).
    pub unit_name: String,
    /// The DIE of the subprogram.
    #[allow(dead_code)]
    pub offset: UnitOffset,
    /// What `DW_OP_fbreg` is relative to.
    pub frame_base: FrameBase,
    /// Its locals and parameters, in DIE order.
    pub variables: Vec<Variable>,
}

/// The DWARF of one image with its lookups memoised: `.debug_aranges`
/// sorted once, each unit parsed at most once, and per unit the
/// subprogram entry points and the line table decoded at most once. All
/// lazily: nothing is read before the first question that needs it.
pub(crate) struct DebugInfo<'s> {
    sections: &'s DebugSections<'s>,
    dwarf: gimli::Dwarf<Reader<'s>>,
    /// `.debug_aranges` entries sorted by start address.
    aranges: OnceCell<Aranges>,
    /// Every unit header, in `.debug_info` order, with its parsed unit.
    units: OnceCell<Vec<(gimli::UnitHeader<Reader<'s>>, OnceCell<CachedUnit<'s>>)>>,
    /// Per unit (by position in `units`), its address ranges, for images
    /// without aranges (common in `.ko` files).
    unit_ranges: OnceCell<Vec<Vec<(u64, u64)>>>,
}

/// `.debug_aranges` as a sorted table.
struct Aranges {
    /// (begin, end, position in the section, unit offset), by `begin`.
    entries: Vec<(u64, u64, usize, gimli::DebugInfoOffset)>,
    /// The longest entry: how far back a lookup has to look.
    longest: u64,
}

/// One parsed unit and what has been derived from it so far.
pub(crate) struct CachedUnit<'s> {
    unit: gimli::Unit<Reader<'s>>,
    /// Subprogram entry pcs and DIEs, by pc (DIE order among equals).
    subprograms: OnceCell<Vec<(u64, UnitOffset)>>,
    /// The line table as address ranges.
    lines: OnceCell<Option<LineTable<'s>>>,
}

/// A unit's line table: `[begin, end)` runs of one file and line.
struct LineTable<'s> {
    /// (begin, end, file index, line), by `begin` (row order among equals).
    runs: Vec<(u64, u64, u64, u64)>,
    /// The longest run.
    longest: u64,
    header: gimli::LineProgramHeader<Reader<'s>>,
}

impl<'s> DebugInfo<'s> {
    /// The DWARF of `sections`, with nothing parsed yet.
    pub(crate) fn new(sections: &'s DebugSections<'s>) -> Result<DebugInfo<'s>> {
        Ok(DebugInfo {
            sections,
            dwarf: sections.dwarf()?,
            aranges: OnceCell::new(),
            units: OnceCell::new(),
            unit_ranges: OnceCell::new(),
        })
    }

    fn aranges(&self) -> Result<&Aranges> {
        if let Some(a) = self.aranges.get() {
            return Ok(a);
        }
        let e = |err| self.sections.err(err);
        let mut entries = Vec::new();
        let mut headers = self.dwarf.debug_aranges.headers();
        while let Some(header) = headers.next().map_err(e)? {
            let mut list = header.entries();
            while let Some(entry) = list.next().map_err(e)? {
                let range = entry.range();
                if range.begin < range.end {
                    let position = entries.len();
                    entries.push((range.begin, range.end, position, header.debug_info_offset()));
                }
            }
        }
        entries.sort_by_key(|&(begin, _, position, _)| (begin, position));
        let longest = entries.iter().map(|(b, e, _, _)| e - b).max().unwrap_or(0);
        Ok(self.aranges.get_or_init(|| Aranges { entries, longest }))
    }

    fn units(&self) -> Result<&[(gimli::UnitHeader<Reader<'s>>, OnceCell<CachedUnit<'s>>)]> {
        if let Some(u) = self.units.get() {
            return Ok(u);
        }
        let mut units = Vec::new();
        let mut headers = self.dwarf.units();
        while let Some(header) = headers.next().map_err(|e| self.sections.err(e))? {
            units.push((header, OnceCell::new()));
        }
        Ok(self.units.get_or_init(|| units))
    }

    /// The unit at position `index` of `.debug_info`, parsed once.
    pub(crate) fn unit_by_index(&self, index: usize) -> Result<Option<UnitContext<'_, 's>>> {
        self.unit_at_index(index)
    }

    fn unit_at_index(&self, index: usize) -> Result<Option<UnitContext<'_, 's>>> {
        let Some((header, cell)) = self.units()?.get(index) else {
            return Ok(None);
        };
        let cached = match cell.get() {
            Some(c) => c,
            None => {
                let unit = self
                    .dwarf
                    .unit(header.clone())
                    .map_err(|e| self.sections.err(e))?;
                cell.get_or_init(|| CachedUnit {
                    unit,
                    subprograms: OnceCell::new(),
                    lines: OnceCell::new(),
                })
            }
        };
        Ok(Some(UnitContext {
            dwarf: &self.dwarf,
            unit: &cached.unit,
            cached,
            sections: self.sections,
        }))
    }

    /// The offset of the unit `.debug_aranges` says covers `address`
    /// (no unit is parsed).
    pub(crate) fn unit_offset_for_address(&self, address: u64) -> Result<Option<usize>> {
        let aranges = self.aranges()?;
        let after = aranges
            .entries
            .partition_point(|(b, _, _, _)| *b <= address);
        Ok(aranges.entries[..after]
            .iter()
            .rev()
            .take_while(|(b, _, _, _)| b.saturating_add(aranges.longest) > address)
            .filter(|(_, e, _, _)| address < *e)
            .min_by_key(|(_, _, position, _)| *position)
            .map(|&(_, _, _, offset)| offset.0))
    }

    /// Find the unit covering `address`, through `.debug_aranges` first and
    /// then, if it has no entry, through each unit's ranges.
    pub(crate) fn unit_for_address(&self, address: u64) -> Result<Option<UnitContext<'_, 's>>> {
        let aranges = self.aranges()?;
        let after = aranges
            .entries
            .partition_point(|(b, _, _, _)| *b <= address);
        // The first entry in section order that covers `address`.
        let found = aranges.entries[..after]
            .iter()
            .rev()
            .take_while(|(b, _, _, _)| b.saturating_add(aranges.longest) > address)
            .filter(|(_, e, _, _)| address < *e)
            .min_by_key(|(_, _, position, _)| *position);
        if let Some(&(_, _, _, offset)) = found {
            let units = self.units()?;
            if let Ok(index) = units.binary_search_by_key(&offset, |(h, _)| {
                h.offset()
                    .as_debug_info_offset()
                    .unwrap_or(gimli::DebugInfoOffset(0))
            }) {
                return self.unit_at_index(index);
            }
            return Err(self.sections.err(gimli::Error::NoEntryAtGivenOffset));
        }
        // Fallback for images without aranges (common in .ko files).
        let ranges = self.unit_ranges()?;
        for (index, list) in ranges.iter().enumerate() {
            if list.iter().any(|(b, e)| *b <= address && address < *e) {
                return self.unit_at_index(index);
            }
        }
        Ok(None)
    }

    fn unit_ranges(&self) -> Result<&[Vec<(u64, u64)>]> {
        if let Some(r) = self.unit_ranges.get() {
            return Ok(r);
        }
        let count = self.units()?.len();
        let mut all = Vec::with_capacity(count);
        for index in 0..count {
            let mut list = Vec::new();
            if let Some(unit) = self.unit_at_index(index)? {
                let mut ranges = self
                    .dwarf
                    .unit_ranges(unit.unit)
                    .map_err(|e| self.sections.err(e))?;
                while let Some(range) = ranges.next().map_err(|e| self.sections.err(e))? {
                    list.push((range.begin, range.end));
                }
            }
            all.push(list);
        }
        Ok(self.unit_ranges.get_or_init(|| all))
    }
}

/// One compilation unit, parsed, with the queries resolve needs.
pub(crate) struct UnitContext<'d, 's> {
    pub(crate) dwarf: &'d gimli::Dwarf<Reader<'s>>,
    pub(crate) unit: &'d gimli::Unit<Reader<'s>>,
    cached: &'d CachedUnit<'s>,
    sections: &'d DebugSections<'s>,
}

impl<'d, 's> UnitContext<'d, 's> {
    fn e(&self, err: gimli::Error) -> Error {
        self.sections.err(err)
    }

    /// The unit's name (its primary source file).
    pub(crate) fn name(&self) -> String {
        self.unit
            .name
            .as_ref()
            .and_then(|n| n.to_string_lossy().ok().map(|s| s.into_owned()))
            .unwrap_or_else(|| "<unknown unit>".to_string())
    }

    /// A string attribute as text.
    fn string(&self, value: AttributeValue<Reader<'s>>) -> Option<String> {
        let reader = self.dwarf.attr_string(self.unit, value).ok()?;
        reader.to_string_lossy().ok().map(|s| s.into_owned())
    }

    /// Attribute `at` of the DIE at `offset`, following `DW_AT_abstract_origin`
    /// and `DW_AT_specification` (within this unit) when the DIE lacks it.
    pub(crate) fn attr_followed(
        &self,
        offset: UnitOffset,
        at: gimli::DwAt,
    ) -> Result<Option<AttributeValue<Reader<'s>>>> {
        let mut current = offset;
        for _ in 0..8 {
            let entry = self.unit.entry(current).map_err(|e| self.e(e))?;
            if let Some(value) = entry.attr_value(at).map_err(|e| self.e(e))? {
                return Ok(Some(value));
            }
            let origin = match entry
                .attr_value(gimli::DW_AT_abstract_origin)
                .map_err(|e| self.e(e))?
            {
                Some(v) => Some(v),
                None => entry
                    .attr_value(gimli::DW_AT_specification)
                    .map_err(|e| self.e(e))?,
            };
            match origin {
                Some(AttributeValue::UnitRef(next)) => current = next,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The name of the DIE at `offset` (following origins).
    pub(crate) fn name_of(&self, offset: UnitOffset) -> Result<Option<String>> {
        Ok(self
            .attr_followed(offset, gimli::DW_AT_name)?
            .and_then(|v| self.string(v)))
    }

    /// An unsigned constant attribute.
    pub(crate) fn udata_of(&self, offset: UnitOffset, at: gimli::DwAt) -> Result<Option<u64>> {
        Ok(self
            .attr_followed(offset, at)?
            .and_then(|v| v.udata_value()))
    }

    /// A reference attribute to a DIE in this unit (`DW_AT_type`).
    pub(crate) fn ref_of(&self, offset: UnitOffset, at: gimli::DwAt) -> Result<Option<UnitOffset>> {
        Ok(match self.attr_followed(offset, at)? {
            Some(AttributeValue::UnitRef(r)) => Some(r),
            _ => None,
        })
    }

    /// The tag of the DIE at `offset`.
    pub(crate) fn tag_of(&self, offset: UnitOffset) -> Result<gimli::DwTag> {
        Ok(self.unit.entry(offset).map_err(|e| self.e(e))?.tag())
    }

    /// The top-level DIEs of the unit (children of its root), as offsets.
    pub(crate) fn root_children(&self) -> Result<Vec<UnitOffset>> {
        let mut tree = self.unit.entries_tree(None).map_err(|e| self.e(e))?;
        let root = tree.root().map_err(|e| self.e(e))?;
        let mut children = root.children();
        let mut out = Vec::new();
        while let Some(child) = children.next().map_err(|e| self.e(e))? {
            out.push(child.entry().offset());
        }
        Ok(out)
    }

    /// The children of the DIE at `offset`, as offsets.
    pub(crate) fn children_of(&self, offset: UnitOffset) -> Result<Vec<UnitOffset>> {
        let mut tree = self
            .unit
            .entries_tree(Some(offset))
            .map_err(|e| self.e(e))?;
        let root = tree.root().map_err(|e| self.e(e))?;
        let mut children = root.children();
        let mut out = Vec::new();
        while let Some(child) = children.next().map_err(|e| self.e(e))? {
            out.push(child.entry().offset());
        }
        Ok(out)
    }

    /// The subprogram DIE whose entry pc is `address` (the first in DIE
    /// order when several are).
    pub(crate) fn subprogram_at(&self, address: u64) -> Result<Option<UnitOffset>> {
        let list = match self.cached.subprograms.get() {
            Some(list) => list,
            None => {
                let list = self.subprogram_entries()?;
                self.cached.subprograms.get_or_init(|| list)
            }
        };
        let first = list.partition_point(|(pc, _)| *pc < address);
        Ok(list
            .get(first)
            .filter(|(pc, _)| *pc == address)
            .map(|(_, offset)| *offset))
    }

    /// Every subprogram's entry pc with its DIE, sorted by pc. C puts
    /// every function at the unit's top level, so only that level is
    /// read; the subtrees between are skipped by their sibling links.
    fn subprogram_entries(&self) -> Result<Vec<(u64, UnitOffset)>> {
        let mut list = Vec::new();
        let mut tree = self.unit.entries_tree(None).map_err(|e| self.e(e))?;
        let root = tree.root().map_err(|e| self.e(e))?;
        let mut children = root.children();
        while let Some(child) = children.next().map_err(|e| self.e(e))? {
            let entry = child.entry();
            if entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            if let Some(AttributeValue::Addr(low)) = entry
                .attr_value(gimli::DW_AT_low_pc)
                .map_err(|e| self.e(e))?
            {
                list.push((low, entry.offset()));
                continue;
            }
            if entry
                .attr_value(gimli::DW_AT_ranges)
                .map_err(|e| self.e(e))?
                .is_some()
            {
                let mut ranges = self
                    .dwarf
                    .die_ranges(self.unit, entry)
                    .map_err(|e| self.e(e))?;
                if let Some(first) = ranges.next().map_err(|e| self.e(e))? {
                    // The entry pc is the lowest address of the first range
                    // (the hot part; `.cold` parts come later).
                    list.push((first.begin, entry.offset()));
                }
            }
        }
        // Stable: among equal pcs, DIE order is kept.
        list.sort_by_key(|(pc, _)| *pc);
        Ok(list)
    }

    /// A top-level subprogram DIE (definition or declaration) named `name`.
    pub(crate) fn subprogram_named(&self, name: &str) -> Result<Option<UnitOffset>> {
        let mut cursor = self.unit.entries();
        let mut depth = 0isize;
        while let Some((delta, entry)) = cursor.next_dfs().map_err(|e| self.e(e))? {
            depth += delta;
            if depth != 1 || entry.tag() != gimli::DW_TAG_subprogram {
                continue;
            }
            if let Some(value) = entry.attr_value(gimli::DW_AT_name).map_err(|e| self.e(e))? {
                if self.string(value).as_deref() == Some(name) {
                    return Ok(Some(entry.offset()));
                }
            }
        }
        Ok(None)
    }

    /// Describe the function whose subprogram DIE is `offset`.
    pub(crate) fn function(&self, offset: UnitOffset) -> Result<Function> {
        let name = self
            .name_of(offset)?
            .unwrap_or_else(|| "<anonymous>".to_string());
        let entry = self.unit.entry(offset).map_err(|e| self.e(e))?;
        let frame_base = match entry
            .attr_value(gimli::DW_AT_frame_base)
            .map_err(|e| self.e(e))?
        {
            None => FrameBase::None,
            Some(AttributeValue::Exprloc(expr)) => {
                let mut ops = expr.operations(self.unit.encoding());
                match (ops.next(), ops.next()) {
                    (Ok(Some(Operation::CallFrameCFA)), Ok(None)) => FrameBase::Cfa,
                    _ => FrameBase::Unsupported,
                }
            }
            Some(_) => FrameBase::Unsupported,
        };
        let mut variables = Vec::new();
        let mut tree = self
            .unit
            .entries_tree(Some(offset))
            .map_err(|e| self.e(e))?;
        let root = tree.root().map_err(|e| self.e(e))?;
        self.collect_variables(root, None, None, &mut variables)?;
        Ok(Function {
            name,
            unit_name: self.name(),
            offset,
            frame_base,
            variables,
        })
    }

    fn collect_variables(
        &self,
        node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'s>>,
        block: Option<Vec<(u64, u64)>>,
        inlined: Option<String>,
        out: &mut Vec<Variable>,
    ) -> Result<()> {
        let mut children = node.children();
        while let Some(child) = children.next().map_err(|e| self.e(e))? {
            let entry = child.entry();
            let tag = entry.tag();
            let offset = entry.offset();
            match tag {
                gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {
                    let Some(name) = self.name_of(offset)? else {
                        continue;
                    };
                    let location = match entry
                        .attr_value(gimli::DW_AT_location)
                        .map_err(|e| self.e(e))?
                    {
                        None => Location::Absent,
                        Some(AttributeValue::Exprloc(expr)) => Location::Single(self.place(expr)),
                        Some(value) => self.location_list(value)?,
                    };
                    out.push(Variable {
                        name,
                        parameter: tag == gimli::DW_TAG_formal_parameter,
                        decl_line: self.udata_of(offset, gimli::DW_AT_decl_line)?,
                        block_ranges: block.clone(),
                        inlined_from: inlined.clone(),
                        location,
                        type_offset: self.ref_of(offset, gimli::DW_AT_type)?,
                    });
                }
                gimli::DW_TAG_lexical_block => {
                    let mut ranges = Vec::new();
                    let mut iter = self
                        .dwarf
                        .die_ranges(self.unit, entry)
                        .map_err(|e| self.e(e))?;
                    while let Some(r) = iter.next().map_err(|e| self.e(e))? {
                        ranges.push((r.begin, r.end));
                    }
                    self.collect_variables(child, Some(ranges), inlined.clone(), out)?;
                }
                gimli::DW_TAG_inlined_subroutine => {
                    let callee = self
                        .name_of(offset)?
                        .unwrap_or_else(|| "<inlined>".to_string());
                    self.collect_variables(child, block.clone(), Some(callee), out)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn location_list(&self, value: AttributeValue<Reader<'s>>) -> Result<Location> {
        let Some(mut iter) = self
            .dwarf
            .attr_locations(self.unit, value)
            .map_err(|e| self.e(e))?
        else {
            return Ok(Location::Absent);
        };
        let mut entries = Vec::new();
        while let Some(entry) = iter.next().map_err(|e| self.e(e))? {
            entries.push((entry.range.begin, entry.range.end, self.place(entry.data)));
        }
        Ok(Location::List(entries))
    }

    /// Classify one location expression.
    fn place(&self, expr: gimli::Expression<Reader<'s>>) -> Place {
        let mut ops = expr.operations(self.unit.encoding());
        let mut list = Vec::new();
        loop {
            match ops.next() {
                Ok(Some(op)) => list.push(op),
                Ok(None) => break,
                Err(e) => {
                    return Place::Unparsable {
                        reason: e.to_string(),
                    };
                }
            }
        }
        match list.as_slice() {
            [Operation::FrameOffset { offset }] => Place::Stack {
                cfa_offset: *offset,
            },
            [
                Operation::RegisterOffset {
                    register,
                    offset,
                    base_type,
                },
            ] if base_type.0 == 0 => Place::RegisterOffset {
                register: Register::from(*register),
                offset: *offset,
            },
            [Operation::Address { address }] => Place::Static { address: *address },
            [Operation::Register { register }] => Place::Register {
                register: Register::from(*register),
            },
            [] => Place::OptimisedOut,
            ops => {
                if ops.iter().any(|o| matches!(o, Operation::Piece { .. })) {
                    Place::Pieces
                } else if ops
                    .iter()
                    .any(|o| matches!(o, Operation::EntryValue { .. }))
                {
                    Place::EntryValue
                } else if ops
                    .iter()
                    .any(|o| matches!(o, Operation::StackValue | Operation::ImplicitValue { .. }))
                {
                    Place::ComputedValue
                } else {
                    Place::Expression
                }
            }
        }
    }

    /// The source file and line of `address`, from this unit's line table:
    /// the row run covering it that starts last.
    pub(crate) fn line_of(&self, address: u64) -> Result<Option<(String, u64)>> {
        let table = match self.cached.lines.get() {
            Some(t) => t,
            None => {
                let t = self.line_table()?;
                self.cached.lines.get_or_init(|| t)
            }
        };
        let Some(table) = table else {
            return Ok(None);
        };
        let after = table.runs.partition_point(|(b, _, _, _)| *b <= address);
        // Walking back from the last run that starts at or before
        // `address`, the first that covers it starts last (and among runs
        // starting at the same pc, comes last in row order).
        let Some(&(_, _, file_index, line)) = table.runs[..after]
            .iter()
            .rev()
            .take_while(|(b, _, _, _)| b.saturating_add(table.longest) > address)
            .find(|(_, e, _, _)| address < *e)
        else {
            return Ok(None);
        };
        let header = &table.header;
        let Some(file) = header.file(file_index) else {
            return Ok(Some(("<unknown>".to_string(), line)));
        };
        let name = self
            .string(file.path_name())
            .unwrap_or_else(|| "<unknown>".to_string());
        let dir = file
            .directory(header)
            .and_then(|d| self.string(d))
            .filter(|d| !d.is_empty() && !name.starts_with('/'));
        let path = match dir {
            Some(d) if file.directory_index() != 0 => format!("{d}/{name}"),
            _ => name,
        };
        Ok(Some((path, line)))
    }

    /// Decode the unit's line program once into sorted runs.
    fn line_table(&self) -> Result<Option<LineTable<'s>>> {
        let Some(program) = self.unit.line_program.clone() else {
            return Ok(None);
        };
        let mut rows = program.rows();
        let mut runs = Vec::new();
        let mut previous: Option<(u64, u64, u64)> = None; // (address, file index, line)
        while let Some((_, row)) = rows.next_row().map_err(|e| self.e(e))? {
            let here = (
                row.address(),
                row.file_index(),
                row.line().map_or(0, |l| l.get()),
            );
            if let Some(prev) = previous {
                if prev.0 < here.0 {
                    runs.push((prev.0, here.0, prev.1, prev.2));
                }
            }
            previous = if row.end_sequence() { None } else { Some(here) };
        }
        // Stable: among runs starting at the same pc, row order is kept.
        runs.sort_by_key(|(b, _, _, _)| *b);
        let longest = runs.iter().map(|(b, e, _, _)| e - b).max().unwrap_or(0);
        Ok(Some(LineTable {
            runs,
            longest,
            header: rows.header().clone(),
        }))
    }
}

impl DebugSections<'_> {
    /// Whether `.debug_str` holds `name` as a whole string (or the name is
    /// short enough to be stored inline, where it cannot be searched).
    pub(crate) fn strings_contain(&self, name: &str) -> bool {
        if name.len() < 8 {
            return true;
        }
        let Some((_, data, _)) = self
            .sections
            .iter()
            .find(|(id, _, _)| *id == gimli::SectionId::DebugStr)
        else {
            return true;
        };
        let needle = name.as_bytes();
        data.split(|&b| b == 0).any(|s| s == needle)
    }

    /// Size of `.debug_info` in bytes.
    pub(crate) fn debug_info_len(&self) -> usize {
        self.sections
            .iter()
            .find(|(id, _, _)| *id == gimli::SectionId::DebugInfo)
            .map_or(0, |(_, d, _)| d.len())
    }
}
