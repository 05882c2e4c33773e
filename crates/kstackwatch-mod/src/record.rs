//! The catch record: the Rust mirror of `module/ksw_record.h`.
//!
//! The module keeps the last [`RING`] catches in its global
//! `ksw_catch_log` ([`CatchLog`]). Every field has an explicit width and
//! natural alignment and there is no implicit padding, so the `#[repr(C)]`
//! structs here have the C layout; `tests/layout.rs` compiles the header
//! with gcc and compares every offset and size. The decoders read
//! little-endian bytes (x86_64) and need no `unsafe`.

use std::mem::{offset_of, size_of};

/// `"KSWCATCH"` read as a little-endian u64.
pub const MAGIC: u64 = 0x4843_5441_4357_534b;
/// Layout version; bumped on any change.
pub const VERSION: u32 = 1;
/// Catches kept in the ring.
pub const RING: usize = 16;
/// Bytes of `func_name`.
pub const FUNC_LEN: usize = 64;
/// Bytes of a task's comm.
pub const COMM_LEN: usize = 16;
/// Bytes of the config string.
pub const CONFIG_LEN: usize = 128;

/// `Catch::flags`: the watch was on the stack canary.
pub const FLAG_CANARY: u32 = 0x1;
/// `Catch::flags`: the writer is the victim task.
pub const FLAG_SELF: u32 = 0x2;
/// `Catch::flags`: the module panicked after this catch.
pub const FLAG_PANIC: u32 = 0x4;

/// x86_64 `struct pt_regs`, in kernel order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub bp: u64,
    pub bx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub ax: u64,
    pub cx: u64,
    pub dx: u64,
    pub si: u64,
    pub di: u64,
    pub orig_ax: u64,
    pub ip: u64,
    pub cs: u64,
    pub flags: u64,
    pub sp: u64,
    pub ss: u64,
}

/// One catch (`struct ksw_catch`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Catch {
    /// 1-based catch number; 0 = empty or torn slot (written last).
    pub seq: u64,
    /// `local_clock()` at the catch, ns.
    pub timestamp_ns: u64,
    /// CPU that took the #DB.
    pub cpu: u32,
    /// `FLAG_*`.
    pub flags: u32,
    /// Watched function, NUL-padded.
    pub func_name: [u8; FUNC_LEN],
    /// Probe offset in the function.
    pub func_offset: u32,
    /// SP offset of the watched slot.
    pub sp_offset: u32,
    /// Watch length.
    pub watch_len: u32,
    /// Activation depth.
    pub depth: u32,
    /// Watched address.
    pub watch_addr: u64,
    /// SP at the probe when armed.
    pub armed_sp: u64,
    /// Value before the write.
    pub old_value: u64,
    /// Value after the write.
    pub new_value: u64,
    /// `struct task_struct *` of the victim.
    pub victim_task: u64,
    /// `struct task_struct *` of the writer.
    pub writer_task: u64,
    /// Victim pid.
    pub victim_pid: i32,
    /// Writer pid.
    pub writer_pid: i32,
    /// Victim comm, NUL-padded.
    pub victim_comm: [u8; COMM_LEN],
    /// Writer comm, NUL-padded.
    pub writer_comm: [u8; COMM_LEN],
    /// The config string, NUL-padded.
    pub config: [u8; CONFIG_LEN],
    /// The writer's registers at the #DB.
    pub regs: Regs,
}

/// The ring (`struct ksw_catch_log`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatchLog {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`VERSION`].
    pub version: u32,
    /// Offset of `records`.
    pub header_size: u32,
    /// `size_of::<Catch>()`.
    pub record_size: u32,
    /// [`RING`].
    pub nr_records: u32,
    /// Catches so far; catch n is in `records[(n - 1) % RING]`.
    pub total: u64,
    /// The ring.
    pub records: [Catch; RING],
}

/// Size of the header in front of the records.
pub const HEADER_SIZE: usize = offset_of!(CatchLog, records);

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn bytes_at<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    b[off..off + N].try_into().unwrap()
}

