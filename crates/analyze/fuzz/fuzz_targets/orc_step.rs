//! One ORC entry, decoded from six bytes in both layouts (6.1's and
//! 6.4+'s), applied to an arbitrary register state over an arbitrary small
//! stack, and then again to the state it gives, as a walk would.
#![no_main]

use ksw_analyze::unwind::orc::{
    self, ORC_ENTRY_SIZE, OrcEntry, OrcFrameKind, OrcLayout, OrcReg, PtRegs, RegsFrame,
    StackWords, UnwindRegs,
};
use libfuzzer_sys::fuzz_target;

/// Steps taken with the same entry.
const STEPS: usize = 4;

/// Stack bytes at `base`.
struct Stack<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl StackWords for Stack<'_> {
    fn word(&self, addr: u64) -> Option<u64> {
        let b = self.bytes(addr, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    fn bytes(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let start = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        Some(self.bytes.get(start..start.checked_add(len)?)?.to_vec())
    }
}

/// Takes `N` bytes off the front of `data`.
fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fn u64_of(data: &mut &[u8]) -> Option<u64> {
    take::<8>(data).map(u64::from_le_bytes)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some(entry) = take::<ORC_ENTRY_SIZE>(&mut data) else {
        return;
    };
    let Some([flags]) = take::<1>(&mut data) else {
        return;
    };
    let (Some(ip), Some(sp), Some(bp)) = (u64_of(&mut data), u64_of(&mut data), u64_of(&mut data))
    else {
        return;
    };
    // flags: bit 0 exact ip; bits 1-2 no, full or partial pt_regs
    let regs = match (flags >> 1) & 3 {
        0 => RegsFrame::None,
        kind => {
            let mut pt = [0u64; 21];
            for r in &mut pt {
                *r = u64_of(&mut data).unwrap_or(0);
            }
            if kind == 1 {
                RegsFrame::Full(sp, PtRegs(pt))
            } else {
                RegsFrame::Partial(sp, PtRegs(pt))
            }
        }
    };
    // the stack starts a little below sp, so that rules find words
    let below = take::<1>(&mut data).map_or(0, |[b]| u64::from(b) * 8);
    let stack = Stack {
        base: sp.wrapping_sub(below),
        bytes: data,
    };
    let start = UnwindRegs {
        ip,
        sp,
        bp,
        exact_ip: flags & 1 != 0,
        regs,
    };
    let _ = start.lookup_ip();
    for layout in [OrcLayout::TypeEnd, OrcLayout::TypeSignal] {
        let Ok(e) = OrcEntry::decode(entry, layout) else {
            continue;
        };
        let mut state = start;
        for _ in 0..STEPS {
            let Ok(next) = orc::step(&e, &state, &stack) else {
                break;
            };
            // a call frame's CFA is sp + offset, and is the caller's sp
            if e.kind == OrcFrameKind::Call && e.sp_reg == OrcReg::Sp {
                assert_eq!(
                    next.sp,
                    state.sp.wrapping_add_signed(i64::from(e.sp_offset))
                );
                assert!(!next.exact_ip);
            }
            let _ = next.lookup_ip();
            state = next;
        }
    }
});
