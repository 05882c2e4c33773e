//! SP tracking through arbitrary machine code: the CFA offset at an
//! arbitrary pc of a function at an arbitrary address.
#![no_main]

use ksw_analyze::unwind::sp_track::cfa_offset_at;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, code)) = data.split_first_chunk::<10>() else {
        return;
    };
    let base = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
    let pc_offset = u64::from(u16::from_le_bytes([head[8], head[9]]));
    // the function's entry is always reached with CFA = SP + 8
    if !code.is_empty()
        && let Some(cfa) = cfa_offset_at(code, base, base)
    {
        assert_eq!(cfa, 8);
    }
    let _ = cfa_offset_at(code, base, base.wrapping_add(pc_offset));
    // and at a kernel text address, as the unwinder calls it
    let text = 0xffff_ffff_8100_0000;
    let _ = cfa_offset_at(code, text, text + pc_offset);
});
