//! C types from DWARF, and variable paths through them.
//!
//! A [`VariablePath`] is what the user types after the function name:
//! `req`, `req.hdr.len`, `buf[8]`, `a[1][2].x`. Walking it through the
//! variable's type gives a byte range inside the variable. Paths that go
//! through a pointer (`ctx->field`, `*p`, indexing a pointer) are refused:
//! the pointee is not in this function's stack frame.

use gimli::UnitOffset;

use crate::dwarf::{DebugInfo, DebugSections, UnitContext};
use crate::elf::{DebugFile, ElfImage};
use crate::error::{Error, Result};

/// One step of a variable path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// `.name`
    Member(String),
    /// `[index]`
    Index(u64),
}

/// A variable name with member and index steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariablePath {
    /// The variable's name.
    pub root: String,
    /// The steps after it.
    pub steps: Vec<PathStep>,
    /// The path as typed.
    pub text: String,
}

fn bad(text: &str, reason: impl Into<String>) -> Error {
    Error::BadPath {
        path: text.to_string(),
        reason: reason.into(),
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl VariablePath {
    /// Parse `text`.
    pub fn parse(text: &str) -> Result<VariablePath> {
        let text = text.trim();
        if text.contains("->") || text.starts_with('*') {
            return Err(bad(
                text,
                "it goes through a pointer; only memory in the function's own stack frame \
                 can be watched from its frame. Watch the pointer variable itself, or resolve \
                 the pointee in the function that has it on its stack",
            ));
        }
        let root_len = text.find(|c: char| !is_ident_char(c)).unwrap_or(text.len());
        let root = &text[..root_len];
        if root.is_empty() || root.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad(text, "expected a C identifier first"));
        }
        let mut steps = Vec::new();
        let mut rest = &text[root_len..];
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let len = after
                    .find(|c: char| !is_ident_char(c))
                    .unwrap_or(after.len());
                if len == 0 {
                    return Err(bad(text, "expected a member name after `.`"));
                }
                steps.push(PathStep::Member(after[..len].to_string()));
                rest = &after[len..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let close = after.find(']').ok_or_else(|| bad(text, "missing `]`"))?;
                let digits = after[..close].trim();
                let index = if let Some(hex) = digits.strip_prefix("0x") {
                    u64::from_str_radix(hex, 16)
                } else {
                    digits.parse()
                }
                .map_err(|_| {
                    bad(
                        text,
                        format!("index `{digits}` is not a non-negative number"),
                    )
                })?;
                steps.push(PathStep::Index(index));
                rest = &after[close + 1..];
            } else {
                return Err(bad(text, format!("unexpected `{rest}`")));
            }
        }
        Ok(VariablePath {
            root: root.to_string(),
            steps,
            text: text.to_string(),
        })
    }
}

/// The bytes a path selects inside its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Offset from the start of the variable.
    pub offset: u64,
    /// Size of the selected object.
    pub size: u64,
    /// Its C type, as text.
    pub type_name: String,
    /// Set when the selection is a bit-field: the watch covers its storage.
    pub bitfield: bool,
}

/// What a type is, after typedefs and qualifiers are stripped.
enum Shape {
    Aggregate(UnitOffset),
    Array {
        element: Option<UnitOffset>,
        dims: Vec<Option<u64>>,
    },
    Pointer,
    Other,
}

impl UnitContext<'_, '_> {
    /// Strip typedefs and cv-qualifiers.
    fn strip(&self, mut offset: UnitOffset) -> Result<Option<UnitOffset>> {
        for _ in 0..32 {
            match self.tag_of(offset)? {
                gimli::DW_TAG_typedef
                | gimli::DW_TAG_const_type
                | gimli::DW_TAG_volatile_type
                | gimli::DW_TAG_restrict_type
                | gimli::DW_TAG_atomic_type => match self.ref_of(offset, gimli::DW_AT_type)? {
                    Some(next) => offset = next,
                    None => return Ok(None), // const void
                },
                _ => return Ok(Some(offset)),
            }
        }
        Ok(Some(offset))
    }

