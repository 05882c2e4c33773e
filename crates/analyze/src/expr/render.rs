//! An object's value as a tree ([`Rendered`]) that prints the way drgn
//! prints an object, and serializes as JSON: type spellings in C
//! declarator syntax, structs member by member, `char` arrays as strings.

use std::fmt::Write as _;

use serde::Serialize;

use super::eval::{Evaluator, Resolved, Result};
use super::{Object, Place, Type};
use crate::btf::{Kind, Shape};

/// Elements of one array shown at most.
const MAX_ELEMENTS: u32 = 256;
/// Struct nesting shown at most.
const MAX_DEPTH: u32 = 16;

/// A value with its type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendered {
    /// The type, in C syntax (`struct list_head *`, `char [16]`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Where the object is, if in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u64>,
    /// The value.
    pub value: Value,
}

/// A value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// A signed integer.
    Signed(i64),
    /// An unsigned integer.
    Unsigned(u64),
    /// A `_Bool`.
    Bool(bool),
    /// A pointer.
    Pointer(u64),
    /// An enum: its enumerator's name when it has one.
    Enum {
        /// The enumerator.
        name: Option<String>,
        /// The number.
        value: i64,
    },
    /// A `char` array, up to its first NUL.
    String(String),
    /// An array's elements (at most [`MAX_ELEMENTS`]) and its length.
    Array {
        /// The elements shown.
        elements: Vec<Rendered>,
        /// The array's length.
        len: u32,
    },
    /// A struct or union's members in order.
    Struct(Vec<(String, Rendered)>),
    /// Something ksw does not show (a function, a float, nesting too deep).
    Opaque(String),
    /// Memory that could not be read, and why.
    Unreadable(String),
}

/// `ty` in C declarator syntax around `inner` (the declarator so far).
pub fn spell(ev: &Evaluator<'_, '_>, ty: &Type) -> String {
    spell_around(ev, ty, String::new(), 0)
}

fn join(base: &str, inner: &str) -> String {
    if inner.is_empty() {
        base.to_string()
    } else {
        format!("{base} {inner}")
    }
}

fn spell_around(ev: &Evaluator<'_, '_>, ty: &Type, inner: String, depth: u32) -> String {
    if depth > MAX_DEPTH * 2 {
        return join("...", &inner);
    }
    let id = match ty {
        Type::Btf(id) => *id,
        Type::Pointer(target) => return pointer_to(ev, target, inner, depth),
        Type::Volatile(target) => {
            return format!("volatile {}", spell_around(ev, target, inner, depth + 1));
        }
        Type::Literal => return join("long", &inner),
        Type::Untyped => return join("<no type>", &inner),
    };
    let Ok(btf) = ev.btf() else {
        return join("?", &inner);
    };
    let named = |keyword: &str| {
        let name = btf
            .type_name(id)
            .unwrap_or_else(|| "<anonymous>".to_string());
        join(&format!("{keyword}{name}"), &inner)
    };
    match btf.shape(id) {
        Ok(Shape::Void) => join("void", &inner),
        Ok(Shape::Int { .. } | Shape::Float { .. }) => {
            let name = btf.type_name(id).unwrap_or_default();
            join(c_int_name(&name), &inner)
        }
        Ok(Shape::Struct {
            is_union: false, ..
        }) => named("struct "),
        Ok(Shape::Struct { is_union: true, .. }) => named("union "),
        Ok(Shape::Fwd { is_union }) => named(if is_union { "union " } else { "struct " }),
        Ok(Shape::Enum { .. }) => named("enum "),
        Ok(Shape::Alias {
            kind: Kind::Typedef,
            ..
        }) => named(""),
        Ok(Shape::Alias { kind, target }) => {
            let qualifier = match kind {
                Kind::Const => "const",
                Kind::Volatile => "volatile",
                Kind::Restrict => "restrict",
                _ => "",
            };
            let target_is_pointer = matches!(btf.shape(target), Ok(Shape::Pointer { .. }));
            if qualifier.is_empty() {
                spell_around(ev, &Type::Btf(target), inner, depth + 1)
            } else if target_is_pointer {
                spell_around(ev, &Type::Btf(target), join(qualifier, &inner), depth + 1)
            } else {
                format!(
                    "{qualifier} {}",
                    spell_around(ev, &Type::Btf(target), inner, depth + 1)
                )
            }
        }
        Ok(Shape::Pointer { target }) => pointer_to(ev, &Type::Btf(target), inner, depth),
        Ok(Shape::Array { element, len }) => {
            let inner = if inner.starts_with('*') {
                format!("({inner})[{len}]")
            } else {
                format!("{inner}[{len}]")
            };
            spell_around(ev, &Type::Btf(element), inner, depth + 1)
        }
        Ok(Shape::FuncProto { ret, params }) => {
            let mut list: Vec<String> = params
                .iter()
                .map(|p| {
                    if p.0 == 0 {
                        "...".to_string()
                    } else {
                        spell_around(ev, &Type::Btf(*p), String::new(), depth + 1)
                    }
                })
                .collect();
            if list.is_empty() {
                list.push("void".into());
            }
            let inner = if inner.starts_with('*') {
                format!("({inner})")
            } else {
                inner
            };
            spell_around(
                ev,
                &Type::Btf(ret),
                format!("{inner}({})", list.join(", ")),
                depth + 1,
            )
        }
        Ok(Shape::Var { target }) => spell_around(ev, &Type::Btf(target), inner, depth + 1),
        Ok(Shape::Other { kind }) => join(kind.name(), &inner),
        Err(_) => join(&format!("<bad type id {}>", id.0), &inner),
    }
}

