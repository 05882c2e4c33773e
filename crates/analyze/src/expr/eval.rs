//! Evaluation of a parsed expression against the kernel model: globals
//! from the symbol table, types from the kernel's BTF, bytes from memory.

use ksw_vmcore::{KernelMemory, VirtAddr};

use super::parse::{Expr, TypeName};
use super::{Object, Place, Type};
use crate::btf::{Btf, Kind, Shape, TypeId};
use crate::kernel::KernelModel;

/// Why an expression has no value.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The text does not parse.
    #[error("cannot parse the expression {0}")]
    Parse(#[from] super::parse::ParseError),
    /// No symbol has the name.
    #[error("no symbol `{0}` in the kernel or its modules (ksw sym NAME lists near names)")]
    NoSymbol(String),
    /// The symbol has no type that ksw knows.
    #[error(
        "`{0}` has no type here: the kernel's BTF describes only per-CPU variables; \
         give its type with a cast, e.g. `(unsigned long){0}` or `*(struct foo *)&{0}`"
    )]
    NoType(String),
    /// A per-CPU variable used without a CPU.
    #[error("`{0}` is a per-CPU variable: use per_cpu({0}, CPU)")]
    PerCpu(String),
    /// A type name that BTF does not have.
    #[error("no type `{0}` in the kernel's BTF")]
    NoSuchType(String),
    /// The kernel has no BTF to take types from.
    #[error("the kernel's BTF is not available, so ksw has no types (give --vmlinux)")]
    NoBtf,
    /// An operation that the operand's type does not allow.
    #[error("{0}")]
    Type(String),
    /// Memory that cannot be read.
    #[error("cannot read {len} bytes at {address:#x}")]
    Memory {
        /// Where.
        address: u64,
        /// How many bytes.
        len: u64,
        /// The reader's error.
        #[source]
        source: ksw_vmcore::Error,
    },
    /// BTF that is damaged.
    #[error("the kernel's BTF: {0}")]
    Btf(#[from] crate::btf::BtfError),
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, EvalError>;

/// Globals whose types ksw knows without debug info: their types have not
/// changed in the kernels ksw reads, and BTF has no variables for them.
const KNOWN_GLOBALS: &[(&str, &str)] = &[
    ("init_task", "struct task_struct"),
    ("init_mm", "struct mm_struct"),
    ("init_uts_ns", "struct uts_namespace"),
    ("init_pid_ns", "struct pid_namespace"),
    ("jiffies", "volatile unsigned long"),
    ("jiffies_64", "u64"),
    ("nr_cpu_ids", "unsigned int"),
    ("panic_cpu", "atomic_t"),
    ("modules", "struct list_head"),
    ("system_state", "enum system_states"),
];

/// What a type is once typedefs and qualifiers are seen through.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Void,
    Int {
        size: u32,
        signed: bool,
        is_bool: bool,
    },
    Enum {
        size: u32,
        signed: bool,
        values: Vec<(String, i64)>,
    },
    Float,
    Pointer(Type),
    Array {
        element: Type,
        len: u32,
    },
    Struct {
        members: Vec<(String, crate::btf::Member)>,
    },
    Function,
    Incomplete,
    Untyped,
}

/// Evaluates expressions against one kernel.
pub struct Evaluator<'a, 'm> {
    model: &'a KernelModel<'m>,
}

impl<'a, 'm> Evaluator<'a, 'm> {
    /// An evaluator over `model`.
    pub fn new(model: &'a KernelModel<'m>) -> Self {
        Evaluator { model }
    }

