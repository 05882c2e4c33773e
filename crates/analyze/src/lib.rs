//! Analysis of kernel memory: symbols, debug info, unwinding and reports.
//!
//! This crate turns the bytes that `ksw-vmcore` provides into answers a
//! kernel developer asks for: which symbol is at an address, where a local
//! variable lives, how a stack unwinds across exception frames, and what a
//! kstackwatch catch record says. It knows nothing of terminals; reports are
//! data that the CLI renders.
#![deny(missing_docs)]
