//! ELF cores: the header, program headers and notes (VMCOREINFO and
//! NT_PRSTATUS among them), then every question `ksw info` asks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for note in ksw_vmcore::elf::NoteIter::new(data).flatten() {
        if note.name == b"VMCOREINFO" {
            let _ = ksw_vmcore::Vmcoreinfo::parse(note.desc);
        }
    }
    let _ = ksw_vmcore::cpu::PrStatus::all_in(data);
    let mut elf = b"\x7fELF".to_vec();
    elf.extend_from_slice(data);
    if let Ok(dump) = ksw_vmcore::Dump::from_bytes(elf, &Default::default()) {
        let _ = ksw_vmcore::summary::DumpSummary::collect(&dump);
        let _ = dump.kernel_log();
    }
});
