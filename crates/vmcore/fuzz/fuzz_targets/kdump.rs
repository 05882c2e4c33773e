//! The kdump-compressed header, sub-header, bitmaps, page descriptors and
//! page data, read through every page the bitmaps name.
#![no_main]

use ksw_vmcore::PhysicalMemory;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = b"KDUMP   ".to_vec();
    file.extend_from_slice(data);
    if let Ok(k) =
        ksw_vmcore::kdump::KdumpCompressed::new(ksw_vmcore::source::OwnedBytes(file.clone()))
    {
        let _ = k.truncation();
        let _ = k.page_stats();
        let _ = k.notes();
        let _ = k.vmcoreinfo_text();
        let max = k.header().max_mapnr.min(4096);
        for pfn in 0..max {
            let _ = k.read_phys(ksw_vmcore::PhysAddr(pfn * 4096), &mut [0u8; 16]);
        }
    }
    if let Ok(dump) = ksw_vmcore::Dump::from_bytes(file, &Default::default()) {
        let _ = ksw_vmcore::summary::DumpSummary::collect(&dump);
    }
});
