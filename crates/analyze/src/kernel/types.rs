//! The questions the kernel model asks about types, and their two
//! sources: the kernel's own BTF (always there on these kernels, read
//! from memory) and a debug vmlinux's DWARF (for kernels built without
//! BTF, and as the cross-check the tests use).
//!
//! The model needs little: whether a struct exists, its size, and the
//! byte offset and size of a member path (`thread.sp`), through anonymous
//! members. [`KernelTypes`] is exactly that; [`KernelLayout`](super::KernelLayout)
//! is read through it.

use std::cell::RefCell;
use std::collections::HashMap;

use gimli::UnitOffset;

use crate::btf::Btf;
use crate::dwarf::{DebugInfo, DebugSections, UnitContext};

/// What the kernel model asks of a type source.
pub trait KernelTypes {
    /// True if `struct NAME` (or a union) is defined.
    fn has_struct(&self, name: &str) -> bool;
    /// `sizeof(struct NAME)`.
    fn struct_size(&self, name: &str) -> Result<u64, String>;
    /// The byte offset of `path` (members separated by dots) in `struct
    /// NAME`, through anonymous members.
    fn member_offset(&self, name: &str, path: &str) -> Result<u64, String>;
    /// The size of the member at `path`.
    fn member_size(&self, name: &str, path: &str) -> Result<u64, String>;
}

impl KernelTypes for Btf {
    fn has_struct(&self, name: &str) -> bool {
        self.find_struct(name).is_some()
    }

    fn struct_size(&self, name: &str) -> Result<u64, String> {
        let id = self
            .find_struct(name)
            .ok_or_else(|| format!("no struct {name}"))?;
        self.size_of(id).map_err(|e| e.to_string())
    }

    fn member_offset(&self, name: &str, path: &str) -> Result<u64, String> {
        self.offset_of(name, path)
            .map(|m| m.byte_offset())
            .map_err(|e| e.to_string())
    }

    fn member_size(&self, name: &str, path: &str) -> Result<u64, String> {
        let m = self.offset_of(name, path).map_err(|e| e.to_string())?;
        self.size_of(m.ty).map_err(|e| e.to_string())
    }
}

/// Deepest nesting of anonymous members followed.
const MAX_DEPTH: usize = 16;

/// A debug vmlinux's DWARF as a [`KernelTypes`]. Structs are found by a
/// scan of the units' top-level DIEs, each name once (remembered).
pub struct DwarfKernelTypes<'s> {
    info: DebugInfo<'s>,
    found: RefCell<HashMap<String, Option<(usize, UnitOffset)>>>,
}

impl std::fmt::Debug for DwarfKernelTypes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DwarfKernelTypes").finish_non_exhaustive()
    }
}

impl<'s> DwarfKernelTypes<'s> {
    /// Types from `sections` (a vmlinux's DWARF); nothing is read yet.
    pub fn new(sections: &'s DebugSections<'s>) -> crate::Result<Self> {
        Ok(Self {
            info: DebugInfo::new(sections)?,
            found: RefCell::new(HashMap::new()),
        })
    }

    /// The unit and DIE of `struct NAME` (or union).
    fn find(&self, name: &str) -> Result<Option<(UnitContext<'_, 's>, UnitOffset)>, String> {
        let cached = self.found.borrow().get(name).copied();
        let at = match cached {
            Some(at) => at,
            None => {
                let mut at = None;
                for i in 0.. {
                    let Some(unit) = self.info.unit_by_index(i).map_err(|e| e.to_string())? else {
                        break;
                    };
                    let hit = match unit
                        .type_named(&format!("struct {name}"))
                        .map_err(|e| e.to_string())?
                    {
                        Some(o) => Some(o),
                        None => unit
                            .type_named(&format!("union {name}"))
                            .map_err(|e| e.to_string())?,
                    };
                    if let Some(o) = hit {
                        at = Some((i, o));
                        break;
                    }
                }
                self.found.borrow_mut().insert(name.to_string(), at);
                at
            }
        };
        let Some((i, o)) = at else { return Ok(None) };
        let unit = self
            .info
            .unit_by_index(i)
            .map_err(|e| e.to_string())?
            .ok_or("unit vanished")?;
        Ok(Some((unit, o)))
    }

