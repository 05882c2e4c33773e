//! Dumps written by an outside producer, the host's makedumpfile (Debian's
//! build), from an ELF vmcore of each kernel series (the raw `/proc/vmcore`
//! copy where a run kept one, else the kdump run's `makedumpfile -E` file;
//! this makedumpfile refuses QEMU's ELF dumps): kdump-
//! compressed with every page compression this build has (none, `-c`
//! zlib, `-l` lzo, and `-p` snappy / `-z` zstd where built in), the
//! flattened form (`-F`) and ELF (`-E`). ksw reads every page frame of
//! each, and each answer is checked against the source vmcore's own bytes,
//! read straight from its program headers by the test
//! (`common::independent`), not by ksw. Pages the source itself left out
//! (a filtered `-E` source) must read as zeros or as excluded.
//!
//! The dump level is `-d 1` (leave out zero pages only). makedumpfile's
//! kdump-compressed output keeps zero pages (all share one stored zero
//! page), so there every page must read back byte for byte; its ELF
//! output leaves long runs of zero pages out of the file, so there every
//! page ksw calls "excluded" must be a zero page in the source, and every
//! other page must read back byte for byte.
//!
//! Compressions this makedumpfile lacks (Debian's 1.7.2 has neither
//! snappy nor zstd) and older header versions are covered by the
//! synthetic writer in `synthetic_kdump.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::independent::{Miss, Phys, RawElf};
use ksw_vmcore::kdump::Compression;
use ksw_vmcore::{Dump, DumpFormat, Error, OpenOptions, PhysAddr};

/// `makedumpfile -v`: which optional compressions this build has.
fn built_in(feature: &str) -> bool {
    let out = Command::new("makedumpfile")
        .arg("-v")
        .output()
        .expect("makedumpfile is not installed (apt-get install makedumpfile)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(feature))
        .unwrap_or_else(|| panic!("makedumpfile -v does not mention {feature}: {text}"));
    line.contains("enabled")
}

/// One makedumpfile output to make and check.
struct Variant {
    name: &'static str,
    args: &'static [&'static str],
    format: DumpFormat,
    compression: Option<Compression>,
    flattened: bool,
}

fn variants() -> Vec<Variant> {
    let kdump = |name, args, c| Variant {
        name,
        args,
        format: DumpFormat::KdumpCompressed,
        compression: Some(c),
        flattened: false,
    };
    let mut v = vec![
        kdump("none", &[][..], Compression::None),
        kdump("zlib", &["-c"][..], Compression::Zlib),
        Variant {
            name: "flat-zlib",
            args: &["-F", "-c"],
            format: DumpFormat::KdumpFlattened,
            compression: Some(Compression::Zlib),
            flattened: true,
        },
        Variant {
            name: "elf",
            args: &["-E"],
            format: DumpFormat::ElfMakedumpfile,
            compression: None,
            flattened: false,
        },
    ];
    if built_in("lzo") {
        v.push(kdump("lzo", &["-l"][..], Compression::Lzo));
    }
    if built_in("snappy") {
        v.push(kdump("snappy", &["-p"][..], Compression::Snappy));
    }
    if built_in("zstd") {
        v.push(kdump("zstd", &["-z"][..], Compression::Zstd));
    }
    v
}

