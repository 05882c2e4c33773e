//! makedumpfile's kdump-compressed format (`KDUMP   `, and the older
//! `DISKDUMP`), in header versions 1 to 6.
//!
//! Layout (in blocks of `block_size`): the `disk_dump_header`, then
//! `sub_hdr_size` blocks holding the `kdump_sub_header` (and the notes and
//! VMCOREINFO it points at), then two bitmaps (pages present in RAM; pages
//! in the dump), then one 24-byte `page_desc` per dumped page in PFN order,
//! then the page data. A page's descriptor index is the number of dumped
//! pages below it, so a rank index over the second bitmap makes lookups
//! constant-time. Decompressed pages are kept in a [`PageCache`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::addr::{FileOffset, Pfn, PhysAddr};
use crate::bytes::{c_str, le_i32, le_u32, le_u64};
use crate::error::{Error, Result};
use crate::memory::PhysicalMemory;
use crate::source::ByteSource;

/// `status` and per-page flag: zlib.
pub const DUMP_DH_COMPRESSED_ZLIB: u32 = 0x1;
/// `status` and per-page flag: lzo.
pub const DUMP_DH_COMPRESSED_LZO: u32 = 0x2;
/// `status` and per-page flag: snappy.
pub const DUMP_DH_COMPRESSED_SNAPPY: u32 = 0x4;
/// `status`: the dump could not be finished.
pub const DUMP_DH_COMPRESSED_INCOMPLETE: u32 = 0x8;
/// `status`: vmemmap pages were excluded.
pub const DUMP_DH_EXCLUDED_VMEMMAP: u32 = 0x10;
/// `status` and per-page flag: zstd.
pub const DUMP_DH_COMPRESSED_ZSTD: u32 = 0x20;

const COMPRESSION_MASK: u32 = DUMP_DH_COMPRESSED_ZLIB
    | DUMP_DH_COMPRESSED_LZO
    | DUMP_DH_COMPRESSED_SNAPPY
    | DUMP_DH_COMPRESSED_ZSTD;

/// More page frames than x86_64's 52-bit physical address space holds
/// (2^40 pages); a larger `max_mapnr` is damage.
const MAX_PAGE_FRAMES: u64 = 1 << 40;

/// Size of a `page_desc`.
const PAGE_DESC_SIZE: u64 = 24;

/// A page compression method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is.
    None,
    /// zlib (RFC 1950).
    Zlib,
    /// LZO1X.
    Lzo,
    /// Raw snappy.
    Snappy,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The method a set of flag bits names, or an error if several are set.
    pub fn from_flags(flags: u32) -> std::result::Result<Self, u32> {
        match flags & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            DUMP_DH_COMPRESSED_ZLIB => Ok(Compression::Zlib),
            DUMP_DH_COMPRESSED_LZO => Ok(Compression::Lzo),
            DUMP_DH_COMPRESSED_SNAPPY => Ok(Compression::Snappy),
            DUMP_DH_COMPRESSED_ZSTD => Ok(Compression::Zstd),
            other => Err(other),
        }
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zlib => "zlib",
            Compression::Lzo => "lzo",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
        }
    }
}

/// The fields of `disk_dump_header` and `kdump_sub_header` this reader uses.
#[derive(Debug, Clone, Serialize)]
pub struct KdumpHeader {
    /// `"KDUMP"` or `"DISKDUMP"`.
    pub signature: String,
    /// `header_version`.
    pub header_version: i32,
    /// `utsname.release`.
    pub release: String,
    /// `utsname.machine`.
    pub machine: String,
    /// `timestamp.tv_sec`.
    pub timestamp: i64,
    /// `status`.
    pub status: u32,
    /// `block_size` (the page size).
    pub block_size: u64,
    /// `sub_hdr_size`, in blocks.
    pub sub_hdr_size: u64,
    /// `bitmap_blocks`.
    pub bitmap_blocks: u64,
    /// Number of page frames described (`max_mapnr_64` from version 6).
    pub max_mapnr: u64,
    /// `nr_cpus`.
    pub nr_cpus: i32,
    /// `phys_base` from the sub-header.
    pub phys_base: u64,
    /// `dump_level` (the `-d` value).
    pub dump_level: i32,
    /// `split`.
    pub split: i32,
    /// `(offset, size)` of the raw VMCOREINFO text (version 3+).
    pub vmcoreinfo: Option<(u64, u64)>,
    /// `(offset, size)` of the ELF notes (version 4+).
    pub notes: Option<(u64, u64)>,
}

/// Excluded-page statistics from the two bitmaps.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PageStats {
    /// Page frames the dump describes (`max_mapnr`).
    pub max_pfn: u64,
    /// Pages present in RAM (first bitmap).
    pub present: u64,
    /// Pages saved in the dump (second bitmap).
    pub dumped: u64,
    /// Present pages that the dump level excluded.
    pub excluded: u64,
}

/// A bounded cache of decompressed pages, first in, first out.
#[derive(Debug)]
pub struct PageCache {
    pages: HashMap<u64, Arc<[u8]>>,
    order: VecDeque<u64>,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl PageCache {
    /// A cache holding at most `capacity` pages.
    pub fn new(capacity: usize) -> Self {
        PageCache {
            pages: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            hits: 0,
            misses: 0,
        }
    }

    fn get(&mut self, pfn: u64) -> Option<Arc<[u8]>> {
        let hit = self.pages.get(&pfn).cloned();
        if hit.is_some() {
            self.hits += 1
        } else {
            self.misses += 1
        }
        hit
    }

    fn insert(&mut self, pfn: u64, page: Arc<[u8]>) {
        // A page already cached (two readers missed it at once) is
        // replaced in place, without evicting another.
        if let Some(cached) = self.pages.get_mut(&pfn) {
            *cached = page;
            return;
        }
        if self.pages.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.pages.remove(&old);
        }
        self.pages.insert(pfn, page);
        self.order.push_back(pfn);
    }

