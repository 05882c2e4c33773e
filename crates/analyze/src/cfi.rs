//! The CFA rule per address of one function, from `.debug_frame`.
//!
//! Only the CFA matters here: `resolve` needs the distance between the
//! canonical frame address and SP at the probe point, which is the offset of
//! an `rsp`-based CFA rule.

use gimli::{BaseAddresses, CfaRule, UnwindContext, UnwindSection};

use crate::dwarf::DebugSections;
use crate::error::Result;

/// How the CFA is computed over `[begin, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfaRow {
    /// First address of the row.
    pub begin: u64,
    /// One past the last address.
    pub end: u64,
    /// `Some(k)` when CFA = rsp + k; `None` for any other rule.
    pub rsp_offset: Option<i64>,
    /// `Some(k)` when CFA = rbp + k.
    pub rbp_offset: Option<i64>,
}

/// The CFA rows of the FDE covering `address`, or `None` without CFI.
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
        let (rsp_offset, rbp_offset) = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } if *register == gimli::X86_64::RSP => {
                (Some(*offset), None)
            }
            CfaRule::RegisterAndOffset { register, offset } if *register == gimli::X86_64::RBP => {
                (None, Some(*offset))
            }
            _ => (None, None),
        };
        rows.push(CfaRow {
            begin: row.start_address(),
            end: row.end_address(),
            rsp_offset,
            rbp_offset,
        });
    }
    Ok(Some(rows))
}

/// The row covering `address`.
pub(crate) fn row_at(rows: &[CfaRow], address: u64) -> Option<CfaRow> {
    rows.iter()
        .copied()
        .find(|r| r.begin <= address && address < r.end)
}
