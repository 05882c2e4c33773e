//! ORC unwind rules, as pure data and arithmetic.
//!
//! An ORC entry says, for a range of kernel text, where the caller's stack
//! pointer (the CFA) is, where the caller's frame pointer was saved, and
//! what kind of frame this is: a call, a full `pt_regs` (an exception or
//! interrupt entry), or only its IRET part. This module decodes entries and
//! applies one of them to a register state; it reads memory only through
//! the [`StackWords`] trait, so tests need no dump.
//!
//! The entry's six bytes changed meaning in Linux 6.4: before, `type` had
//! two bits (call, regs, regs-partial) followed by an `end` bit; since, it
//! has three (undefined, end-of-stack, call, regs, regs-partial) followed
//! by a `signal` bit. [`OrcLayout`] is chosen from the kernel's own
//! description of `struct orc_entry` (BTF), not from its version string.

/// Size of one `struct orc_entry`.
pub const ORC_ENTRY_SIZE: usize = 6;
/// Size of x86_64 `struct pt_regs`.
pub const PT_REGS_SIZE: u64 = 21 * 8;
/// Offset of `ip` in `struct pt_regs` (the start of the IRET frame).
const PT_REGS_IP: u64 = 16 * 8;

/// Which bit layout the kernel's `struct orc_entry` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrcLayout {
    /// Linux up to 6.3: `type:2` (call, regs, regs-partial), then `end:1`.
    TypeEnd,
    /// Linux 6.4 and later: `type:3` (undefined, end-of-stack, call, regs,
    /// regs-partial), then `signal:1`.
    TypeSignal,
}

/// A register an ORC entry bases an address on (`ORC_REG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrcReg {
    /// No rule.
    Undefined,
    /// The caller's stack pointer (the CFA just computed).
    PrevSp,
    /// `rdx`.
    Dx,
    /// `rdi`.
    Di,
    /// `rbp`.
    Bp,
    /// `rsp`.
    Sp,
    /// `r10`.
    R10,
    /// `r13`.
    R13,
    /// The word at `rbp + offset`.
    BpIndirect,
    /// The word at `rsp`, plus the offset.
    SpIndirect,
}

impl OrcReg {
    fn decode(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Undefined,
            1 => Self::PrevSp,
            2 => Self::Dx,
            3 => Self::Di,
            4 => Self::Bp,
            5 => Self::Sp,
            6 => Self::R10,
            7 => Self::R13,
            8 => Self::BpIndirect,
            9 => Self::SpIndirect,
            _ => return None,
        })
    }
}

/// What kind of frame an entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrcFrameKind {
    /// No unwind information: the walk cannot go on (6.4+).
    Undefined,
    /// The bottom of a kernel stack: the walk is complete.
    EndOfStack,
    /// A normal frame: the return address is just below the CFA.
    Call,
    /// A full `struct pt_regs` starts at the CFA.
    Regs,
    /// Only the IRET frame of a `pt_regs` is valid; it starts at the CFA.
    RegsPartial,
}

/// One decoded `struct orc_entry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrcEntry {
    /// Offset added to `sp_reg` to find the CFA.
    pub sp_offset: i16,
    /// Offset added to `bp_reg` to find the saved frame pointer.
    pub bp_offset: i16,
    /// The base of the CFA.
    pub sp_reg: OrcReg,
    /// The base of the saved frame pointer.
    pub bp_reg: OrcReg,
    /// The frame kind.
    pub kind: OrcFrameKind,
    /// 6.4+: the next unwind's ip is exact (no call return address).
    pub signal: bool,
}

/// Why an entry could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrcDecodeError {
    /// A register number beyond `ORC_REG_SP_INDIRECT`.
    #[error("ORC register number {0} is not defined")]
    BadRegister(u8),
    /// A frame type beyond `ORC_TYPE_REGS_PARTIAL`.
    #[error("ORC frame type {0} is not defined")]
    BadType(u8),
}

