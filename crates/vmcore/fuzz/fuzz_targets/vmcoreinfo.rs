//! VMCOREINFO text parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = ksw_vmcore::Vmcoreinfo::parse(data) {
        let _ = info.trusted_build_id();
        let _ = ksw_vmcore::x86_64::PageTableWalker::from_vmcoreinfo(&info);
    }
});
