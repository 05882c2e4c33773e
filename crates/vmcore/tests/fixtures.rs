//! Real dumps from the fixture pipeline (QEMU guests of Debian's 6.1 and
//! 6.12 kernels, crashed with sysrq-c, saved by kdump/makedumpfile and by
//! QEMU), checked against what the guest itself recorded: `uname -r`,
//! `/proc/kallsyms`, `/proc/modules`, the serial console and the CPU count.
//!
//! Fixtures are found through `KSW_FIXTURES` (default
//! `~/.cache/ksw/fixtures`); a missing fixture set fails these tests unless
//! `KSW_ALLOW_MISSING_FIXTURES=1`.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{Outcome, Run, address_set, read};
use ksw_vmcore::summary::DumpSummary;
use ksw_vmcore::{Dump, DumpFormat, Error, KernelMemory, OpenOptions};

fn open(run: &Run, path: &Path) -> Dump {
    let options = OpenOptions {
        vmcoreinfo_override: run.vmcoreinfo_override(),
    };
    Dump::open_with(path, &options).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_dump_is_described_as_the_guest_saw_itself() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    let mut checked = 0;
    for run in common::dump_runs(&root) {
        let release = run.truth("release").trim().to_owned();
        let kallsyms = common::ground_truth_kallsyms(&run);
        for (path, format, compression) in run.dumps() {
            let what = format!("{} {}", run.label(), path.display());
            let dump = open(&run, &path);
            let s = DumpSummary::collect(&dump);
            let expected_format = match (format.as_str(), run.mode()) {
                ("kdump-compressed", _) => vec![DumpFormat::KdumpCompressed],
                ("flattened", _) => vec![DumpFormat::KdumpFlattened],
                ("elf", "qemu") => vec![DumpFormat::ElfQemu],
                ("elf", _) => vec![DumpFormat::ElfKdump, DumpFormat::ElfMakedumpfile],
                (f, m) => panic!("{what}: unknown manifest format {f} ({m})"),
            };
            assert!(
                expected_format.contains(&s.format),
                "{what}: format {:?}",
                s.format
            );
            if let Some(c) = s.compression {
                assert_eq!(c.name(), compression, "{what}");
            }
            assert_eq!(
                s.kernel_release.as_deref(),
                Some(release.as_str()),
                "{what}"
            );
            assert_eq!(s.page_table_levels, Some(run.paging()), "{what}");
            assert!(s.truncation_free(&dump), "{what}: {:?}", s.problems);
            // KASLR: the offset VMCOREINFO gives moves _stext from its link
            // address (0xffffffff81000000) to where the guest saw it.
            let stext = kallsyms["_stext"].0;
            let kaslr = u64::from_str_radix(
                s.kaslr_offset
                    .as_deref()
                    .unwrap_or("0x0")
                    .trim_start_matches("0x"),
                16,
            )
            .unwrap();
            assert_eq!(0xffff_ffff_8100_0000 + kaslr, stext, "{what}: KASLR offset");
            // CPUs: all of them, numbered 0..n, one of them panicked, and
            // each pc is kernel code.
            assert_eq!(s.cpus.len() as u32, run.cpus(), "{what}: {:?}", s.cpus);
            for (i, c) in s.cpus.iter().enumerate() {
                assert_eq!(c.cpu, i as u32, "{what}");
                let pc = u64::from_str_radix(c.pc.trim_start_matches("0x"), 16).unwrap();
                assert!(
                    pc >= 0xffff_ffff_8000_0000,
                    "{what}: cpu {} pc {pc:#x}",
                    c.cpu
                );
            }
            let panic_cpu = s
                .panic_cpu
                .unwrap_or_else(|| panic!("{what}: no panic CPU"));
            assert!(
                s.cpus.iter().any(|c| c.cpu == panic_cpu && c.panicked),
                "{what}"
            );
            if run.mode() == "kdump" {
                // kdump saves registers in crash_notes; the panicking CPU's
                // were saved inside the kernel's kexec path, in kernel text.
                assert!(
                    s.cpus
                        .iter()
                        .all(|c| c.matched_by == ksw_vmcore::cpu::CpuMatch::CrashNotes),
                    "{what}"
                );
                let pc =
                    u64::from_str_radix(s.cpus[panic_cpu as usize].pc.trim_start_matches("0x"), 16)
                        .unwrap();
                assert!(
                    pc >= stext && pc < kallsyms["_etext"].0,
                    "{what}: panic pc {pc:#x}"
                );
                assert!(s.crash_time.is_some(), "{what}");
                assert_eq!(s.build_id.as_ref().map(|b| b.len()), Some(40), "{what}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} dumps checked");
}

trait TruncationFree {
    fn truncation_free(&self, dump: &Dump) -> bool;
}

impl TruncationFree for DumpSummary {
    fn truncation_free(&self, dump: &Dump) -> bool {
        dump.truncation().is_none() && !self.problems.iter().any(|p| p.contains("truncated"))
    }
}

#[test]
fn kallsyms_decoded_from_memory_match_the_guests_proc_kallsyms() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    for run in common::dump_runs(&root) {
        let truth = common::ground_truth_kallsyms(&run);
        let (path, ..) = run.dumps().into_iter().next().unwrap();
        let dump = open(&run, &path);
        let syms = dump
            .kallsyms()
            .unwrap_or_else(|e| panic!("{}: {e}", run.label()));
        let mut compared = 0;
        let mut wrong = Vec::new();
        for s in syms.symbols() {
            if let Some(&(addr, kind)) = truth.get(&s.name) {
                compared += 1;
                if addr != s.address.0 || kind != s.kind {
                    wrong.push(format!(
                        "{} {:#x}/{} vs {addr:#x}/{kind}",
                        s.name, s.address.0, s.kind
                    ));
                }
            }
        }
        assert!(
            compared > 50_000,
            "{}: only {compared} symbols compared",
            run.label()
        );
        assert!(
            wrong.is_empty(),
            "{}: {} of {compared} differ, e.g. {:?}",
            run.label(),
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
}

#[test]
fn dmesg_agrees_with_the_serial_console() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    for run in common::dump_runs(&root) {
        let console = std::fs::read_to_string(run.dir.join("console.log")).unwrap();
        let console_lines: std::collections::HashSet<&str> =
            console.lines().map(|l| l.trim_end_matches('\r')).collect();
        let panic_message = run.manifest["panic_message"]
            .as_str()
            .unwrap_or("sysrq triggered crash");
        for (path, ..) in run.dumps() {
            let what = format!("{} {}", run.label(), path.display());
            let dump = open(&run, &path);
            let log = dump.kernel_log().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(log.len() > 100, "{what}: {} records", log.len());
            assert!(
                log.windows(2).all(|w| w[0].seq < w[1].seq),
                "{what}: sequence numbers"
            );
            let release = run.truth("release").trim().to_owned();
            assert!(
                log.iter()
                    .any(|r| r.text.starts_with(&format!("Linux version {release} "))),
                "{what}: no banner"
            );
            let panic_line = format!("Kernel panic - not syncing: {panic_message}");
            let at = log
                .iter()
                .position(|r| r.text == panic_line)
                .unwrap_or_else(|| panic!("{what}: no {panic_line:?}"));
            // The panic record and the last lines of the log were all
            // printed on the console, timestamp and text alike.
            let tail: Vec<String> = log[log.len().saturating_sub(25)..]
                .iter()
                .map(|r| r.to_dmesg_lines())
                .collect();
            for line in tail
                .iter()
                .chain(std::iter::once(&log[at].to_dmesg_lines()))
            {
                for l in line.lines() {
                    assert!(
                        console_lines.contains(l),
                        "{what}: {l:?} is not on the console"
                    );
                }
            }
        }
    }
}

/// True if the whole page holding `addr` (and the next, for reads that
/// cross) reads as zeros.
fn zero_page(dump: &Dump, addr: u64) -> bool {
    [addr & !0xfff, (addr + 47) & !0xfff].iter().all(|&p| {
        matches!(read(dump, p, 4096), Outcome::Bytes(b) if b.iter().all(|&x| x == 0))
            || matches!(read(dump, p, 4096), Outcome::Excluded)
    })
}

#[test]
fn every_format_of_one_crash_reads_the_same_bytes() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    for run in common::dump_runs(&root) {
        let dumps: Vec<(String, Dump)> = run
            .dumps()
            .into_iter()
            .map(|(p, ..)| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    open(&run, &p),
                )
            })
            .collect();
        // The reference is the unfiltered dump where there is one, else the
        // zlib kdump-compressed one.
        let reference = dumps
            .iter()
            .position(|(n, _)| n == "vmcore.raw" || n == "qemu.elf")
            .or_else(|| dumps.iter().position(|(n, _)| n == "dump.kdump-zlib"))
            .unwrap_or(0);
        let addrs = address_set(&run, &dumps[reference].1, 3000);
        let expected: Vec<Outcome> = addrs
            .iter()
            .map(|&a| read(&dumps[reference].1, a, 48))
            .collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for o in &expected {
            *counts
                .entry(match o {
                    Outcome::Bytes(_) => "bytes",
                    Outcome::Excluded => "excluded",
                    Outcome::NotInDump => "not-in-dump",
                    Outcome::Unmapped => "unmapped",
                })
                .or_default() += 1;
        }
        assert!(
            counts.get("bytes").copied().unwrap_or(0) > 1500,
            "{}: {counts:?}",
            run.label()
        );
        assert!(
            counts.get("unmapped").copied().unwrap_or(0) > 100,
            "{}: {counts:?}",
            run.label()
        );
        let filtered_ref = dumps[reference].0 != "vmcore.raw" && dumps[reference].0 != "qemu.elf";
        let mut kdump_family: Option<Vec<Outcome>> = None;
        for (name, dump) in &dumps {
            let got: Vec<Outcome> = addrs.iter().map(|&a| read(dump, a, 48)).collect();
            let mut excluded = 0;
            for ((a, want), have) in addrs.iter().zip(&expected).zip(&got) {
                match (want, have) {
                    (w, h) if w == h => {}
                    // A filtered dump may lack what the full one has.
                    (Outcome::Bytes(_), Outcome::Excluded) if !filtered_ref => excluded += 1,
                    // makedumpfile's ELF output leaves zero pages out just as
                    // it leaves out excluded ones (p_filesz < p_memsz), while
                    // kdump-compressed keeps zero pages: "excluded" in the
                    // ELF must be a zero page in the kdump file.
                    (Outcome::Bytes(_), Outcome::Excluded) => assert!(
                        zero_page(&dumps[reference].1, *a),
                        "{} {name}: {a:#x} excluded, but not a zero page",
                        run.label()
                    ),
                    // The ELF writer only leaves out runs of 256 or more
                    // excluded pages and keeps shorter ones, so it may have
                    // data the kdump file excluded. (Where a raw vmcore
                    // exists, that data is checked against it.)
                    (Outcome::Excluded, Outcome::Bytes(_)) if name == "dump.elf" => {}
                    (w, h) => panic!(
                        "{} {name}: {a:#x}: {h:?} but the reference ({}) gives {w:?}",
                        run.label(),
                        dumps[reference].0
                    ),
                }
            }
            if name.starts_with("dump.kdump") || name == "dump.flat" {
                // zlib, lzo and flattened come from one makedumpfile run:
                // identical answers, faults included.
                match &kdump_family {
                    None => kdump_family = Some(got.clone()),
                    Some(first) => assert!(
                        first == &got,
                        "{} {name}: differs from the other kdump-compressed dumps",
                        run.label()
                    ),
                }
            }
            if name == "vmcore.raw" || name == "qemu.elf" {
                assert_eq!(excluded, 0, "{} {name}", run.label());
            }
        }
    }
}