/// A NUL-padded C string field as text.
pub fn c_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Regs {
    fn read(b: &[u8]) -> Regs {
        let r = |i: usize| u64_at(b, i * 8);
        Regs {
            r15: r(0),
            r14: r(1),
            r13: r(2),
            r12: r(3),
            bp: r(4),
            bx: r(5),
            r11: r(6),
            r10: r(7),
            r9: r(8),
            r8: r(9),
            ax: r(10),
            cx: r(11),
            dx: r(12),
            si: r(13),
            di: r(14),
            orig_ax: r(15),
            ip: r(16),
            cs: r(17),
            flags: r(18),
            sp: r(19),
            ss: r(20),
        }
    }
}

impl Catch {
    /// Decode one record from the first `size_of::<Catch>()` bytes.
    pub fn read(b: &[u8]) -> Option<Catch> {
        if b.len() < size_of::<Catch>() {
            return None;
        }
        macro_rules! at {
            ($f:ident) => {
                offset_of!(Catch, $f)
            };
        }
        Some(Catch {
            seq: u64_at(b, at!(seq)),
            timestamp_ns: u64_at(b, at!(timestamp_ns)),
            cpu: u32_at(b, at!(cpu)),
            flags: u32_at(b, at!(flags)),
            func_name: bytes_at(b, at!(func_name)),
            func_offset: u32_at(b, at!(func_offset)),
            sp_offset: u32_at(b, at!(sp_offset)),
            watch_len: u32_at(b, at!(watch_len)),
            depth: u32_at(b, at!(depth)),
            watch_addr: u64_at(b, at!(watch_addr)),
            armed_sp: u64_at(b, at!(armed_sp)),
            old_value: u64_at(b, at!(old_value)),
            new_value: u64_at(b, at!(new_value)),
            victim_task: u64_at(b, at!(victim_task)),
            writer_task: u64_at(b, at!(writer_task)),
            victim_pid: u32_at(b, at!(victim_pid)) as i32,
            writer_pid: u32_at(b, at!(writer_pid)) as i32,
            victim_comm: bytes_at(b, at!(victim_comm)),
            writer_comm: bytes_at(b, at!(writer_comm)),
            config: bytes_at(b, at!(config)),
            regs: Regs::read(&b[at!(regs)..]),
        })
    }

    /// The watched function.
    pub fn func_name(&self) -> String {
        c_str(&self.func_name)
    }

    /// The config string.
    pub fn config(&self) -> String {
        c_str(&self.config)
    }

    /// The victim's comm.
    pub fn victim_comm(&self) -> String {
        c_str(&self.victim_comm)
    }

    /// The writer's comm.
    pub fn writer_comm(&self) -> String {
        c_str(&self.writer_comm)
    }
}

/// Why bytes are not a catch log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the header says.
    Short(usize),
    /// The magic is not [`MAGIC`].
    BadMagic(u64),
    /// A version this crate does not know.
    BadVersion(u32),
    /// Header sizes that disagree with this layout.
    BadGeometry,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Short(n) => write!(f, "catch log truncated at {n} bytes"),
            RecordError::BadMagic(m) => write!(f, "bad catch log magic {m:#x}"),
            RecordError::BadVersion(v) => write!(f, "unknown catch log version {v}"),
            RecordError::BadGeometry => write!(f, "catch log header sizes disagree with version 1"),
        }
    }
}

impl std::error::Error for RecordError {}

impl CatchLog {
    /// Decode a whole log (`size_of::<CatchLog>()` bytes), checking magic,
    /// version and geometry.
    pub fn read(b: &[u8]) -> Result<CatchLog, RecordError> {
        if b.len() < HEADER_SIZE {
            return Err(RecordError::Short(b.len()));
        }
        let magic = u64_at(b, offset_of!(CatchLog, magic));
        if magic != MAGIC {
            return Err(RecordError::BadMagic(magic));
        }
        let version = u32_at(b, offset_of!(CatchLog, version));
        if version != VERSION {
            return Err(RecordError::BadVersion(version));
        }
        let header_size = u32_at(b, offset_of!(CatchLog, header_size));
        let record_size = u32_at(b, offset_of!(CatchLog, record_size));
        let nr_records = u32_at(b, offset_of!(CatchLog, nr_records));
        if header_size as usize != HEADER_SIZE
            || record_size as usize != size_of::<Catch>()
            || nr_records as usize != RING
        {
            return Err(RecordError::BadGeometry);
        }
        if b.len() < size_of::<CatchLog>() {
            return Err(RecordError::Short(b.len()));
        }
        let rec = |i: usize| Catch::read(&b[HEADER_SIZE + i * size_of::<Catch>()..]).unwrap();
        Ok(CatchLog {
            magic,
            version,
            header_size,
            record_size,
            nr_records,
            total: u64_at(b, offset_of!(CatchLog, total)),
            records: std::array::from_fn(rec),
        })
    }