    /// `(hits, misses)` so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

/// One of the two bitmaps, with a rank index over it.
#[derive(Debug)]
struct Bitmap {
    bits: Vec<u8>,
    /// Set bits before each 512-bit block.
    rank: Vec<u64>,
}

impl Bitmap {
    fn new(bits: Vec<u8>) -> Self {
        let mut rank = Vec::with_capacity(bits.len() / 64 + 1);
        let mut total = 0u64;
        for chunk in bits.chunks(64) {
            rank.push(total);
            total += chunk.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
        }
        rank.push(total);
        Bitmap { bits, rank }
    }

    fn get(&self, bit: u64) -> bool {
        self.bits
            .get((bit / 8) as usize)
            .is_some_and(|b| b & (1 << (bit % 8)) != 0)
    }

    /// Set bits below `bit`.
    fn rank(&self, bit: u64) -> u64 {
        let byte = (bit / 8) as usize;
        if byte >= self.bits.len() {
            return self.count();
        }
        let block = byte / 64;
        let mut r = self.rank.get(block).copied().unwrap_or(0);
        for b in &self.bits[block * 64..byte] {
            r += u64::from(b.count_ones());
        }
        if let Some(b) = self.bits.get(byte) {
            r += u64::from((b & ((1u8 << (bit % 8)) - 1)).count_ones());
        }
        r
    }

    fn count(&self) -> u64 {
        self.rank.last().copied().unwrap_or(0)
    }
}

/// A kdump-compressed dump over any [`ByteSource`] (a mapped file, or a
/// flattened file's records).
pub struct KdumpCompressed<S> {
    src: S,
    header: KdumpHeader,
    present: Bitmap,
    dumped: Bitmap,
    desc_offset: u64,
    cache: Mutex<PageCache>,
}

impl<S> std::fmt::Debug for KdumpCompressed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KdumpCompressed")
            .field("header", &self.header)
            .finish()
    }
}

/// True if `b` starts with a kdump-compressed signature.
pub fn has_kdump_signature(b: &[u8]) -> bool {
    b.starts_with(b"KDUMP   ") || b.starts_with(b"DISKDUMP")
}

impl<S: ByteSource> KdumpCompressed<S> {
    /// Parses the headers and bitmaps. Page data is read on demand.
    pub fn new(src: S) -> Result<Self> {
        let h = src.bytes(FileOffset(0), 464, "kdump header")?;
        if !has_kdump_signature(&h) {
            return Err(Error::NotADump("no KDUMP signature".into()));
        }
        let corrupt = |what: String| Error::Corrupt(format!("kdump header: {what}"));
        let short = || corrupt("short".into());
        let header_version = le_i32(&h, 8).ok_or_else(short)?;
        let field_str = |off: usize| String::from_utf8_lossy(c_str(&h[off..off + 65])).into_owned();
        let release = field_str(12 + 2 * 65);
        let machine = field_str(12 + 4 * 65);
        let timestamp = le_u64(&h, 408).ok_or_else(short)? as i64;
        let status = le_u32(&h, 424).ok_or_else(short)?;
        let block_size = le_i32(&h, 428).ok_or_else(short)?;
        let sub_hdr_size = le_i32(&h, 432).ok_or_else(short)?;
        let bitmap_blocks = le_u32(&h, 436).ok_or_else(short)?;
        let max_mapnr_32 = le_u32(&h, 440).ok_or_else(short)?;
        let nr_cpus = le_i32(&h, 460).ok_or_else(short)?;
        let signature = String::from_utf8_lossy(&h[..8]).trim_end().to_owned();
        drop(h);
        if !(1..=64).contains(&header_version) {
            return Err(corrupt(format!("header version {header_version}")));
        }
        if !(512..=1 << 20).contains(&block_size) || (block_size as u32).count_ones() != 1 {
            return Err(corrupt(format!("block size {block_size}")));
        }
        if !(1..=1 << 16).contains(&sub_hdr_size) {
            return Err(corrupt(format!("sub-header size {sub_hdr_size} blocks")));
        }
        if bitmap_blocks == 0 || bitmap_blocks % 2 != 0 {
            return Err(corrupt(format!(
                "{bitmap_blocks} bitmap blocks (must be even and non-zero)"
            )));
        }
        if !machine.is_empty() && machine != "x86_64" {
            return Err(Error::Unsupported(format!(
                "kdump of machine {machine:?}; only x86_64 is read"
            )));
        }
        let bs = block_size as u64;
        let sub = src.bytes(FileOffset(bs), 104.min(bs as usize), "kdump sub-header")?;
        let sub_u64 = |off: usize| le_u64(&sub, off).unwrap_or(0);
        let phys_base = sub_u64(0);
        let dump_level = le_i32(&sub, 8).unwrap_or(0);
        let split = if header_version >= 2 {
            le_i32(&sub, 12).unwrap_or(0)
        } else {
            0
        };
        let vmcoreinfo =
            (header_version >= 3 && sub_u64(40) != 0).then(|| (sub_u64(32), sub_u64(40)));
        let notes = (header_version >= 4 && sub_u64(56) != 0).then(|| (sub_u64(48), sub_u64(56)));
        let max_mapnr = if header_version >= 6 {
            sub_u64(96)
        } else {
            u64::from(max_mapnr_32)
        };
        drop(sub);
        if split != 0 {
            return Err(Error::Unsupported(
                "split kdump files (makedumpfile --split)".into(),
            ));
        }
        let half = u64::from(bitmap_blocks) / 2 * bs;
        if max_mapnr > half * 8 {
            return Err(corrupt(format!(
                "{max_mapnr} page frames but bitmaps of {half} bytes"
            )));
        }
        // makedumpfile sizes the bitmaps from max_mapnr; anything much
        // larger is damage (and must not make the reader allocate it).
        if max_mapnr > MAX_PAGE_FRAMES || half > max_mapnr.div_ceil(8).div_ceil(bs) * bs + bs {
            return Err(corrupt(format!(
                "bitmaps of {half} bytes for {max_mapnr} page frames"
            )));
        }
        let bitmap_off = (1 + sub_hdr_size as u64) * bs;
        let present = Bitmap::new(
            src.bytes(FileOffset(bitmap_off), half as usize, "first bitmap")?
                .into_owned(),
        );
        let dumped = Bitmap::new(
            src.bytes(
                FileOffset(bitmap_off + half),
                half as usize,
                "second bitmap",
            )?
            .into_owned(),
        );
        let desc_offset = bitmap_off + 2 * half;
        let header = KdumpHeader {
            signature,
            header_version,
            release,
            machine,
            timestamp,
            status,
            block_size: bs,
            sub_hdr_size: sub_hdr_size as u64,
            bitmap_blocks: u64::from(bitmap_blocks),
            max_mapnr,
            nr_cpus,
            phys_base,
            dump_level,
            split,
            vmcoreinfo,
            notes,
        };
        Ok(KdumpCompressed {
            src,
            header,
            present,
            dumped,
            desc_offset,
            cache: Mutex::new(PageCache::new(8192)),
        })
    }

