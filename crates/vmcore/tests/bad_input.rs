//! Damaged and wrong inputs: each gets a clear error, never a panic.
//!
//! The damaged dumps are made from a real fixture (the smallest
//! kdump-compressed and ELF dumps of the pipeline), so the damage lands in
//! real structures.

mod common;

use std::path::{Path, PathBuf};

use common::Fixtures;
use ksw_vmcore::{Dump, Error, KernelMemory, OpenOptions, PhysAddr, VirtAddr};

fn smallest(fx: &Fixtures, prefix: &str) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for run in fx.dump_runs() {
        for d in run.dumps() {
            let p = d.path;
            if !d.name.starts_with(prefix) {
                continue;
            }
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(u64::MAX);
            if best.as_ref().is_none_or(|(l, _)| len < *l) {
                best = Some((len, p));
            }
        }
    }
    best.unwrap_or_else(|| panic!("no {prefix} fixture")).1
}

fn open_bytes(bytes: Vec<u8>) -> ksw_vmcore::Result<Dump> {
    Dump::from_bytes(bytes, &OpenOptions::default())
}

/// Reads a spread of addresses and the log; errors are fine, panics are
/// not. Returns how many reads failed.
fn exercise(dump: &Dump) -> usize {
    let mut failures = 0;
    let _ = ksw_vmcore::summary::DumpSummary::collect(dump);
    let _ = dump.kernel_log();
    if let Some(info) = dump.vmcoreinfo() {
        for (_, &a) in info.symbols.iter().take(40) {
            if dump.read_vec(VirtAddr(a), 64).is_err() {
                failures += 1;
            }
        }
    }
    for pfn in (0..200_000u64).step_by(997) {
        if dump
            .read_phys(PhysAddr(pfn * 4096), &mut [0u8; 64])
            .is_err()
        {
            failures += 1;
        }
    }
    failures
}

