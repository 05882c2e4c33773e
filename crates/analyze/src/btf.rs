//! A reader for BTF (BPF Type Format), the compact type information the
//! kernel carries in its own image (`__start_BTF`..`__stop_BTF`) and in each
//! module (`mod->btf_data`, split BTF on top of vmlinux's): struct layouts of
//! the crashed kernel straight from the dump, with no vmlinux debug file.
//!
//! We evaluated `btf-rs` 2.0 first and wrote this instead: fed from bytes
//! (what a dump gives) it uses its caching backend, which decodes all ~100k
//! vmlinux types into maps up front, its lazy backend needs a file to mmap,
//! and it offers no member lookup through anonymous members or bitfield
//! offsets, so that logic would be ours anyway. Here parsing is one pass that
//! records where each type starts; names are indexed on first lookup.
//!
//! BTF version 1 is read, in either byte order. Malformed input gives a
//! [`BtfError`], never a panic; chains of typedefs, qualifiers, arrays and
//! anonymous members are followed at most [`MAX_DEPTH`] deep.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// `btf_header.magic` as the producer's byte order writes it.
const MAGIC: u16 = 0xEB9F;
/// Size of `struct btf_header` (version 1); `hdr_len` may be larger.
const HEADER_LEN: usize = 24;
/// Size of `struct btf_type`, the fixed part of every type record.
const RECORD_LEN: usize = 12;
/// Size of a pointer in the kernels ksw reads (x86_64).
const POINTER_SIZE: u64 = 8;
/// How deep chains of typedefs, qualifiers, array elements and anonymous
/// members are followed before giving up (the kernel's verifier uses 32 too).
pub const MAX_DEPTH: u32 = 32;

/// A BTF type id: 0 is `void`; a split BTF's ids continue after its base's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u32);

impl TypeId {
    /// The id of `void`.
    pub const VOID: TypeId = TypeId(0);
}

impl fmt::Display for TypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type id {}", self.0)
    }
}

/// Where a member is inside the struct a lookup started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Offset in bits from the start of the outermost struct.
    pub bit_offset: u64,
    /// Width in bits if the member is a bitfield, else 0.
    pub bitfield_size: u32,
    /// The member's type.
    pub ty: TypeId,
}

impl Member {
    /// Offset in whole bytes (for a bitfield, the byte holding its first bit).
    pub fn byte_offset(&self) -> u64 {
        self.bit_offset / 8
    }

    /// Whether the member is a bitfield.
    pub fn is_bitfield(&self) -> bool {
        self.bitfield_size != 0
    }
}

/// The kind of a BTF type (`BTF_KIND_*`), plus `Void` for id 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Kind {
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Kind> {
        Some(match raw {
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 => Kind::Volatile,
            10 => Kind::Const,
            11 => Kind::Restrict,
            12 => Kind::Func,
            13 => Kind::FuncProto,
            14 => Kind::Var,
            15 => Kind::Datasec,
            16 => Kind::Float,
            17 => Kind::DeclTag,
            18 => Kind::TypeTag,
            19 => Kind::Enum64,
            _ => return None,
        })
    }

    /// Bytes of kind-specific data after the 12-byte record.
    fn data_len(self, vlen: usize) -> usize {
        match self {
            Kind::Int | Kind::Var | Kind::DeclTag => 4,
            Kind::Array => 12,
            Kind::Struct | Kind::Union | Kind::Datasec | Kind::Enum64 => 12 * vlen,
            Kind::Enum | Kind::FuncProto => 8 * vlen,
            _ => 0,
        }
    }

    /// The C-ish word for the kind, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Void => "void",
            Kind::Int => "int",
            Kind::Ptr => "pointer",
            Kind::Array => "array",
            Kind::Struct => "struct",
            Kind::Union => "union",
            Kind::Enum => "enum",
            Kind::Fwd => "forward declaration",
            Kind::Typedef => "typedef",
            Kind::Volatile => "volatile",
            Kind::Const => "const",
            Kind::Restrict => "restrict",
            Kind::Func => "function",
            Kind::FuncProto => "function prototype",
            Kind::Var => "variable",
            Kind::Datasec => "data section",
            Kind::Float => "float",
            Kind::DeclTag => "declaration tag",
            Kind::TypeTag => "type tag",
            Kind::Enum64 => "enum64",
        }
    }

    /// Typedefs and qualifiers: kinds that name another type without
    /// changing its layout.
    fn is_alias(self) -> bool {
        matches!(
            self,
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
        )
    }
}