    pub(crate) fn btf(&self) -> Result<&'a Btf> {
        self.model.btf().map(|b| &**b).ok_or(EvalError::NoBtf)
    }

    pub(crate) fn memory(&self) -> &'m dyn KernelMemory {
        self.model.memory()
    }

    /// The value of `text`.
    pub fn evaluate(&self, text: &str) -> Result<Object> {
        let expr = super::parse::parse(text)?;
        let object = self.eval(&expr)?;
        if object.ty == Type::Untyped {
            return Err(EvalError::NoType(text.trim().to_string()));
        }
        Ok(object)
    }

    fn eval(&self, e: &Expr) -> Result<Object> {
        match e {
            Expr::Global(name) => self.global(name),
            Expr::Number(v) => Ok(Object {
                ty: Type::Literal,
                place: Place::Value(*v as u64),
            }),
            Expr::Member(inner, name) => self.member(self.eval(inner)?, name),
            Expr::Arrow(inner, name) => {
                let target = self.deref(self.eval(inner)?, "->")?;
                self.member(target, name)
            }
            Expr::Index(inner, index) => {
                let base = self.eval(inner)?;
                let i = self.integer(&self.eval(index)?)?;
                self.index(base, i)
            }
            Expr::Deref(inner) => self.deref(self.eval(inner)?, "*"),
            Expr::AddressOf(inner) => self.address_of(self.eval(inner)?),
            Expr::Negate(inner) => {
                let v = self.integer(&self.eval(inner)?)?;
                Ok(Object {
                    ty: Type::Literal,
                    place: Place::Value(v.wrapping_neg() as u64),
                })
            }
            Expr::Cast(ty, inner) => {
                let target = self.type_named(ty)?;
                self.cast(self.eval(inner)?, target)
            }
            Expr::PerCpu(name, cpu) => {
                let cpu = self.integer(&self.eval(cpu)?)?;
                self.per_cpu(name, cpu)
            }
        }
    }

    fn symbol(&self, name: &str) -> Result<u64> {
        self.model
            .symbols()
            .address_of(name)
            .ok_or_else(|| EvalError::NoSymbol(name.into()))
    }

    /// Whether `address` is a per-CPU symbol's (an offset into each CPU's
    /// area rather than an object).
    fn is_per_cpu(&self, address: u64) -> bool {
        let symbols = self.model.symbols();
        match (
            symbols.address_of("__per_cpu_start"),
            symbols.address_of("__per_cpu_end"),
        ) {
            (Some(start), Some(end)) => (start..end).contains(&address),
            _ => false,
        }
    }

    /// The declared type of the global `name`, if ksw has one.
    fn global_type(&self, name: &str) -> Result<Type> {
        let btf = self.btf()?;
        if let Some(var) = btf.find_named(name, &[Kind::Var])
            && let Shape::Var { target } = btf.shape(var)?
        {
            return Ok(Type::Btf(target));
        }
        match KNOWN_GLOBALS.iter().find(|(n, _)| *n == name) {
            Some((_, spelled)) => {
                let ty = super::parse::parse(&format!("({spelled})0"))
                    .ok()
                    .and_then(|e| match e {
                        Expr::Cast(ty, _) => Some(ty),
                        _ => None,
                    })
                    .ok_or_else(|| EvalError::NoSuchType((*spelled).into()))?;
                let resolved = self.type_named(&ty)?;
                // `volatile` is spelled in the table but not looked up
                Ok(if spelled.starts_with("volatile ") {
                    Type::Volatile(Box::new(resolved))
                } else {
                    resolved
                })
            }
            None => Ok(Type::Untyped),
        }
    }

    fn global(&self, name: &str) -> Result<Object> {
        let address = self.symbol(name)?;
        if self.is_per_cpu(address) {
            return Err(EvalError::PerCpu(name.into()));
        }
        Ok(Object {
            ty: self.global_type(name)?,
            place: Place::memory(address),
        })
    }

    fn per_cpu(&self, name: &str, cpu: i128) -> Result<Object> {
        let address = self.symbol(name)?;
        if !self.is_per_cpu(address) {
            return Err(EvalError::Type(format!(
                "`{name}` is not a per-CPU variable (it is not between __per_cpu_start and \
                 __per_cpu_end)"
            )));
        }
        let offsets = self.model.per_cpu_offsets();
        let offset = usize::try_from(cpu)
            .ok()
            .and_then(|c| offsets.get(c))
            .ok_or_else(|| {
                EvalError::Type(format!(
                    "CPU {cpu} is not one of the kernel's {} possible CPUs",
                    offsets.len()
                ))
            })?;
        Ok(Object {
            ty: self.global_type(name)?,
            place: Place::memory(address.wrapping_add(*offset)),
        })
    }

    /// The type a cast names.
    fn type_named(&self, name: &TypeName) -> Result<Type> {
        let btf = self.btf()?;
        let words: Vec<&str> = name
            .name
            .split(' ')
            .filter(|w| !matches!(*w, "const" | "volatile"))
            .collect();
        let base = match name.keyword {
            Some("struct") => btf.find_named(&name.name, &[Kind::Struct, Kind::Fwd]),
            Some("union") => btf.find_named(&name.name, &[Kind::Union, Kind::Fwd]),
            Some(_) => btf.find_named(&name.name, &[Kind::Enum, Kind::Enum64]),
            None if words == ["void"] => Some(TypeId::VOID),
            None => canonical_int(&words)
                .into_iter()
                .find_map(|n| btf.find_named(n, &[Kind::Int]))
                .or_else(|| {
                    btf.find_named(&words.join(" "), &[Kind::Typedef, Kind::Int, Kind::Float])
                }),
        }
        .ok_or_else(|| {
            EvalError::NoSuchType(
                TypeName {
                    pointers: 0,
                    ..name.clone()
                }
                .to_string(),
            )
        })?;
        let mut ty = Type::Btf(base);
        for _ in 0..name.pointers {
            ty = Type::Pointer(Box::new(ty));
        }
        Ok(ty)
    }

    /// `ty` seen through typedefs and qualifiers.
    pub(crate) fn resolve(&self, ty: &Type) -> Result<Resolved> {
        let mut id = match ty {
            Type::Btf(id) => *id,
            Type::Volatile(inner) => return self.resolve(inner),
            Type::Pointer(target) => return Ok(Resolved::Pointer((**target).clone())),
            Type::Literal => {
                return Ok(Resolved::Int {
                    size: 8,
                    signed: true,
                    is_bool: false,
                });
            }
            Type::Untyped => return Ok(Resolved::Untyped),
        };
        let btf = self.btf()?;
        for _ in 0..=crate::btf::MAX_DEPTH {
            return Ok(match btf.shape(id)? {
                Shape::Alias { target, .. } | Shape::Var { target } => {
                    id = target;
                    continue;
                }
                Shape::Void => Resolved::Void,
                Shape::Int {
                    size,
                    signed,
                    is_bool,
                    ..
                } => Resolved::Int {
                    size,
                    signed,
                    is_bool,
                },
                Shape::Enum {
                    size,
                    signed,
                    values,
                } => Resolved::Enum {
                    size,
                    signed,
                    values,
                },
                Shape::Float { .. } => Resolved::Float,
                Shape::Pointer { target } => Resolved::Pointer(Type::Btf(target)),
                Shape::Array { element, len } => Resolved::Array {
                    element: Type::Btf(element),
                    len,
                },
                Shape::Struct { members, .. } => Resolved::Struct { members },
                Shape::FuncProto { .. } => Resolved::Function,
                Shape::Fwd { .. } | Shape::Other { .. } => Resolved::Incomplete,
            });
        }
        Err(EvalError::Type(format!(
            "type id {} is a chain of typedefs too long to follow",
            id.0
        )))
    }

    /// The size of a value of `ty`.
    pub(crate) fn size_of(&self, ty: &Type) -> Result<u64> {
        match ty {
            Type::Btf(id) => Ok(self.btf()?.size_of(*id)?),
            Type::Volatile(inner) => self.size_of(inner),
            Type::Pointer(_) | Type::Literal => Ok(8),
            Type::Untyped => Err(EvalError::Type("a value of no type has no size".into())),
        }
    }

    /// Reads `len` bytes at `address`.
    pub(crate) fn read(&self, address: u64, len: u64) -> Result<Vec<u8>> {
        self.memory()
            .read_vec(VirtAddr(address), len as usize)
            .map_err(|source| EvalError::Memory {
                address,
                len,
                source,
            })
    }

    /// The raw bits of a scalar (integer, enum, pointer, bool) object,
    /// sign-extended when its type is signed.
    pub(crate) fn scalar(&self, obj: &Object) -> Result<u64> {
        let (size, signed) = match self.resolve(&obj.ty)? {
            Resolved::Int { size, signed, .. } | Resolved::Enum { size, signed, .. } => {
                (size, signed)
            }
            Resolved::Pointer(_) => (8, false),
            Resolved::Untyped => {
                return Err(EvalError::Type(
                    "a symbol of no type has no value; cast it to its type".into(),
                ));
            }
            other => {
                return Err(EvalError::Type(format!(
                    "a {} is not a number",
                    describe(&other)
                )));
            }
        };
        let (raw, bits) = match obj.place {
            Place::Value(v) => (v, size * 8),
            Place::Memory {
                address,
                bits: None,
            } => {
                if !matches!(size, 1 | 2 | 4 | 8) {
                    return Err(EvalError::Type(format!("a {size}-byte integer")));
                }
                let bytes = self.read(address, u64::from(size))?;
                let mut buf = [0u8; 8];
                buf[..bytes.len()].copy_from_slice(&bytes);
                (u64::from_le_bytes(buf), size * 8)
            }
            Place::Memory {
                address,
                bits: Some((offset, width)),
            } => {
                let len = (u64::from(offset) + u64::from(width)).div_ceil(8);
                let bytes = self.read(address, len)?;
                let mut buf = [0u8; 16];
                buf[..bytes.len()].copy_from_slice(&bytes);
                let all = u128::from_le_bytes(buf) >> offset;
                let mask = if width >= 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                (all as u64 & mask, width)
            }
        };
        Ok(if signed && bits < 64 && raw >> (bits - 1) & 1 == 1 {
            raw | !((1u64 << bits) - 1)
        } else {
            raw
        })
    }

    /// The value of an integer-like object, as an index or CPU number.
    fn integer(&self, obj: &Object) -> Result<i128> {
        let raw = self.scalar(obj)?;
        let signed = matches!(
            self.resolve(&obj.ty)?,
            Resolved::Int { signed: true, .. } | Resolved::Enum { signed: true, .. }
        );
        Ok(if signed {
            i128::from(raw as i64)
        } else {
            i128::from(raw)
        })
    }

    fn member(&self, obj: Object, name: &str) -> Result<Object> {
        match self.resolve(&obj.ty)? {
            Resolved::Struct { .. } => {}
            Resolved::Pointer(_) => {
                return Err(EvalError::Type(format!(
                    "`.{name}` of a pointer; use `->{name}`"
                )));
            }
            Resolved::Untyped => {
                return Err(EvalError::Type(format!(
                    "`.{name}` of a symbol of no type; cast it first, e.g. \
                     `((struct foo *)&sym)->{name}`"
                )));
            }
            other => {
                return Err(EvalError::Type(format!(
                    "`.{name}` of a {}",
                    describe(&other)
                )));
            }
        }
        let (
            Place::Memory {
                address,
                bits: None,
            },
            Some(id),
        ) = (obj.place, obj.ty.btf_id())
        else {
            return Err(EvalError::Type(format!(
                "`.{name}` needs a struct in memory"
            )));
        };
        let member = self.btf()?.member(id, name)?;
        Ok(Object {
            ty: Type::Btf(member.ty),
            place: Place::Memory {
                address: address.wrapping_add(member.bit_offset / 8),
                bits: member
                    .is_bitfield()
                    .then_some(((member.bit_offset % 8) as u32, member.bitfield_size)),
            },
        })
    }

    fn deref(&self, obj: Object, op: &str) -> Result<Object> {
        let Resolved::Pointer(target) = self.resolve(&obj.ty)? else {
            return Err(EvalError::Type(format!(
                "`{op}` needs a pointer, and this is a {}",
                describe(&self.resolve(&obj.ty)?)
            )));
        };
        if matches!(self.resolve(&target)?, Resolved::Void) {
            return Err(EvalError::Type(format!(
                "`{op}` of a void pointer; cast it to a typed pointer first"
            )));
        }
        Ok(Object {
            ty: target,
            place: Place::memory(self.scalar(&obj)?),
        })
    }

    fn index(&self, obj: Object, i: i128) -> Result<Object> {
        let (element, base) = match self.resolve(&obj.ty)? {
            Resolved::Array { element, .. } => match obj.place {
                Place::Memory {
                    address,
                    bits: None,
                } => (element, address),
                _ => return Err(EvalError::Type("an array that is not in memory".into())),
            },
            Resolved::Pointer(target) => {
                let base = self.scalar(&obj)?;
                (target, base)
            }
            other => {
                return Err(EvalError::Type(format!(
                    "`[]` needs an array or a pointer, and this is a {}",
                    describe(&other)
                )));
            }
        };
        let size = self.size_of(&element)?;
        let offset = i128::from(size) * i;
        Ok(Object {
            ty: element,
            place: Place::memory(base.wrapping_add(offset as i64 as u64)),
        })
    }

    fn address_of(&self, obj: Object) -> Result<Object> {
        match obj.place {
            Place::Memory {
                address,
                bits: None,
            } => Ok(Object {
                ty: Type::Pointer(Box::new(match obj.ty {
                    Type::Untyped => Type::Btf(TypeId::VOID),
                    ty => ty,
                })),
                place: Place::Value(address),
            }),
            Place::Memory { bits: Some(_), .. } => Err(EvalError::Type("`&` of a bitfield".into())),
            Place::Value(_) => Err(EvalError::Type("`&` of a value not in memory".into())),
        }
    }

    fn cast(&self, obj: Object, target: Type) -> Result<Object> {
        // A symbol of no type is taken to be an object of the cast's type
        // at its address, as gdb does for symbols without debug info.
        if let (Type::Untyped, Place::Memory { .. }) = (&obj.ty, &obj.place) {
            return Ok(Object {
                ty: target,
                place: obj.place,
            });
        }
        let scalar = |r: &Resolved| {
            matches!(
                r,
                Resolved::Int { .. } | Resolved::Enum { .. } | Resolved::Pointer(_)
            )
        };
        let (from, to) = (self.resolve(&obj.ty)?, self.resolve(&target)?);
        if !scalar(&from) || !scalar(&to) {
            return Err(EvalError::Type(format!(
                "a cast from a {} to a {}: only numbers and pointers convert",
                describe(&from),
                describe(&to)
            )));
        }
        let raw = self.scalar(&obj)?;
        let size = self.size_of(&target)?;
        let truncated = if size >= 8 {
            raw
        } else {
            raw & ((1u64 << (size * 8)) - 1)
        };
        Ok(Object {
            ty: target,
            place: Place::Value(truncated),
        })
    }
}

