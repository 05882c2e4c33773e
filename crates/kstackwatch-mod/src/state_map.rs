//! The state map: the Rust mirror of `module/ksw_state_map.h`.
//!
//! kstackwatch.ko describes where its live state lies (config, watchpoint
//! slots, per-task table, counters) in its global `ksw_state_map`, entry
//! by named entry, the way VMCOREINFO describes the kernel. A reader of
//! the module's memory looks entries up by name, so a module that
//! publishes more entries (a new counter) needs no new reader. The header
//! layout is fixed and checked against gcc by `tests/layout.rs`; the
//! decoder reads little-endian bytes and needs no `unsafe`.

use std::mem::{offset_of, size_of};

use crate::record::{c_str, u32_at, u64_at};

/// `"KSWSTMAP"` read as a little-endian u64.
pub const MAGIC: u64 = 0x5041_4d54_5357_534b;
/// Layout version of the header and entries; bumped on any change.
pub const VERSION: u32 = 1;
/// Bytes of an entry's name, NUL included.
pub const NAME_LEN: usize = 48;
/// Entries the map has room for.
pub const ENTRIES: usize = 96;

/// `struct ksw_state_map_entry`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawEntry {
    /// NUL-terminated name.
    pub name: [u8; NAME_LEN],
    /// An object's address, or a member's offset.
    pub value: u64,
    /// Bytes.
    pub size: u64,
}

/// `struct ksw_state_map`, for its layout.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct RawStateMap {
    pub magic: u64,
    pub version: u32,
    pub nr_entries: u32,
    pub entry_size: u32,
    pub reserved: u32,
    pub entries: [RawEntry; ENTRIES],
}

/// Bytes before the entries.
pub const HEADER_SIZE: usize = offset_of!(RawStateMap, entries);
/// Bytes of the whole map.
pub const SIZE: usize = size_of::<RawStateMap>();

/// One decoded entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `ksw_wps` (an object), `struct ksw_wp` (a type) or `ksw_wp.addr`
    /// (a member).
    pub name: String,
    /// An object's address, or a member's offset (0 for a type).
    pub value: u64,
    /// Bytes.
    pub size: u64,
}

/// A decoded map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMap {
    /// Its entries, in the module's order.
    pub entries: Vec<Entry>,
}

/// Why bytes are not a state map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateMapError {
    /// Fewer bytes than a map.
    Short(usize),
    /// The magic is not [`MAGIC`] (a module still in its init, or not a map).
    BadMagic(u64),
    /// A version this crate does not know.
    BadVersion(u32),
    /// An entry count or size that disagrees with this layout.
    BadGeometry,
}

impl std::fmt::Display for StateMapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateMapError::Short(n) => write!(f, "state map truncated at {n} bytes"),
            StateMapError::BadMagic(m) => write!(f, "bad state map magic {m:#x}"),
            StateMapError::BadVersion(v) => write!(
                f,
                "state map layout version {v}, and this ksw reads version {VERSION}"
            ),
            StateMapError::BadGeometry => write!(
                f,
                "state map entry count or size disagrees with layout version {VERSION}"
            ),
        }
    }
}

impl std::error::Error for StateMapError {}

impl StateMap {
    /// Decodes a whole map ([`SIZE`] bytes), checking magic, version and
    /// geometry.
    pub fn read(b: &[u8]) -> Result<StateMap, StateMapError> {
        if b.len() < HEADER_SIZE {
            return Err(StateMapError::Short(b.len()));
        }
        let magic = u64_at(b, offset_of!(RawStateMap, magic));
        if magic != MAGIC {
            return Err(StateMapError::BadMagic(magic));
        }
        let version = u32_at(b, offset_of!(RawStateMap, version));
        if version != VERSION {
            return Err(StateMapError::BadVersion(version));
        }
        let n = u32_at(b, offset_of!(RawStateMap, nr_entries)) as usize;
        let entry_size = u32_at(b, offset_of!(RawStateMap, entry_size)) as usize;
        if n > ENTRIES || entry_size != size_of::<RawEntry>() {
            return Err(StateMapError::BadGeometry);
        }
        if b.len() < SIZE {
            return Err(StateMapError::Short(b.len()));
        }
        let entries = (0..n)
            .map(|i| {
                let at = HEADER_SIZE + i * entry_size;
                Entry {
                    name: c_str(&b[at..at + NAME_LEN]),
                    value: u64_at(b, at + offset_of!(RawEntry, value)),
                    size: u64_at(b, at + offset_of!(RawEntry, size)),
                }
            })
            .collect();
        Ok(StateMap { entries })
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entries whose names start with `prefix`, the prefix cut off.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a Entry)> {
        self.entries
            .iter()
            .filter_map(move |e| Some((e.name.strip_prefix(prefix)?, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(entries: &[(&str, u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; SIZE];
        b[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        b[16..20].copy_from_slice(&(size_of::<RawEntry>() as u32).to_le_bytes());
        for (i, (name, value, size)) in entries.iter().enumerate() {
            let at = HEADER_SIZE + i * size_of::<RawEntry>();
            b[at..at + name.len()].copy_from_slice(name.as_bytes());
            b[at + 48..at + 56].copy_from_slice(&value.to_le_bytes());
            b[at + 56..at + 64].copy_from_slice(&size.to_le_bytes());
        }
        b
    }

    #[test]
    fn magic_spells_kswstmap() {
        assert_eq!(&MAGIC.to_le_bytes(), b"KSWSTMAP");
    }

    #[test]
    fn entries_are_found_by_name_and_prefix() {
        let b = sample(&[
            ("ksw", 0xffff_ffff_c000_1000, 432),
            ("ksw_state.stats.arms", 216, 8),
            ("ksw_state.stats.hits", 232, 8),
            ("ksw_wp.addr", 24, 8),
        ]);
        let map = StateMap::read(&b).unwrap();
        assert_eq!(map.entries.len(), 4);
        assert_eq!(map.get("ksw").map(|e| e.value), Some(0xffff_ffff_c000_1000));
        assert_eq!(
            map.get("ksw_wp.addr").map(|e| (e.value, e.size)),
            Some((24, 8))
        );
        assert_eq!(map.get("ksw_wp"), None);
        let stats: Vec<&str> = map.under("ksw_state.stats.").map(|(n, _)| n).collect();
        assert_eq!(stats, ["arms", "hits"]);
    }

    #[test]
    fn rejects_bad_headers() {
        let good = sample(&[("ksw", 1, 2)]);
        let mut b = good.clone();
        b[0] ^= 1;
        assert!(matches!(
            StateMap::read(&b),
            Err(StateMapError::BadMagic(_))
        ));
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(StateMap::read(&b), Err(StateMapError::BadVersion(2)));
        let mut b = good.clone();
        b[12] = 97;
        assert_eq!(StateMap::read(&b), Err(StateMapError::BadGeometry));
        let mut b = good.clone();
        b[16] = 63;
        assert_eq!(StateMap::read(&b), Err(StateMapError::BadGeometry));
        assert_eq!(StateMap::read(&good[..100]), Err(StateMapError::Short(100)));
        assert_eq!(StateMap::read(&good[..10]), Err(StateMapError::Short(10)));
        assert!(
            StateMapError::BadVersion(7)
                .to_string()
                .contains("version 7")
        );
    }
}
