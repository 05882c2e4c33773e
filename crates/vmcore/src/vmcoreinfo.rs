//! VMCOREINFO: the kernel's `KEY=value` description of itself, saved in
//! every kdump and (with `-device vmcoreinfo`) in QEMU dumps.
//!
//! Every line is kept and typed by its macro: `SYMBOL(x)` is hex without
//! `0x`, `NUMBER(x)` is signed decimal, `OFFSET`, `SIZE` and `LENGTH` are
//! unsigned decimal, `KERNELOFFSET` is hex, `BUILD-ID` is 40 hex digits and
//! `CRASHTIME` is seconds since the epoch. Lines this parser does not know
//! are kept verbatim in [`Vmcoreinfo::other`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::addr::VirtAddr;
use crate::error::{Error, Result};

/// Parsed VMCOREINFO.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Vmcoreinfo {
    /// `OSRELEASE`: the kernel release (`uname -r`).
    pub osrelease: Option<String>,
    /// `PAGESIZE`.
    pub page_size: Option<u64>,
    /// `BUILD-ID` as hex text, exactly as the kernel wrote it.
    pub build_id: Option<String>,
    /// `KERNELOFFSET`: the KASLR offset of kernel text.
    pub kernel_offset: Option<u64>,
    /// `CRASHTIME`: present only when kdump saved the dump at a crash.
    pub crash_time: Option<i64>,
    /// `SYMBOL(name)`: runtime addresses.
    pub symbols: BTreeMap<String, u64>,
    /// `NUMBER(name)`: signed values.
    pub numbers: BTreeMap<String, i64>,
    /// `OFFSET(struct.member)`.
    pub offsets: BTreeMap<String, u64>,
    /// `SIZE(type)`.
    pub sizes: BTreeMap<String, u64>,
    /// `LENGTH(name)`.
    pub lengths: BTreeMap<String, u64>,
    /// `CONFIG_X=y` lines.
    pub configs: BTreeMap<String, String>,
    /// Any other `KEY=value` line.
    pub other: BTreeMap<String, String>,
}

/// Stable kernels whose VMCOREINFO `BUILD-ID` is garbage (a bad backport of
/// 905415ff3ffb), as listed by drgn: `(major, minor, first patch, last
/// patch)`, with `u32::MAX` meaning "and later".
const BAD_BUILD_ID_RANGES: &[(u32, u32, u32, u32)] = &[
    (6, 11, 3, 9),
    (6, 10, 14, u32::MAX),
    (6, 6, 55, 62),
    (6, 1, 113, 118),
    (5, 15, 168, u32::MAX),
];

