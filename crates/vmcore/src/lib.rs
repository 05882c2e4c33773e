//! Kernel memory, read from a crash dump or from `/proc/kcore`.
//!
//! This crate owns "the bytes at an address": the dump formats (ELF vmcore,
//! makedumpfile's kdump-compressed and flattened formats, QEMU dumps,
//! `/proc/kcore`), VMCOREINFO, and x86_64 address translation. It knows
//! nothing of DWARF.
//!
//! Layers, bottom up:
//! - [`source`]: bytes of a file (mmap, `pread`) as a [`source::ByteSource`];
//!   [`flattened`] indexes a flattened dump into one.
//! - [`elf`], [`elf_core`], [`kdump`]: format readers, each giving
//!   [`memory::PhysicalMemory`], with typed reasons for failed reads
//!   ([`Error::Excluded`], [`Error::NotInDump`], [`Error::PageTruncated`],
//!   [`Error::CorruptPage`]).
//! - [`vmcoreinfo`], [`x86_64`]: the kernel's self-description and the
//!   page-table walk that turns it into [`memory::KernelMemory`]
//!   ([`Error::Unmapped`]).
//! - [`dump::Dump`]: opens any format and ties it together; [`cpu`],
//!   [`kallsyms`], [`printk`] and [`summary`] answer questions about it.
#![deny(missing_docs)]

pub mod addr;
mod bytes;
pub mod cpu;
pub mod dump;
pub mod elf;
pub mod elf_core;
pub mod error;
pub mod flattened;
pub mod kallsyms;
pub mod kdump;
pub mod lzo;
pub mod memory;
pub mod printk;
pub mod source;
pub mod summary;
pub mod vmcoreinfo;
pub mod x86_64;

pub use addr::{FileOffset, Pfn, PhysAddr, VirtAddr};
pub use dump::{Dump, DumpFormat, OpenOptions};
pub use error::{Error, Result};
pub use memory::{KernelMemory, PhysicalMemory, RegionMemory};
pub use vmcoreinfo::Vmcoreinfo;