    /// The parsed headers.
    pub fn header(&self) -> &KdumpHeader {
        &self.header
    }

    /// The underlying bytes.
    pub fn source(&self) -> &S {
        &self.src
    }

    /// The compression named in the header's `status`.
    pub fn compression(&self) -> Compression {
        Compression::from_flags(self.header.status).unwrap_or(Compression::None)
    }

    /// The raw VMCOREINFO text, if the sub-header points at one.
    pub fn vmcoreinfo_text(&self) -> Result<Option<Vec<u8>>> {
        let Some((off, size)) = self.header.vmcoreinfo else {
            return Ok(None);
        };
        if size > 1 << 20 {
            return Err(Error::Corrupt(format!("VMCOREINFO of {size} bytes")));
        }
        Ok(Some(
            self.src
                .bytes(FileOffset(off), size as usize, "VMCOREINFO")?
                .into_owned(),
        ))
    }

    /// The ELF notes blob, if the sub-header points at one.
    pub fn notes(&self) -> Result<Option<Vec<u8>>> {
        let Some((off, size)) = self.header.notes else {
            return Ok(None);
        };
        if size > 64 << 20 {
            return Err(Error::Corrupt(format!("notes of {size} bytes")));
        }
        Ok(Some(
            self.src
                .bytes(FileOffset(off), size as usize, "ELF notes")?
                .into_owned(),
        ))
    }

    /// Present, dumped and excluded page counts.
    pub fn page_stats(&self) -> PageStats {
        let present = self.present.count();
        let dumped = self.dumped.count();
        PageStats {
            max_pfn: self.header.max_mapnr,
            present,
            dumped,
            excluded: present.saturating_sub(dumped),
        }
    }

    /// If the file is too short for its descriptor table or for some page's
    /// data: `(bytes needed, file length)`.
    pub fn truncation(&self) -> Option<(u64, u64)> {
        let len = self.src.len();
        let count = self.dumped.count();
        let table_end = self.desc_offset + count * PAGE_DESC_SIZE;
        if table_end > len {
            return Some((table_end, len));
        }
        // Page data is not written in PFN order (zero pages share one
        // block near the start), so every descriptor is checked: one
        // sequential pass over 24 bytes per dumped page.
        let mut max_end = 0u64;
        let mut at = self.desc_offset;
        let chunk_descs = 4096u64;
        while at < table_end {
            let n = ((table_end - at) / PAGE_DESC_SIZE).min(chunk_descs);
            let Ok(chunk) = self.src.bytes(
                FileOffset(at),
                (n * PAGE_DESC_SIZE) as usize,
                "page descriptors",
            ) else {
                return Some((table_end, len));
            };
            for d in chunk.chunks_exact(PAGE_DESC_SIZE as usize) {
                let off = le_u64(d, 0).unwrap_or(0);
                let size = u64::from(le_u32(d, 8).unwrap_or(0));
                max_end = max_end.max(off.saturating_add(size));
            }
            at += n * PAGE_DESC_SIZE;
        }
        (max_end > len).then_some((max_end, len))
    }