/// The BTF names an integer type spelled with `words` may have (`long` is
/// `long int` in BTF).
fn canonical_int(words: &[&str]) -> Vec<&'static str> {
    let unsigned = words.contains(&"unsigned");
    let rest: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !matches!(*w, "unsigned" | "signed" | "int"))
        .collect();
    match (unsigned, rest.as_slice()) {
        (false, ["char"]) if words.contains(&"signed") => vec!["signed char"],
        (false, ["char"]) => vec!["char"],
        (true, ["char"]) => vec!["unsigned char"],
        (false, ["short"]) => vec!["short int", "short"],
        (true, ["short"]) => vec!["short unsigned int", "unsigned short"],
        (false, []) => vec!["int"],
        (true, []) => vec!["unsigned int"],
        (false, ["long"]) => vec!["long int", "long"],
        (true, ["long"]) => vec!["long unsigned int", "unsigned long"],
        (false, ["long", "long"]) => vec!["long long int", "long long"],
        (true, ["long", "long"]) => vec!["long long unsigned int", "unsigned long long"],
        (false, ["_Bool"] | ["bool"]) => vec!["_Bool"],
        _ => Vec::new(),
    }
}

/// A type's class, for messages.
fn describe(r: &Resolved) -> &'static str {
    match r {
        Resolved::Void => "void",
        Resolved::Int { .. } => "number",
        Resolved::Enum { .. } => "enum",
        Resolved::Float => "floating-point number",
        Resolved::Pointer(_) => "pointer",
        Resolved::Array { .. } => "array",
        Resolved::Struct { .. } => "struct or union",
        Resolved::Function => "function",
        Resolved::Incomplete => "incomplete type",
        Resolved::Untyped => "symbol of no type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_spellings_map_to_btf_names() {
        assert_eq!(canonical_int(&["unsigned", "long"])[0], "long unsigned int");
        assert_eq!(
            canonical_int(&["long", "unsigned", "int"])[0],
            "long unsigned int"
        );
        assert_eq!(canonical_int(&["int"])[0], "int");
        assert_eq!(canonical_int(&["unsigned"])[0], "unsigned int");
        assert_eq!(canonical_int(&["signed", "char"])[0], "signed char");
        assert!(canonical_int(&["u64"]).is_empty());
    }
}