impl Vmcoreinfo {
    /// Parses VMCOREINFO text (the note descriptor, or a file holding it).
    /// Stops at the first NUL. Malformed lines are errors, because a
    /// corrupt note must not quietly yield wrong addresses.
    pub fn parse(text: &[u8]) -> Result<Self> {
        let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
        let text = std::str::from_utf8(&text[..end])
            .map_err(|_| Error::Vmcoreinfo("the text is not UTF-8".into()))?;
        let mut info = Vmcoreinfo::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| Error::Vmcoreinfo(format!("line {}: no '=' in {line:?}", n + 1)))?;
            let bad = |what: &str| Error::Vmcoreinfo(format!("line {}: {what} in {line:?}", n + 1));
            if let Some(name) = macro_arg(key, "SYMBOL") {
                let v = u64::from_str_radix(value, 16).map_err(|_| bad("bad hex address"))?;
                info.symbols.insert(name.to_owned(), v);
            } else if let Some(name) = macro_arg(key, "NUMBER") {
                let v = parse_signed(value).ok_or_else(|| bad("bad number"))?;
                info.numbers.insert(name.to_owned(), v);
            } else if let Some(name) = macro_arg(key, "OFFSET") {
                let v = value.parse().map_err(|_| bad("bad offset"))?;
                info.offsets.insert(name.to_owned(), v);
            } else if let Some(name) = macro_arg(key, "SIZE") {
                let v = value.parse().map_err(|_| bad("bad size"))?;
                info.sizes.insert(name.to_owned(), v);
            } else if let Some(name) = macro_arg(key, "LENGTH") {
                let v = value.parse().map_err(|_| bad("bad length"))?;
                info.lengths.insert(name.to_owned(), v);
            } else if key.starts_with("CONFIG_") {
                info.configs.insert(key.to_owned(), value.to_owned());
            } else {
                match key {
                    "OSRELEASE" => info.osrelease = Some(value.to_owned()),
                    "PAGESIZE" => {
                        let v: u64 = value.parse().map_err(|_| bad("bad page size"))?;
                        if !v.is_power_of_two() || !(512..=1 << 20).contains(&v) {
                            return Err(bad("impossible page size"));
                        }
                        info.page_size = Some(v);
                    }
                    "BUILD-ID" => {
                        if value.is_empty() || !value.bytes().all(|c| c.is_ascii_hexdigit()) {
                            return Err(bad("bad build ID"));
                        }
                        info.build_id = Some(value.to_owned());
                    }
                    "KERNELOFFSET" => {
                        let v =
                            u64::from_str_radix(value, 16).map_err(|_| bad("bad hex offset"))?;
                        info.kernel_offset = Some(v);
                    }
                    "CRASHTIME" => {
                        info.crash_time = Some(value.parse().map_err(|_| bad("bad crash time"))?);
                    }
                    _ => {
                        info.other.insert(key.to_owned(), value.to_owned());
                    }
                }
            }
        }
        Ok(info)
    }

    /// `SYMBOL(name)` as an address.
    pub fn symbol(&self, name: &str) -> Option<VirtAddr> {
        self.symbols.get(name).copied().map(VirtAddr)
    }

    /// `NUMBER(name)`.
    pub fn number(&self, name: &str) -> Option<i64> {
        self.numbers.get(name).copied()
    }

    /// `OFFSET(name)`.
    pub fn offset(&self, name: &str) -> Option<u64> {
        self.offsets.get(name).copied()
    }

    /// `SIZE(name)`.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.sizes.get(name).copied()
    }

    /// `OFFSET(name)`, or an error naming the missing key.
    pub fn require_offset(&self, name: &str) -> Result<u64> {
        self.offset(name)
            .ok_or_else(|| Error::Vmcoreinfo(format!("no OFFSET({name})")))
    }

    /// `SIZE(name)`, or an error naming the missing key.
    pub fn require_size(&self, name: &str) -> Result<u64> {
        self.size(name)
            .ok_or_else(|| Error::Vmcoreinfo(format!("no SIZE({name})")))
    }

    /// `SYMBOL(name)`, or an error naming the missing key.
    pub fn require_symbol(&self, name: &str) -> Result<VirtAddr> {
        self.symbol(name)
            .ok_or_else(|| Error::Vmcoreinfo(format!("no SYMBOL({name})")))
    }

    /// The page size, defaulting to 4096 (the only x86_64 page size).
    pub fn page_size_or_default(&self) -> u64 {
        self.page_size.unwrap_or(4096)
    }

    /// The number of page-table levels: 5 when `NUMBER(pgtable_l5_enabled)`
    /// is non-zero, else 4.
    pub fn page_table_levels(&self) -> u8 {
        if self.number("pgtable_l5_enabled").unwrap_or(0) != 0 {
            5
        } else {
            4
        }
    }

    /// The build ID, unless this kernel release is one whose VMCOREINFO
    /// build ID is known to be garbage.
    pub fn trusted_build_id(&self) -> Option<&str> {
        let id = self.build_id.as_deref()?;
        if self.build_id_is_known_bad() {
            None
        } else {
            Some(id)
        }
    }

    /// True if `OSRELEASE` is a stable kernel whose `BUILD-ID` line is known
    /// to be garbage.
    pub fn build_id_is_known_bad(&self) -> bool {
        let Some(release) = self.osrelease.as_deref() else {
            return false;
        };
        let Some((major, minor, patch)) = parse_release(release) else {
            return false;
        };
        BAD_BUILD_ID_RANGES
            .iter()
            .any(|&(ma, mi, lo, hi)| ma == major && mi == minor && (lo..=hi).contains(&patch))
    }
}

/// `NAME(arg)` → `arg`.
fn macro_arg<'a>(key: &'a str, name: &str) -> Option<&'a str> {
    key.strip_prefix(name)?.strip_prefix('(')?.strip_suffix(')')
}