/// Runs makedumpfile on `source`, writing `out`.
fn make(source: &Path, variant: &Variant, out: &Path) {
    let _ = std::fs::remove_file(out);
    let mut cmd = Command::new("makedumpfile");
    cmd.args(variant.args).args(["-d", "1"]).arg(source);
    let status = if variant.flattened {
        let f = std::fs::File::create(out).unwrap();
        cmd.stdout(Stdio::from(f)).stderr(Stdio::piped()).output()
    } else {
        cmd.arg(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
    }
    .expect("run makedumpfile");
    assert!(
        status.status.success(),
        "makedumpfile {:?} {}: {}",
        variant.args,
        source.display(),
        String::from_utf8_lossy(&status.stderr)
    );
}

/// The header version makedumpfile wrote, read from the file's bytes.
fn header_version(file: &Path) -> i32 {
    let mut head = [0u8; 12];
    use std::io::Read;
    std::fs::File::open(file)
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert_eq!(&head[..8], b"KDUMP   ", "{}", file.display());
    i32::from_le_bytes(head[8..12].try_into().unwrap())
}

#[test]
fn makedumpfile_output_reads_back_as_the_source_vmcore() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let tmp: PathBuf =
        std::env::temp_dir().join(format!("ksw-makedumpfile-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let variants = variants();
    let mut sources = Vec::new();
    for series in common::series() {
        let runs: Vec<&common::Run> = fx
            .dump_runs()
            .into_iter()
            .filter(|r| r.series == series)
            .collect();
        let pick = runs
            .iter()
            .find_map(|r| r.dump("vmcore.raw").map(|d| (*r, d)))
            .or_else(|| {
                runs.iter()
                    .filter(|r| r.name == "sysrq")
                    .find_map(|r| r.dump("dump.elf").map(|d| (*r, d)))
            });
        match pick {
            Some(p) => sources.push(p),
            None => assert!(
                !fx.missing().is_empty(),
                "{series}: no ELF vmcore makedumpfile can read"
            ),
        }
    }
    assert!(!sources.is_empty());
    let mut report = Vec::new();
    for (run, source) in sources {
        let raw = RawElf::open(&source.path);
        let pfns = raw.described_pfns();
        let end_pfn = raw.phys_end().div_ceil(4096);
        for variant in &variants {
            let what = format!("{} {} -> {}", run.label(), source.name, variant.name);
            let out = tmp.join(format!("{}-{}", run.series, variant.name));
            make(&source.path, variant, &out);
            let dump = Dump::open_with(&out, &OpenOptions::default())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(dump.format(), variant.format, "{what}");
            assert_eq!(dump.compression(), variant.compression, "{what}");
            assert!(dump.truncation().is_none(), "{what}");
            if variant.format == DumpFormat::KdumpCompressed {
                let version = header_version(&out);
                assert_eq!(
                    dump.kdump_header().map(|h| h.header_version),
                    Some(version),
                    "{what}"
                );
                report.push(format!("{what}: header version {version}"));
            }
            let (mut same, mut zero_excluded, mut partial, mut left_out) = (0u64, 0u64, 0u64, 0u64);
            let mut want = vec![0u8; 4096];
            let mut got = vec![0u8; 4096];
            for &pfn in &pfns {
                let addr = pfn * 4096;
                match raw.read(addr, &mut want) {
                    Ok(()) => {}
                    Err(Miss::Excluded)
                        if raw.read(addr, &mut [0u8]) == Err(Miss::Excluded)
                            && raw.read(addr + 4095, &mut [0u8]) == Err(Miss::Excluded) =>
                    {
                        // The source left the whole page out.
                        match dump.read_phys(PhysAddr(addr), &mut got) {
                            Ok(()) => assert!(
                                got.iter().all(|&b| b == 0),
                                "{what}: page {pfn:#x} is not in the source but reads as data"
                            ),
                            Err(Error::Excluded(_)) => {}
                            Err(e) => panic!("{what}: page {pfn:#x} (left out of the source): {e}"),
                        }
                        left_out += 1;
                        continue;
                    }
                    Err(_) => {
                        // A segment that starts or ends inside this page.
                        partial += 1;
                        continue;
                    }
                }
                match dump.read_phys(PhysAddr(addr), &mut got) {
                    Ok(()) => {
                        assert!(got == want, "{what}: page {pfn:#x} differs from the source");
                        same += 1;
                    }
                    // A zero page may be left out: the ELF outputs run at
                    // -d 1, and makedumpfile reading an ELF source whose
                    // PT_LOADs overlap (kernel text and direct map) takes
                    // a page past one segment's p_filesz as left out even
                    // where another segment holds it (as zeros).
                    Err(Error::Excluded(_)) => {
                        assert!(
                            want.iter().all(|&b| b == 0),
                            "{what}: page {pfn:#x} is excluded but not a zero page"
                        );
                        zero_excluded += 1;
                    }
                    Err(e) => panic!("{what}: page {pfn:#x}: {e}"),
                }
            }
            // Holes in the source (the crash kernel's reservation, below
            // 1 MiB) and the frames past its end are not in the dump.
            let present: std::collections::HashSet<u64> = pfns.iter().copied().collect();
            let mut holes = 0u64;
            for pfn in (0..end_pfn)
                .filter(|p| !present.contains(p))
                .chain([end_pfn, end_pfn + 1000])
            {
                match dump.read_phys(PhysAddr(pfn * 4096), &mut got) {
                    Err(Error::NotInDump(_)) => holes += 1,
                    other => panic!("{what}: page {pfn:#x} is not in the source: {other:?}"),
                }
            }
            assert!(partial < 16, "{what}: {partial} partial pages");
            assert!(same > 10_000, "{what}: only {same} pages read back");
            if variant.format == DumpFormat::ElfMakedumpfile {
                assert!(
                    zero_excluded + left_out > 1000,
                    "{what}: only {zero_excluded} zero pages left out"
                );
            }
            report.push(format!(
                "{what}: {same} pages identical, {zero_excluded} excluded zero pages, {left_out} left out of the source, {holes} holes, {partial} partial"
            ));
            let _ = std::fs::remove_file(&out);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("{}", report.join("\n"));
}