impl OrcEntry {
    /// Decodes one entry in the kernel's `layout`.
    pub fn decode(b: [u8; ORC_ENTRY_SIZE], layout: OrcLayout) -> Result<Self, OrcDecodeError> {
        let reg = |v: u8| OrcReg::decode(v).ok_or(OrcDecodeError::BadRegister(v));
        let sp_reg = reg(b[4] & 0xf)?;
        let bp_reg = reg(b[4] >> 4)?;
        let (kind, signal) = match layout {
            OrcLayout::TypeEnd => {
                let end = b[5] & 0x4 != 0;
                let kind = match b[5] & 0x3 {
                    // 6.1 marks the end as "no CFA rule, end bit set"; no
                    // rule without the bit is an error
                    _ if sp_reg == OrcReg::Undefined => {
                        if end {
                            OrcFrameKind::EndOfStack
                        } else {
                            OrcFrameKind::Undefined
                        }
                    }
                    0 => OrcFrameKind::Call,
                    1 => OrcFrameKind::Regs,
                    2 => OrcFrameKind::RegsPartial,
                    t => return Err(OrcDecodeError::BadType(t)),
                };
                (
                    kind,
                    matches!(kind, OrcFrameKind::Regs | OrcFrameKind::RegsPartial),
                )
            }
            OrcLayout::TypeSignal => {
                let kind = match b[5] & 0x7 {
                    0 => OrcFrameKind::Undefined,
                    1 => OrcFrameKind::EndOfStack,
                    2 => OrcFrameKind::Call,
                    3 => OrcFrameKind::Regs,
                    4 => OrcFrameKind::RegsPartial,
                    t => return Err(OrcDecodeError::BadType(t)),
                };
                (kind, b[5] & 0x8 != 0)
            }
        };
        Ok(Self {
            sp_offset: i16::from_le_bytes([b[0], b[1]]),
            bp_offset: i16::from_le_bytes([b[2], b[3]]),
            sp_reg,
            bp_reg,
            kind,
            signal,
        })
    }
}

/// The registers of `struct pt_regs`, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PtRegs(pub [u64; 21]);

impl PtRegs {
    /// `r15` .. `bx`: indices of the general registers in `pt_regs`.
    pub const R13: usize = 2;
    /// `bp`.
    pub const BP: usize = 4;
    /// `r10`.
    pub const R10: usize = 7;
    /// `dx`.
    pub const DX: usize = 12;
    /// `di`.
    pub const DI: usize = 14;
    /// `ip`.
    pub const IP: usize = 16;
    /// `cs`.
    pub const CS: usize = 17;
    /// `flags`.
    pub const FLAGS: usize = 18;
    /// `sp`.
    pub const SP: usize = 19;

    /// Decodes 168 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut r = [0u64; 21];
        for (i, v) in r.iter_mut().enumerate() {
            *v = u64::from_le_bytes(b.get(i * 8..i * 8 + 8)?.try_into().ok()?);
        }
        Some(Self(r))
    }

    /// True if these registers were saved from user mode.
    pub fn user_mode(&self) -> bool {
        self.0[Self::CS] & 3 != 0
    }
}

/// Where a frame's registers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegsFrame {
    /// No `pt_regs`: only ip, sp and bp are known.
    None,
    /// A full `pt_regs` at this address (every register known).
    Full(u64, PtRegs),
    /// Only the IRET frame of a `pt_regs` at this address is valid
    /// (ip, cs, flags, sp, ss).
    Partial(u64, PtRegs),
}

/// The register state of one frame during a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnwindRegs {
    /// The instruction pointer.
    pub ip: u64,
    /// The stack pointer.
    pub sp: u64,
    /// The frame pointer.
    pub bp: u64,
    /// True when `ip` is exact (a trap or interrupt, or the first frame);
    /// false when it is a call's return address, so that lookups use
    /// `ip - 1` to stay inside the calling instruction's function.
    pub exact_ip: bool,
    /// The `pt_regs` this frame was reached through, if any.
    pub regs: RegsFrame,
}

impl UnwindRegs {
    /// The address to look up unwind and symbol information for.
    pub fn lookup_ip(&self) -> u64 {
        if self.exact_ip {
            self.ip
        } else {
            self.ip.wrapping_sub(1)
        }
    }

    fn reg(&self, index: usize) -> Option<u64> {
        match self.regs {
            RegsFrame::Full(_, r) => Some(r.0[index]),
            _ => None,
        }
    }
}

/// Stack words, read through whatever holds them.
pub trait StackWords {
    /// The 8-byte word at `addr`, or `None` if it cannot be read.
    fn word(&self, addr: u64) -> Option<u64>;
    /// `len` bytes at `addr`.
    fn bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>>;
}

/// Why one ORC step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrcStepError {
    /// The rule needs a register that is only known from a full `pt_regs`.
    RegisterUnknown(OrcReg),
    /// The entry's CFA rule is not one a kernel uses.
    BadRule(OrcReg),
    /// A stack word the rule needs could not be read.
    Unreadable(u64),
}

