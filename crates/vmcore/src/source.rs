//! Where a dump's bytes come from: a memory-mapped file, positioned reads
//! of a file that cannot be mapped (`/proc/kcore`), or the records of a
//! flattened dump.
//!
//! Format readers are written against [`ByteSource`], so the kdump-compressed
//! reader works unchanged on a plain file and on a flattened one.

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, UncheckedAdvice};

use crate::addr::FileOffset;
use crate::error::{Error, Result};

/// Random access to the bytes of a (possibly virtual) file.
pub trait ByteSource: Send + Sync {
    /// The length of the file in bytes.
    fn len(&self) -> u64;

    /// True if the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes at `off`; borrowed where the source allows it. `what`
    /// names the structure being read, for the truncation error.
    fn bytes(&self, off: FileOffset, len: usize, what: &'static str) -> Result<Cow<'_, [u8]>>;
}

/// Checks that `[off, off + len)` lies inside a file of `file_len` bytes.
pub(crate) fn check_range(
    off: FileOffset,
    len: usize,
    file_len: u64,
    what: &'static str,
) -> Result<()> {
    let end = off
        .0
        .checked_add(len as u64)
        .ok_or_else(|| Error::Corrupt(format!("{what}: offset {off} overflows")))?;
    if end > file_len {
        return Err(Error::Truncated {
            what,
            needed: FileOffset(end),
            len: file_len,
        });
    }
    Ok(())
}

/// A whole file, memory-mapped read-only.
///
/// Random reads of a large mapping make the kernel map the pages around
/// each fault too ("fault-around"), so resident memory would grow towards
/// the size of the dump. Every [`RELEASE_EVERY`] reads of a large file the
/// mapping's page-table entries are dropped (`MADV_DONTNEED`); the data
/// stays in the kernel's page cache and faults back in on the next access.
#[derive(Debug)]
pub struct MappedFile {
    map: Mmap,
    reads: AtomicU64,
}

/// How many reads of a large mapping between releases of its resident
/// pages.
const RELEASE_EVERY: u64 = 512;
/// Files at least this large get their resident pages released.
const RELEASE_MIN_LEN: usize = 64 << 20;

impl MappedFile {
    /// Maps `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(Error::NotADump(format!(
                "{} is a directory",
                path.display()
            )));
        }
        if meta.len() == 0 {
            return Err(Error::NotADump(format!("{} is empty", path.display())));
        }
        // SAFETY: the map is read-only and private to this process. A dump is
        // not expected to change while it is read; if another process
        // truncates it, the kernel may deliver SIGBUS, which is the same
        // promise every mmap-based reader (gimli's users, ripgrep) makes.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Ok(MappedFile {
            map,
            reads: AtomicU64::new(0),
        })
    }

    /// The whole mapping.
    pub fn as_slice(&self) -> &[u8] {
        &self.map
    }
}

impl ByteSource for MappedFile {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn bytes(&self, off: FileOffset, len: usize, what: &'static str) -> Result<Cow<'_, [u8]>> {
        check_range(off, len, self.len(), what)?;
        if self.map.len() >= RELEASE_MIN_LEN
            && self.reads.fetch_add(1, Ordering::Relaxed) % RELEASE_EVERY == RELEASE_EVERY - 1
        {
            // SAFETY: the mapping is private, read-only and never written,
            // so dropping its page-table entries loses nothing: every page
            // reads back from the file, and slices borrowed from the
            // mapping stay valid (the virtual range stays mapped).
            let _ = unsafe { self.map.unchecked_advise(UncheckedAdvice::DontNeed) };
        }
        let start = off.0 as usize;
        Ok(Cow::Borrowed(&self.map[start..start + len]))
    }
}

/// Bytes held in memory; used for synthetic dumps in tests and fuzzing.
#[derive(Debug, Clone)]
pub struct OwnedBytes(pub Vec<u8>);

impl ByteSource for OwnedBytes {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn bytes(&self, off: FileOffset, len: usize, what: &'static str) -> Result<Cow<'_, [u8]>> {
        check_range(off, len, self.len(), what)?;
        let start = off.0 as usize;
        Ok(Cow::Borrowed(&self.0[start..start + len]))
    }
}

/// A file read with `pread`, for files that cannot be mapped, such as
/// `/proc/kcore` (its size is the whole kernel address space).
#[derive(Debug)]
pub struct PositionedFile {
    /// Reads go one at a time: `/proc/kcore` copies vmalloc and module
    /// memory through one bounce buffer per open file, so two `pread`s on
    /// one descriptor at once can each get the other's bytes.
    file: std::sync::Mutex<File>,
    len: u64,
    path: std::path::PathBuf,
}

impl PositionedFile {
    /// Opens `path` for positioned reads.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(PositionedFile {
            file: std::sync::Mutex::new(file),
            len,
            path: path.to_owned(),
        })
    }
}

impl ByteSource for PositionedFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn bytes(&self, off: FileOffset, len: usize, what: &'static str) -> Result<Cow<'_, [u8]>> {
        check_range(off, len, self.len, what)?;
        let mut buf = vec![0u8; len];
        let file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.read_exact_at(&mut buf, off.0)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(Cow::Owned(buf))
    }
}