    /// Follows typedefs and qualifiers to the DIE of a struct or union.
    fn aggregate(unit: &UnitContext<'_, '_>, mut ty: UnitOffset) -> Result<UnitOffset, String> {
        for _ in 0..MAX_DEPTH {
            match unit.tag_of(ty).map_err(|e| e.to_string())? {
                gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => return Ok(ty),
                _ => match unit
                    .ref_of(ty, gimli::DW_AT_type)
                    .map_err(|e| e.to_string())?
                {
                    Some(next) => ty = next,
                    None => return Err("not a struct".into()),
                },
            }
        }
        Err("type chain too deep".into())
    }

    /// The member `name` of the aggregate `ty`, looking into anonymous
    /// members: its offset from `ty`'s start and its DIE.
    fn member(
        unit: &UnitContext<'_, '_>,
        ty: UnitOffset,
        name: &str,
        depth: usize,
    ) -> Result<Option<(u64, UnitOffset)>, String> {
        if depth > MAX_DEPTH {
            return Err("anonymous members nest too deep".into());
        }
        for child in unit.children_of(ty).map_err(|e| e.to_string())? {
            if unit.tag_of(child).map_err(|e| e.to_string())? != gimli::DW_TAG_member {
                continue;
            }
            let offset = unit
                .udata_of(child, gimli::DW_AT_data_member_location)
                .map_err(|e| e.to_string())?
                .unwrap_or(0);
            match unit.name_of(child).map_err(|e| e.to_string())? {
                Some(n) if n == name => return Ok(Some((offset, child))),
                Some(_) => {}
                None => {
                    let Some(t) = unit
                        .ref_of(child, gimli::DW_AT_type)
                        .map_err(|e| e.to_string())?
                    else {
                        continue;
                    };
                    let Ok(inner) = Self::aggregate(unit, t) else {
                        continue;
                    };
                    if let Some((o, m)) = Self::member(unit, inner, name, depth + 1)? {
                        return Ok(Some((offset + o, m)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Offset and DIE of `path` in `struct NAME`.
    fn path(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(u64, UnitContext<'_, 's>, UnitOffset), String> {
        let (unit, mut ty) = self
            .find(name)?
            .ok_or_else(|| format!("no struct {name}"))?;
        let mut total = 0;
        let mut last = None;
        for part in path.split('.') {
            let agg = Self::aggregate(&unit, ty)?;
            let (o, m) = Self::member(&unit, agg, part, 0)?
                .ok_or_else(|| format!("struct {name} has no member {path}"))?;
            total += o;
            last = Some(m);
            if let Some(t) = unit
                .ref_of(m, gimli::DW_AT_type)
                .map_err(|e| e.to_string())?
            {
                ty = t;
            }
        }
        let m = last.ok_or("empty path")?;
        Ok((total, unit, m))
    }
}

impl KernelTypes for DwarfKernelTypes<'_> {
    fn has_struct(&self, name: &str) -> bool {
        matches!(self.find(name), Ok(Some(_)))
    }

    fn struct_size(&self, name: &str) -> Result<u64, String> {
        let (unit, o) = self
            .find(name)?
            .ok_or_else(|| format!("no struct {name}"))?;
        unit.type_size(o)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("struct {name} has no size"))
    }

    fn member_offset(&self, name: &str, path: &str) -> Result<u64, String> {
        self.path(name, path).map(|(o, _, _)| o)
    }

    fn member_size(&self, name: &str, path: &str) -> Result<u64, String> {
        let (_, unit, m) = self.path(name, path)?;
        let t = unit
            .ref_of(m, gimli::DW_AT_type)
            .map_err(|e| e.to_string())?
            .ok_or("member without a type")?;
        unit.type_size(t)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{name}.{path} has no size"))
    }
}