/// The usual spelling of an integer type BTF names the GCC way (`long
/// unsigned int` is `unsigned long`), as drgn spells them.
fn c_int_name(btf_name: &str) -> &str {
    match btf_name {
        "long unsigned int" => "unsigned long",
        "long int" => "long",
        "short unsigned int" => "unsigned short",
        "short int" => "short",
        "long long int" => "long long",
        "long long unsigned int" => "unsigned long long",
        other => other,
    }
}

fn pointer_to(ev: &Evaluator<'_, '_>, target: &Type, inner: String, depth: u32) -> String {
    spell_around(ev, target, format!("*{inner}"), depth + 1)
}

/// The rendered value of `obj`.
pub fn render(ev: &Evaluator<'_, '_>, obj: &Object) -> Result<Rendered> {
    // the top level's errors are the command's (all of the object must be
    // readable, as drgn reads it whole); deeper ones are shown in place
    if let (
        Place::Memory {
            address,
            bits: None,
        },
        Ok(size),
    ) = (obj.place, ev.size_of(&obj.ty))
    {
        ev.read(address, size)?;
    }
    let value = value_of(ev, obj, 0)?;
    Ok(Rendered {
        type_name: spell(ev, &obj.ty),
        address: obj.place.address(),
        value,
    })
}

fn nested(ev: &Evaluator<'_, '_>, obj: &Object, depth: u32) -> Rendered {
    Rendered {
        type_name: spell(ev, &obj.ty),
        address: obj.place.address(),
        value: value_of(ev, obj, depth).unwrap_or_else(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            Value::Unreadable(why)
        }),
    }
}

fn value_of(ev: &Evaluator<'_, '_>, obj: &Object, depth: u32) -> Result<Value> {
    match ev.resolve(&obj.ty)? {
        Resolved::Int { is_bool: true, .. } => Ok(Value::Bool(ev.scalar(obj)? != 0)),
        Resolved::Int { signed: true, .. } => Ok(Value::Signed(ev.scalar(obj)? as i64)),
        Resolved::Int { .. } => Ok(Value::Unsigned(ev.scalar(obj)?)),
        Resolved::Enum { values, .. } => {
            let value = ev.scalar(obj)? as i64;
            Ok(Value::Enum {
                name: values
                    .into_iter()
                    .find(|(_, v)| *v == value)
                    .map(|(n, _)| n),
                value,
            })
        }
        Resolved::Pointer(_) => Ok(Value::Pointer(ev.scalar(obj)?)),
        Resolved::Untyped => Ok(Value::Opaque("no type".into())),
        _ if depth > MAX_DEPTH => Ok(Value::Opaque("nested too deep".into())),
        Resolved::Array { element, len } => {
            let Some(address) = obj.place.address() else {
                return Ok(Value::Opaque("an array not in memory".into()));
            };
            // arrays of `char` print as strings (of a typedef such as u8, as
            // numbers), as drgn prints them
            let spelled = spell(ev, &element);
            let unqualified = spelled
                .trim_start_matches("const ")
                .trim_start_matches("volatile ");
            if matches!(unqualified, "char" | "signed char" | "unsigned char") {
                let bytes = ev.read(address, u64::from(len))?;
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                return Ok(Value::String(
                    String::from_utf8_lossy(&bytes[..end]).into_owned(),
                ));
            }
            let size = ev.size_of(&element)?;
            let elements = (0..len.min(MAX_ELEMENTS))
                .map(|i| {
                    let at = address.wrapping_add(u64::from(i) * size);
                    let element = Object {
                        ty: element.clone(),
                        place: Place::memory(at),
                    };
                    nested(ev, &element, depth + 1)
                })
                .collect();
            Ok(Value::Array { elements, len })
        }
        Resolved::Struct { members } => {
            let Some(address) = obj.place.address() else {
                return Ok(Value::Opaque("a struct not in memory".into()));
            };
            let mut shown = Vec::new();
            flatten_members(ev, address, members, depth, &mut shown)?;
            Ok(Value::Struct(shown))
        }
        Resolved::Void => Ok(Value::Opaque("void".into())),
        Resolved::Float => Ok(Value::Opaque("a floating-point value".into())),
        Resolved::Function => Ok(Value::Opaque("a function".into())),
        Resolved::Incomplete => Ok(Value::Opaque("an incomplete type".into())),
    }
}

