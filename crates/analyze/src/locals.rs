//! The parameters and locals of each frame, with their values from the
//! dump: what `ksw bt -v` prints under a frame, as drgn's
//! `frame[name]` gives them.
//!
//! Variables come from the debug vmlinux's DWARF (the function whose
//! entry is the frame's symbol, or the symbol `.cold` was split from);
//! their places at the frame's pc from their location expressions:
//! CFA-relative (the frame's CFA is its caller's SP), SP- and BP-relative
//! (from the walk's registers), static. A variable kept in a register
//! has its value where the frame started from a full register set (the
//! saved registers of a crash, a catch, an exception); elsewhere the
//! unwinder recovers rbp only, so it is named, not valued. Values are the bytes in memory, decoded as a little-endian
//! integer when the type is 8 bytes or fewer.

use ksw_vmcore::{KernelMemory, VirtAddr};

use crate::dwarf::{DebugInfo, DebugSections, Location, Place};
use crate::kernel::SymbolTable;
use crate::register::Register;
use crate::unwind::Trace;

/// A variable's value in a frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VariableValue {
    /// In memory, read.
    Memory {
        /// Where.
        address: u64,
        /// The type's size; `bytes` holds at most the first 4 KiB.
        size: u64,
        /// The bytes, as hex.
        bytes: String,
        /// The bytes as a little-endian integer, for 8 bytes or fewer.
        integer: Option<u64>,
    },
    /// In memory that the dump does not hold (excluded, unmapped).
    Unreadable {
        /// Where.
        address: u64,
    },
    /// In a register whose value this frame has (saved registers).
    Register {
        /// The register.
        register: String,
        /// Its value.
        value: u64,
    },
    /// In a register the unwinder does not recover.
    InRegister {
        /// The register.
        register: String,
    },
    /// Optimised out at this pc.
    OptimizedOut,
    /// A form this reader does not evaluate (pieces, computed values,
    /// entry values, other expressions).
    NotEvaluated {
        /// Which form.
        form: String,
    },
}

/// One parameter or local of a frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FrameVariable {
    /// Its name.
    pub name: String,
    /// The inlined function it belongs to, when not the frame's own.
    pub inlined_from: Option<String>,
    /// True for a parameter.
    pub parameter: bool,
    /// Its C type.
    pub type_name: String,
    /// Its value.
    pub value: VariableValue,
}

/// Most bytes of one variable that are read.
const MAX_VALUE: u64 = 4096;

/// A debug vmlinux's DWARF, read for the variables of frames (lazily: a
/// unit is parsed when a frame needs it, once).
pub struct FrameVariables<'s> {
    info: DebugInfo<'s>,
    kaslr: u64,
    /// The module whose frames these are (its DWARF relocated to where
    /// it was loaded), `None` for vmlinux.
    module: Option<String>,
}

impl std::fmt::Debug for FrameVariables<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameVariables")
            .field("kaslr", &self.kaslr)
            .finish_non_exhaustive()
    }
}

impl<'s> FrameVariables<'s> {
    /// The variables of `sections` (a vmlinux whose text moved by `kaslr`).
    pub fn new(sections: &'s DebugSections<'s>, kaslr: u64) -> crate::Result<Self> {
        Ok(Self {
            info: DebugInfo::new(sections)?,
            kaslr,
            module: None,
        })
    }

    /// The variables of module `name`'s frames, from its `.ko` whose
    /// sections were placed where the module was loaded (see
    /// [`crate::symbolize::ModuleDebugFile::with_sections`]).
    pub fn for_module(sections: &'s DebugSections<'s>, name: &str) -> crate::Result<Self> {
        Ok(Self {
            info: DebugInfo::new(sections)?,
            kaslr: 0,
            module: Some(name.to_string()),
        })
    }

    /// Fills in the variables of every frame of `trace` in this file's
    /// code (vmlinux, or the module); other frames and frames DWARF does
    /// not describe are left alone; `symbols`
    /// finds a `.cold` part's main symbol.
    pub fn annotate(
        &self,
        trace: &mut Trace,
        symbols: &SymbolTable<'_>,
        mem: &dyn KernelMemory,
    ) -> crate::Result<()> {
        let all = self.frame_variables(trace, symbols, mem)?;
        for (frame, vars) in trace.frames.iter_mut().zip(all) {
            if let Some(vars) = vars {
                frame.variables = vars;
            }
        }
        Ok(())
    }

