//! `.debug_frame` CFI rows, through the public entry that reads them
//! (`cfa_to_sp_after`): arbitrary CFI and code, wrapped in a relocatable
//! ELF with one function `f`. The CFI reader (`cfi::rows_for`) is private
//! and takes a parsed debug file, so the file is built here. Input: one
//! byte of code length, the code, then the `.debug_frame` bytes. `f`'s
//! `.text` is placed at 0x10000 (see `ElfImage::parse`), so an FDE must
//! start there to apply.
#![no_main]

use ksw_analyze::DebugFile;
use libfuzzer_sys::fuzz_target;
use object::write::{Object, Symbol, SymbolSection};
use object::{Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolKind, SymbolScope};

fuzz_target!(|data: &[u8]| {
    let Some((&code_len, rest)) = data.split_first() else {
        return;
    };
    let code_len = usize::from(code_len).min(rest.len());
    let (code, frame) = rest.split_at(code_len);
    if code.is_empty() {
        return;
    }
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
    obj.append_section_data(text, code, 16);
    obj.add_symbol(Symbol {
        name: b"f".to_vec(),
        value: 0,
        size: code.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });
    // `DebugSections::load` wants some `.debug_info`; it is never parsed here
    let info = obj.add_section(Vec::new(), b".debug_info".to_vec(), SectionKind::Debug);
    obj.append_section_data(info, &[0], 1);
    let cfi = obj.add_section(Vec::new(), b".debug_frame".to_vec(), SectionKind::Debug);
    obj.append_section_data(cfi, frame, 1);
    let Ok(bytes) = obj.write() else {
        return;
    };
    let file = DebugFile::from_bytes("fuzz.o", bytes);
    for offset in 0..code.len().min(64) as u64 {
        let _ = ksw_analyze::cfa_to_sp_after(&[&file], "f", offset);
    }
});