#[test]
fn truncated_at_twenty_cut_points_is_named_truncated() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("ksw-truncated-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for prefix in ["dump.kdump-zlib", "dump.elf", "dump.flat"] {
        let path = smallest(&fx, prefix);
        let full = std::fs::read(&path).unwrap();
        let whole = Dump::open(&path).unwrap();
        assert!(whole.truncation().is_none());
        let cut_file = tmp.join(prefix);
        // Cut points: inside the headers, the bitmaps, the descriptor table
        // and all through the page data.
        let mut cuts = vec![1, 8, 100, 463, 4096, 4200, 9000, 20_000, 70_000, 200_000];
        cuts.extend((1..=10).map(|i| full.len() as u64 * i / 11));
        assert_eq!(cuts.len(), 20);
        for cut in cuts {
            let what = format!("{} cut at {cut}", path.display());
            std::fs::write(&cut_file, &full[..cut as usize]).unwrap();
            match Dump::open(&cut_file) {
                Err(Error::Truncated { .. }) | Err(Error::NotADump(_)) => {}
                Err(e) => panic!("{what}: expected a truncation error, got {e}"),
                Ok(dump) => {
                    let t = dump.truncation();
                    assert!(
                        t.is_some(),
                        "{what}: opened without noticing the truncation"
                    );
                    assert!(
                        dump.warnings().iter().any(|w| w.contains("truncated")),
                        "{what}: {:?}",
                        dump.warnings()
                    );
                    exercise(&dump);
                    // A page past the cut reports the truncation by name.
                    let mut saw = false;
                    for pfn in (0..200_000u64).rev().step_by(13) {
                        if let Err(Error::PageTruncated { .. }) =
                            dump.read_phys(PhysAddr(pfn * 4096), &mut [0u8; 8])
                        {
                            saw = true;
                            break;
                        }
                    }
                    assert!(saw, "{what}: no read reported PageTruncated");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn flipped_header_bytes_give_errors_not_panics() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let path = smallest(&fx, "dump.kdump-zlib");
    let full = std::fs::read(&path).unwrap();
    // Every byte of the disk_dump_header's fixed part, and the sub-header.
    let mut rejected = 0;
    let mut bad = full.clone();
    for off in (0..464).chain(4096..4096 + 104) {
        bad[off] ^= 0xff;
        let result = open_bytes(std::mem::take(&mut bad));
        match result {
            Ok(d) => {
                if off % 8 == 0 {
                    exercise(&d);
                }
                bad = full.clone();
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                rejected += 1;
                bad = full.clone();
            }
        }
    }
    // The signature, version, block size, sub-header size and bitmap size
    // are all checked.
    for off in [0usize, 8, 428, 432, 436] {
        let mut bad = full.clone();
        bad[off + 1] ^= 0x40;
        let e = open_bytes(bad).expect_err(&format!("flip at {}", off + 1));
        assert!(
            matches!(
                e,
                Error::NotADump(_) | Error::Corrupt(_) | Error::Truncated { .. }
            ),
            "offset {off}: {e}"
        );
    }
    assert!(rejected >= 20, "only {rejected} flips rejected");
    // The same for the ELF header.
    let elf = std::fs::read(smallest(&fx, "dump.elf")).unwrap();
    for off in 0..64 {
        let mut bad = elf[..1 << 20].to_vec();
        bad[off] ^= 0xff;
        if let Ok(d) = open_bytes(bad) {
            exercise(&d);
        }
    }
}

/// Where page `pfn`'s descriptor is in a kdump-compressed file.
fn descriptor_offset(file: &[u8], pfn: u64) -> usize {
    let u32_at = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap()) as usize;
    let block = u32_at(428);
    let sub = u32_at(432);
    let bitmap_blocks = u32_at(436);
    let half = bitmap_blocks / 2 * block;
    let bm2 = (1 + sub) * block + half;
    assert!(
        file[bm2 + (pfn / 8) as usize] & (1 << (pfn % 8)) != 0,
        "page {pfn} is not dumped"
    );
    let rank: usize = (0..pfn)
        .filter(|&p| file[bm2 + (p / 8) as usize] & (1 << (p % 8)) != 0)
        .count();
    (1 + sub) * block + 2 * half + rank * 24
}

/// A page that is in the dump with compressed data of its own: the page
/// holding `init_uts_ns`.
fn victim(file: &[u8]) -> (u64, VirtAddr) {
    let dump = open_bytes(file.to_vec()).unwrap();
    let at = dump.vmcoreinfo().unwrap().symbol("init_uts_ns").unwrap();
    let phys = dump.translate(at).unwrap().phys;
    (phys.0 / 4096, at)
}

#[test]
fn a_corrupt_page_descriptor_is_reported_for_that_page() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let full = std::fs::read(smallest(&fx, "dump.kdump-zlib")).unwrap();
    let (pfn, at) = victim(&full);
    let desc = descriptor_offset(&full, pfn);
    for (field, value) in [(8usize, u32::MAX), (8, 0), (12, 0x21), (12, 0x40)] {
        let mut bad = full.clone();
        bad[desc + field..desc + field + 4].copy_from_slice(&value.to_le_bytes());
        let dump = open_bytes(bad).unwrap();
        match dump.read_vec(at, 16) {
            Err(Error::CorruptPage { pfn: p, .. }) => assert_eq!(p.0, pfn),
            Err(e) => panic!("field {field} = {value:#x}: {e}"),
            Ok(_) if field == 12 && value == 0x40 => {} // an unknown, harmless page flag
            Ok(b) => panic!("field {field} = {value:#x}: read {b:?}"),
        }
    }
    // An offset past the end of the file.
    let mut bad = full.clone();
    bad[desc..desc + 8].copy_from_slice(&(full.len() as u64 + 10).to_le_bytes());
    let dump = open_bytes(bad).unwrap();
    assert!(matches!(
        dump.read_vec(at, 16),
        Err(Error::PageTruncated { .. })
    ));
}

#[test]
fn a_corrupt_compressed_page_is_reported_for_that_page() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    for prefix in ["dump.kdump-zlib", "dump.kdump-lzo"] {
        let full = std::fs::read(smallest(&fx, prefix)).unwrap();
        let (pfn, at) = victim(&full);
        let desc = descriptor_offset(&full, pfn);
        let off = u64::from_le_bytes(full[desc..desc + 8].try_into().unwrap()) as usize;
        let size = u32::from_le_bytes(full[desc + 8..desc + 12].try_into().unwrap()) as usize;
        let good = open_bytes(full.clone())
            .unwrap()
            .read_vec(at, 4096 - (at.0 % 4096) as usize)
            .unwrap();
        let mut detected = 0;
        for i in 0..8 {
            let mut bad = full.clone();
            let pos = off + size * i / 8;
            bad[pos] ^= 0xa5;
            let dump = open_bytes(bad).unwrap();
            match dump.read_vec(at, good.len()) {
                Err(Error::CorruptPage { pfn: p, what }) => {
                    assert_eq!(p.0, pfn);
                    assert!(!what.is_empty());
                    detected += 1;
                }
                Err(e) => panic!("{prefix}: unexpected {e}"),
                // LZO has no checksum: damage may decode to other bytes.
                Ok(b) => assert!(
                    prefix.contains("lzo") || b == good,
                    "{prefix}: zlib damage went unnoticed"
                ),
            }
        }
        // zlib's Adler-32 catches every change; LZO has no checksum, so
        // only damage that breaks the stream's structure can be seen.
        let needed = if prefix.contains("zlib") { 8 } else { 1 };
        assert!(
            detected >= needed,
            "{prefix}: only {detected} of 8 damaged pages detected"
        );
    }
}