/// The members of a struct at `address`, those of anonymous struct and
/// union members in their place (as C names them, and drgn prints them).
fn flatten_members(
    ev: &Evaluator<'_, '_>,
    address: u64,
    members: Vec<(String, crate::btf::Member)>,
    depth: u32,
    out: &mut Vec<(String, Rendered)>,
) -> Result<()> {
    for (name, m) in members {
        let ty = Type::Btf(m.ty);
        let at = address.wrapping_add(m.bit_offset / 8);
        if name.is_empty()
            && depth <= MAX_DEPTH
            && let Resolved::Struct { members: inner } = ev.resolve(&ty)?
        {
            flatten_members(ev, at, inner, depth + 1, out)?;
            continue;
        }
        let member = Object {
            ty,
            place: Place::Memory {
                address: at,
                bits: m
                    .is_bitfield()
                    .then_some(((m.bit_offset % 8) as u32, m.bitfield_size)),
            },
        };
        out.push((name, nested(ev, &member, depth + 1)));
    }
    Ok(())
}

impl Value {
    /// Whether every byte of the value is zero (a null pointer, an empty
    /// string, a struct of zeros).
    fn is_zero(&self) -> bool {
        match self {
            Value::Signed(v) => *v == 0,
            Value::Unsigned(v) | Value::Pointer(v) => *v == 0,
            Value::Bool(b) => !b,
            Value::Enum { value, .. } => *value == 0,
            Value::String(s) => s.is_empty(),
            Value::Array { elements, .. } => elements.iter().all(|e| e.value.is_zero()),
            Value::Struct(members) => members.iter().all(|(_, m)| m.value.is_zero()),
            Value::Opaque(_) | Value::Unreadable(_) => false,
        }
    }
}

impl Rendered {
    /// The drgn-style text: `(type)value`, structs one member a line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0, true);
        out
    }

    fn write(&self, out: &mut String, indent: usize, typed: bool) {
        if typed {
            let _ = write!(out, "({})", self.type_name);
        }
        match &self.value {
            Value::Signed(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Unsigned(v) => {
                let _ = write!(out, "{v}");
            }
            // as a number, as drgn prints a bool
            Value::Bool(b) => out.push(if *b { '1' } else { '0' }),
            Value::Pointer(p) => {
                let _ = write!(out, "{p:#x}");
            }
            Value::Enum { name: Some(n), .. } => out.push_str(n),
            Value::Enum { name: None, value } => {
                let _ = write!(out, "{value}");
            }
            Value::String(s) => {
                let _ = write!(out, "{s:?}");
            }
            Value::Opaque(what) => {
                let _ = write!(out, "<{what}>");
            }
            Value::Unreadable(why) => {
                let _ = write!(out, "<unreadable: {why}>");
            }
            Value::Array { elements, len } => {
                // trailing zeros are left out, as drgn leaves them out
                let shown = elements.len()
                    - elements
                        .iter()
                        .rev()
                        .take_while(|e| e.value.is_zero())
                        .count();
                let elements = &elements[..shown];
                if elements.is_empty() {
                    out.push_str("{}");
                    return;
                }
                let scalars = elements
                    .iter()
                    .all(|e| !matches!(e.value, Value::Struct(_) | Value::Array { .. }));
                if scalars {
                    out.push_str("{ ");
                    for (i, e) in elements.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        e.write(out, indent, false);
                    }
                    if *len > MAX_ELEMENTS && shown == MAX_ELEMENTS as usize {
                        let _ = write!(out, ", ... ({len} in all)");
                    }
                    out.push_str(" }");
                } else {
                    out.push_str("{\n");
                    for e in elements {
                        out.push_str(&"\t".repeat(indent + 1));
                        e.write(out, indent + 1, false);
                        out.push_str(",\n");
                    }
                    if *len > MAX_ELEMENTS && shown == MAX_ELEMENTS as usize {
                        let _ = writeln!(out, "{}... ({len} in all)", "\t".repeat(indent + 1));
                    }
                    out.push_str(&"\t".repeat(indent));
                    out.push('}');
                }
            }
            Value::Struct(members) if members.is_empty() => out.push_str("{}"),
            Value::Struct(members) => {
                out.push_str("{\n");
                for (name, m) in members {
                    out.push_str(&"\t".repeat(indent + 1));
                    let _ = write!(out, ".{name} = ");
                    m.write(out, indent + 1, true);
                    out.push_str(",\n");
                }
                out.push_str(&"\t".repeat(indent));
                out.push('}');
            }
        }
    }
}
