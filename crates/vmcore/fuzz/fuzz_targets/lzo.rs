//! The LZO1X page decompressor.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ksw_vmcore::lzo::decompress(data, 4096);
});
