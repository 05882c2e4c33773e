//! Bounds-checked reads of fixed-width integers from byte slices.
//!
//! Every integer taken from input goes through these, so a short or hostile
//! buffer gives `None` instead of a panic.

/// Reads a little-endian `u16` at `off`.
pub(crate) fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Reads a little-endian `u32` at `off`.
pub(crate) fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads a little-endian `i32` at `off`.
pub(crate) fn le_i32(b: &[u8], off: usize) -> Option<i32> {
    le_u32(b, off).map(|v| v as i32)
}

/// Reads a little-endian `u64` at `off`.
pub(crate) fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Reads a big-endian `i64` at `off`.
pub(crate) fn be_i64(b: &[u8], off: usize) -> Option<i64> {
    Some(i64::from_be_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// A NUL-terminated string at the start of `b` (all of `b` if it has no NUL).
pub(crate) fn c_str(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// Rounds `v` up to a multiple of `align` (a power of two), or `None` on
/// overflow.
pub(crate) fn align_up(v: usize, align: usize) -> Option<usize> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}