/// What went wrong reading BTF or looking something up in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// The buffer does not start with the BTF magic.
    #[error("not BTF: magic {found:#06x}, expected 0xeb9f")]
    BadMagic {
        /// The first two bytes, little-endian.
        found: u16,
    },
    /// A BTF version other than 1.
    #[error("BTF version {version} is not supported (only 1)")]
    UnsupportedVersion {
        /// The header's version byte.
        version: u8,
    },
    /// The header's `hdr_len` is smaller than the version-1 header.
    #[error("BTF header length {hdr_len} is shorter than the {HEADER_LEN}-byte header")]
    ShortHeader {
        /// The header's `hdr_len`.
        hdr_len: u32,
    },
    /// Something the header or a record promises lies past the buffer's end.
    #[error("BTF truncated: {what} ends at byte {end} but there are only {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it would end.
        end: u64,
        /// How many bytes there are.
        len: u64,
    },
    /// A type record has a kind this reader does not know.
    #[error("unknown BTF kind {kind} in the type record at byte {at} of the type section")]
    UnknownKind {
        /// The raw kind (bits 24-28 of `info`).
        kind: u32,
        /// The record's offset in the type section.
        at: u64,
    },
    /// A base BTF whose string section does not start with the empty name.
    #[error("the BTF string section does not start with an empty string")]
    BadStringSection,
    /// A name offset outside the string section, or a name without its NUL.
    #[error("BTF string offset {offset} is outside the string section or not NUL-terminated")]
    BadString {
        /// The offset as the record gives it.
        offset: u32,
    },
    /// A type id beyond the last type (of this BTF and its base).
    #[error("{id} is beyond the BTF type table (last id {last})")]
    BadTypeId {
        /// The id asked for.
        id: TypeId,
        /// The last valid id.
        last: u32,
    },
    /// More types than 32-bit ids can number.
    #[error("BTF has more types than 32-bit ids can number")]
    TooManyTypes,
    /// No struct or union of that name.
    #[error("no struct or union named `{name}` in BTF")]
    NoSuchType {
        /// The name looked up.
        name: String,
    },
    /// The struct or union has no member of that name, anonymous members included.
    #[error("{ty} has no member `{member}`")]
    NoSuchMember {
        /// The type searched, described (`struct task_struct`).
        ty: String,
        /// The member's name.
        member: String,
    },
    /// A member lookup on something that is not a struct or union.
    #[error("{ty} is a {kind}, not a struct or union")]
    NotStructOrUnion {
        /// The type, described.
        ty: String,
        /// Its kind.
        kind: &'static str,
    },
    /// A size asked of a type that has none (void, function, forward declaration).
    #[error("{ty} is a {kind}, which has no size")]
    NoSize {
        /// The type.
        ty: TypeId,
        /// Its kind.
        kind: &'static str,
    },
    /// An array whose size does not fit in 64 bits.
    #[error("the size of {ty} overflows 64 bits")]
    SizeOverflow {
        /// The array type.
        ty: TypeId,
    },
    /// A chain of types deeper than [`MAX_DEPTH`]: most likely a loop.
    #[error("type chain from {start} is deeper than {MAX_DEPTH} (a loop?)")]
    TooDeep {
        /// Where the chain started.
        start: TypeId,
    },
    /// A member path with an empty component (`a..b`, `.a`, ``).
    #[error("bad member path `{path}`: empty component")]
    BadPath {
        /// The path.
        path: String,
    },
}

/// The fixed part of one type record, with where its kind-specific data is.
#[derive(Debug, Clone, Copy)]
struct Record<'a> {
    /// The BTF (this one or a base) that holds the record.
    owner: &'a Btf,
    id: TypeId,
    name_off: u32,
    kind: Kind,
    vlen: u32,
    kind_flag: bool,
    /// `size` or `type`, depending on the kind.
    size_or_type: u32,
    /// Byte offset of the kind-specific data in `owner.bytes`.
    data: usize,
}

impl Record<'_> {
    /// The `index`-th u32 of the kind-specific data.
    fn data_u32(&self, index: usize) -> Result<u32, BtfError> {
        self.owner
            .u32_at(self.data.saturating_add(index.saturating_mul(4)))
    }
}

/// One type, as [`Btf::shape`] shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `void`.
    Void,
    /// An integer (`char` and `_Bool` included).
    Int {
        /// Bytes.
        size: u32,
        /// Signed.
        signed: bool,
        /// A `char`.
        is_char: bool,
        /// A `_Bool`.
        is_bool: bool,
    },
    /// A floating-point type.
    Float {
        /// Bytes.
        size: u32,
    },
    /// A pointer.
    Pointer {
        /// What it points at.
        target: TypeId,
    },
    /// An array.
    Array {
        /// The element type.
        element: TypeId,
        /// The number of elements.
        len: u32,
    },
    /// A struct or union.
    Struct {
        /// A union.
        is_union: bool,
        /// Bytes.
        size: u32,
        /// The members in order (anonymous ones with an empty name).
        members: Vec<(String, Member)>,
    },
    /// An enum.
    Enum {
        /// Bytes.
        size: u32,
        /// Its values are signed.
        signed: bool,
        /// Its enumerators.
        values: Vec<(String, i64)>,
    },
    /// A typedef, qualifier or type tag of `target`.
    Alias {
        /// Which one.
        kind: Kind,
        /// The type it names.
        target: TypeId,
    },
    /// A variable of type `target`.
    Var {
        /// Its type.
        target: TypeId,
    },
    /// A function type.
    FuncProto {
        /// The return type.
        ret: TypeId,
        /// The parameter types (`void` for a trailing `...`).
        params: Vec<TypeId>,
    },
    /// A declared but undefined struct or union.
    Fwd {
        /// A union.
        is_union: bool,
    },
    /// Anything else (functions, sections, declaration tags).
    Other {
        /// Its kind.
        kind: Kind,
    },
}

/// Parsed BTF: vmlinux's, or a module's split on top of it.
pub struct Btf {
    bytes: Vec<u8>,
    big_endian: bool,
    /// Where each of this BTF's own types starts in `bytes`, in id order.
    type_starts: Vec<u32>,
    /// The string section's range in `bytes`.
    strings: Range<usize>,
    /// The id of the first own type (1 without a base).
    first_id: u32,
    /// The string offset of the first own string (0 without a base).
    first_string: u32,
    base: Option<Arc<Btf>>,
    /// Own structs and unions by name, first id wins; built on first lookup.
    structs_by_name: OnceLock<HashMap<Box<[u8]>, u32>>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("bytes", &self.bytes.len())
            .field("first_id", &self.first_id)
            .field("types", &self.type_starts.len())
            .field("split", &self.base.is_some())
            .finish()
    }
}

fn truncated(what: &'static str, end: u64, len: usize) -> BtfError {
    BtfError::Truncated {
        what,
        end,
        len: len as u64,
    }
}

impl Btf {
    /// Parse stand-alone BTF (vmlinux's).
    pub fn parse(bytes: Vec<u8>) -> Result<Btf, BtfError> {
        Btf::parse_with_base(bytes, None)
    }

    /// Parse split BTF (a module's), whose ids and string offsets continue
    /// after those of `base`.
    pub fn parse_split(bytes: Vec<u8>, base: Arc<Btf>) -> Result<Btf, BtfError> {
        Btf::parse_with_base(bytes, Some(base))
    }

