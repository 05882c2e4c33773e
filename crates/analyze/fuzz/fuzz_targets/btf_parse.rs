//! The BTF reader on arbitrary bytes: parsing, then every lookup the
//! kernel model makes (structs by name, member paths, sizes) and every
//! type id the header promises.
#![no_main]

use ksw_analyze::btf::{Btf, TypeId};
use libfuzzer_sys::fuzz_target;

/// Struct names and member paths the kernel model looks up, and a few
/// that exercise anonymous members and arrays.
const LOOKUPS: [(&str, &str); 8] = [
    ("task_struct", "thread.sp"),
    ("task_struct", "tasks"),
    ("module", "arch.orc_unwind_ip"),
    ("orc_entry", "signal"),
    ("list_head", "prev"),
    ("a", "b"),
    ("a", "b.c.d"),
    ("", ""),
];

/// More type ids than a fuzz input holds records: enough to visit all.
const MAX_IDS: u32 = 1 << 14;

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data.to_vec()) else {
        return;
    };
    exercise(&btf);
});

fn exercise(btf: &Btf) {
    for (strukt, path) in LOOKUPS {
        if let Some(ty) = btf.find_struct(strukt) {
            let _ = btf.size_of(ty);
            let _ = btf.member(ty, path);
        }
        let _ = btf.offset_of(strukt, path);
    }
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
        let _ = btf.member(ty, "");
    }
}
