//! The kernel log: the lockless printk ring buffer of Linux 5.10 and later.
//!
//! Everything is located through VMCOREINFO alone (`SYMBOL(prb)` and the
//! `printk_ringbuffer`, `prb_desc_ring`, `prb_desc`, `prb_data_blk_lpos`,
//! `printk_info`, `dev_printk_info` and `prb_data_ring` offsets and sizes
//! the kernel exports for makedumpfile and crash), so it works without a
//! vmlinux.
//!
//! A descriptor's `state_var` holds its ID in the low 62 bits and its state
//! in the top two (0 reserved, 1 committed, 2 finalized, 3 reusable).
//! Committed and finalized records between `tail_id` and `head_id` are
//! read. Text lives in the data ring as `{unsigned long id; char text[]}`
//! blocks addressed by logical positions; a block that would wrap is
//! stored whole at the start of the ring.

use serde::Serialize;

use crate::addr::VirtAddr;
use crate::bytes::{c_str, le_u16, le_u32, le_u64};
use crate::error::{Error, Result};
use crate::memory::KernelMemory;
use crate::vmcoreinfo::Vmcoreinfo;

/// One log record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogRecord {
    /// The sequence number.
    pub seq: u64,
    /// Nanoseconds since boot (local clock).
    pub ts_nsec: u64,
    /// The caller: a task ID, or `0x80000000 | cpu` in interrupt context.
    pub caller_id: u32,
    /// The message text (without a trailing newline).
    pub text: String,
    /// `SUBSYSTEM=` of a dev_printk, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsystem: Option<String>,
    /// `DEVICE=` of a dev_printk, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl LogRecord {
    /// The record as `dmesg` prints it: `[    1.234567] text`, one line per
    /// line of text.
    pub fn to_dmesg_lines(&self) -> String {
        let stamp = format!(
            "[{:5}.{:06}] ",
            self.ts_nsec / 1_000_000_000,
            self.ts_nsec % 1_000_000_000 / 1000
        );
        let mut out = String::new();
        for (i, line) in self.text.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&stamp);
            out.push_str(line);
        }
        out
    }
}

/// The printk ring buffer's layout, from VMCOREINFO.
#[derive(Debug, Clone, Copy)]
struct Layout {
    prb: VirtAddr,
    desc_ring: u64,
    text_data_ring: u64,
    count_bits: u64,
    descs: u64,
    infos: u64,
    head_id: u64,
    tail_id: u64,
    desc_size: u64,
    state_var: u64,
    text_blk_lpos: u64,
    lpos_begin: u64,
    lpos_next: u64,
    info_size: u64,
    info_seq: u64,
    info_ts_nsec: u64,
    info_text_len: u64,
    info_caller_id: u64,
    info_dev_info: Option<u64>,
    dev_subsystem: Option<(u64, u64)>,
    dev_device: Option<(u64, u64)>,
    size_bits: u64,
    data: u64,
    counter: u64,
}

impl Layout {
    fn from_vmcoreinfo(info: &Vmcoreinfo) -> Result<Self> {
        let o = |n: &str| info.require_offset(n);
        let dev_info = info.offset("printk_info.dev_info");
        let field = |name: &str, len: &str| Some((info.offset(name)?, *info.lengths.get(len)?));
        Ok(Layout {
            prb: info.symbol("prb").ok_or_else(|| {
                Error::Vmcoreinfo(
                    "no SYMBOL(prb): this kernel predates the lockless printk ring buffer (5.10)"
                        .into(),
                )
            })?,
            desc_ring: o("printk_ringbuffer.desc_ring")?,
            text_data_ring: o("printk_ringbuffer.text_data_ring")?,
            count_bits: o("prb_desc_ring.count_bits")?,
            descs: o("prb_desc_ring.descs")?,
            infos: o("prb_desc_ring.infos")?,
            head_id: o("prb_desc_ring.head_id")?,
            tail_id: o("prb_desc_ring.tail_id")?,
            desc_size: info.require_size("prb_desc")?,
            state_var: o("prb_desc.state_var")?,
            text_blk_lpos: o("prb_desc.text_blk_lpos")?,
            lpos_begin: o("prb_data_blk_lpos.begin")?,
            lpos_next: o("prb_data_blk_lpos.next")?,
            info_size: info.require_size("printk_info")?,
            info_seq: o("printk_info.seq")?,
            info_ts_nsec: o("printk_info.ts_nsec")?,
            info_text_len: o("printk_info.text_len")?,
            info_caller_id: o("printk_info.caller_id")?,
            info_dev_info: dev_info,
            dev_subsystem: field("dev_printk_info.subsystem", "printk_info_subsystem"),
            dev_device: field("dev_printk_info.device", "printk_info_device"),
            size_bits: o("prb_data_ring.size_bits")?,
            data: o("prb_data_ring.data")?,
            counter: o("atomic_long_t.counter")?,
        })
    }
}

const DESC_FLAGS_SHIFT: u32 = 62;
const DESC_ID_MASK: u64 = !(3u64 << DESC_FLAGS_SHIFT);
const STATE_COMMITTED: u64 = 1;
const STATE_FINALIZED: u64 = 2;

