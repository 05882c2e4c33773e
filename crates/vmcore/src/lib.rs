//! Kernel memory, read from a crash dump or from `/proc/kcore`.
//!
//! This crate owns "the bytes at an address": the dump formats (ELF vmcore,
//! makedumpfile's kdump-compressed and flattened formats, `/proc/kcore`),
//! VMCOREINFO, and x86_64 address translation. It knows nothing of DWARF
//! or symbols.
#![deny(missing_docs)]