/// Applies `entry` (the one covering `state.lookup_ip()`) to `state` and
/// returns the caller's registers. End-of-stack and undefined entries are
/// the caller's to handle before calling this.
pub fn step(
    entry: &OrcEntry,
    state: &UnwindRegs,
    mem: &impl StackWords,
) -> Result<UnwindRegs, OrcStepError> {
    let read = |a: u64| mem.word(a).ok_or(OrcStepError::Unreadable(a));
    let off = |base: u64, o: i16| base.wrapping_add_signed(i64::from(o));
    let (mut cfa, indirect) = match entry.sp_reg {
        OrcReg::Sp => (off(state.sp, entry.sp_offset), false),
        OrcReg::Bp => (off(state.bp, entry.sp_offset), false),
        OrcReg::SpIndirect => (state.sp, true),
        OrcReg::BpIndirect => (off(state.bp, entry.sp_offset), true),
        r @ (OrcReg::R10 | OrcReg::R13 | OrcReg::Di | OrcReg::Dx) => {
            let i = match r {
                OrcReg::R10 => PtRegs::R10,
                OrcReg::R13 => PtRegs::R13,
                OrcReg::Di => PtRegs::DI,
                _ => PtRegs::DX,
            };
            (state.reg(i).ok_or(OrcStepError::RegisterUnknown(r))?, false)
        }
        r => return Err(OrcStepError::BadRule(r)),
    };
    if indirect {
        cfa = read(cfa)?;
        if entry.sp_reg == OrcReg::SpIndirect {
            cfa = off(cfa, entry.sp_offset);
        }
    }
    let mut next = match entry.kind {
        OrcFrameKind::Regs | OrcFrameKind::RegsPartial => {
            let full = entry.kind == OrcFrameKind::Regs;
            // a full pt_regs starts at the CFA; a partial one's IRET
            // frame does
            let at = if full {
                cfa
            } else {
                cfa.wrapping_sub(PT_REGS_IP)
            };
            let bytes = mem
                .bytes(at, PT_REGS_SIZE as usize)
                .or_else(|| {
                    // a partial frame: only the IRET words need be readable
                    let tail = mem.bytes(
                        at.wrapping_add(PT_REGS_IP),
                        (PT_REGS_SIZE - PT_REGS_IP) as usize,
                    )?;
                    let mut b = vec![0u8; PT_REGS_IP as usize];
                    b.extend(tail);
                    Some(b)
                })
                .ok_or(OrcStepError::Unreadable(at.wrapping_add(PT_REGS_IP)))?;
            let regs = PtRegs::from_bytes(&bytes).ok_or(OrcStepError::Unreadable(at))?;
            UnwindRegs {
                ip: regs.0[PtRegs::IP],
                sp: regs.0[PtRegs::SP],
                bp: if full { regs.0[PtRegs::BP] } else { state.bp },
                exact_ip: true,
                regs: if full {
                    RegsFrame::Full(at, regs)
                } else {
                    RegsFrame::Partial(at, regs)
                },
            }
        }
        _ => UnwindRegs {
            ip: read(cfa.wrapping_sub(8))?,
            sp: cfa,
            bp: state.bp,
            exact_ip: false,
            regs: RegsFrame::None,
        },
    };
    match entry.bp_reg {
        OrcReg::PrevSp => next.bp = read(off(cfa, entry.bp_offset))?,
        OrcReg::Bp => next.bp = read(off(state.bp, entry.bp_offset))?,
        OrcReg::Undefined => {}
        r => return Err(OrcStepError::BadRule(r)),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Words(HashMap<u64, u64>);

    impl StackWords for Words {
        fn word(&self, a: u64) -> Option<u64> {
            self.0.get(&a).copied()
        }
        fn bytes(&self, a: u64, len: usize) -> Option<Vec<u8>> {
            let mut v = Vec::new();
            for i in (0..len as u64).step_by(8) {
                v.extend(self.word(a + i)?.to_le_bytes());
            }
            Some(v)
        }
    }

    fn entry(sp_off: i16, bp_off: i16, sp_reg: u8, bp_reg: u8, byte5: u8) -> [u8; 6] {
        let s = sp_off.to_le_bytes();
        let b = bp_off.to_le_bytes();
        [s[0], s[1], b[0], b[1], sp_reg | (bp_reg << 4), byte5]
    }

    #[test]
    fn decodes_both_layouts() {
        // sp+16, bp at prev_sp-16, call
        let old = OrcEntry::decode(entry(16, -16, 5, 1, 0), OrcLayout::TypeEnd).unwrap();
        let new = OrcEntry::decode(entry(16, -16, 5, 1, 2), OrcLayout::TypeSignal).unwrap();
        assert_eq!(old, new);
        assert_eq!(old.kind, OrcFrameKind::Call);
        assert_eq!((old.sp_reg, old.bp_reg), (OrcReg::Sp, OrcReg::PrevSp));
        // regs: 1 before 6.4, 3 since
        assert_eq!(
            OrcEntry::decode(entry(0, 0, 5, 0, 1), OrcLayout::TypeEnd)
                .unwrap()
                .kind,
            OrcFrameKind::Regs
        );
        assert_eq!(
            OrcEntry::decode(entry(0, 0, 5, 0, 3), OrcLayout::TypeSignal)
                .unwrap()
                .kind,
            OrcFrameKind::Regs
        );
        // end of stack: 6.1 "undefined sp + end bit", 6.4+ type 1
        assert_eq!(
            OrcEntry::decode(entry(0, 0, 0, 0, 4), OrcLayout::TypeEnd)
                .unwrap()
                .kind,
            OrcFrameKind::EndOfStack
        );
        assert_eq!(
            OrcEntry::decode(entry(0, 0, 0, 0, 0), OrcLayout::TypeEnd)
                .unwrap()
                .kind,
            OrcFrameKind::Undefined
        );
        assert_eq!(
            OrcEntry::decode(entry(0, 0, 0, 0, 1), OrcLayout::TypeSignal)
                .unwrap()
                .kind,
            OrcFrameKind::EndOfStack
        );
        assert_eq!(
            OrcEntry::decode(entry(0, 0, 10, 0, 2), OrcLayout::TypeSignal),
            Err(OrcDecodeError::BadRegister(10))
        );
        assert_eq!(
            OrcEntry::decode(entry(0, 0, 5, 0, 5), OrcLayout::TypeSignal),
            Err(OrcDecodeError::BadType(5))
        );
    }

    #[test]
    fn call_frame_pops_return_address_and_saved_bp() {
        let e = OrcEntry::decode(entry(16, -16, 5, 1, 0), OrcLayout::TypeEnd).unwrap();
        let mem = Words(HashMap::from([
            (0x1008, 0xffff_ffff_8100_0010),
            (0x1000, 0xbbbb),
        ]));
        let s = UnwindRegs {
            ip: 1,
            sp: 0x1000,
            bp: 7,
            exact_ip: true,
            regs: RegsFrame::None,
        };
        let n = step(&e, &s, &mem).unwrap();
        assert_eq!((n.ip, n.sp, n.bp), (0xffff_ffff_8100_0010, 0x1010, 0xbbbb));
        assert!(!n.exact_ip);
        assert_eq!(n.lookup_ip(), 0xffff_ffff_8100_000f);
        // a missing word is named
        let empty = Words(HashMap::new());
        assert_eq!(step(&e, &s, &empty), Err(OrcStepError::Unreadable(0x1008)));
    }

    #[test]
    fn regs_frame_reads_pt_regs_below_the_cfa() {
        let e = OrcEntry::decode(entry(0, 0, 5, 0, 1), OrcLayout::TypeEnd).unwrap();
        let base = 0x2000u64;
        let mut m = HashMap::new();
        for i in 0..21u64 {
            m.insert(base + i * 8, 100 + i);
        }
        let s = UnwindRegs {
            ip: 1,
            sp: base,
            bp: 0,
            exact_ip: true,
            regs: RegsFrame::None,
        };
        let n = step(&e, &s, &Words(m)).unwrap();
        assert_eq!(n.ip, 116);
        assert_eq!(n.sp, 119);
        assert_eq!(n.bp, 104);
        assert!(n.exact_ip);
        assert!(matches!(n.regs, RegsFrame::Full(a, _) if a == base));
    }

    #[test]
    fn a_regs_frame_at_the_top_of_the_address_space_is_unreadable() {
        // found by the orc_step fuzz target: a full pt_regs whose IRET
        // frame would start past the top of the address space
        let e = OrcEntry::decode(entry(0, 0, 5, 0, 1), OrcLayout::TypeEnd).unwrap();
        let s = UnwindRegs {
            ip: 1,
            sp: u64::MAX - 8,
            bp: 0,
            exact_ip: true,
            regs: RegsFrame::None,
        };
        assert!(matches!(
            step(&e, &s, &Words(HashMap::new())),
            Err(OrcStepError::Unreadable(_))
        ));
    }

    #[test]
    fn register_based_cfa_needs_full_regs() {
        let e = OrcEntry::decode(entry(0, 0, 6, 0, 0), OrcLayout::TypeEnd).unwrap();
        let s = UnwindRegs {
            ip: 1,
            sp: 0,
            bp: 0,
            exact_ip: true,
            regs: RegsFrame::None,
        };
        assert_eq!(
            step(&e, &s, &Words(HashMap::new())),
            Err(OrcStepError::RegisterUnknown(OrcReg::R10))
        );
    }
}