    fn frame_variables(
        &self,
        trace: &Trace,
        symbols: &SymbolTable<'_>,
        mem: &dyn KernelMemory,
    ) -> crate::Result<Vec<Option<Vec<FrameVariable>>>> {
        let (info, kaslr) = (&self.info, self.kaslr);
        let mut out = Vec::new();
        for (i, frame) in trace.frames.iter().enumerate() {
            let Some(sym) = frame.symbol.as_ref().filter(|s| s.module == self.module) else {
                out.push(None);
                continue;
            };
            let pc = if frame.exact {
                frame.pc
            } else {
                frame.pc.wrapping_sub(1)
            };
            // the function's entry: the symbol's start, or, for a part gcc
            // split off (`foo.cold`), the start of `foo`
            let start = frame.pc.wrapping_sub(sym.offset);
            let entry = match sym.name.strip_suffix(".cold") {
                Some(main) => symbols.address_of(main).unwrap_or(start),
                None => start,
            };
            let link = |a: u64| a.wrapping_sub(kaslr);
            let Some(unit) = info.unit_for_address(link(entry))? else {
                out.push(Some(Vec::new()));
                continue;
            };
            let Some(sub) = unit.subprogram_at(link(entry))? else {
                out.push(Some(Vec::new()));
                continue;
            };
            let function = unit.function(sub)?;
            // the frame's CFA is its caller's SP
            let cfa = trace
                .frames
                .get(i + 1)
                .filter(|c| c.regs_at.is_none())
                .map(|c| c.sp);
            let mut vars = Vec::new();
            for v in &function.variables {
                let in_block = v
                    .block_ranges
                    .as_ref()
                    .is_none_or(|r| r.iter().any(|&(b, e)| link(pc) >= b && link(pc) < e));
                let place = match &v.location {
                    Location::Absent => None,
                    Location::Single(p) => Some(p.clone()),
                    Location::List(list) => list
                        .iter()
                        .find(|(b, e, _)| link(pc) >= *b && link(pc) < *e)
                        .map(|(_, _, p)| p.clone()),
                };
                // an inlined callee's variable is in scope only where its
                // location list says so
                let listed = matches!(v.location, Location::List(_)) && place.is_some();
                if !in_block || (v.inlined_from.is_some() && !listed) {
                    continue;
                }
                let size = v
                    .type_offset
                    .and_then(|t| unit.type_size(t).ok().flatten())
                    .unwrap_or(8);
                let value = match place {
                    None | Some(Place::OptimisedOut) => VariableValue::OptimizedOut,
                    Some(Place::Stack { cfa_offset }) => match cfa {
                        Some(c) => read(mem, c.wrapping_add_signed(cfa_offset), size),
                        None => VariableValue::NotEvaluated {
                            form: "CFA-relative, CFA unknown".into(),
                        },
                    },
                    Some(Place::RegisterOffset { register, offset }) => match register {
                        Register::Rsp => read(mem, frame.sp.wrapping_add_signed(offset), size),
                        r => VariableValue::NotEvaluated {
                            form: format!("relative to %{}", r.name().unwrap_or("?")),
                        },
                    },
                    Some(Place::Static { address }) => read(mem, address.wrapping_add(kaslr), size),
                    Some(Place::Register { register }) => {
                        match frame.registers.as_ref().and_then(|r| {
                            let mut all = [0u64; 27];
                            all[..21].copy_from_slice(&r.0);
                            register.value_in(&ksw_vmcore::cpu::X86Registers(all))
                        }) {
                            Some(v) => VariableValue::Register {
                                register: register.name().unwrap_or("?").to_string(),
                                value: v,
                            },
                            None => VariableValue::InRegister {
                                register: register.name().unwrap_or("?").to_string(),
                            },
                        }
                    }
                    Some(other) => VariableValue::NotEvaluated {
                        form: format!("{other:?}"),
                    },
                };
                vars.push(FrameVariable {
                    name: v.name.clone(),
                    inlined_from: v.inlined_from.clone(),
                    parameter: v.parameter,
                    type_name: unit.type_name(v.type_offset).unwrap_or_else(|_| "?".into()),
                    value,
                });
            }
            out.push(Some(vars));
        }
        Ok(out)
    }
}

fn read(mem: &dyn KernelMemory, address: u64, size: u64) -> VariableValue {
    let n = size.clamp(1, MAX_VALUE) as usize;
    match mem.read_vec(VirtAddr(address), n) {
        Ok(b) => VariableValue::Memory {
            address,
            size,
            integer: (n <= 8).then(|| {
                let mut w = [0u8; 8];
                w[..n].copy_from_slice(&b);
                u64::from_le_bytes(w)
            }),
            bytes: b.iter().map(|x| format!("{x:02x}")).collect(),
        },
        Err(_) => VariableValue::Unreadable { address },
    }
}
