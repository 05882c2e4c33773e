//! makedumpfile's flattened format (`makedumpfile -F`, and QEMU's
//! `kdump-*` formats before 8.2): a stream of `(offset, size, data)`
//! records that, written at their offsets, make a kdump-compressed file.
//!
//! The records are indexed, not reassembled: [`FlattenedFile`] is a
//! [`ByteSource`] for the rearranged file whose reads are served from the
//! records in place. Later records win where records overlap, as they
//! would when written to disk; bytes no record covers read as zeros.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::addr::FileOffset;
use crate::bytes::be_i64;
use crate::error::{Error, Result};
use crate::source::{ByteSource, check_range};

/// The signature at offset 0 of a flattened file.
pub const FLATTENED_SIGNATURE: &[u8; 16] = b"makedumpfile\0\0\0\0";
/// No rearranged file is larger than this (256 TiB); a record past it is
/// damage, and would make a sparse virtual file of absurd size.
const MAX_FILE_SIZE: u64 = 1 << 48;
/// The size of the flattened header.
const HEADER_SIZE: u64 = 4096;

/// A flattened dump, seen as the file it describes.
pub struct FlattenedFile<S> {
    src: S,
    /// Rearranged-file start → (length, offset of the data in `src`).
    /// The intervals never overlap.
    extents: BTreeMap<u64, (u64, u64)>,
    len: u64,
    records: u64,
    truncated: Option<(u64, u64)>,
}

impl<S> std::fmt::Debug for FlattenedFile<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlattenedFile")
            .field("records", &self.records)
            .field("len", &self.len)
            .finish()
    }
}

impl<S: ByteSource> FlattenedFile<S> {
    /// Indexes the records of a flattened file.
    pub fn new(src: S) -> Result<Self> {
        let head = src.bytes(FileOffset(0), 32, "flattened header")?;
        if &head[..16] != FLATTENED_SIGNATURE {
            return Err(Error::NotADump(
                "no flattened makedumpfile signature".into(),
            ));
        }
        let ty = be_i64(&head, 16).unwrap_or(0);
        let version = be_i64(&head, 24).unwrap_or(0);
        if ty != 1 {
            return Err(Error::Corrupt(format!(
                "flattened header type {ty}, expected 1"
            )));
        }
        if version != 1 {
            return Err(Error::Unsupported(format!(
                "flattened format version {version}"
            )));
        }
        drop(head);
        let file_len = src.len();
        let mut pos = HEADER_SIZE;
        let mut this = FlattenedFile {
            src,
            extents: BTreeMap::new(),
            len: 0,
            records: 0,
            truncated: None,
        };
        let mut ended = false;
        while pos + 16 <= file_len {
            let rec = this
                .src
                .bytes(FileOffset(pos), 16, "flattened record header")?;
            let off = be_i64(&rec, 0).unwrap_or(-1);
            let size = be_i64(&rec, 8).unwrap_or(-1);
            if off == -1 {
                ended = true;
                break;
            }
            if off < 0 || size < 0 {
                return Err(Error::Corrupt(format!(
                    "flattened record at {pos} has offset {off} and size {size}"
                )));
            }
            let (off, size) = (off as u64, size as u64);
            let data = pos + 16;
            let avail = file_len - data;
            if size > avail {
                this.truncated = Some((data + size, file_len));
                this.insert(off, avail, data)?;
                break;
            }
            this.insert(off, size, data)?;
            pos = data + size;
        }
        if !ended && this.truncated.is_none() {
            this.truncated = Some((pos + 16, file_len));
        }
        Ok(this)
    }

    /// Number of data records.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// `(bytes needed, file length)` if the stream ends early (no end
    /// marker, or a record cut short).
    pub fn truncation(&self) -> Option<(u64, u64)> {
        self.truncated
    }

