//! kdump-compressed files written by the test itself, only for what no
//! outside producer on this machine makes (the rest is read from the host
//! makedumpfile's own output in `makedumpfile.rs`):
//!
//! * snappy and zstd pages: Debian's makedumpfile is built without them
//!   (`makedumpfile -v`), and Debian's QEMU writes neither;
//! * several page compressions mixed in one file (makedumpfile uses one
//!   method per file);
//! * header versions 1 to 5 and the old `DISKDUMP` signature
//!   (makedumpfile 1.7 writes version 6 only);
//! * a zstd page that decodes to the wrong size, and page-cache counts.
//!
//! The writer (`common::write_kdump`) follows makedumpfile's
//! `diskdump_mod.h`. The page contents are real, and none of them comes
//! from ksw: they are read from an unfiltered ELF vmcore of the fixtures
//! by the test's own reader, and the page tables that make virtual reads
//! work are found by the test's own page-table walk, from the VMCOREINFO
//! the guest's `/proc/kcore` showed. The reader must return those bytes
//! for every page, and "excluded" for excluded ones.

mod common;

use common::independent::{self, Phys, RawElf, Walker};
use common::{Rng, SyntheticPage};
use ksw_vmcore::kdump::Compression;
use ksw_vmcore::{Dump, Error, KernelMemory, OpenOptions, Pfn};

/// `(pfn, contents)` pairs.
type RealPages = Vec<(u64, Vec<u8>)>;

/// The guest's VMCOREINFO, and up to `n` real, distinct, non-zero pages
/// of an unfiltered ELF vmcore: first the page tables that map
/// `init_uts_ns` and its page, then random ones. A missing fixture fails.
fn real_pages(n: usize) -> (Vec<u8>, RealPages) {
    let fx = common::fixtures().expect("fixture missing: no fixture root");
    let (run, source) = fx
        .unfiltered_elf_per_series()
        .into_iter()
        .next()
        .expect("fixture missing: no unfiltered ELF vmcore with VMCOREINFO");
    let raw = RawElf::open(&source.path);
    let vmcoreinfo = independent::guest_vmcoreinfo(&run.dir);
    let vi = independent::vmcoreinfo_map(&vmcoreinfo);
    let walker = Walker::from_vmcoreinfo(&vmcoreinfo);
    let uts = u64::from_str_radix(&vi["SYMBOL(init_uts_ns)"], 16).unwrap();
    let (uts_phys, tables) = walker
        .walk(&raw, uts)
        .unwrap_or_else(|| panic!("{}: init_uts_ns is not mapped", source.path.display()));
    let mut wanted = tables;
    wanted.push(uts_phys >> 12);
    let all = raw.pfns();
    let mut rng = Rng(42);
    for _ in 0..50 * n {
        wanted.push(all[rng.below(all.len() as u64) as usize]);
    }
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pfn in wanted {
        if pages.len() >= n {
            break;
        }
        if !seen.insert(pfn) {
            continue;
        }
        let mut page = vec![0u8; 4096];
        if raw.read(pfn * 4096, &mut page).is_ok() && page.iter().any(|&b| b != 0) {
            pages.push((pfn, page));
        }
    }
    drop(fx);
    (vmcoreinfo, pages)
}

#[test]
fn every_page_compression_reads_back_the_original_bytes() {
    let (vmcoreinfo, pages) = real_pages(400);
    assert!(pages.len() > 300);
    let methods = [0u32, 1, 2, 4, 0x20];
    let max_mapnr = pages.iter().map(|(p, _)| p + 1).max().unwrap() + 100;
    let synthetic: Vec<SyntheticPage> = pages
        .iter()
        .enumerate()
        .map(|(i, (pfn, data))| SyntheticPage {
            pfn: *pfn,
            data: data.clone(),
            flags: methods[i % methods.len()],
        })
        .collect();
    let excluded: Vec<u64> = (max_mapnr - 50..max_mapnr).collect();
    let file = common::write_kdump(&vmcoreinfo, &synthetic, &excluded, max_mapnr, 0x20);
    let dump = Dump::from_bytes(file, &OpenOptions::default()).unwrap();
    assert_eq!(dump.compression(), Some(Compression::Zstd));
    assert!(dump.truncation().is_none());
    for (pfn, data) in &pages {
        let mut got = vec![0u8; 4096];
        dump.read_phys(Pfn(*pfn).to_phys(4096), &mut got).unwrap();
        assert!(got == *data, "page {pfn:#x}");
    }
    // Excluded pages and holes are told apart.
    assert!(matches!(
        dump.read_phys(Pfn(max_mapnr - 1).to_phys(4096), &mut [0u8; 8]),
        Err(Error::Excluded(_))
    ));
    let hole = (0..max_mapnr)
        .find(|p| !pages.iter().any(|(q, _)| q == p) && !excluded.contains(p))
        .unwrap();
    assert!(matches!(
        dump.read_phys(Pfn(hole).to_phys(4096), &mut [0u8; 8]),
        Err(Error::NotInDump(_))
    ));
    assert!(matches!(
        dump.read_phys(Pfn(max_mapnr + 5).to_phys(4096), &mut [0u8; 8]),
        Err(Error::NotInDump(_))
    ));
    // Virtual reads go through page tables stored in zstd, snappy, lzo...
    let uts = dump.vmcoreinfo().unwrap().symbol("init_uts_ns").unwrap();
    let name_off = dump
        .vmcoreinfo()
        .unwrap()
        .offset("uts_namespace.name")
        .unwrap();
    let name = dump
        .read_vec(ksw_vmcore::VirtAddr(uts.0 + name_off), 5)
        .unwrap();
    assert_eq!(&name, b"Linux");
    let stats = dump.page_stats();
    assert_eq!(stats.dumped, pages.len() as u64);
    assert_eq!(stats.excluded, 50);
}