    /// Hit and miss counts of the page cache.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.lock().map(|c| c.stats()).unwrap_or((0, 0))
    }

    /// The decompressed contents of page `pfn`.
    pub fn read_page(&self, pfn: Pfn) -> Result<Arc<[u8]>> {
        if let Ok(mut cache) = self.cache.lock()
            && let Some(page) = cache.get(pfn.0)
        {
            return Ok(page);
        }
        let page: Arc<[u8]> = self.load_page(pfn)?.into();
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(pfn.0, page.clone());
        }
        Ok(page)
    }

    /// Decompresses page `pfn` straight into `out` (a whole page), for
    /// reads that cover whole pages and would only evict the pages that
    /// small reads come back to.
    fn load_page_into(&self, pfn: Pfn, out: &mut [u8]) -> Result<()> {
        if let Ok(mut cache) = self.cache.lock()
            && let Some(page) = cache.get(pfn.0)
        {
            out.copy_from_slice(&page);
            return Ok(());
        }
        let (method, data) = self.page_data(pfn)?;
        if method == Compression::Zlib {
            let want = out.len();
            let (page, rc) =
                zlib_rs::decompress_slice(out, &data, zlib_rs::InflateConfig::default());
            let got = page.len();
            // a stream that is too long stops with the page full
            let what = match rc {
                zlib_rs::ReturnCode::Ok if got == want => return Ok(()),
                zlib_rs::ReturnCode::Ok => format!("zlib data gives {got} bytes, expected {want}"),
                zlib_rs::ReturnCode::BufError if got == want => {
                    format!("zlib data gives more than {want} bytes")
                }
                other => format!("zlib data: zlib: {other:?}"),
            };
            return Err(Error::CorruptPage { pfn, what });
        }
        out.copy_from_slice(&self.finish_page(pfn, method, &data)?);
        Ok(())
    }

    fn load_page(&self, pfn: Pfn) -> Result<Vec<u8>> {
        let (method, data) = self.page_data(pfn)?;
        self.finish_page(pfn, method, &data)
    }

    /// Decompresses a page's stored data and checks its length.
    fn finish_page(&self, pfn: Pfn, method: Compression, data: &[u8]) -> Result<Vec<u8>> {
        let bs = self.header.block_size;
        let bad = |what: String| Error::CorruptPage { pfn, what };
        let page = decompress(method, data, bs as usize)
            .map_err(|what| bad(format!("{} data: {what}", method.name())))?;
        if page.len() as u64 != bs {
            return Err(bad(format!(
                "{} data gives {} bytes, expected {bs}",
                method.name(),
                page.len()
            )));
        }
        Ok(page)
    }

    /// A dumped page's compression and stored bytes.
    fn page_data(&self, pfn: Pfn) -> Result<(Compression, std::borrow::Cow<'_, [u8]>)> {
        let bs = self.header.block_size;
        if pfn.0 >= self.header.max_mapnr {
            return Err(Error::NotInDump(pfn.to_phys(bs)));
        }
        if !self.dumped.get(pfn.0) {
            return Err(if self.present.get(pfn.0) {
                Error::Excluded(pfn)
            } else {
                Error::NotInDump(pfn.to_phys(bs))
            });
        }
        let idx = self.dumped.rank(pfn.0);
        let desc_at = FileOffset(self.desc_offset + idx * PAGE_DESC_SIZE);
        let truncated = |needed: FileOffset, len: u64| Error::PageTruncated { pfn, needed, len };
        let desc = self
            .src
            .bytes(desc_at, 24, "page descriptor")
            .map_err(|e| match e {
                Error::Truncated { needed, len, .. } => truncated(needed, len),
                other => other,
            })?;
        let bad = |what: String| Error::CorruptPage { pfn, what };
        let offset = le_u64(&desc, 0).ok_or_else(|| bad("short descriptor".into()))?;
        let size = le_u32(&desc, 8).ok_or_else(|| bad("short descriptor".into()))?;
        let flags = le_u32(&desc, 12).ok_or_else(|| bad("short descriptor".into()))?;
        drop(desc);
        if offset == 0 && size == 0 {
            // An incomplete dump leaves the descriptors past the failure
            // point zeroed.
            return Err(truncated(desc_at, self.src.len()));
        }
        if size == 0 || u64::from(size) > bs * 2 {
            return Err(bad(format!(
                "descriptor gives {size} bytes of data for a {bs}-byte page"
            )));
        }
        let method = Compression::from_flags(flags)
            .map_err(|f| bad(format!("several compression flags set ({f:#x})")))?;
        let data = self
            .src
            .bytes(FileOffset(offset), size as usize, "page data")
            .map_err(|e| match e {
                Error::Truncated { needed, len, .. } => truncated(needed, len),
                other => other,
            })?;
        Ok((method, data))
    }
}

/// Decompresses one page. The output never exceeds `page_size` bytes plus
/// one (so an oversized stream is detected without unbounded allocation).
pub fn decompress(
    method: Compression,
    data: &[u8],
    page_size: usize,
) -> std::result::Result<Vec<u8>, String> {
    match method {
        Compression::None => Ok(data.to_vec()),
        Compression::Zlib => {
            // zlib-rs's one-shot inflate straight into the page: a stream
            // decoder would set up a window and its state for every page,
            // most of the cost of a read. One byte more than a page shows
            // a stream that is too long.
            let mut out = vec![0u8; page_size + 1];
            let (page, rc) =
                zlib_rs::decompress_slice(&mut out, data, zlib_rs::InflateConfig::default());
            let n = page.len();
            match rc {
                zlib_rs::ReturnCode::Ok | zlib_rs::ReturnCode::BufError if n > 0 => {
                    out.truncate(n);
                    Ok(out)
                }
                other => Err(format!("zlib: {other:?}")),
            }
        }
        Compression::Lzo => crate::lzo::decompress(data, page_size).map_err(str::to_owned),
        Compression::Snappy => {
            let len = snap::raw::decompress_len(data).map_err(|e| e.to_string())?;
            if len != page_size {
                return Err(format!("snappy stream claims {len} bytes"));
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| e.to_string())
        }
        Compression::Zstd => {
            let mut out = Vec::with_capacity(page_size + 1);
            ruzstd::decoding::FrameDecoder::new()
                .decode_all_to_vec(data, &mut out)
                .map_err(|e| e.to_string())?;
            Ok(out)
        }
    }
}

impl<S: ByteSource> PhysicalMemory for KdumpCompressed<S> {
    fn page_size(&self) -> u64 {
        self.header.block_size
    }