    fn shape(&self, offset: UnitOffset) -> Result<Shape> {
        let Some(stripped) = self.strip(offset)? else {
            return Ok(Shape::Other);
        };
        Ok(match self.tag_of(stripped)? {
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
                Shape::Aggregate(stripped)
            }
            gimli::DW_TAG_array_type => {
                let mut dims = Vec::new();
                for child in self.children_of(stripped)? {
                    if self.tag_of(child)? != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let count = match self.udata_of(child, gimli::DW_AT_count)? {
                        Some(c) => Some(c),
                        None => self
                            .udata_of(child, gimli::DW_AT_upper_bound)?
                            .map(|u| u + 1),
                    };
                    dims.push(count);
                }
                Shape::Array {
                    element: self.ref_of(stripped, gimli::DW_AT_type)?,
                    dims,
                }
            }
            gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type => Shape::Pointer,
            _ => Shape::Other,
        })
    }

    /// The size in bytes of the type at `offset`.
    pub(crate) fn type_size(&self, offset: UnitOffset) -> Result<Option<u64>> {
        let mut current = offset;
        for _ in 0..32 {
            if let Some(size) = self.udata_of(current, gimli::DW_AT_byte_size)? {
                return Ok(Some(size));
            }
            match self.tag_of(current)? {
                gimli::DW_TAG_array_type => {
                    let Shape::Array { element, dims } = self.shape(current)? else {
                        return Ok(None);
                    };
                    let Some(element) = element else {
                        return Ok(None);
                    };
                    let Some(element_size) = self.type_size(element)? else {
                        return Ok(None);
                    };
                    let mut total = element_size;
                    for d in dims {
                        total = total.saturating_mul(d.unwrap_or(0));
                    }
                    return Ok(Some(total));
                }
                gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type => return Ok(Some(8)),
                _ => match self.ref_of(current, gimli::DW_AT_type)? {
                    Some(next) => current = next,
                    None => return Ok(None),
                },
            }
        }
        Ok(None)
    }

    /// The C spelling of the type at `offset` (`struct open_flags`, `char[40]`).
    pub(crate) fn type_name(&self, offset: Option<UnitOffset>) -> Result<String> {
        self.type_name_depth(offset, 0)
    }

    fn type_name_depth(&self, offset: Option<UnitOffset>, depth: u32) -> Result<String> {
        let Some(offset) = offset else {
            return Ok("void".to_string());
        };
        if depth > 16 {
            return Ok("…".to_string());
        }
        let name = self.name_of(offset)?;
        let inner = |s: &Self| s.type_name_depth(s.ref_of(offset, gimli::DW_AT_type)?, depth + 1);
        Ok(match self.tag_of(offset)? {
            gimli::DW_TAG_structure_type => {
                format!("struct {}", name.unwrap_or_else(|| "<anonymous>".into()))
            }
            gimli::DW_TAG_union_type => {
                format!("union {}", name.unwrap_or_else(|| "<anonymous>".into()))
            }
            gimli::DW_TAG_enumeration_type => {
                format!("enum {}", name.unwrap_or_else(|| "<anonymous>".into()))
            }
            gimli::DW_TAG_pointer_type => format!("{} *", inner(self)?),
            gimli::DW_TAG_const_type => format!("const {}", inner(self)?),
            gimli::DW_TAG_volatile_type => format!("volatile {}", inner(self)?),
            gimli::DW_TAG_array_type => {
                let Shape::Array { element, dims } = self.shape(offset)? else {
                    return Ok("<array>".into());
                };
                let mut text = self.type_name_depth(element, depth + 1)?;
                for d in dims {
                    match d {
                        Some(n) => text.push_str(&format!("[{n}]")),
                        None => text.push_str("[]"),
                    }
                }
                text
            }
            gimli::DW_TAG_subroutine_type => "function".to_string(),
            _ => name.unwrap_or_else(|| "<type>".into()),
        })
    }

    /// A member of the aggregate at `aggregate` called `name`, searching
    /// anonymous members too: (byte offset, type, is bit-field).
    fn member(
        &self,
        aggregate: UnitOffset,
        name: &str,
    ) -> Result<Option<(u64, Option<UnitOffset>, bool)>> {
        for child in self.children_of(aggregate)? {
            if self.tag_of(child)? != gimli::DW_TAG_member {
                continue;
            }
            let offset = self.udata_of(child, gimli::DW_AT_data_member_location)?;
            let bit_offset = self.udata_of(child, gimli::DW_AT_data_bit_offset)?;
            let bitfield = self.udata_of(child, gimli::DW_AT_bit_size)?.is_some();
            let byte_offset = offset.unwrap_or_else(|| bit_offset.map_or(0, |b| b / 8));
            let member_type = self.ref_of(child, gimli::DW_AT_type)?;
            match self.name_of(child)? {
                Some(n) if n == name => return Ok(Some((byte_offset, member_type, bitfield))),
                Some(_) => {}
                None => {
                    // An anonymous struct or union: look inside.
                    if let Some(t) = member_type {
                        if let Shape::Aggregate(inner) = self.shape(t)? {
                            if let Some((o, ty, bf)) = self.member(inner, name)? {
                                return Ok(Some((byte_offset + o, ty, bf)));
                            }
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    fn member_names(&self, aggregate: UnitOffset) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for child in self.children_of(aggregate)? {
            if self.tag_of(child)? == gimli::DW_TAG_member {
                if let Some(n) = self.name_of(child)? {
                    names.push(n);
                }
            }
        }
        Ok(names)
    }

    /// Whether parameter number `position` of the subprogram at `subprogram`
    /// is a pointer to const. `None` when it has no such parameter.
    pub(crate) fn parameter_is_const_pointer(
        &self,
        subprogram: UnitOffset,
        position: usize,
    ) -> Result<Option<bool>> {
        let mut parameters = Vec::new();
        for child in self.children_of(subprogram)? {
            if self.tag_of(child)? == gimli::DW_TAG_formal_parameter {
                parameters.push(child);
            }
        }
        let Some(&parameter) = parameters.get(position) else {
            return Ok(None);
        };
        let Some(ty) = self.ref_of(parameter, gimli::DW_AT_type)? else {
            return Ok(None);
        };
        let Some(stripped) = self.strip(ty)? else {
            return Ok(Some(false));
        };
        if self.tag_of(stripped)? != gimli::DW_TAG_pointer_type {
            return Ok(Some(false));
        }
        let Some(pointee) = self.ref_of(stripped, gimli::DW_AT_type)? else {
            return Ok(Some(false)); // void *
        };
        // Look through typedefs for a const qualifier.
        let mut current = pointee;
        for _ in 0..16 {
            match self.tag_of(current)? {
                gimli::DW_TAG_const_type => return Ok(Some(true)),
                gimli::DW_TAG_typedef | gimli::DW_TAG_volatile_type => {
                    match self.ref_of(current, gimli::DW_AT_type)? {
                        Some(next) => current = next,
                        None => return Ok(Some(false)),
                    }
                }
                _ => return Ok(Some(false)),
            }
        }
        Ok(Some(false))
    }

    /// Walk `path` through the variable's type.
    pub(crate) fn select(
        &self,
        path: &VariablePath,
        variable_type: Option<UnitOffset>,
    ) -> Result<Selection> {
        let text = &path.text;
        let mut offset = 0u64;
        let mut current = variable_type;
        let mut shown = path.root.clone();
        let mut bitfield = false;
        // Pending array dimensions when a multi-dimensional array is indexed
        // one dimension at a time.
        let mut pending: Option<(Option<UnitOffset>, Vec<Option<u64>>)> = None;
        for step in &path.steps {
            match step {
                PathStep::Member(name) => {
                    if pending.is_some() {
                        return Err(bad(
                            text,
                            format!("`{shown}` is an array; index it before `.{name}`"),
                        ));
                    }
                    let Some(t) = current else {
                        return Err(bad(text, format!("`{shown}` has no type information")));
                    };
                    match self.shape(t)? {
                        Shape::Aggregate(agg) => match self.member(agg, name)? {
                            Some((o, ty, bf)) => {
                                offset += o;
                                current = ty;
                                bitfield = bf;
                            }
                            None => {
                                let names = self.member_names(agg)?;
                                return Err(bad(
                                    text,
                                    format!(
                                        "`{shown}` has no member `{name}`; members: {}",
                                        names.join(", ")
                                    ),
                                ));
                            }
                        },
                        Shape::Pointer => {
                            return Err(bad(
                                text,
                                format!(
                                    "`{shown}` is a pointer ({}); `.{name}` would be in the memory it points \
                                     to, not in this stack frame. Watch `{shown}` itself, or resolve the \
                                     pointee where it is a local",
                                    self.type_name(Some(t))?
                                ),
                            ));
                        }
                        _ => {
                            return Err(bad(
                                text,
                                format!(
                                    "`{shown}` ({}) is not a struct or union",
                                    self.type_name(Some(t))?
                                ),
                            ));
                        }
                    }
                    shown = format!("{shown}.{name}");
                }
                PathStep::Index(index) => {
                    let (element, dims) = match pending.take() {
                        Some(p) => p,
                        None => {
                            let Some(t) = current else {
                                return Err(bad(
                                    text,
                                    format!("`{shown}` has no type information"),
                                ));
                            };
                            match self.shape(t)? {
                                Shape::Array { element, dims } => (element, dims),
                                Shape::Pointer => {
                                    return Err(bad(
                                        text,
                                        format!(
                                            "`{shown}` is a pointer; `{shown}[{index}]` is memory it points to, \
                                             not this stack frame"
                                        ),
                                    ));
                                }
                                _ => return Err(bad(text, format!("`{shown}` is not an array"))),
                            }
                        }
                    };
                    let Some((first, rest)) = dims.split_first() else {
                        return Err(bad(text, format!("`{shown}` has no dimensions")));
                    };
                    if let Some(count) = first {
                        if index >= count {
                            return Err(bad(
                                text,
                                format!(
                                    "index {index} is out of bounds: `{shown}` has {count} elements"
                                ),
                            ));
                        }
                    }
                    let element_size = element
                        .map(|e| self.type_size(e))
                        .transpose()?
                        .flatten()
                        .ok_or_else(|| bad(text, "the element type has no size"))?;
                    let stride = rest
                        .iter()
                        .fold(element_size, |acc, d| acc.saturating_mul(d.unwrap_or(0)));
                    offset = offset.saturating_add(index.saturating_mul(stride));
                    if rest.is_empty() {
                        current = element;
                    } else {
                        pending = Some((element, rest.to_vec()));
                    }
                    shown = format!("{shown}[{index}]");
                    bitfield = false;
                }
            }
        }
        let (size, type_name) = match pending {
            Some((element, dims)) => {
                let element_size = element
                    .map(|e| self.type_size(e))
                    .transpose()?
                    .flatten()
                    .unwrap_or(0);
                let size = dims
                    .iter()
                    .fold(element_size, |acc, d| acc.saturating_mul(d.unwrap_or(0)));
                let mut name = self.type_name(element)?;
                for d in dims {
                    name.push_str(&d.map_or("[]".to_string(), |n| format!("[{n}]")));
                }
                (size, name)
            }
            None => (
                current
                    .map(|t| self.type_size(t))
                    .transpose()?
                    .flatten()
                    .unwrap_or(0),
                self.type_name(current)?,
            ),
        };
        Ok(Selection {
            offset,
            size,
            type_name,
            bitfield,
        })
    }
}

/// A member holding an offset: its name (`None` for an anonymous struct
/// or union), offset, type and size.
type Covering = (Option<String>, u64, UnitOffset, u64);

/// The member an offset falls in: the path to it from the start of the
/// type, and where in it the offset is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPath {
    /// Member and index steps (`hdr`, `cookie`; `name`, `[8]`).
    pub steps: Vec<PathStep>,
    /// The innermost object's offset from the start of the type.
    pub start: u64,
    /// Its size in bytes.
    pub size: u64,
}

impl MemberPath {
    /// The steps as C (`hdr.cookie`, `name[8]`); empty for the type itself.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for step in &self.steps {
            match step {
                PathStep::Member(name) => {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(name);
                }
                PathStep::Index(i) => text.push_str(&format!("[{i}]")),
            }
        }
        text
    }
}

/// The member path of byte `offset` in the type `type_name` (`struct
/// open_flags`, `union bpf_attr`, a typedef name) as the first unit of
/// `file` that defines it describes it: `hdr.cookie`, `name[8]`. `None`
/// when no unit defines the type, or the offset is in padding or past its
/// end. Scans units in order until one defines the type.
pub fn member_at(file: &DebugFile, type_name: &str, offset: u64) -> Result<Option<MemberPath>> {
    let image = ElfImage::parse(file)?;
    let sections = DebugSections::load(&image)?;
    let info = DebugInfo::new(&sections)?;
    let mut index = 0;
    while let Some(unit) = info.unit_by_index(index)? {
        if let Some(ty) = unit.type_named(type_name)? {
            return unit.member_at(ty, offset);
        }
        index += 1;
    }
    Ok(None)
}

impl UnitContext<'_, '_> {
    /// The member or element of the type at `ty` that holds byte `offset`,
    /// down to a scalar (or a pointer); anonymous structs and unions are
    /// looked through without a step. `None` when the offset is in
    /// padding or past the end.
    pub(crate) fn member_at(&self, ty: UnitOffset, offset: u64) -> Result<Option<MemberPath>> {
        let mut path = MemberPath {
            steps: Vec::new(),
            start: 0,
            size: 0,
        };
        let Some(size) = self.type_size(ty)? else {
            return Ok(None);
        };
        if offset >= size {
            return Ok(None);
        }
        path.size = size;
        let mut current = ty;
        let mut remaining = offset;
        for _ in 0..64 {
            match self.shape(current)? {
                Shape::Aggregate(aggregate) => match self.member_covering(aggregate, remaining)? {
                    Some((name, member_offset, member_type, member_size)) => {
                        if let Some(name) = name {
                            path.steps.push(PathStep::Member(name));
                        }
                        path.start += member_offset;
                        path.size = member_size;
                        remaining -= member_offset;
                        current = member_type;
                    }
                    None => return Ok(None),
                },
                Shape::Array { element, dims } => {
                    let Some(element) = element else {
                        return Ok(Some(path));
                    };
                    let Some(element_size) = self.type_size(element)?.filter(|s| *s > 0) else {
                        return Ok(Some(path));
                    };
                    // Row-major: each dimension's stride is the product of
                    // the ones after it.
                    let mut stride = dims
                        .iter()
                        .skip(1)
                        .fold(element_size, |acc, d| acc.saturating_mul(d.unwrap_or(0)));
                    for (i, _) in dims.iter().enumerate() {
                        if stride == 0 {
                            return Ok(Some(path));
                        }
                        let index = remaining / stride;
                        path.steps.push(PathStep::Index(index));
                        path.start += index * stride;
                        path.size = stride;
                        remaining -= index * stride;
                        stride = dims
                            .get(i + 1)
                            .map_or(stride, |d| stride / d.unwrap_or(1).max(1));
                    }
                    current = element;
                }
                Shape::Pointer | Shape::Other => return Ok(Some(path)),
            }
        }
        Ok(Some(path))
    }

    /// The member of the aggregate at `aggregate` whose bytes hold
    /// `offset`.
    fn member_covering(&self, aggregate: UnitOffset, offset: u64) -> Result<Option<Covering>> {
        for child in self.children_of(aggregate)? {
            if self.tag_of(child)? != gimli::DW_TAG_member {
                continue;
            }
            let Some(member_type) = self.ref_of(child, gimli::DW_AT_type)? else {
                continue;
            };
            let start = match self.udata_of(child, gimli::DW_AT_data_member_location)? {
                Some(o) => o,
                None => self
                    .udata_of(child, gimli::DW_AT_data_bit_offset)?
                    .map_or(0, |b| b / 8),
            };
            let size = match self.udata_of(child, gimli::DW_AT_bit_size)? {
                // A bit-field: the bytes its bits touch.
                Some(bits) => {
                    let first_bit = self
                        .udata_of(child, gimli::DW_AT_data_bit_offset)?
                        .unwrap_or(start * 8);
                    (first_bit % 8 + bits).div_ceil(8)
                }
                None => self.type_size(member_type)?.unwrap_or(0),
            };
            if start <= offset && offset < start.saturating_add(size) {
                return Ok(Some((self.name_of(child)?, start, member_type, size)));
            }
        }
        Ok(None)
    }

    /// A named type defined at the top of this unit: `struct NAME`,
    /// `union NAME`, `enum NAME` or a typedef `NAME` (with a size, so not
    /// a declaration).
    pub(crate) fn type_named(&self, name: &str) -> Result<Option<UnitOffset>> {
        let (tags, bare): (&[gimli::DwTag], &str) = if let Some(n) = name.strip_prefix("struct ") {
            (&[gimli::DW_TAG_structure_type], n)
        } else if let Some(n) = name.strip_prefix("union ") {
            (&[gimli::DW_TAG_union_type], n)
        } else if let Some(n) = name.strip_prefix("enum ") {
            (&[gimli::DW_TAG_enumeration_type], n)
        } else {
            (&[gimli::DW_TAG_typedef, gimli::DW_TAG_base_type], name)
        };
        for child in self.root_children()? {
            if !tags.contains(&self.tag_of(child)?) {
                continue;
            }
            if self.name_of(child)?.as_deref() == Some(bare) && self.type_size(child)?.is_some() {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members_and_indices() {
        let p = VariablePath::parse("req.hdr[3].len").expect("valid path");
        assert_eq!(p.root, "req");
        assert_eq!(
            p.steps,
            vec![
                PathStep::Member("hdr".into()),
                PathStep::Index(3),
                PathStep::Member("len".into())
            ]
        );
        assert_eq!(
            VariablePath::parse("buf[0x10]").expect("hex").steps,
            vec![PathStep::Index(16)]
        );
    }

    #[test]
    fn refuses_pointer_paths_and_junk() {
        for text in ["ctx->field", "*p", "a.", "a[", "a[-1]", "1abc", "a+b", ""] {
            assert!(
                VariablePath::parse(text).is_err(),
                "{text} should be refused"
            );
        }
        let err = VariablePath::parse("ctx->field").expect_err("pointer path");
        assert!(err.to_string().contains("pointer"), "{err}");
    }
}

#[cfg(test)]
mod member_tests {
    use super::*;

    /// Offsets in `struct req` of the fixture (gcc's DWARF), where
    /// `struct hdr { u16 len, kind }` and
    /// `struct req { int id; struct hdr hdr; char name[12]; long tail; }`.
    #[test]
    fn finds_the_member_path_of_an_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let object = crate::test_support::victims_object(dir.path(), &[]);
        let file = DebugFile::open(&object).expect("open");
        let at = |offset| {
            member_at(&file, "struct req", offset)
                .expect("DWARF")
                .map(|p| (p.text(), p.start, p.size))
        };
        assert_eq!(at(0), Some(("id".into(), 0, 4)));
        assert_eq!(at(4), Some(("hdr.len".into(), 4, 2)));
        assert_eq!(at(5), Some(("hdr.len".into(), 4, 2)));
        assert_eq!(at(6), Some(("hdr.kind".into(), 6, 2)));
        assert_eq!(at(16), Some(("name[8]".into(), 16, 1)));
        assert_eq!(at(20), None, "padding before `tail`");
        assert_eq!(at(24), Some(("tail".into(), 24, 8)));
        assert_eq!(at(32), None, "past the end");
        assert_eq!(
            member_at(&file, "struct hdr", 2)
                .expect("DWARF")
                .map(|p| p.text()),
            Some("kind".into())
        );
        assert_eq!(member_at(&file, "struct nothing", 0).expect("DWARF"), None);
    }
}
