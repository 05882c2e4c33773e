//! The crate's error type: why a dump could not be opened, or why a read
//! failed.
//!
//! Read failures name their reason, because "the page was filtered out by
//! makedumpfile" and "the address is not mapped" lead a developer to very
//! different conclusions.

use std::path::PathBuf;

use crate::addr::{FileOffset, Pfn, PhysAddr, VirtAddr};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, mapped or read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The running kernel's memory (`/proc/kcore`) is closed to this
    /// process; `reason` says why and what to do.
    #[error("cannot read the running kernel through {}: {reason}", path.display())]
    LiveRefused {
        /// The file (`/proc/kcore`).
        path: PathBuf,
        /// The cause and the next step.
        reason: String,
    },
    /// The file is not a kernel dump this crate reads.
    #[error("not a kernel dump: {0}")]
    NotADump(String),
    /// The file ends before the data its headers describe.
    #[error("truncated dump: {what} needs bytes up to offset {needed}, but the file has {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// The offset one past the last byte needed.
        needed: FileOffset,
        /// The length of the file.
        len: u64,
    },
    /// A header or table holds values that cannot be right.
    #[error("corrupt dump: {0}")]
    Corrupt(String),
    /// The dump uses a feature this build does not read.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The dump carries no VMCOREINFO, so kernel addresses cannot be
    /// translated.
    #[error(
        "the dump has no VMCOREINFO note ({0}); run QEMU with `-device vmcoreinfo` and load \
         the guest's qemu_fw_cfg module, or pass --vmcoreinfo FILE, where FILE is the \
         guest's VMCOREINFO text, an ELF file with a VMCOREINFO note (the head of its \
         /proc/kcore), or a copy of its /sys/kernel/vmcoreinfo (\"address size\": the note \
         is then read from the dump itself)"
    )]
    MissingVmcoreinfo(&'static str),
    /// Neither VMCOREINFO nor kallsyms has this symbol.
    #[error("no symbol {0} in VMCOREINFO or kallsyms")]
    NoSymbol(String),
    /// VMCOREINFO lacks a key this operation needs, or has an unreadable
    /// value.
    #[error("VMCOREINFO: {0}")]
    Vmcoreinfo(String),
    /// The page was in memory but makedumpfile excluded it (`-d`).
    #[error("page {0} was excluded from the dump by its dump level")]
    Excluded(Pfn),
    /// The physical address is not covered by the dump at all (a hole in
    /// RAM, or outside the memory the dump describes).
    #[error("physical address {0} is not in the dump")]
    NotInDump(PhysAddr),
    /// The virtual address has no translation in the kernel page tables.
    #[error("virtual address {addr} is not mapped ({reason})")]
    Unmapped {
        /// The address.
        addr: VirtAddr,
        /// Where the walk stopped.
        reason: &'static str,
    },
    /// A page's data lies past the end of a truncated file.
    #[error(
        "page {pfn} lies past the end of the truncated dump (needs offset {needed}, file has {len})"
    )]
    PageTruncated {
        /// The page.
        pfn: Pfn,
        /// One past the last byte needed.
        needed: FileOffset,
        /// The file length.
        len: u64,
    },
    /// A page's descriptor or compressed data is damaged.
    #[error("page {pfn}: {what}")]
    CorruptPage {
        /// The page.
        pfn: Pfn,
        /// What is wrong with it.
        what: String,
    },
}

impl Error {
    /// True for the errors that concern one address rather than the whole
    /// dump (excluded, not in dump, unmapped, truncated or corrupt page).
    pub fn is_read_fault(&self) -> bool {
        matches!(
            self,
            Error::Excluded(_)
                | Error::NotInDump(_)
                | Error::Unmapped { .. }
                | Error::PageTruncated { .. }
                | Error::CorruptPage { .. }
        )
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