    fn insert(&mut self, dst: u64, len: u64, src_off: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let end = dst
            .checked_add(len)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "flattened record for offset {dst} (+{len}) is past any real dump's size"
                ))
            })?;
        self.records += 1;
        // Trim every extent overlapping [dst, end).
        let overlapping: Vec<(u64, (u64, u64))> = self
            .extents
            .range(..end)
            .rev()
            .take_while(|(s, (l, _))| **s + *l > dst)
            .map(|(s, v)| (*s, *v))
            .collect();
        for (s, (l, so)) in overlapping {
            self.extents.remove(&s);
            let e = s + l;
            if s < dst {
                self.extents.insert(s, (dst - s, so));
            }
            if e > end {
                self.extents.insert(end, (e - end, so + (end - s)));
            }
        }
        self.extents.insert(dst, (len, src_off));
        self.len = self.len.max(end);
        Ok(())
    }
}

impl<S: ByteSource> ByteSource for FlattenedFile<S> {
    fn len(&self) -> u64 {
        self.len
    }

    fn bytes(&self, off: FileOffset, len: usize, what: &'static str) -> Result<Cow<'_, [u8]>> {
        check_range(off, len, self.len, what)?;
        let start = off.0;
        let end = start + len as u64;
        // Fast path: one extent covers the whole range.
        if let Some((&s, &(l, so))) = self.extents.range(..=start).next_back()
            && s + l >= end
        {
            return self.src.bytes(FileOffset(so + (start - s)), len, what);
        }
        let mut out = vec![0u8; len];
        let first = self
            .extents
            .range(..=start)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(start);
        for (&s, &(l, so)) in self.extents.range(first..end) {
            let e = s + l;
            if e <= start {
                continue;
            }
            let a = s.max(start);
            let b = e.min(end);
            let data = self
                .src
                .bytes(FileOffset(so + (a - s)), (b - a) as usize, what)?;
            out[(a - start) as usize..(b - start) as usize].copy_from_slice(&data);
        }
        Ok(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::OwnedBytes;

    fn flattened(records: &[(i64, &[u8])], end: bool) -> Vec<u8> {
        let mut v = FLATTENED_SIGNATURE.to_vec();
        v.extend_from_slice(&1i64.to_be_bytes());
        v.extend_from_slice(&1i64.to_be_bytes());
        v.resize(4096, 0);
        for (off, data) in records {
            v.extend_from_slice(&off.to_be_bytes());
            v.extend_from_slice(&(data.len() as i64).to_be_bytes());
            v.extend_from_slice(data);
        }
        if end {
            v.extend_from_slice(&(-1i64).to_be_bytes());
            v.extend_from_slice(&(-1i64).to_be_bytes());
        }
        v
    }

    #[test]
    fn later_records_win_and_holes_are_zero() {
        let f = FlattenedFile::new(OwnedBytes(flattened(
            &[(0, b"aaaaaaaa"), (20, b"cc"), (2, b"bbb")],
            true,
        )))
        .unwrap();
        assert_eq!(f.len(), 22);
        assert!(f.truncation().is_none());
        let all = f.bytes(FileOffset(0), 22, "t").unwrap();
        assert_eq!(&all[..], b"aabbbaaa\0\0\0\0\0\0\0\0\0\0\0\0cc");
        assert_eq!(&f.bytes(FileOffset(3), 2, "t").unwrap()[..], b"bb");
        assert!(matches!(
            f.bytes(FileOffset(21), 2, "t"),
            Err(Error::Truncated { .. })
        ));
    }

    fn read(f: &FlattenedFile<OwnedBytes>, off: u64, len: usize) -> Vec<u8> {
        f.bytes(FileOffset(off), len, "t").unwrap().into_owned()
    }

    #[test]
    fn overlapping_records_are_trimmed_exactly() {
        // A later record inside an earlier one, away from offset 0: the
        // earlier one keeps a head and a tail.
        let f = FlattenedFile::new(OwnedBytes(flattened(
            &[(2, b"abcdefgh"), (10, b"ij"), (4, b"XY")],
            true,
        )))
        .unwrap();
        assert_eq!(f.records(), 3);
        assert!(format!("{f:?}").contains("FlattenedFile"));
        assert_eq!(read(&f, 0, 12), b"\0\0abXYefghij");
        assert_eq!(read(&f, 2, 8), b"abXYefgh");
        assert_eq!(read(&f, 3, 1), b"b");
        assert_eq!(read(&f, 6, 4), b"efgh");
        assert_eq!(read(&f, 7, 2), b"fg");
        assert_eq!(read(&f, 4, 8), b"XYefghij");
        assert_eq!(read(&f, 2, 4), b"abXY");
        // Untrimmed records: a read that starts inside one and runs into
        // the next.
        let f = FlattenedFile::new(OwnedBytes(flattened(
            &[(2, b"abcdefgh"), (10, b"ij")],
            true,
        )))
        .unwrap();
        assert_eq!(read(&f, 4, 8), b"cdefghij");
        assert_eq!(read(&f, 9, 3), b"hij");
        // A later record that starts before an earlier one and overlaps it.
        let f =
            FlattenedFile::new(OwnedBytes(flattened(&[(4, b"wxyz"), (2, b"123")], true))).unwrap();
        assert_eq!(read(&f, 2, 6), b"123xyz");
        assert_eq!(read(&f, 5, 3), b"xyz");
        // A record ending exactly where the next one starts, then one that
        // overwrites the end of the first: the second stays whole.
        let f = FlattenedFile::new(OwnedBytes(flattened(
            &[(0, b"abcd"), (4, b"efgh"), (2, b"XY")],
            true,
        )))
        .unwrap();
        assert_eq!(read(&f, 0, 8), b"abXYefgh");
        assert_eq!(read(&f, 4, 4), b"efgh");
        // A record from offset 0 covered at its start by a later one.
        let f =
            FlattenedFile::new(OwnedBytes(flattened(&[(0, b"abcd"), (2, b"XY")], true))).unwrap();
        assert_eq!(read(&f, 0, 4), b"abXY");
        assert_eq!(read(&f, 0, 2), b"ab");
    }

    #[test]
    fn bad_headers_and_records_are_refused() {
        let mut v = flattened(&[(0, b"ab")], true);
        v[23] = 2;
        assert!(matches!(
            FlattenedFile::new(OwnedBytes(v)),
            Err(Error::Corrupt(_))
        ));
        let mut v = flattened(&[(0, b"ab")], true);
        v[31] = 2;
        assert!(matches!(
            FlattenedFile::new(OwnedBytes(v)),
            Err(Error::Unsupported(_))
        ));
        let mut v = flattened(&[(0, b"ab")], true);
        v[0] = b'M';
        assert!(matches!(
            FlattenedFile::new(OwnedBytes(v)),
            Err(Error::NotADump(_))
        ));
        let v = flattened(&[(-5, b"ab")], true);
        assert!(matches!(
            FlattenedFile::new(OwnedBytes(v)),
            Err(Error::Corrupt(_))
        ));
        let v = flattened(&[(1 << 48, b"ab")], true);
        assert!(matches!(
            FlattenedFile::new(OwnedBytes(v)),
            Err(Error::Corrupt(_))
        ));
        // Up to 256 TiB is accepted (sparse, nothing allocated).
        let v = flattened(&[((1 << 48) - 2, b"ab")], true);
        let f = FlattenedFile::new(OwnedBytes(v)).unwrap();
        assert_eq!(f.len(), 1 << 48);
        // Empty records count for nothing.
        let f = FlattenedFile::new(OwnedBytes(flattened(&[(0, b""), (0, b"a")], true))).unwrap();
        assert_eq!((f.records(), f.len()), (1, 1));
        // A stream with no records and no end marker is cut.
        let f = FlattenedFile::new(OwnedBytes(flattened(&[], false))).unwrap();
        assert_eq!(f.truncation(), Some((4096 + 16, 4096)));
        let f = FlattenedFile::new(OwnedBytes(flattened(&[], true))).unwrap();
        assert_eq!(f.truncation(), None);
    }

    #[test]
    fn notices_a_cut_stream() {
        let mut v = flattened(&[(0, b"0123456789")], false);
        v.truncate(v.len() - 3);
        let f = FlattenedFile::new(OwnedBytes(v)).unwrap();
        assert_eq!(f.truncation().map(|t| t.0 - t.1), Some(3));
        assert_eq!(f.len(), 7);
    }
}
