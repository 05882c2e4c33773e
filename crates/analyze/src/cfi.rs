//! The unwind rules per address of one function, from `.debug_frame`: how
//! the CFA is computed, where the return address is, and where the
//! callee-saved registers (rbx, rbp, r12–r15) of the caller were saved.
//!
//! Pure: rows are read from the debug file, never from memory. `resolve`
//! needs the distance between the canonical frame address and SP at the
//! probe point (the offset of an `rsp`-based CFA rule); an unwinder needs
//! the rest of the row.

use gimli::{BaseAddresses, CfaRule, UnwindContext, UnwindSection};

use crate::dwarf::DebugSections;
use crate::error::Result;
use crate::register::Register;

/// How to recover one register of the caller's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterRule {
    /// Not saved by this frame: the caller's value is the current one.
    /// (`DW_CFA_same_value`, and the convention for a callee-saved
    /// register that the CFI does not mention.)
    Unchanged,
    /// No recoverable value (a caller-saved register CFI does not mention,
    /// or `DW_CFA_undefined`).
    Undefined,
    /// Saved in memory at CFA + offset.
    AtCfa(i64),
    /// The value is CFA + offset (`DW_CFA_val_offset`).
    CfaPlus(i64),
    /// Held in another register.
    InRegister(Register),
    /// Computed by a DWARF expression (not evaluated here).
    Expression,
}

/// How the CFA is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfaRuleKind {
    /// CFA = register + offset.
    RegisterOffset {
        /// The register.
        register: Register,
        /// The offset.
        offset: i64,
    },
    /// A DWARF expression (not evaluated here).
    Expression,
}

/// The unwind rules over `[begin, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfaRow {
    /// First address of the row.
    pub begin: u64,
    /// One past the last address.
    pub end: u64,
    /// The CFA rule.
    pub cfa: CfaRuleKind,
    /// `Some(k)` when CFA = rsp + k; `None` for any other rule.
    pub rsp_offset: Option<i64>,
    /// `Some(k)` when CFA = rbp + k.
    pub rbp_offset: Option<i64>,
    /// Where the return address is (normally `AtCfa(-8)`).
    pub return_address: RegisterRule,
    /// The rules of the callee-saved registers, in
    /// [`Register::CALLEE_SAVED`] order (rbx, rbp, r12, r13, r14, r15).
    pub callee_saved: [(Register, RegisterRule); 6],
}

impl CfaRow {
    /// The rule for `register`, when it is the return address or one of
    /// the callee-saved registers this row keeps.
    pub fn rule_for(&self, register: Register) -> Option<RegisterRule> {
        if register == Register::Rip {
            return Some(self.return_address);
        }
        self.callee_saved
            .iter()
            .find(|(r, _)| *r == register)
            .map(|(_, rule)| *rule)
    }
}

/// Translate gimli's rule; `callee_saved` says what an unmentioned
/// register means.
fn register_rule(rule: &gimli::RegisterRule<usize>, callee_saved: bool) -> RegisterRule {
    match rule {
        gimli::RegisterRule::Undefined if callee_saved => RegisterRule::Unchanged,
        gimli::RegisterRule::Undefined => RegisterRule::Undefined,
        gimli::RegisterRule::SameValue => RegisterRule::Unchanged,
        gimli::RegisterRule::Offset(k) => RegisterRule::AtCfa(*k),
        gimli::RegisterRule::ValOffset(k) => RegisterRule::CfaPlus(*k),
        gimli::RegisterRule::Register(r) => RegisterRule::InRegister(Register::from(*r)),
        _ => RegisterRule::Expression,
    }
}

/// One row of gimli's unwind table as a [`CfaRow`].
fn row_from(row: &gimli::UnwindTableRow<usize>) -> CfaRow {
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => CfaRuleKind::RegisterOffset {
            register: Register::from(*register),
            offset: *offset,
        },
        CfaRule::Expression(_) => CfaRuleKind::Expression,
    };
    let (rsp_offset, rbp_offset) = match cfa {
        CfaRuleKind::RegisterOffset {
            register: Register::Rsp,
            offset,
        } => (Some(offset), None),
        CfaRuleKind::RegisterOffset {
            register: Register::Rbp,
            offset,
        } => (None, Some(offset)),
        _ => (None, None),
    };
    let callee_saved = Register::CALLEE_SAVED.map(|r| {
        (
            r,
            register_rule(&row.register(gimli::Register::from(r)), true),
        )
    });
    CfaRow {
        begin: row.start_address(),
        end: row.end_address(),
        cfa,
        rsp_offset,
        rbp_offset,
        return_address: register_rule(&row.register(gimli::X86_64::RA), false),
        callee_saved,
    }
}

/// The rows of the FDE covering `address`, or `None` without CFI.
pub(crate) fn rows_for(sections: &DebugSections<'_>, address: u64) -> Result<Option<Vec<CfaRow>>> {
    let Some(frame) = sections.debug_frame() else {
        return Ok(None);
    };
    let bases = BaseAddresses::default();
    let fde = match frame.fde_for_address(&bases, address, gimli::DebugFrame::cie_from_offset) {
        Ok(fde) => fde,
        Err(gimli::Error::NoUnwindInfoForAddress) => return Ok(None),
        Err(e) => return Err(sections.err(e)),
    };
    let mut context: UnwindContext<usize> = UnwindContext::new();
    let mut table = fde
        .rows(&frame, &bases, &mut context)
        .map_err(|e| sections.err(e))?;
    let mut rows = Vec::new();
    while let Some(row) = table.next_row().map_err(|e| sections.err(e))? {
        rows.push(row_from(row));
    }
    Ok(Some(rows))
}

