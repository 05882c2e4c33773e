//! Flattened-format records: indexing and reads of the rearranged file.
#![no_main]

use ksw_vmcore::source::ByteSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut file = ksw_vmcore::flattened::FLATTENED_SIGNATURE.to_vec();
    file.extend_from_slice(&1i64.to_be_bytes());
    file.extend_from_slice(&1i64.to_be_bytes());
    file.resize(4096, 0);
    file.extend_from_slice(data);
    if let Ok(f) = ksw_vmcore::flattened::FlattenedFile::new(ksw_vmcore::source::OwnedBytes(file)) {
        let len = f.len();
        for off in (0..len.min(1 << 16)).step_by(61) {
            let _ = f.bytes(ksw_vmcore::FileOffset(off), 97, "fuzz");
        }
        let _ = ksw_vmcore::kdump::KdumpCompressed::new(f);
    }
});