#[test]
fn a_zstd_page_that_decodes_to_the_wrong_size_is_corrupt() {
    let (vmcoreinfo, pages) = real_pages(3);
    let (pfn, data) = &pages[2];
    let short = SyntheticPage {
        pfn: *pfn,
        data: data[..4000].to_vec(),
        flags: 0x20,
    };
    let file = common::write_kdump(&vmcoreinfo, &[short], &[], pfn + 10, 0x20);
    let dump = Dump::from_bytes(file, &OpenOptions::default()).unwrap();
    match dump.read_phys(Pfn(*pfn).to_phys(4096), &mut [0u8; 16]) {
        Err(Error::CorruptPage { what, .. }) => assert!(what.contains("zstd"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn repeated_reads_come_from_the_page_cache() {
    let (vmcoreinfo, pages) = real_pages(20);
    let synthetic: Vec<SyntheticPage> = pages
        .iter()
        .map(|(p, d)| SyntheticPage {
            pfn: *p,
            data: d.clone(),
            flags: 1,
        })
        .collect();
    let max = pages.iter().map(|(p, _)| p + 1).max().unwrap();
    let file = common::write_kdump(&vmcoreinfo, &synthetic, &[], max, 1);
    let k = ksw_vmcore::kdump::KdumpCompressed::new(ksw_vmcore::source::OwnedBytes(file)).unwrap();
    for _ in 0..5 {
        for (pfn, data) in &pages {
            assert_eq!(&k.read_page(Pfn(*pfn)).unwrap()[..], &data[..]);
        }
    }
    assert_eq!(
        k.cache_stats(),
        (4 * pages.len() as u64, pages.len() as u64)
    );
}

#[test]
fn every_header_version_in_use_reads() {
    let (vmcoreinfo, pages) = real_pages(30);
    let synthetic: Vec<SyntheticPage> = pages
        .iter()
        .map(|(p, d)| SyntheticPage {
            pfn: *p,
            data: d.clone(),
            flags: 1,
        })
        .collect();
    let max = pages.iter().map(|(p, _)| p + 1).max().unwrap();
    for version in 1..=6 {
        let file = common::write_kdump_version(version, &vmcoreinfo, &synthetic, &[], max, 1);
        let dump = Dump::from_bytes(file, &OpenOptions::default()).unwrap();
        assert_eq!(dump.kdump_header().unwrap().header_version, version);
        assert_eq!(
            dump.kdump_header().unwrap().max_mapnr,
            max,
            "version {version}"
        );
        // VMCOREINFO in the sub-header arrived with version 3.
        assert_eq!(
            dump.vmcoreinfo().is_some(),
            version >= 3,
            "version {version}"
        );
        for (pfn, data) in &pages {
            let mut got = vec![0u8; 4096];
            dump.read_phys(Pfn(*pfn).to_phys(4096), &mut got).unwrap();
            assert!(got == *data, "version {version}, page {pfn:#x}");
        }
    }
    // The old "DISKDUMP" signature reads the same way.
    let mut file = common::write_kdump(&vmcoreinfo, &synthetic, &[], max, 1);
    file[..8].copy_from_slice(b"DISKDUMP");
    let dump = Dump::from_bytes(file, &OpenOptions::default()).unwrap();
    assert_eq!(dump.kdump_header().unwrap().signature, "DISKDUMP");
    assert!(
        dump.read_phys(Pfn(pages[0].0).to_phys(4096), &mut [0u8; 8])
            .is_ok()
    );
}