    fn read_phys(&self, addr: PhysAddr, buf: &mut [u8]) -> Result<()> {
        let bs = self.header.block_size;
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr
                .0
                .checked_add(done as u64)
                .ok_or(Error::NotInDump(addr))?;
            let pfn = PhysAddr(a).pfn(bs);
            let in_page = (a % bs) as usize;
            let n = (bs as usize - in_page).min(buf.len() - done);
            if n as u64 == bs {
                self.load_page_into(pfn, &mut buf[done..done + n])?;
            } else {
                let page = self.read_page(pfn)?;
                buf[done..done + n].copy_from_slice(&page[in_page..in_page + n]);
            }
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::source::OwnedBytes;
    use std::io::Write;

    const BS: usize = 4096;

    /// A page of recognisable bytes.
    fn page(seed: u8) -> Vec<u8> {
        (0..BS).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    fn compress(flags: u32, data: &[u8]) -> Vec<u8> {
        match flags {
            DUMP_DH_COMPRESSED_ZLIB => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            DUMP_DH_COMPRESSED_LZO => lzokay_native::compress(data).unwrap(),
            DUMP_DH_COMPRESSED_SNAPPY => snap::raw::Encoder::new().compress_vec(data).unwrap(),
            DUMP_DH_COMPRESSED_ZSTD => {
                ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
            }
            _ => data.to_vec(),
        }
    }

    /// What a unit-test file holds.
    struct Spec {
        version: i32,
        /// (pfn, per-page flags, stored blob)
        pages: Vec<(u64, u32, Vec<u8>)>,
        excluded: Vec<u64>,
        max_mapnr: u64,
        status: u32,
        vmcoreinfo: Vec<u8>,
        notes: Vec<u8>,
    }

    impl Spec {
        fn new(pages: &[(u64, u32, Vec<u8>)]) -> Spec {
            Spec {
                version: 6,
                pages: pages
                    .iter()
                    .map(|(p, f, d)| (*p, *f, compress(*f, d)))
                    .collect(),
                excluded: vec![],
                max_mapnr: 64,
                status: DUMP_DH_COMPRESSED_ZLIB,
                vmcoreinfo: b"OSRELEASE=6.1.0-test\n".to_vec(),
                notes: b"NOTES".to_vec(),
            }
        }

        /// Header, one sub-header block (with VMCOREINFO and notes), one
        /// block per bitmap, descriptors, data.
        fn build(&self) -> Vec<u8> {
            let mut out = vec![0u8; BS];
            out[..8].copy_from_slice(b"KDUMP   ");
            out[8..12].copy_from_slice(&self.version.to_le_bytes());
            out[12 + 130..12 + 140].copy_from_slice(b"6.1.0-test");
            out[12 + 260..12 + 266].copy_from_slice(b"x86_64");
            out[424..428].copy_from_slice(&self.status.to_le_bytes());
            out[428..432].copy_from_slice(&(BS as i32).to_le_bytes());
            out[432..436].copy_from_slice(&1i32.to_le_bytes());
            out[436..440].copy_from_slice(&2u32.to_le_bytes());
            out[440..444].copy_from_slice(&(self.max_mapnr as u32).to_le_bytes());
            let mut sub = vec![0u8; BS];
            sub[8..12].copy_from_slice(&31i32.to_le_bytes());
            let vi = 104;
            let notes = vi + self.vmcoreinfo.len();
            sub[vi..notes].copy_from_slice(&self.vmcoreinfo);
            sub[notes..notes + self.notes.len()].copy_from_slice(&self.notes);
            sub[32..40].copy_from_slice(&((BS + vi) as u64).to_le_bytes());
            sub[40..48].copy_from_slice(&(self.vmcoreinfo.len() as u64).to_le_bytes());
            sub[48..56].copy_from_slice(&((BS + notes) as u64).to_le_bytes());
            sub[56..64].copy_from_slice(&(self.notes.len() as u64).to_le_bytes());
            sub[96..104].copy_from_slice(&self.max_mapnr.to_le_bytes());
            out.extend_from_slice(&sub);
            let (mut bm1, mut bm2) = (vec![0u8; BS], vec![0u8; BS]);
            let mut pages = self.pages.clone();
            pages.sort_by_key(|p| p.0);
            for (pfn, ..) in &pages {
                bm1[(pfn / 8) as usize] |= 1 << (pfn % 8);
                bm2[(pfn / 8) as usize] |= 1 << (pfn % 8);
            }
            for e in &self.excluded {
                bm1[(e / 8) as usize] |= 1 << (e % 8);
            }
            out.extend_from_slice(&bm1);
            out.extend_from_slice(&bm2);
            let mut data_off = (out.len() + pages.len() * 24) as u64;
            let mut blobs = Vec::new();
            for (_, flags, blob) in &pages {
                out.extend_from_slice(&data_off.to_le_bytes());
                out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&0u64.to_le_bytes());
                data_off += blob.len() as u64;
                blobs.extend_from_slice(blob);
            }
            out.extend_from_slice(&blobs);
            out
        }

        fn open(&self) -> Result<KdumpCompressed<OwnedBytes>> {
            KdumpCompressed::new(OwnedBytes(self.build()))
        }
    }

    #[test]
    fn reads_every_compression_back_and_tells_holes_from_exclusions() {
        let pages = [
            (1, 0, page(1)),
            (3, DUMP_DH_COMPRESSED_ZLIB, page(3)),
            (4, DUMP_DH_COMPRESSED_LZO, page(4)),
            (9, DUMP_DH_COMPRESSED_SNAPPY, page(9)),
            (10, DUMP_DH_COMPRESSED_ZSTD, page(10)),
            (11, DUMP_DH_COMPRESSED_ZLIB, page(11)),
        ];
        let mut spec = Spec::new(&pages);
        spec.excluded = vec![2, 7];
        let k = spec.open().unwrap();
        assert_eq!(k.page_size(), BS as u64);
        assert_eq!(k.compression(), Compression::Zlib);
        assert_eq!(
            k.page_stats(),
            PageStats {
                max_pfn: 64,
                present: 8,
                dumped: 6,
                excluded: 2
            }
        );
        assert!(k.truncation().is_none());
        for (pfn, _, data) in &pages {
            assert_eq!(&k.read_page(Pfn(*pfn)).unwrap()[..], &data[..], "pfn {pfn}");
        }
        // A read across the boundary of two dumped pages, at an offset.
        let mut buf = vec![0u8; 100];
        k.read_phys(PhysAddr(10 * 4096 + 4046), &mut buf).unwrap();
        assert_eq!(&buf[..50], &page(10)[4046..]);
        assert_eq!(&buf[50..], &page(11)[..50]);
        // Whole pages from the start.
        let mut two = vec![0u8; 2 * BS];
        k.read_phys(PhysAddr(3 * 4096), &mut two).unwrap();
        assert_eq!(&two[..BS], &page(3)[..]);
        assert_eq!(&two[BS..], &page(4)[..]);
        assert!(matches!(
            k.read_phys(PhysAddr(2 * 4096 + 8), &mut buf),
            Err(Error::Excluded(Pfn(2)))
        ));
        assert!(matches!(
            k.read_phys(PhysAddr(5 * 4096), &mut buf),
            Err(Error::NotInDump(PhysAddr(0x5000)))
        ));
        // Past max_mapnr, and a read running into a hole.
        assert!(matches!(
            k.read_page(Pfn(64)),
            Err(Error::NotInDump(PhysAddr(0x40000)))
        ));
        assert!(matches!(
            k.read_phys(PhysAddr(2 * 4096 - 10), &mut buf),
            Err(Error::Excluded(Pfn(2)))
        ));
        assert!(matches!(
            k.read_phys(PhysAddr(u64::MAX - 5), &mut buf),
            Err(Error::NotInDump(_))
        ));
        // VMCOREINFO and notes, exactly.
        assert_eq!(
            k.vmcoreinfo_text().unwrap().as_deref(),
            Some(&b"OSRELEASE=6.1.0-test\n"[..])
        );
        assert_eq!(k.notes().unwrap().as_deref(), Some(&b"NOTES"[..]));
        let h = k.header();
        assert_eq!(
            (h.signature.as_str(), h.release.as_str(), h.machine.as_str()),
            ("KDUMP", "6.1.0-test", "x86_64")
        );
        assert_eq!((h.dump_level, h.sub_hdr_size, h.bitmap_blocks), (31, 1, 2));
        assert!(format!("{k:?}").contains("KdumpCompressed"));
    }

    #[test]
    fn the_page_cache_counts_hits_and_evicts_first_in() {
        let pages: Vec<(u64, u32, Vec<u8>)> = (0..3)
            .map(|i| (i, DUMP_DH_COMPRESSED_ZLIB, page(i as u8)))
            .collect();
        let k = Spec::new(&pages).open().unwrap();
        for _ in 0..3 {
            for (pfn, _, data) in &pages {
                assert_eq!(&k.read_page(Pfn(*pfn)).unwrap()[..], &data[..]);
            }
        }
        assert_eq!(k.cache_stats(), (6, 3));
        let mut c = PageCache::new(2);
        let p: Arc<[u8]> = vec![1u8].into();
        c.insert(1, p.clone());
        c.insert(2, p.clone());
        c.insert(2, p.clone());
        assert!(c.get(1).is_some());
        c.insert(3, p.clone());
        assert!(c.get(1).is_none(), "the oldest page goes first");
        assert!(c.get(2).is_some() && c.get(3).is_some());
        assert_eq!(c.stats(), (3, 1));
    }

    #[test]
    fn header_versions_decide_what_the_sub_header_gives() {
        let pages = [(5, DUMP_DH_COMPRESSED_ZLIB, page(5))];
        for version in 1..=6 {
            let mut spec = Spec::new(&pages);
            spec.version = version;
            let k = spec.open().unwrap();
            assert_eq!(k.header().header_version, version);
            assert_eq!(k.header().vmcoreinfo.is_some(), version >= 3, "v{version}");
            assert_eq!(k.header().notes.is_some(), version >= 4, "v{version}");
            assert_eq!(k.vmcoreinfo_text().unwrap().is_some(), version >= 3);
            assert_eq!(k.notes().unwrap().is_some(), version >= 4);
            assert_eq!(&k.read_page(Pfn(5)).unwrap()[..], &page(5)[..]);
        }
        // Version 6 takes max_mapnr from the sub-header, older ones from
        // the 32-bit field.
        let mut spec = Spec::new(&pages);
        let mut file = spec.build();
        file[440..444].copy_from_slice(&8u32.to_le_bytes());
        let k = KdumpCompressed::new(OwnedBytes(file)).unwrap();
        assert_eq!(k.header().max_mapnr, 64);
        spec.version = 5;
        let mut file = spec.build();
        file[440..444].copy_from_slice(&8u32.to_le_bytes());
        let k = KdumpCompressed::new(OwnedBytes(file)).unwrap();
        assert_eq!(k.header().max_mapnr, 8);
        assert!(matches!(k.read_page(Pfn(8)), Err(Error::NotInDump(_))));
        // The split field exists from version 2.
        let mut spec = Spec::new(&pages);
        spec.version = 1;
        let mut file = spec.build();
        file[BS + 12..BS + 16].copy_from_slice(&1i32.to_le_bytes());
        assert!(KdumpCompressed::new(OwnedBytes(file)).is_ok());
        spec.version = 2;
        let mut file = spec.build();
        file[BS + 12..BS + 16].copy_from_slice(&1i32.to_le_bytes());
        assert!(matches!(
            KdumpCompressed::new(OwnedBytes(file)),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn bad_headers_are_refused() {
        let good = Spec::new(&[(1, 0, page(1))]).build();
        let patch = |off: usize, bytes: &[u8]| {
            let mut f = good.clone();
            f[off..off + bytes.len()].copy_from_slice(bytes);
            KdumpCompressed::new(OwnedBytes(f))
        };
        assert!(matches!(patch(0, b"KDUMP  X"), Err(Error::NotADump(_))));
        let mut disk = good.clone();
        disk[..8].copy_from_slice(b"DISKDUMP");
        let k = KdumpCompressed::new(OwnedBytes(disk)).unwrap();
        assert_eq!(k.header().signature, "DISKDUMP");
        for v in [0i32, 65, -1] {
            assert!(
                matches!(patch(8, &v.to_le_bytes()), Err(Error::Corrupt(_))),
                "{v}"
            );
        }
        assert!(patch(8, &64i32.to_le_bytes()).is_ok());
        for bs in [256i32, 4095, 3 << 10, 2 << 20] {
            assert!(
                matches!(patch(428, &bs.to_le_bytes()), Err(Error::Corrupt(_))),
                "{bs}"
            );
        }
        for sub in [0i32, (1 << 16) + 1] {
            assert!(
                matches!(patch(432, &sub.to_le_bytes()), Err(Error::Corrupt(_))),
                "{sub}"
            );
        }
        for blocks in [0u32, 3] {
            assert!(
                matches!(patch(436, &blocks.to_le_bytes()), Err(Error::Corrupt(_))),
                "{blocks}"
            );
        }
        assert!(matches!(
            patch(12 + 260, b"arm64\0"),
            Err(Error::Unsupported(_))
        ));
        assert!(patch(12 + 260, &[0; 6]).is_ok());
        // max_mapnr must fit the bitmaps (one block: 32768 frames) and
        // not be far smaller than them.
        assert!(patch(BS + 96, &32768u64.to_le_bytes()).is_ok());
        assert!(matches!(
            patch(BS + 96, &32769u64.to_le_bytes()),
            Err(Error::Corrupt(_))
        ));
        assert!(patch(BS + 96, &1u64.to_le_bytes()).is_ok());
        let mut big = Spec::new(&[(1, 0, page(1))]);
        big.max_mapnr = (1 << 40) + 1;
        let mut f = big.build();
        f[436..440].copy_from_slice(&(1u32 << 31).to_le_bytes());
        assert!(KdumpCompressed::new(OwnedBytes(f)).is_err());
    }

    #[test]
    fn truncation_names_the_bytes_needed() {
        let pages = [
            (1, DUMP_DH_COMPRESSED_ZLIB, page(1)),
            (2, DUMP_DH_COMPRESSED_ZLIB, page(2)),
        ];
        let full = Spec::new(&pages).build();
        let desc = 4 * BS;
        let data_end = full.len() as u64;
        // Cut inside the descriptor table.
        let k = KdumpCompressed::new(OwnedBytes(full[..desc + 30].to_vec())).unwrap();
        assert_eq!(k.truncation(), Some((desc as u64 + 48, desc as u64 + 30)));
        assert!(matches!(
            k.read_page(Pfn(2)),
            Err(Error::PageTruncated { pfn: Pfn(2), .. })
        ));
        // Cut inside the last page's data.
        let k = KdumpCompressed::new(OwnedBytes(full[..full.len() - 1].to_vec())).unwrap();
        assert_eq!(k.truncation(), Some((data_end, data_end - 1)));
        assert!(matches!(
            k.read_page(Pfn(2)),
            Err(Error::PageTruncated { pfn: Pfn(2), .. })
        ));
        assert_eq!(&k.read_page(Pfn(1)).unwrap()[..], &page(1)[..]);
        // Exactly long enough.
        let k = KdumpCompressed::new(OwnedBytes(full.clone())).unwrap();
        assert_eq!(k.truncation(), None);
        // Many descriptors: every one is checked, not only the first chunk.
        let many: Vec<(u64, u32, Vec<u8>)> = (0..4200).map(|p| (p, 0, vec![0u8; 1])).collect();
        let mut spec = Spec::new(&[]);
        spec.pages = many;
        spec.max_mapnr = 4200;
        let mut f = spec.build();
        let last = 4 * BS + 4199 * 24;
        f[last + 8..last + 12].copy_from_slice(&100u32.to_le_bytes());
        let len = f.len() as u64;
        let k = KdumpCompressed::new(OwnedBytes(f)).unwrap();
        assert_eq!(k.truncation(), Some((len + 99, len)));
    }

    #[test]
    fn bad_descriptors_are_errors_for_their_page() {
        let pages = [(1, DUMP_DH_COMPRESSED_ZLIB, page(1))];
        let full = Spec::new(&pages).build();
        let d = 4 * BS;
        let with = |field: usize, bytes: &[u8]| {
            let mut f = full.clone();
            f[d + field..d + field + bytes.len()].copy_from_slice(bytes);
            KdumpCompressed::new(OwnedBytes(f))
                .unwrap()
                .read_page(Pfn(1))
        };
        // A zeroed descriptor: the dump stopped before this page.
        let mut zeroed = full.clone();
        zeroed[d..d + 24].fill(0);
        assert!(matches!(
            KdumpCompressed::new(OwnedBytes(zeroed))
                .unwrap()
                .read_page(Pfn(1)),
            Err(Error::PageTruncated { .. })
        ));
        // Size 0 at a real offset; a size beyond two pages.
        assert!(matches!(
            with(8, &0u32.to_le_bytes()),
            Err(Error::CorruptPage { .. })
        ));
        assert!(matches!(
            with(8, &(2 * BS as u32 + 1).to_le_bytes()),
            Err(Error::CorruptPage { .. })
        ));
        // Offset 0 with a real size is read (and is not a zlib page).
        assert!(matches!(
            with(0, &0u64.to_le_bytes()),
            Err(Error::CorruptPage { .. })
        ));
        assert!(matches!(
            with(12, &3u32.to_le_bytes()),
            Err(Error::CorruptPage { .. })
        ));
        // Two pages' worth of data is allowed: a zlib stream with slack.
        let mut blob = compress(DUMP_DH_COMPRESSED_ZLIB, &page(1));
        blob.resize(2 * BS, 0);
        let mut spec = Spec::new(&[]);
        spec.pages = vec![(1, DUMP_DH_COMPRESSED_ZLIB, blob)];
        assert_eq!(
            &spec.open().unwrap().read_page(Pfn(1)).unwrap()[..],
            &page(1)[..]
        );
        // A stored page of the wrong size.
        let mut spec = Spec::new(&[]);
        spec.pages = vec![(1, 0, vec![7u8; 100])];
        assert!(matches!(
            spec.open().unwrap().read_page(Pfn(1)),
            Err(Error::CorruptPage { .. })
        ));
    }

    #[test]
    fn oversized_metadata_is_corrupt() {
        let mut spec = Spec::new(&[(1, 0, page(1))]);
        spec.vmcoreinfo = vec![b'x'; 8];
        let mut f = spec.build();
        f[BS + 40..BS + 48].copy_from_slice(&((1u64 << 20) + 1).to_le_bytes());
        let k = KdumpCompressed::new(OwnedBytes(f.clone())).unwrap();
        assert!(matches!(k.vmcoreinfo_text(), Err(Error::Corrupt(_))));
        // Exactly 1 MiB is allowed (and here runs past the file).
        f[BS + 40..BS + 48].copy_from_slice(&(1u64 << 20).to_le_bytes());
        let k = KdumpCompressed::new(OwnedBytes(f.clone())).unwrap();
        assert!(matches!(k.vmcoreinfo_text(), Err(Error::Truncated { .. })));
        f[BS + 56..BS + 64].copy_from_slice(&((64u64 << 20) + 1).to_le_bytes());
        let k = KdumpCompressed::new(OwnedBytes(f.clone())).unwrap();
        assert!(matches!(k.notes(), Err(Error::Corrupt(_))));
        f[BS + 56..BS + 64].copy_from_slice(&(64u64 << 20).to_le_bytes());
        let k = KdumpCompressed::new(OwnedBytes(f)).unwrap();
        assert!(matches!(k.notes(), Err(Error::Truncated { .. })));
    }

    #[test]
    fn decompress_bounds_its_output() {
        let big = vec![5u8; 2 * BS];
        let z = compress(DUMP_DH_COMPRESSED_ZLIB, &big);
        assert_eq!(decompress(Compression::Zlib, &z, BS).unwrap().len(), BS + 1);
        assert_eq!(decompress(Compression::None, b"abc", BS).unwrap(), b"abc");
        let s = compress(DUMP_DH_COMPRESSED_SNAPPY, &big);
        assert!(decompress(Compression::Snappy, &s, BS).is_err());
        let s = compress(DUMP_DH_COMPRESSED_SNAPPY, &page(2));
        assert_eq!(decompress(Compression::Snappy, &s, BS).unwrap(), page(2));
    }

    #[test]
    fn compression_names() {
        assert_eq!(
            [
                Compression::None,
                Compression::Zlib,
                Compression::Lzo,
                Compression::Snappy,
                Compression::Zstd
            ]
            .map(Compression::name),
            ["none", "zlib", "lzo", "snappy", "zstd"]
        );
        for (flag, c) in [
            (1, Compression::Zlib),
            (2, Compression::Lzo),
            (4, Compression::Snappy),
            (0x20, Compression::Zstd),
            (0x10, Compression::None),
        ] {
            assert_eq!(Compression::from_flags(flag), Ok(c));
        }
        assert_eq!(Compression::from_flags(0x6), Err(0x6));
    }

    #[test]
    fn a_dump_of_no_pages_is_not_truncated() {
        // The descriptor table is empty and ends exactly at the file's end.
        let k = Spec::new(&[]).open().unwrap();
        assert_eq!(k.page_stats().dumped, 0);
        assert_eq!(k.truncation(), None);
    }

    #[test]
    fn rank_counts_bits_below() {
        let mut bits = vec![0u8; 200];
        for i in [0u64, 5, 7, 8, 511, 512, 513, 1000, 1599] {
            bits[(i / 8) as usize] |= 1 << (i % 8);
        }
        let bm = Bitmap::new(bits);
        assert_eq!(bm.rank(0), 0);
        assert_eq!(bm.rank(1), 1);
        assert_eq!(bm.rank(8), 3);
        assert_eq!(bm.rank(512), 5);
        assert_eq!(bm.rank(1000), 7);
        assert_eq!(bm.rank(1600), 9);
        assert_eq!(bm.count(), 9);
        assert!(bm.get(513) && !bm.get(514));
        assert_eq!(bm.rank(99_999), 9);
    }

    #[test]
    fn oversized_bitmaps_are_corrupt_not_allocated() {
        // Found by the `flattened` fuzz target: a header whose bitmaps are
        // far larger than max_mapnr needs, inside a sparse flattened file,
        // made the reader allocate them.
        let mut h = vec![0u8; 8192];
        h[..8].copy_from_slice(b"KDUMP   ");
        h[8..12].copy_from_slice(&6i32.to_le_bytes());
        h[428..432].copy_from_slice(&4096i32.to_le_bytes());
        h[432..436].copy_from_slice(&1i32.to_le_bytes());
        h[436..440].copy_from_slice(&0x1000_0000u32.to_le_bytes());
        h[4096 + 96..4096 + 104].copy_from_slice(&100u64.to_le_bytes());
        let err = KdumpCompressed::new(crate::source::OwnedBytes(h)).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt(ref m) if m.contains("bitmaps")),
            "{err}"
        );
    }

    #[test]
    fn compression_flags_must_name_one_method() {
        assert_eq!(Compression::from_flags(0x21), Err(0x21));
        assert_eq!(Compression::from_flags(0x20), Ok(Compression::Zstd));
        assert_eq!(Compression::from_flags(0x8), Ok(Compression::None));
    }

    #[test]
    fn decoders_reject_garbage_without_panicking() {
        let garbage: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
        for m in [
            Compression::Zlib,
            Compression::Lzo,
            Compression::Snappy,
            Compression::Zstd,
        ] {
            let r = decompress(m, &garbage, 4096);
            assert!(r.map(|p| p.len() != 4096).unwrap_or(true), "{m:?}");
        }
    }
}
