//! The contract between the kernel module `kstackwatch.ko` and the `ksw`
//! toolkit.
//!
//! This crate owns the two things both sides must agree on: the grammar of
//! the watch string written to `/proc/kstackwatch`, and the binary layout of
//! the catch record the module keeps in memory for post-mortem analysis. It
//! depends on nothing, so the module's C header and the analyzer can both
//! follow it.
#![deny(missing_docs)]
