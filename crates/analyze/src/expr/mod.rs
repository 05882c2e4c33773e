//! Typed C expressions over a kernel's globals, for `ksw print`.
//!
//! [`parse`] reads the expression, [`eval`] finds its object (type and
//! place) in the kernel model, and [`render`] prints the object the way
//! drgn prints one: `(type)value`, structs as `.member = ...` lines. Types
//! come from the kernel's BTF. BTF describes only per-CPU variables, so
//! other globals are typed from a short table of well-known ones, or by a
//! cast, as gdb does for symbols without debug info.

pub mod eval;
pub mod parse;
pub mod render;

pub use eval::{EvalError, Evaluator};

use crate::btf::TypeId;

/// A type as the evaluator carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// A BTF type.
    Btf(TypeId),
    /// A pointer to a type (made by `&` or a cast; BTF has no pointer
    /// record for every type).
    Pointer(Box<Type>),
    /// `volatile` over a type (from the table of well-known globals).
    Volatile(Box<Type>),
    /// An integer literal (a `long`).
    Literal,
    /// A symbol with no type information.
    Untyped,
}

impl Type {
    /// The BTF type under any `volatile` the evaluator added.
    pub fn btf_id(&self) -> Option<TypeId> {
        match self {
            Type::Btf(id) => Some(*id),
            Type::Volatile(inner) => inner.btf_id(),
            _ => None,
        }
    }
}

/// Where an object's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In kernel memory at `address`; a bitfield has its bit offset from
    /// `address` and its width.
    Memory {
        /// The first byte.
        address: u64,
        /// `(bit offset, width)` of a bitfield.
        bits: Option<(u32, u32)>,
    },
    /// A computed scalar (an address taken, a cast, a literal).
    Value(u64),
}

impl Place {
    /// A whole object at `address`.
    pub fn memory(address: u64) -> Place {
        Place::Memory {
            address,
            bits: None,
        }
    }

    /// The address, for an object in memory.
    pub fn address(&self) -> Option<u64> {
        match self {
            Place::Memory { address, .. } => Some(*address),
            Place::Value(_) => None,
        }
    }
}

/// A typed value: what an expression denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its type.
    pub ty: Type,
    /// Where its value is.
    pub place: Place,
}
