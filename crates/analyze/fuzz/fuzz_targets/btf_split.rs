//! Split BTF (a module's) on top of a base (vmlinux's), both arbitrary:
//! the first two bytes give the base's length, the rest is the split.
#![no_main]

use std::sync::Arc;

use ksw_analyze::btf::{Btf, TypeId};
use libfuzzer_sys::fuzz_target;

/// More type ids than a fuzz input holds records: enough to visit all.
const MAX_IDS: u32 = 1 << 14;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let base_len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (base, split) = rest.split_at(base_len);
    let Ok(base) = Btf::parse(base.to_vec()) else {
        return;
    };
    let Ok(btf) = Btf::parse_split(split.to_vec(), Arc::new(base)) else {
        return;
    };
    let last = btf.type_count().min(MAX_IDS);
    for id in 0..=last.saturating_add(1) {
        let ty = TypeId(id);
        let _ = btf.kind(ty);
        let _ = btf.resolve(ty);
        let _ = btf.size_of(ty);
        if let Some(name) = btf.type_name(ty) {
            let _ = btf.find_struct(&name);
            let _ = btf.member(ty, &name);
            let _ = btf.offset_of(&name, &name);
        }
    }
    let _ = btf.offset_of("module", "arch.orc_unwind");
});