    fn parse_with_base(bytes: Vec<u8>, base: Option<Arc<Btf>>) -> Result<Btf, BtfError> {
        let len = bytes.len();
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Err(truncated("the header", HEADER_LEN as u64, len));
        };
        let magic_le = u16::from_le_bytes([header[0], header[1]]);
        let big_endian = if magic_le == MAGIC {
            false
        } else if magic_le.swap_bytes() == MAGIC {
            true
        } else {
            return Err(BtfError::BadMagic { found: magic_le });
        };
        if header[2] != 1 {
            return Err(BtfError::UnsupportedVersion { version: header[2] });
        }
        let field = |at: usize| {
            let b = [header[at], header[at + 1], header[at + 2], header[at + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (field(4), field(8), field(12), field(16), field(20));
        if (hdr_len as usize) < HEADER_LEN {
            return Err(BtfError::ShortHeader { hdr_len });
        }
        let section = |what: &'static str, off: u32, size: u32| -> Result<Range<usize>, BtfError> {
            let start = u64::from(hdr_len) + u64::from(off);
            let end = start + u64::from(size);
            if end > len as u64 {
                return Err(truncated(what, end, len));
            }
            // Both fit in usize: they are at most `len`.
            Ok(start as usize..end as usize)
        };
        if u64::from(hdr_len) > len as u64 {
            return Err(truncated("the header", u64::from(hdr_len), len));
        }
        let types = section("the type section", type_off, type_len)?;
        let strings = section("the string section", str_off, str_len)?;

        let (first_id, first_string) = match &base {
            Some(base) => (
                base.type_count()
                    .checked_add(1)
                    .ok_or(BtfError::TooManyTypes)?,
                u32::try_from(base.strings.len())
                    .ok()
                    .and_then(|n| n.checked_add(base.first_string))
                    .ok_or(BtfError::TooManyTypes)?,
            ),
            None => {
                if str_len > 0 && bytes.get(strings.start) != Some(&0) {
                    return Err(BtfError::BadStringSection);
                }
                (1, 0)
            }
        };

        let mut btf = Btf {
            bytes,
            big_endian,
            type_starts: Vec::new(),
            strings,
            first_id,
            first_string,
            base,
            structs_by_name: OnceLock::new(),
        };
        btf.type_starts = btf.scan_types(types)?;
        if u64::from(first_id) + btf.type_starts.len() as u64 > u64::from(u32::MAX) {
            return Err(BtfError::TooManyTypes);
        }
        Ok(btf)
    }

    /// One pass over the type section: where each record starts.
    fn scan_types(&self, types: Range<usize>) -> Result<Vec<u32>, BtfError> {
        let len = self.bytes.len();
        let mut starts = Vec::new();
        let mut at = types.start;
        while at < types.end {
            let fixed_end = at + RECORD_LEN;
            if fixed_end > types.end {
                return Err(truncated("a type record", fixed_end as u64, types.end));
            }
            let info = self.u32_at(at + 4)?;
            let raw_kind = (info >> 24) & 0x1f;
            let kind = Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind {
                kind: raw_kind,
                at: (at - types.start) as u64,
            })?;
            let end = fixed_end + kind.data_len((info & 0xffff) as usize);
            if end > types.end {
                return Err(truncated("a type record's data", end as u64, types.end));
            }
            // `at` < `len`, which the caller's Vec made fit in memory; it
            // fits in u32 unless the buffer is over 4 GiB.
            starts.push(u32::try_from(at).map_err(|_| truncated("a type record", at as u64, len))?);
            at = end;
        }
        Ok(starts)
    }

    fn u32_at(&self, at: usize) -> Result<u32, BtfError> {
        let bytes = at
            .checked_add(4)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or_else(|| truncated("a field", at as u64 + 4, self.bytes.len()))?;
        let b = [bytes[0], bytes[1], bytes[2], bytes[3]];
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// The highest valid type id, counting the base's types: ids
    /// `1..=type_count()` are types, 0 is `void`.
    pub fn type_count(&self) -> u32 {
        // Checked at parse time not to overflow.
        self.first_id + self.type_starts.len() as u32 - 1
    }

    /// The base this split BTF extends, if any.
    pub fn base(&self) -> Option<&Arc<Btf>> {
        self.base.as_ref()
    }

    /// The NUL-terminated name at string offset `offset`, without its NUL.
    fn string(&self, offset: u32) -> Result<&[u8], BtfError> {
        if offset < self.first_string {
            return match &self.base {
                Some(base) => base.string(offset),
                None => Err(BtfError::BadString { offset }),
            };
        }
        let local = (offset - self.first_string) as usize;
        let rest = self
            .bytes
            .get(self.strings.clone())
            .and_then(|s| s.get(local..))
            .ok_or(BtfError::BadString { offset })?;
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfError::BadString { offset })?;
        Ok(&rest[..nul])
    }

