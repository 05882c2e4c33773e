//! kstackwatch's catch ring decoded from arbitrary bytes, as `ksw analyze`
//! reads it out of a dump: the header checks, every committed record's
//! strings, and its config string parsed with the module's grammar.
#![no_main]

use kstackwatch_contract::record::{CatchLog, MAGIC, VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // as found, and with a valid magic and version in front, so that the
    // fuzzer reaches the records
    let mut fixed = data.to_vec();
    if fixed.len() >= 12 {
        fixed[..8].copy_from_slice(&MAGIC.to_le_bytes());
        fixed[8..12].copy_from_slice(&VERSION.to_le_bytes());
    }
    for bytes in [data, &fixed[..]] {
        let Ok(log) = CatchLog::read(bytes) else {
            continue;
        };
        for c in log.catches() {
            let _ = (c.func_name(), c.victim_comm(), c.writer_comm());
            let _ = kstackwatch_contract::parse(&c.config());
        }
    }
});