#[test]
fn the_kcore_head_of_a_live_guest_is_recognised() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    let mut seen = 0;
    for run in common::all_runs(&root) {
        let head = run.dir.join("ground-truth/kcore.head");
        let Ok(bytes) = std::fs::read(&head) else {
            continue;
        };
        let dump = Dump::from_bytes(bytes, &OpenOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", head.display()));
        assert_eq!(dump.format(), DumpFormat::Kcore, "{}", head.display());
        let info = dump.vmcoreinfo().expect("kcore has VMCOREINFO since 4.19");
        assert_eq!(
            info.osrelease.as_deref(),
            Some(run.truth("release").trim()),
            "{}",
            head.display()
        );
        // Only the head was kept, so memory reads must fail as truncated,
        // not return zeros.
        let text = info
            .symbol("_stext")
            .or(info.symbol("init_uts_ns"))
            .unwrap();
        let err = dump.read_vec(text, 8).unwrap_err();
        assert!(
            matches!(err, Error::PageTruncated { .. } | Error::Unmapped { .. }),
            "{err}"
        );
        seen += 1;
    }
    assert!(seen > 0, "no kcore.head in any run");
}

#[test]
fn ksw_run_inside_a_live_guest_reads_its_kcore() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    let mut seen = 0;
    for run in common::all_runs(&root) {
        if run.mode() != "none" || !run.dir.join("ksw-dmesg.txt").exists() {
            continue;
        }
        let file = |n: &str| std::fs::read_to_string(run.dir.join(n)).unwrap_or_default();
        // The pipeline ran the ksw built from this tree in the guest, on
        // /proc/kcore, next to the guest's own `dmesg`.
        assert_eq!(
            file("ksw-info.rc").trim(),
            "0",
            "{}: {}",
            run.label(),
            file("ksw-info.err")
        );
        assert_eq!(
            file("ksw-dmesg.rc").trim(),
            "0",
            "{}: {}",
            run.label(),
            file("ksw-dmesg.err")
        );
        let info: serde_json::Value = serde_json::from_str(&file("ksw-info.json")).unwrap();
        assert_eq!(info["format"], "kcore");
        assert_eq!(
            info["kernel_release"].as_str(),
            Some(run.truth("release").trim())
        );
        let ours: Vec<String> = file("ksw-dmesg.txt").lines().map(str::to_owned).collect();
        let theirs = file("dmesg.txt");
        let theirs: std::collections::HashSet<&str> = theirs.lines().collect();
        assert!(ours.len() > 100, "{}: {} lines", run.label(), ours.len());
        let missing: Vec<&String> = ours
            .iter()
            .filter(|l| !theirs.contains(l.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: not in the guest's dmesg: {:?}",
            run.label(),
            &missing[..missing.len().min(5)]
        );
        seen += 1;
    }
    assert!(seen > 0, "no live-kcore run");
}

