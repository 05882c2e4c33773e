//! Analysis of kernel memory: symbols, debug info, unwinding and reports.
//!
//! This crate turns the bytes that `ksw-vmcore` provides into answers a
//! kernel developer asks for: which symbol is at an address, where a local
//! variable lives, how a stack unwinds across exception frames, and what a
//! kstackwatch catch record says. It knows nothing of terminals; reports are
//! data that the CLI renders.
//!
//! The debug-info layer, bottom up:
//! - [`elf`]: a memory-mapped vmlinux or `.ko` ([`DebugFile`]), its symbols,
//!   decompressed sections and lazily applied relocations;
//! - `dwarf`: one compilation unit at a time, found through
//!   `.debug_aranges`; subprograms, locals and their locations, lines;
//! - `types`: C types and member/index paths (`req.hdr.len`, `buf[8]`);
//! - `cfi`, `orc`, `disasm`: the CFA rule per address (`.debug_frame`, and
//!   vmlinux ORC as a cross-check), and an annotated
//!   disassembly (stack writes, canary, SP tracking);
//! - [`resolve()`]: a variable's name to a kstackwatch watch ([`Resolution`]);
//! - [`locate`]: where a release's debug files are on disk (the only part
//!   that searches the filesystem; the rest takes paths).
#![deny(missing_docs)]

mod cfi;
mod disasm;
mod dwarf;
pub mod elf;
mod error;
mod index;
pub mod locate;
mod orc;
mod resolve;
mod types;
pub mod watch;

pub use dwarf::{DebugSections, Location, Place};
pub use elf::{DebugFile, ElfImage, ImageKind};
pub use error::{Candidate, Error, Result};
pub use resolve::{
    ExpectedHit, FrameLayout, FrameSlot, Resolution, ResolveRequest, cfa_to_sp_after, frame_layout,
    resolve,
};
pub use types::{PathStep, VariablePath};
pub use watch::Watch;