/// The row in force at `address`, or `None` without CFI for it.
pub(crate) fn row_for(sections: &DebugSections<'_>, address: u64) -> Result<Option<CfaRow>> {
    Ok(rows_for(sections, address)?.and_then(|rows| row_at(&rows, address)))
}

/// The row covering `address`.
pub(crate) fn row_at(rows: &[CfaRow], address: u64) -> Option<CfaRow> {
    rows.iter()
        .copied()
        .find(|r| r.begin <= address && address < r.end)
}

/// A debug file's `.debug_frame` as call-frame rules for the unwinder,
/// at runtime addresses (`bias`: the KASLR offset of a vmlinux).
pub struct DwarfCallFrames<'a> {
    sections: &'a DebugSections<'a>,
    bias: u64,
}

impl std::fmt::Debug for DwarfCallFrames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DwarfCallFrames")
            .field("bias", &self.bias)
            .finish_non_exhaustive()
    }
}

impl<'a> DwarfCallFrames<'a> {
    /// The rules of `sections`, whose addresses are `bias` below runtime.
    pub fn new(sections: &'a DebugSections<'a>, bias: u64) -> Self {
        Self { sections, bias }
    }
}

impl crate::unwind::CallFrameRules for DwarfCallFrames<'_> {
    fn entry_at(&self, pc: u64) -> Option<crate::unwind::orc::OrcEntry> {
        use crate::unwind::orc::{OrcEntry, OrcFrameKind, OrcReg};
        let row = row_for(self.sections, pc.wrapping_sub(self.bias)).ok()??;
        // the return address just below the CFA, as on every x86_64 call
        if row.return_address != RegisterRule::AtCfa(-8) {
            return None;
        }
        let (sp_reg, sp_offset) = match row.cfa {
            CfaRuleKind::RegisterOffset {
                register: Register::Rsp,
                offset,
            } => (OrcReg::Sp, offset),
            CfaRuleKind::RegisterOffset {
                register: Register::Rbp,
                offset,
            } => (OrcReg::Bp, offset),
            _ => return None,
        };
        let (bp_reg, bp_offset) = match row.rule_for(Register::Rbp)? {
            RegisterRule::AtCfa(k) => (OrcReg::PrevSp, k),
            RegisterRule::Unchanged => (OrcReg::Undefined, 0),
            _ => return None,
        };
        Some(OrcEntry {
            sp_offset: i16::try_from(sp_offset).ok()?,
            bp_offset: i16::try_from(bp_offset).ok()?,
            sp_reg,
            bp_reg,
            kind: OrcFrameKind::Call,
            signal: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{DebugFile, ElfImage};

    /// gcc's `.debug_frame` for a fixture function: the return address at
    /// CFA−8 throughout, callee-saved registers unchanged at entry and
    /// saved below it once pushed.
    #[test]
    fn rows_keep_return_address_and_callee_saved_rules() {
        let dir = tempfile::tempdir().expect("temp dir");
        let object =
            crate::test_support::victims_object(dir.path(), &["-fno-asynchronous-unwind-tables"]);
        let file = DebugFile::open(&object).expect("open");
        let image = ElfImage::parse(&file).expect("parse");
        let sections = DebugSections::load(&image).expect("DWARF");
        let victim = image
            .function_symbols(|n| n == "victim")
            .pop()
            .expect("victim");
        let rows = rows_for(&sections, victim.address)
            .expect("CFI")
            .expect("an FDE for victim");
        let entry = rows.first().expect("a row");
        assert_eq!(
            entry.cfa,
            CfaRuleKind::RegisterOffset {
                register: Register::Rsp,
                offset: 8
            }
        );
        assert_eq!(entry.rsp_offset, Some(8));
        assert!(
            entry
                .callee_saved
                .iter()
                .all(|(_, rule)| *rule == RegisterRule::Unchanged),
            "{entry:?}"
        );
        assert!(
            rows.iter()
                .all(|r| r.return_address == RegisterRule::AtCfa(-8)),
            "{rows:?}"
        );
        // Some row saves a callee-saved register (victim keeps values
        // across its calls) in the frame, below the return address.
        let saved: Vec<(Register, i64)> = rows
            .iter()
            .flat_map(|r| r.callee_saved)
            .filter_map(|(reg, rule)| match rule {
                RegisterRule::AtCfa(k) => Some((reg, k)),
                _ => None,
            })
            .collect();
        assert!(!saved.is_empty(), "{rows:?}");
        assert!(saved.iter().all(|(_, k)| *k <= -16), "{saved:?}");
        let row = row_for(&sections, victim.address).expect("CFI");
        assert_eq!(row, Some(*entry));
        assert_eq!(entry.rule_for(Register::Rip), Some(RegisterRule::AtCfa(-8)));
        assert_eq!(entry.rule_for(Register::Rax), None);
    }
}