#[test]
fn direct_map_and_kernel_text_translate_as_the_kernel_maps_them() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    for run in common::dump_runs(&root) {
        let (path, ..) = run.dumps().into_iter().next().unwrap();
        let dump = open(&run, &path);
        let info = dump.vmcoreinfo().unwrap();
        // The direct map: page_offset_base + p maps physical p, wherever
        // KASLR put it.
        let base = dump
            .read_u64(dump.symbol("page_offset_base").unwrap())
            .unwrap();
        assert_eq!(
            base & ((1 << 30) - 1),
            0,
            "{}: page_offset_base {base:#x}",
            run.label()
        );
        let mut rng = common::Rng(7);
        let (mut checked, mut unmapped) = (0, 0);
        for _ in 0..10_000 {
            let p = rng.below(dump.page_stats().present * 4096) & !7;
            let mut phys = [0u8; 8];
            if dump.read_phys(ksw_vmcore::PhysAddr(p), &mut phys).is_err() {
                continue;
            }
            checked += 1;
            // The kernel unmaps some RAM from the direct map (kexec's
            // crash-kernel reservation, for one); the rest must map 1:1.
            let Ok(t) = dump.translate(ksw_vmcore::VirtAddr(base + p)) else {
                unmapped += 1;
                continue;
            };
            assert_eq!(t.phys.0, p, "{}", run.label());
            assert_eq!(
                dump.read_vec(ksw_vmcore::VirtAddr(base + p), 8).unwrap(),
                phys
            );
        }
        assert!(
            checked > 300 && unmapped * 5 < checked,
            "{}: {unmapped} of {checked} unmapped",
            run.label()
        );
        // Kernel text: __START_KERNEL_map + phys_base.
        let stext = dump.symbol("_stext").unwrap();
        let phys_base = info.number("phys_base").unwrap() as u64;
        let t = dump.translate(stext).unwrap();
        assert_eq!(
            t.phys.0,
            (stext.0 - 0xffff_ffff_8000_0000).wrapping_add(phys_base),
            "{}",
            run.label()
        );
        assert!(
            t.page_size == 2 << 20 || t.page_size == 4096,
            "{}",
            run.label()
        );
    }
}
