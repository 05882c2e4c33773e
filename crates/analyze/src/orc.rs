//! The kernel's ORC unwind table (`.orc_unwind_ip` + `.orc_unwind`), read
//! from vmlinux for one question: CFA − SP at an address.
//!
//! `.orc_unwind_ip` holds one `s32` per entry, relative to its own
//! position; `.orc_unwind` the matching 6-byte `struct orc_entry`
//! (`s16 sp_offset; s16 bp_offset; sp_reg:4, bp_reg:4, ...`). The table is
//! sorted at build time. When `sp_reg` is `ORC_REG_SP`, the caller's SP
//! (the CFA) is SP + `sp_offset`. The type bits changed between 6.1 and
//! 6.12 and are not needed here. In a `.ko` the table is unrelocated, so it
//! is not used there.

use crate::elf::{ElfImage, ImageKind};

/// `ORC_REG_SP` in `asm/orc_types.h`.
const ORC_REG_SP: u8 = 5;
const ENTRY_SIZE: usize = 6;

/// CFA − SP at `address` according to ORC, when the rule is SP-based.
pub(crate) fn cfa_minus_sp(image: &ElfImage<'_>, address: u64) -> Option<i64> {
    if image.kind() != ImageKind::Executable {
        return None;
    }
    let (ip_base, ips) = image.alloc_section(".orc_unwind_ip")?;
    let (_, entries) = image.alloc_section(".orc_unwind")?;
    let count = ips.len() / 4;
    if count == 0 || entries.len() < count * ENTRY_SIZE {
        return None;
    }
    let ip_at = |i: usize| -> u64 {
        let b = &ips[i * 4..i * 4 + 4];
        let rel = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        ip_base
            .wrapping_add((i * 4) as u64)
            .wrapping_add(rel as i64 as u64)
    };
    // The last entry whose ip is <= address.
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ip_at(mid) <= address {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let index = lo.checked_sub(1)?;
    let e = &entries[index * ENTRY_SIZE..index * ENTRY_SIZE + ENTRY_SIZE];
    let sp_offset = i16::from_le_bytes([e[0], e[1]]);
    (e[4] & 0x0f == ORC_REG_SP).then_some(i64::from(sp_offset))
}
