//! kdump-compressed files written by the test itself, for the page
//! compressions no producer on this machine makes: zstd (Debian's
//! makedumpfile is built without it) and snappy (Debian's QEMU too).
//!
//! The page contents are real: they are read from a fixture dump (kernel
//! text, data and direct-map pages of a crashed guest), then stored again,
//! each page with a compression of its own, in a file laid out as
//! makedumpfile writes it (header version 6). The reader must return the
//! original bytes for every page, and "excluded" for excluded ones.

mod common;

use common::{Rng, SyntheticPage};
use ksw_vmcore::kdump::Compression;
use ksw_vmcore::{Dump, Error, KernelMemory, OpenOptions, Pfn, PhysAddr};

/// `(pfn, contents)` pairs.
type RealPages = Vec<(u64, Vec<u8>)>;

/// A VMCOREINFO for the synthetic file, and up to `n` real, distinct,
/// non-zero pages from a fixture.
fn real_pages(n: usize) -> Option<(Vec<u8>, RealPages)> {
    let root = common::fixtures_root()?;
    let run = common::dump_runs(&root).into_iter().find(|r| {
        r.dumps()
            .iter()
            .any(|(p, ..)| p.ends_with("dump.kdump-zlib"))
    })?;
    let dump = Dump::open(&run.dir.join("dump.kdump-zlib")).unwrap();
    let info = dump.vmcoreinfo().unwrap();
    // A VMCOREINFO that keeps the page-table keys, so virtual reads work too.
    let mut vi = format!(
        "OSRELEASE={}\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)={:x}\nNUMBER(phys_base)={}\nNUMBER(pgtable_l5_enabled)={}\n",
        info.osrelease.as_deref().unwrap(),
        info.symbol("swapper_pg_dir").unwrap().0,
        info.number("phys_base").unwrap(),
        info.number("pgtable_l5_enabled").unwrap_or(0),
    )
    .into_bytes();
    vi.extend_from_slice(b"SYMBOL(init_uts_ns)=");
    vi.extend_from_slice(format!("{:x}\n", info.symbol("init_uts_ns").unwrap().0).as_bytes());
    vi.extend_from_slice(
        format!(
            "OFFSET(uts_namespace.name)={}\n",
            info.offset("uts_namespace.name").unwrap()
        )
        .as_bytes(),
    );
    let mut rng = Rng(42);
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let max = dump.page_stats().max_pfn;
    // The page tables and the uts page first, so a virtual read works.
    let uts = info.symbol("init_uts_ns").unwrap();
    let mut wanted: Vec<u64> = Vec::new();
    let walker = dump.page_table_walker().unwrap();
    let levels = walker.levels();
    let mut table = walker.top().0;
    wanted.push(table >> 12);
    for level in (2..=levels).rev() {
        let shift = 12 + 9 * (u32::from(level) - 1);
        let idx = (uts.0 >> shift) & 511;
        let mut e = [0u8; 8];
        dump.read_phys(PhysAddr(table + idx * 8), &mut e).unwrap();
        let entry = u64::from_le_bytes(e);
        if entry & 0x80 != 0 {
            break;
        }
        table = entry & 0x000f_ffff_ffff_f000;
        wanted.push(table >> 12);
    }
    wanted.push(dump.translate(uts).unwrap().phys.0 >> 12);
    for _ in 0..50 * n {
        wanted.push(rng.below(max));
    }
    for pfn in wanted {
        if pages.len() >= n {
            break;
        }
        if !seen.insert(pfn) {
            continue;
        }
        let mut page = vec![0u8; 4096];
        if dump.read_phys(Pfn(pfn).to_phys(4096), &mut page).is_ok() && page.iter().any(|&b| b != 0)
        {
            pages.push((pfn, page));
        }
    }
    Some((vi, pages))
}

#[test]
fn every_page_compression_reads_back_the_original_bytes() {
    let Some((vmcoreinfo, pages)) = real_pages(400) else {
        return;
    };
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
    let Some((vmcoreinfo, pages)) = real_pages(3) else {
        return;
    };
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
    let Some((vmcoreinfo, pages)) = real_pages(20) else {
        return;
    };
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
    let Some((vmcoreinfo, pages)) = real_pages(30) else {
        return;
    };
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