#[test]
fn a_non_dump_elf_is_not_a_dump() {
    let exe = std::env::current_exe().unwrap();
    match Dump::open(&exe) {
        Err(Error::NotADump(m)) => assert!(m.contains("not a core"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_userspace_core_is_not_a_kernel_dump() {
    // An x86_64 ET_CORE with the notes a userspace core has.
    let mut notes = Vec::new();
    for (n_type, len) in [(1u32, 336usize), (3, 136), (6, 64), (0x4649_4c45, 32)] {
        notes.extend_from_slice(&5u32.to_le_bytes());
        notes.extend_from_slice(&(len as u32).to_le_bytes());
        notes.extend_from_slice(&n_type.to_le_bytes());
        notes.extend_from_slice(b"CORE\0\0\0\0");
        notes.extend(std::iter::repeat_n(0u8, len));
    }
    let mut f = vec![0u8; 64 + 2 * 56];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&4u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&2u16.to_le_bytes());
    let note_off = f.len() as u64;
    let ph = |t: u32, off: u64, vaddr: u64, size: u64| {
        let mut p = vec![0u8; 56];
        p[..4].copy_from_slice(&t.to_le_bytes());
        p[8..16].copy_from_slice(&off.to_le_bytes());
        p[16..24].copy_from_slice(&vaddr.to_le_bytes());
        p[32..40].copy_from_slice(&size.to_le_bytes());
        p[40..48].copy_from_slice(&size.to_le_bytes());
        p
    };
    f[64..120].copy_from_slice(&ph(4, note_off, 0, notes.len() as u64));
    f[120..176].copy_from_slice(&ph(1, note_off + notes.len() as u64, 0x400000, 4096));
    f.extend_from_slice(&notes);
    f.extend(std::iter::repeat_n(0u8, 4096));
    match open_bytes(f) {
        Err(Error::NotADump(m)) => assert!(m.contains("userspace core"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_directory_is_not_a_dump() {
    match Dump::open(Path::new("/")) {
        Err(Error::NotADump(m)) => assert!(m.contains("directory"), "{m}"),
        Err(Error::Io { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unreadable_file_is_an_io_error() {
    // As root, file modes do not stop reads; procfs sysctl files check
    // their mode for root too, so a write-only one stands in.
    let dir = std::env::temp_dir().join(format!("ksw-unreadable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dump");
    std::fs::write(&file, b"KDUMP   ").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let candidates = [file.clone(), PathBuf::from("/proc/sys/vm/compact_memory")];
    let mut denied = 0;
    for p in &candidates {
        if std::fs::File::open(p).is_ok() {
            continue; // root reading a mode-000 file
        }
        match Dump::open(p) {
            Err(Error::Io { source, path }) => {
                assert_eq!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied,
                    "{}",
                    path.display()
                );
                assert!(
                    Error::Io {
                        source,
                        path: path.clone()
                    }
                    .to_string()
                    .contains(&*path.to_string_lossy())
                );
                denied += 1;
            }
            other => panic!("{}: {other:?}", p.display()),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(denied > 0, "no unreadable file could be made here");
}

#[test]
fn empty_and_garbage_files_are_not_dumps() {
    for bytes in [
        vec![],
        b"hello".to_vec(),
        vec![0u8; 10_000],
        b"KDUMP  ".to_vec(),
    ] {
        match open_bytes(bytes.clone()) {
            Err(Error::NotADump(_)) | Err(Error::Truncated { .. }) => {}
            other => panic!("{:?}: {other:?}", &bytes[..bytes.len().min(8)]),
        }
    }
}