/// Signed decimal, or hex with `0x` (some architectures print hex numbers).
fn parse_signed(v: &str) -> Option<i64> {
    if let Some(hex) = v.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(|u| u as i64);
    }
    v.parse().ok()
}

/// `"6.1.0-54-cloud-amd64"` has no patch level in its name, so Debian
/// releases give `(6, 1, 0)`; the caller only uses this for ranges that
/// name upstream stable patch levels, which such a release never matches.
pub(crate) fn parse_release(release: &str) -> Option<(u32, u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_every_macro() {
        let text =
            b"OSRELEASE=6.1.0-54-cloud-amd64\nBUILD-ID=0123456789abcdef0123456789abcdef01234567\n\
PAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffffa6c0a000\nNUMBER(phys_base)=-2147483648\n\
OFFSET(printk_info.seq)=0\nSIZE(printk_info)=88\nLENGTH(mem_section)=2048\n\
KERNELOFFSET=25800000\nCRASHTIME=1764100000\nCONFIG_KALLSYMS=y\nODD=thing\n\0garbage";
        let info = Vmcoreinfo::parse(text).unwrap();
        assert_eq!(info.osrelease.as_deref(), Some("6.1.0-54-cloud-amd64"));
        assert_eq!(info.page_size, Some(4096));
        assert_eq!(
            info.symbol("swapper_pg_dir"),
            Some(VirtAddr(0xffffffffa6c0a000))
        );
        assert_eq!(info.number("phys_base"), Some(-2147483648));
        assert_eq!(info.offset("printk_info.seq"), Some(0));
        assert_eq!(info.size("printk_info"), Some(88));
        assert_eq!(info.lengths.get("mem_section"), Some(&2048));
        assert_eq!(info.kernel_offset, Some(0x25800000));
        assert_eq!(info.crash_time, Some(1764100000));
        assert_eq!(
            info.configs.get("CONFIG_KALLSYMS").map(String::as_str),
            Some("y")
        );
        assert_eq!(info.other.get("ODD").map(String::as_str), Some("thing"));
        assert_eq!(
            info.trusted_build_id(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(info.page_table_levels(), 4);
    }

    #[test]
    fn distrusts_build_id_of_known_bad_stable_kernels() {
        for (release, bad) in [
            ("6.1.115", true),
            ("6.1.119", false),
            ("6.10.20", true),
            ("6.12.1", false),
            ("5.15.170-foo", true),
        ] {
            let text = format!("OSRELEASE={release}\nBUILD-ID=00ff\n");
            let info = Vmcoreinfo::parse(text.as_bytes()).unwrap();
            assert_eq!(info.build_id_is_known_bad(), bad, "{release}");
            assert_eq!(info.trusted_build_id().is_none(), bad, "{release}");
        }
    }

    #[test]
    fn required_keys_are_errors_when_missing() {
        let info = Vmcoreinfo::parse(
            b"OFFSET(printk_info.seq)=8\nSIZE(printk_info)=88\nSYMBOL(prb)=ffffffff82000000\n",
        )
        .unwrap();
        assert_eq!(info.require_offset("printk_info.seq").unwrap(), 8);
        assert_eq!(info.require_size("printk_info").unwrap(), 88);
        assert_eq!(
            info.require_symbol("prb").unwrap(),
            VirtAddr(0xffff_ffff_8200_0000)
        );
        assert_eq!(info.offset("printk_info.ts_nsec"), None);
        for e in [
            info.require_offset("printk_info.ts_nsec").unwrap_err(),
            info.require_size("prb_desc").unwrap_err(),
            info.require_symbol("log_buf").map(|_| ()).unwrap_err(),
        ] {
            assert!(matches!(e, Error::Vmcoreinfo(_)), "{e}");
        }
        assert_eq!(info.page_size_or_default(), 4096);
        let info = Vmcoreinfo::parse(b"PAGESIZE=16384\n").unwrap();
        assert_eq!(info.page_size_or_default(), 16384);
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            "SYMBOL(x)=zz\n",
            "NUMBER(x)=1.5\n",
            "no equals sign\n",
            "PAGESIZE=4095\n",
            "BUILD-ID=xyz\n",
        ] {
            assert!(Vmcoreinfo::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