    /// The committed catches, oldest first (slots with seq 0 are skipped).
    pub fn catches(&self) -> Vec<&Catch> {
        let mut v: Vec<&Catch> = self.records.iter().filter(|c| c.seq != 0).collect();
        v.sort_by_key(|c| c.seq);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; size_of::<CatchLog>()];
        b[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        b[16..20].copy_from_slice(&(size_of::<Catch>() as u32).to_le_bytes());
        b[20..24].copy_from_slice(&(RING as u32).to_le_bytes());
        b[24..32].copy_from_slice(&17u64.to_le_bytes());
        // catch 17 lives in slot 0, catch 16 in slot 15
        for (slot, seq) in [(0usize, 17u64), (15, 16)] {
            let r = HEADER_SIZE + slot * size_of::<Catch>();
            b[r..r + 8].copy_from_slice(&seq.to_le_bytes());
            let name = r + offset_of!(Catch, func_name);
            b[name..name + 6].copy_from_slice(b"victim");
            let ip = r + offset_of!(Catch, regs) + offset_of!(Regs, ip);
            b[ip..ip + 8].copy_from_slice(&(0xffff_ffff_c000_0000u64 + seq).to_le_bytes());
            let pid = r + offset_of!(Catch, writer_pid);
            b[pid..pid + 4].copy_from_slice(&(-1i32).to_le_bytes());
        }
        b
    }

    #[test]
    fn magic_spells_kswcatch() {
        assert_eq!(&MAGIC.to_le_bytes(), b"KSWCATCH");
    }

    #[test]
    fn decodes_and_orders_catches() {
        let log = CatchLog::read(&sample()).unwrap();
        assert_eq!(log.total, 17);
        let c = log.catches();
        assert_eq!(c.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![16, 17]);
        assert_eq!(c[0].func_name(), "victim");
        assert_eq!(c[1].regs.ip, 0xffff_ffff_c000_0011);
        assert_eq!(c[1].writer_pid, -1);
    }

    #[test]
    fn text_fields_stop_at_their_nul() {
        let mut b = sample();
        let r = HEADER_SIZE;
        for (field, text) in [
            (offset_of!(Catch, config), &b"fn=victim fo=0x2e"[..]),
            (offset_of!(Catch, victim_comm), b"insmod"),
            (offset_of!(Catch, writer_comm), b"kworker/0:1"),
        ] {
            b[r + field..r + field + text.len()].copy_from_slice(text);
        }
        let log = CatchLog::read(&b).unwrap();
        let c = &log.records[0];
        assert_eq!(c.config(), "fn=victim fo=0x2e");
        assert_eq!(c.victim_comm(), "insmod");
        assert_eq!(c.writer_comm(), "kworker/0:1");
        assert_eq!(c_str(b"abc"), "abc");
    }

    #[test]
    fn a_header_alone_is_checked_before_its_length() {
        // Exactly a header's worth of bytes: a bad magic is named as such,
        // a good header is short of its records.
        let good = sample();
        let mut b = good[..HEADER_SIZE].to_vec();
        assert_eq!(CatchLog::read(&b), Err(RecordError::Short(HEADER_SIZE)));
        b[0] ^= 1;
        assert!(matches!(CatchLog::read(&b), Err(RecordError::BadMagic(_))));
        for (e, want) in [
            (RecordError::Short(3), "3 bytes"),
            (RecordError::BadMagic(0x10), "0x10"),
            (RecordError::BadVersion(9), "version 9"),
            (RecordError::BadGeometry, "sizes"),
        ] {
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn rejects_bad_headers() {
        let good = sample();
        let mut b = good.clone();
        b[0] ^= 1;
        assert!(matches!(CatchLog::read(&b), Err(RecordError::BadMagic(_))));
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(CatchLog::read(&b), Err(RecordError::BadVersion(2)));
        let mut b = good.clone();
        b[16] ^= 8;
        assert_eq!(CatchLog::read(&b), Err(RecordError::BadGeometry));
        assert_eq!(CatchLog::read(&good[..100]), Err(RecordError::Short(100)));
        assert_eq!(CatchLog::read(&good[..10]), Err(RecordError::Short(10)));
    }
}
