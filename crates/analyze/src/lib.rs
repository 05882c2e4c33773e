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
//! - [`report`]: the corruption report of a catch, or of a panic without
//!   one (what `ksw analyze` prints);
//! - [`locate`]: where a release's debug files are on disk (the only part
//!   that searches the filesystem; the rest takes paths), and
//!   [`debuginfod`]: the same files fetched by build ID.
#![deny(missing_docs)]

pub mod btf;
pub mod cfi;
pub mod debuginfod;
mod disasm;
mod dwarf;
pub mod elf;
mod error;
pub mod expr;
mod index;
pub mod kernel;
pub mod locals;
pub mod locate;
mod orc;
mod register;
pub mod report;
mod resolve;
pub mod symbolize;
#[cfg(test)]
mod test_support;
mod types;
pub mod unwind;
pub mod watch;

pub use dwarf::{DebugSections, Location, Place, places_summary};
pub use elf::{DebugFile, ElfImage, ImageKind};
pub use error::{Candidate, Error, OffStack, Result};
pub use register::Register;
pub use resolve::{
    ExpectedHit, FrameLayout, FrameSlot, Resolution, ResolveRequest, StackLocation,
    VariableLocation, cfa_to_sp_after, frame_layout, resolve,
};
pub use types::{MemberPath, PathStep, VariablePath, member_at};
pub use watch::Watch;