    fn record(&self, id: TypeId) -> Result<Record<'_>, BtfError> {
        if id.0 == 0 {
            return Ok(Record {
                owner: self,
                id,
                name_off: 0,
                kind: Kind::Void,
                vlen: 0,
                kind_flag: false,
                size_or_type: 0,
                data: 0,
            });
        }
        if id.0 < self.first_id {
            return match &self.base {
                Some(base) => base.record(id),
                None => Err(BtfError::BadTypeId {
                    id,
                    last: self.type_count(),
                }),
            };
        }
        let start = self
            .type_starts
            .get((id.0 - self.first_id) as usize)
            .ok_or(BtfError::BadTypeId {
                id,
                last: self.type_count(),
            })?;
        let at = *start as usize;
        let info = self.u32_at(at + 4)?;
        let raw_kind = (info >> 24) & 0x1f;
        let kind = Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind {
            kind: raw_kind,
            at: at as u64,
        })?;
        Ok(Record {
            owner: self,
            id,
            name_off: self.u32_at(at)?,
            kind,
            vlen: info & 0xffff,
            kind_flag: info >> 31 != 0,
            size_or_type: self.u32_at(at + 8)?,
            data: at + RECORD_LEN,
        })
    }

    /// The record `id` names once typedefs and qualifiers are followed.
    fn strip_aliases(&self, id: TypeId) -> Result<Record<'_>, BtfError> {
        let mut current = id;
        for _ in 0..=MAX_DEPTH {
            let record = self.record(current)?;
            if !record.kind.is_alias() {
                return Ok(record);
            }
            current = TypeId(record.size_or_type);
        }
        Err(BtfError::TooDeep { start: id })
    }

    /// The kind of a type (`Kind::Void` for id 0).
    pub fn kind(&self, ty: TypeId) -> Result<Kind, BtfError> {
        Ok(self.record(ty)?.kind)
    }

    /// The type `ty` stands for once typedefs, `const`, `volatile`,
    /// `restrict` and type tags are followed.
    pub fn resolve(&self, ty: TypeId) -> Result<TypeId, BtfError> {
        Ok(self.strip_aliases(ty)?.id)
    }

    /// The type's own name (`task_struct`, `u64`), without `struct`;
    /// `void` for id 0; `None` for anonymous types and bad ids.
    pub fn type_name(&self, ty: TypeId) -> Option<String> {
        let record = self.record(ty).ok()?;
        if record.kind == Kind::Void {
            return Some("void".to_string());
        }
        let name = record.owner.string(record.name_off).ok()?;
        (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned())
    }

    /// A type for messages: `struct task_struct`, `u64`, or
    /// `anonymous union (type id 7)`.
    fn describe(&self, ty: TypeId) -> String {
        let Ok(record) = self.record(ty) else {
            return ty.to_string();
        };
        let prefix = match record.kind {
            Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 => {
                format!("{} ", record.kind.name())
            }
            _ => String::new(),
        };
        match self.type_name(ty) {
            Some(name) => format!("{prefix}{name}"),
            None => format!("anonymous {}({ty})", prefix),
        }
    }

    /// The first struct or union called `name`, in id order (the base's
    /// before a split BTF's own).
    pub fn find_struct(&self, name: &str) -> Option<TypeId> {
        if let Some(found) = self.base.as_ref().and_then(|b| b.find_struct(name)) {
            return Some(found);
        }
        self.structs_by_name
            .get_or_init(|| self.index_structs())
            .get(name.as_bytes())
            .map(|&id| TypeId(id))
    }

    /// The first type called `name` whose kind is one of `kinds`, in id
    /// order (the base's before a split BTF's own). Struct, union and
    /// enum names are given without their keyword. A scan, not an index:
    /// one look-up costs less than building one for the few that a
    /// command makes.
    pub fn find_named(&self, name: &str, kinds: &[Kind]) -> Option<TypeId> {
        if let Some(found) = self.base.as_ref().and_then(|b| b.find_named(name, kinds)) {
            return Some(found);
        }
        self.type_starts.iter().enumerate().find_map(|(i, &start)| {
            let at = start as usize;
            let kind = Kind::from_raw((self.u32_at(at + 4).ok()? >> 24) & 0x1f)?;
            let found = kinds.contains(&kind)
                && self.u32_at(at).and_then(|off| self.string(off)).ok()? == name.as_bytes();
            found.then_some(TypeId(self.first_id + i as u32))
        })
    }

    /// What `ty` is, with the parts a value printer needs.
    pub fn shape(&self, ty: TypeId) -> Result<Shape, BtfError> {
        let record = self.record(ty)?;
        let size = record.size_or_type;
        Ok(match record.kind {
            Kind::Void => Shape::Void,
            Kind::Int => {
                let encoding = (record.data_u32(0)? >> 24) & 0xf;
                Shape::Int {
                    size,
                    signed: encoding & 1 != 0,
                    is_char: encoding & 2 != 0,
                    is_bool: encoding & 4 != 0,
                }
            }
            Kind::Float => Shape::Float { size },
            Kind::Ptr => Shape::Pointer {
                target: TypeId(size),
            },
            Kind::Array => Shape::Array {
                element: TypeId(record.data_u32(0)?),
                len: record.data_u32(2)?,
            },
            Kind::Struct | Kind::Union => Shape::Struct {
                is_union: record.kind == Kind::Union,
                size,
                members: (0..record.vlen as usize)
                    .map(|i| {
                        let (name, member) = self.member_at(&record, i)?;
                        Ok((String::from_utf8_lossy(name).into_owned(), member))
                    })
                    .collect::<Result<_, BtfError>>()?,
            },
            Kind::Enum | Kind::Enum64 => {
                let wide = record.kind == Kind::Enum64;
                let stride = if wide { 3 } else { 2 };
                let values = (0..record.vlen as usize)
                    .map(|i| {
                        let name = record.owner.string(record.data_u32(stride * i)?)?;
                        let low = record.data_u32(stride * i + 1)?;
                        let value = if wide {
                            (u64::from(record.data_u32(stride * i + 2)?) << 32 | u64::from(low))
                                as i64
                        } else if record.kind_flag {
                            i64::from(low as i32)
                        } else {
                            i64::from(low)
                        };
                        Ok((String::from_utf8_lossy(name).into_owned(), value))
                    })
                    .collect::<Result<_, BtfError>>()?;
                Shape::Enum {
                    size,
                    signed: record.kind_flag,
                    values,
                }
            }
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => {
                Shape::Alias {
                    kind: record.kind,
                    target: TypeId(size),
                }
            }
            Kind::Var => Shape::Var {
                target: TypeId(size),
            },
            Kind::FuncProto => Shape::FuncProto {
                ret: TypeId(size),
                params: (0..record.vlen as usize)
                    .map(|i| record.data_u32(2 * i + 1).map(TypeId))
                    .collect::<Result<_, BtfError>>()?,
            },
            Kind::Fwd => Shape::Fwd {
                is_union: record.kind_flag,
            },
            Kind::Func | Kind::Datasec | Kind::DeclTag => Shape::Other { kind: record.kind },
        })
    }

    fn index_structs(&self) -> HashMap<Box<[u8]>, u32> {
        let mut index = HashMap::new();
        for (i, &start) in self.type_starts.iter().enumerate() {
            let at = start as usize;
            let Ok(info) = self.u32_at(at + 4) else {
                continue;
            };
            if !matches!(
                Kind::from_raw((info >> 24) & 0x1f),
                Some(Kind::Struct | Kind::Union)
            ) {
                continue;
            }
            let Ok(name) = self.u32_at(at).and_then(|off| self.string(off)) else {
                continue;
            };
            if !name.is_empty() {
                index
                    .entry(Box::from(name))
                    .or_insert(self.first_id + i as u32);
            }
        }
        index
    }

    /// The size in bytes of a type: typedefs and qualifiers are followed,
    /// an array is its element's size times its length, a pointer is 8.
    pub fn size_of(&self, ty: TypeId) -> Result<u64, BtfError> {
        self.size_within(ty, ty, 0)
    }

    fn size_within(&self, ty: TypeId, start: TypeId, depth: u32) -> Result<u64, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { start });
        }
        let record = self.record(ty)?;
        match record.kind {
            Kind::Int
            | Kind::Struct
            | Kind::Union
            | Kind::Enum
            | Kind::Enum64
            | Kind::Float
            | Kind::Datasec => Ok(u64::from(record.size_or_type)),
            Kind::Ptr => Ok(POINTER_SIZE),
            Kind::Array => {
                let element = TypeId(record.data_u32(0)?);
                let count = record.data_u32(2)?;
                self.size_within(element, start, depth + 1)?
                    .checked_mul(u64::from(count))
                    .ok_or(BtfError::SizeOverflow { ty })
            }
            Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::TypeTag
            | Kind::Var => self.size_within(TypeId(record.size_or_type), start, depth + 1),
            Kind::Void | Kind::Fwd | Kind::Func | Kind::FuncProto | Kind::DeclTag => {
                Err(BtfError::NoSize {
                    ty,
                    kind: record.kind.name(),
                })
            }
        }
    }

    /// The member `name` of the struct or union `ty` (typedefs followed),
    /// looking inside anonymous struct and union members too; the offset is
    /// from the start of `ty`.
    pub fn member(&self, ty: TypeId, name: &str) -> Result<Member, BtfError> {
        match self.member_within(ty, name.as_bytes(), 0, 0)? {
            Some(member) => Ok(member),
            None => Err(BtfError::NoSuchMember {
                ty: self.describe(self.resolve(ty)?),
                member: name.to_string(),
            }),
        }
    }

    /// `Ok(None)`: no such member in `ty` or its anonymous members.
    fn member_within(
        &self,
        ty: TypeId,
        name: &[u8],
        outer_bits: u64,
        depth: u32,
    ) -> Result<Option<Member>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { start: ty });
        }
        let record = self.strip_aliases(ty)?;
        if !matches!(record.kind, Kind::Struct | Kind::Union) {
            return Err(BtfError::NotStructOrUnion {
                ty: self.describe(record.id),
                kind: record.kind.name(),
            });
        }
        for index in 0..record.vlen as usize {
            let (member_name, member) = self.member_at(&record, index)?;
            if member_name == name {
                // The member's type must exist, whatever the encoding.
                self.record(member.ty)?;
                return Ok(Some(Member {
                    bit_offset: outer_bits.saturating_add(member.bit_offset),
                    ..member
                }));
            }
            if member_name.is_empty() {
                let inner = self.strip_aliases(member.ty)?;
                if matches!(inner.kind, Kind::Struct | Kind::Union) {
                    let found = self.member_within(
                        inner.id,
                        name,
                        outer_bits.saturating_add(member.bit_offset),
                        depth + 1,
                    )?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(None)
    }

    /// Member `index` of the struct or union `record`: its name (empty
    /// for an anonymous member) and where it is in the struct.
    fn member_at<'r>(
        &self,
        record: &Record<'r>,
        index: usize,
    ) -> Result<(&'r [u8], Member), BtfError> {
        let name_off = record.data_u32(3 * index)?;
        let ty = TypeId(record.data_u32(3 * index + 1)?);
        let raw_offset = record.data_u32(3 * index + 2)?;
        let name = record.owner.string(name_off)?;
        let (mut bit_offset, mut bitfield_size) = if record.kind_flag {
            (u64::from(raw_offset & 0x00ff_ffff), raw_offset >> 24)
        } else {
            (u64::from(raw_offset), 0)
        };
        if !record.kind_flag
            && let Ok(int) = self.record(ty)
            && int.kind == Kind::Int
        {
            // Old encoding: a bitfield is an int narrower than its
            // storage, with its own bit offset.
            let encoding = int.data_u32(0)?;
            let bits = encoding & 0xff;
            let shift = (encoding >> 16) & 0xff;
            if shift != 0 || u64::from(bits) != u64::from(int.size_or_type) * 8 {
                bit_offset += u64::from(shift);
                bitfield_size = bits;
            }
        }
        Ok((
            name,
            Member {
                bit_offset,
                bitfield_size,
                ty,
            },
        ))
    }

    /// The member at `path` (`thread.sp`, `a.b.c`: member names, no
    /// indexing) of the struct or union called `struct_name`, with its
    /// offset from the start of that struct.
    pub fn offset_of(&self, struct_name: &str, path: &str) -> Result<Member, BtfError> {
        let start = self
            .find_struct(struct_name)
            .ok_or_else(|| BtfError::NoSuchType {
                name: struct_name.to_string(),
            })?;
        if path.split('.').any(str::is_empty) {
            return Err(BtfError::BadPath {
                path: path.to_string(),
            });
        }
        let mut current = start;
        let mut bit_offset = 0u64;
        let mut bitfield_size = 0;
        for name in path.split('.') {
            let member = self.member(current, name)?;
            bit_offset = bit_offset.saturating_add(member.bit_offset);
            bitfield_size = member.bitfield_size;
            current = member.ty;
        }
        Ok(Member {
            bit_offset,
            bitfield_size,
            ty: current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF bytes by hand, one record at a time.
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        /// String offsets of a split BTF start after its base's strings.
        first_string: u32,
    }

    impl Builder {
        fn new() -> Builder {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                first_string: 0,
            }
        }

        fn split(base_string_len: u32) -> Builder {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                first_string: base_string_len,
            }
        }

        fn name(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let offset = self.first_string + self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            offset
        }

        fn words(&mut self, words: &[u32]) {
            for w in words {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
        }

        fn record(&mut self, name: &str, kind: u32, vlen: u32, kind_flag: bool, size_or_type: u32) {
            let name_off = self.name(name);
            let info = (u32::from(kind_flag) << 31) | (kind << 24) | vlen;
            self.words(&[name_off, info, size_or_type]);
        }

        fn int(&mut self, name: &str, size: u32, bits: u32, shift: u32) {
            self.record(name, 1, 0, false, size);
            self.words(&[(shift << 16) | bits]);
        }

        /// A struct (or union) with members (name, type, offset word).
        fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            kind_flag: bool,
            members: &[(&str, u32, u32)],
        ) {
            self.record(name, kind, members.len() as u32, kind_flag, size);
            for (member, ty, offset) in members {
                let name_off = self.name(member);
                self.words(&[name_off, *ty, *offset]);
            }
        }

        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.push(1);
            out.push(0);
            for word in [
                HEADER_LEN as u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// 1 int, 2 struct point {int x; int y;}, 3 point *, 4 point[3],
    /// 5 typedef point point_t, 6 const point_t, 7 union u {int i; char c;}
    /// 8 char, 9 unsigned int.
    fn sample() -> Builder {
        let mut b = Builder::new();
        b.int("int", 4, 32, 0);
        b.composite(4, "point", 8, false, &[("x", 1, 0), ("y", 1, 32)]);
        b.record("", 2, 0, false, 2);
        b.record("", 3, 0, false, 0);
        b.words(&[2, 1, 3]);
        b.record("point_t", 8, 0, false, 2);
        b.record("", 10, 0, false, 5);
        b.composite(5, "u", 4, false, &[("i", 1, 0), ("c", 8, 0)]);
        b.int("char", 1, 8, 0);
        b.int("unsigned int", 4, 32, 0);
        b
    }

    #[test]
    fn btf_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Btf>();
    }

    #[test]
    fn sizes_names_and_members() {
        let btf = Btf::parse(sample().build()).expect("parse");
        assert_eq!(btf.type_count(), 9);
        assert_eq!(btf.find_struct("point"), Some(TypeId(2)));
        assert_eq!(btf.find_struct("u"), Some(TypeId(7)));
        assert_eq!(btf.find_struct("point_t"), None, "typedefs are not structs");
        assert_eq!(btf.find_struct("nothing"), None);
        assert_eq!(btf.size_of(TypeId(1)), Ok(4));
        assert_eq!(btf.size_of(TypeId(2)), Ok(8));
        assert_eq!(btf.size_of(TypeId(3)), Ok(8));
        assert_eq!(btf.size_of(TypeId(4)), Ok(24));
        assert_eq!(btf.size_of(TypeId(6)), Ok(8));
        assert!(matches!(
            btf.size_of(TypeId::VOID),
            Err(BtfError::NoSize { .. })
        ));
        assert_eq!(btf.type_name(TypeId(2)).as_deref(), Some("point"));
        assert_eq!(btf.type_name(TypeId(3)), None);
        assert_eq!(btf.type_name(TypeId(0)).as_deref(), Some("void"));
        assert_eq!(btf.type_name(TypeId(99)), None);
        assert_eq!(btf.kind(TypeId(4)), Ok(Kind::Array));
        assert_eq!(btf.resolve(TypeId(6)), Ok(TypeId(2)));

        // Through const and typedef.
        let y = btf.member(TypeId(6), "y").expect("y");
        assert_eq!(
            (y.bit_offset, y.byte_offset(), y.bitfield_size, y.ty),
            (32, 4, 0, TypeId(1))
        );
        let c = btf.member(TypeId(7), "c").expect("c");
        assert_eq!((c.byte_offset(), c.ty), (0, TypeId(8)));
        assert_eq!(
            btf.member(TypeId(2), "z").unwrap_err().to_string(),
            "struct point has no member `z`"
        );
        assert!(matches!(
            btf.member(TypeId(3), "x"),
            Err(BtfError::NotStructOrUnion {
                kind: "pointer",
                ..
            })
        ));
        assert!(matches!(
            btf.offset_of("nothing", "x"),
            Err(BtfError::NoSuchType { .. })
        ));
        assert!(matches!(
            btf.offset_of("point", "x..y"),
            Err(BtfError::BadPath { .. })
        ));
        assert!(matches!(
            btf.offset_of("point", ""),
            Err(BtfError::BadPath { .. })
        ));
    }

    #[test]
    fn bitfields_in_both_encodings() {
        let mut b = sample();
        // 10: struct flags { unsigned a:3; unsigned b:5; int whole; } with kind_flag.
        b.composite(
            4,
            "flags",
            8,
            true,
            &[("a", 9, 3 << 24), ("b", 9, (5 << 24) | 3), ("whole", 1, 32)],
        );
        // 11: an old-style 5-bit int with a 3-bit shift; 12: a struct using it.
        b.int("", 4, 5, 3);
        b.composite(4, "old_flags", 8, false, &[("whole", 1, 0), ("b", 11, 32)]);
        let btf = Btf::parse(b.build()).expect("parse");

        let a = btf.offset_of("flags", "a").expect("a");
        assert_eq!((a.bit_offset, a.bitfield_size, a.ty), (0, 3, TypeId(9)));
        let bits = btf.offset_of("flags", "b").expect("b");
        assert_eq!(
            (bits.bit_offset, bits.bitfield_size, bits.byte_offset()),
            (3, 5, 0)
        );
        assert!(bits.is_bitfield());
        let whole = btf.offset_of("flags", "whole").expect("whole");
        assert_eq!((whole.bit_offset, whole.bitfield_size), (32, 0));
        assert!(!whole.is_bitfield());

        let old = btf.offset_of("old_flags", "b").expect("old b");
        assert_eq!((old.bit_offset, old.bitfield_size), (35, 5));
        assert_eq!(
            btf.offset_of("old_flags", "whole")
                .expect("whole")
                .bitfield_size,
            0
        );
    }

    #[test]
    fn anonymous_members_are_searched_and_offsets_add_up() {
        let mut b = sample();
        // 10: struct { int c; int d; }   11: union { int b; struct {c, d} }
        b.composite(4, "", 8, false, &[("c", 1, 0), ("d", 1, 32)]);
        b.composite(5, "", 8, false, &[("b", 1, 0), ("", 10, 0)]);
        // 12: struct outer { int a; int :4 (unnamed int padding); union {...}; }
        b.composite(
            4,
            "outer",
            16,
            false,
            &[("a", 1, 0), ("", 1, 32), ("", 11, 64)],
        );
        // 13: typedef of the anonymous union; 14: struct holder { int pad; outer o; typedef'd union t; }
        b.record("anon_t", 8, 0, false, 11);
        b.composite(
            4,
            "holder",
            40,
            false,
            &[("pad", 1, 0), ("o", 12, 64), ("t", 13, 256)],
        );
        let btf = Btf::parse(b.build()).expect("parse");

        assert_eq!(btf.offset_of("outer", "a").expect("a").bit_offset, 0);
        assert_eq!(btf.offset_of("outer", "b").expect("b").bit_offset, 64);
        assert_eq!(btf.offset_of("outer", "d").expect("d").byte_offset(), 12);
        let d = btf.offset_of("holder", "o.d").expect("o.d");
        assert_eq!((d.byte_offset(), d.ty), (8 + 12, TypeId(1)));
        assert_eq!(
            btf.offset_of("holder", "t.d").expect("t.d").byte_offset(),
            32 + 4
        );
        assert_eq!(
            btf.offset_of("holder", "o.e").unwrap_err().to_string(),
            "struct outer has no member `e`"
        );
        // A path through a non-struct member.
        assert!(matches!(
            btf.offset_of("holder", "pad.x"),
            Err(BtfError::NotStructOrUnion { kind: "int", .. })
        ));
    }

    #[test]
    fn loops_are_errors_not_hangs() {
        let mut b = Builder::new();
        // 1 typedef a -> 2, 2 typedef b -> 1.
        b.record("a", 8, 0, false, 2);
        b.record("b", 8, 0, false, 1);
        // 3: struct self_ref { anonymous member of type 3 }.
        b.composite(4, "self_ref", 4, false, &[("", 3, 0)]);
        // 4: array of itself.
        b.record("", 3, 0, false, 0);
        b.words(&[4, 4, 2]);
        let btf = Btf::parse(b.build()).expect("parse");
        assert_eq!(
            btf.size_of(TypeId(1)),
            Err(BtfError::TooDeep { start: TypeId(1) })
        );
        assert!(matches!(
            btf.member(TypeId(1), "x"),
            Err(BtfError::TooDeep { .. })
        ));
        assert!(matches!(
            btf.resolve(TypeId(2)),
            Err(BtfError::TooDeep { .. })
        ));
        assert!(matches!(
            btf.offset_of("self_ref", "x"),
            Err(BtfError::TooDeep { .. })
        ));
        assert!(matches!(
            btf.size_of(TypeId(4)),
            Err(BtfError::TooDeep { .. })
        ));
        assert!(
            btf.size_of(TypeId(4))
                .unwrap_err()
                .to_string()
                .contains("loop")
        );
    }

    #[test]
    fn bad_headers_are_rejected() {
        let good = sample().build();
        assert!(matches!(
            Btf::parse(Vec::new()),
            Err(BtfError::Truncated { .. })
        ));
        assert!(matches!(
            Btf::parse(good[..23].to_vec()),
            Err(BtfError::Truncated { .. })
        ));

        let mut bad = good.clone();
        bad[0] = 0x7f;
        bad[1] = 0x45;
        assert_eq!(
            Btf::parse(bad).unwrap_err(),
            BtfError::BadMagic { found: 0x457f }
        );

        let mut bad = good.clone();
        bad[2] = 2;
        assert_eq!(
            Btf::parse(bad).unwrap_err(),
            BtfError::UnsupportedVersion { version: 2 }
        );

        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(
            Btf::parse(bad).unwrap_err(),
            BtfError::ShortHeader { hdr_len: 8 }
        );

        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Btf::parse(bad),
            Err(BtfError::Truncated {
                what: "the header",
                ..
            })
        ));

        // type_off and str_off far out of range, and u32::MAX offset + length.
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&0x1000_0000u32.to_le_bytes());
        assert!(matches!(
            Btf::parse(bad),
            Err(BtfError::Truncated {
                what: "the type section",
                ..
            })
        ));
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Btf::parse(bad),
            Err(BtfError::Truncated {
                what: "the string section",
                ..
            })
        ));

        // The string section must start with the empty name.
        let mut bad = good.clone();
        let str_off = u32::from_le_bytes([good[16], good[17], good[18], good[19]]) as usize;
        bad[HEADER_LEN + str_off] = b'x';
        assert_eq!(Btf::parse(bad).unwrap_err(), BtfError::BadStringSection);
    }

    #[test]
    fn truncated_and_unknown_records_are_rejected() {
        let good = sample().build();
        let type_len = u32::from_le_bytes([good[12], good[13], good[14], good[15]]);
        // Cut the type section inside the last record's data (the int's encoding).
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&(type_len - 2).to_le_bytes());
        assert!(matches!(
            Btf::parse(bad),
            Err(BtfError::Truncated {
                what: "a type record's data",
                ..
            })
        ));
        // Cut inside a fixed record.
        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&(type_len - 4 - 8).to_le_bytes());
        assert!(matches!(
            Btf::parse(bad),
            Err(BtfError::Truncated {
                what: "a type record",
                ..
            })
        ));

        let mut b = Builder::new();
        b.int("int", 4, 32, 0);
        b.record("", 25, 0, false, 0);
        assert_eq!(
            Btf::parse(b.build()).unwrap_err(),
            BtfError::UnknownKind { kind: 25, at: 16 }
        );
    }

    #[test]
    fn bad_ids_and_names_are_errors() {
        let mut b = Builder::new();
        b.int("int", 4, 32, 0);
        // 2: struct s { int ok; <type 77> far; <name past the strings> }
        b.composite(4, "s", 12, false, &[("ok", 1, 0), ("far", 77, 32)]);
        b.words(&[0xffff, 1, 64]);
        // Patch vlen to 3 for the hand-added member.
        let info_at = 16 + 4;
        let info = u32::from_le_bytes(b.types[info_at..info_at + 4].try_into().unwrap()) + 1;
        b.types[info_at..info_at + 4].copy_from_slice(&info.to_le_bytes());
        // 3: typedef to an id beyond the table.
        b.record("t", 8, 0, false, 1000);
        let btf = Btf::parse(b.build()).expect("parse");

        assert_eq!(btf.offset_of("s", "ok").expect("ok").bit_offset, 0);
        assert_eq!(
            btf.offset_of("s", "far"),
            Err(BtfError::BadTypeId {
                id: TypeId(77),
                last: 3
            })
        );
        assert_eq!(
            btf.size_of(TypeId(77)).unwrap_err().to_string(),
            "type id 77 is beyond the BTF type table (last id 3)"
        );
        assert!(matches!(
            btf.offset_of("s", "far.x"),
            Err(BtfError::BadTypeId { .. })
        ));
        // The bad name is met while searching past `far`.
        assert_eq!(
            btf.offset_of("s", "missing"),
            Err(BtfError::BadString { offset: 0xffff })
        );
        assert!(matches!(
            btf.size_of(TypeId(3)),
            Err(BtfError::BadTypeId { .. })
        ));
        assert_eq!(btf.type_name(TypeId(1000)), None);
    }

    #[test]
    fn split_btf_continues_ids_and_strings() {
        let base_builder = sample();
        let base = Arc::new(Btf::parse(base_builder.build()).expect("base"));
        let mut m = Builder::split(base_builder.strings.len() as u32);
        // 10: struct mod_s { struct point p; int w; } ; 11: typedef mod_s point (a
        // name that reuses a base string offset).
        m.composite(4, "mod_s", 12, false, &[("p", 2, 0), ("w", 1, 64)]);
        m.record("", 8, 0, false, 10);
        let point_name: u32 = 5; // "int\0" is at 1..5 in the base strings
        let last = m.types.len() - 12;
        m.types[last..last + 4].copy_from_slice(&point_name.to_le_bytes());
        // 12: union mod_u { struct mod_s s; }.
        m.composite(5, "mod_u", 12, false, &[("s", 10, 0)]);
        let module = Btf::parse_split(m.build(), base.clone()).expect("split");

        assert_eq!(module.type_count(), 12);
        assert!(module.base().is_some());
        assert_eq!(module.find_struct("point"), Some(TypeId(2)));
        assert_eq!(module.find_struct("mod_s"), Some(TypeId(10)));
        assert_eq!(module.find_struct("mod_u"), Some(TypeId(12)));
        assert_eq!(module.type_name(TypeId(1)).as_deref(), Some("int"));
        assert_eq!(module.type_name(TypeId(11)).as_deref(), Some("point"));
        assert_eq!(module.size_of(TypeId(11)), Ok(12));
        let y = module.offset_of("mod_u", "s.p.y").expect("s.p.y");
        assert_eq!((y.byte_offset(), y.ty), (4, TypeId(1)));
        assert_eq!(module.offset_of("mod_s", "w").expect("w").byte_offset(), 8);
        // The base does not see the module's types.
        assert_eq!(base.find_struct("mod_s"), None);
        assert!(matches!(
            base.size_of(TypeId(10)),
            Err(BtfError::BadTypeId { .. })
        ));

        // Parsed alone, the module's base ids and strings are out of range.
        let alone = Btf::parse(m.build());
        assert!(alone.is_err() || alone.is_ok_and(|b| b.offset_of("mod_s", "w").is_err()));
    }

    /// Cut and corrupt a valid buffer everywhere: errors, never a panic.
    #[test]
    fn mangled_input_never_panics() {
        let mut b = sample();
        b.composite(4, "flags", 8, true, &[("a", 9, 3 << 24), ("", 7, 32)]);
        let good = b.build();
        let exercise = |bytes: Vec<u8>| {
            if let Ok(btf) = Btf::parse(bytes) {
                for id in 0..=btf.type_count() + 1 {
                    let _ = btf.size_of(TypeId(id));
                    let _ = btf.type_name(TypeId(id));
                    let _ = btf.member(TypeId(id), "c");
                    let _ = btf.describe(TypeId(id));
                }
                for name in ["point", "flags", "u"] {
                    let _ = btf.offset_of(name, "a");
                    let _ = btf.offset_of(name, "y.z");
                }
            }
        };
        for len in 0..good.len() {
            exercise(good[..len].to_vec());
        }
        for at in 0..good.len() {
            for flip in [0xff, 0x80, 0x01] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                exercise(bad);
            }
        }
    }

    #[test]
    fn big_endian_btf_is_read() {
        // Byte-swap every u32 of a little-endian buffer (the magic is a u16
        // followed by two bytes, swapped on its own).
        let little = sample().build();
        let str_off = u32::from_le_bytes([little[16], little[17], little[18], little[19]]) as usize;
        let mut big = little.clone();
        big[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        for at in (4..HEADER_LEN + str_off).step_by(4) {
            big[at..at + 4].reverse();
        }
        let btf = Btf::parse(big).expect("big-endian");
        assert_eq!(btf.offset_of("point", "y").expect("y").byte_offset(), 4);
        assert_eq!(btf.size_of(TypeId(4)), Ok(24));
    }
}