/// Reads every committed record of the printk ring buffer, in sequence
/// order.
pub fn read_log(mem: &dyn KernelMemory, info: &Vmcoreinfo) -> Result<Vec<LogRecord>> {
    let l = Layout::from_vmcoreinfo(info)?;
    let rb = VirtAddr(mem.read_u64(l.prb)?);
    let ring = rb.0 + l.desc_ring;
    let count_bits = mem.read_u32(VirtAddr(ring + l.count_bits))?;
    if count_bits > 24 {
        return Err(Error::Corrupt(format!(
            "printk descriptor ring of 2^{count_bits} entries"
        )));
    }
    let count = 1u64 << count_bits;
    let descs_at = mem.read_u64(VirtAddr(ring + l.descs))?;
    let infos_at = mem.read_u64(VirtAddr(ring + l.infos))?;
    let head = mem.read_u64(VirtAddr(ring + l.head_id + l.counter))? & DESC_ID_MASK;
    let tail = mem.read_u64(VirtAddr(ring + l.tail_id + l.counter))? & DESC_ID_MASK;

    let data_ring = rb.0 + l.text_data_ring;
    let size_bits = mem.read_u32(VirtAddr(data_ring + l.size_bits))?;
    if !(8..=28).contains(&size_bits) {
        return Err(Error::Corrupt(format!(
            "printk data ring of 2^{size_bits} bytes"
        )));
    }
    let data_size = 1u64 << size_bits;
    let data_at = mem.read_u64(VirtAddr(data_ring + l.data))?;

    if l.desc_size == 0 || l.info_size == 0 || l.desc_size > 4096 || l.info_size > 4096 {
        return Err(Error::Vmcoreinfo(
            "impossible printk descriptor sizes".into(),
        ));
    }
    // Real rings are a few MiB; bound what damaged input can make us read.
    if count * (l.desc_size + l.info_size) > 1 << 28 {
        return Err(Error::Corrupt(format!(
            "printk descriptor ring of {count} entries"
        )));
    }
    let descs = mem.read_vec(VirtAddr(descs_at), (count * l.desc_size) as usize)?;
    let infos = mem.read_vec(VirtAddr(infos_at), (count * l.info_size) as usize)?;
    let data = mem.read_vec(VirtAddr(data_at), data_size as usize)?;

    let mut records = Vec::new();
    let mut id = tail;
    for _ in 0..count {
        let slot = id % count;
        let d = (slot * l.desc_size) as usize;
        let desc = &descs[d..d + l.desc_size as usize];
        let field = |off: u64| le_u64(desc, off as usize);
        if let Some(sv) = field(l.state_var + l.counter) {
            let state = sv >> DESC_FLAGS_SHIFT;
            if sv & DESC_ID_MASK == id && (state == STATE_COMMITTED || state == STATE_FINALIZED) {
                let i = (slot * l.info_size) as usize;
                let inf = &infos[i..i + l.info_size as usize];
                let begin = field(l.text_blk_lpos + l.lpos_begin).unwrap_or(1);
                let next = field(l.text_blk_lpos + l.lpos_next).unwrap_or(1);
                let text_len = le_u16(inf, l.info_text_len as usize).unwrap_or(0) as usize;
                let text = block_text(&data, size_bits, begin, next)
                    .map(|t| String::from_utf8_lossy(&t[..t.len().min(text_len)]).into_owned());
                if let Some(text) = text {
                    let dev = |f: Option<(u64, u64)>| {
                        let (off, len) = f?;
                        let start = (l.info_dev_info? + off) as usize;
                        let raw = inf.get(start..start + len as usize)?;
                        let s = c_str(raw);
                        (!s.is_empty()).then(|| String::from_utf8_lossy(s).into_owned())
                    };
                    records.push(LogRecord {
                        seq: le_u64(inf, l.info_seq as usize).unwrap_or(0),
                        ts_nsec: le_u64(inf, l.info_ts_nsec as usize).unwrap_or(0),
                        caller_id: le_u32(inf, l.info_caller_id as usize).unwrap_or(0),
                        text: text.trim_end_matches('\n').to_owned(),
                        subsystem: dev(l.dev_subsystem),
                        device: dev(l.dev_device),
                    });
                }
            }
        }
        if id == head {
            break;
        }
        id = (id + 1) & DESC_ID_MASK;
    }
    records.sort_by_key(|r| r.seq);
    Ok(records)
}

/// The text of a data block, without its leading ID, or `None` for a
/// data-less or inconsistent block.
fn block_text(data: &[u8], size_bits: u32, begin: u64, next: u64) -> Option<&[u8]> {
    if begin & 1 != 0 || next & 1 != 0 {
        return None;
    }
    let size = 1u64 << size_bits;
    let index = |lpos: u64| (lpos & (size - 1)) as usize;
    let wraps = |lpos: u64| lpos >> size_bits;
    let (start, len) = if wraps(begin) == wraps(next) && begin < next {
        (index(begin), (next - begin) as usize)
    } else if wraps(begin.wrapping_add(size)) == wraps(next) {
        (0, index(next))
    } else {
        return None;
    };
    let block = data.get(start..start.checked_add(len)?)?;
    block.get(8..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_wrapped_blocks() {
        let mut data = vec![0u8; 256];
        data[16..24].copy_from_slice(&5u64.to_le_bytes());
        data[24..29].copy_from_slice(b"hello");
        assert_eq!(block_text(&data, 8, 16, 32), Some(&b"hello\0\0\0"[..]));
        // A block that would wrap is stored at index 0; begin is near the end.
        data[8..13].copy_from_slice(b"wrapp");
        assert_eq!(
            block_text(&data, 8, 250, 256 + 16).map(|t| &t[..5]),
            Some(&b"wrapp"[..])
        );
        assert_eq!(block_text(&data, 8, 1, 1), None);
        assert_eq!(block_text(&data, 8, 16, 16 + 4096), None);
    }

    #[test]
    fn formats_like_dmesg() {
        let r = LogRecord {
            seq: 0,
            ts_nsec: 12_345_678_901,
            caller_id: 1,
            text: "a\nb".into(),
            subsystem: None,
            device: None,
        };
        assert_eq!(r.to_dmesg_lines(), "[   12.345678] a\n[   12.345678] b");
    }
}
