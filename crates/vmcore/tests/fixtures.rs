//! Real dumps from the fixture pipeline (QEMU guests of Debian's 6.1 and
//! 6.12 kernels, crashed with sysrq-c, saved by kdump/makedumpfile and by
//! QEMU), checked against what the guest itself recorded: `uname -r`,
//! `/proc/kallsyms`, `/proc/modules`, the serial console and the CPU count.
//!
//! Fixtures are found through `KSW_FIXTURES` (default
//! `~/.cache/ksw/fixtures`); every run of the matrix (`standard_runs()` of
//! each series in `KSW_SERIES`) must be there, or the tests fail naming
//! the missing ones.

mod common;

use std::collections::HashMap;

use common::independent::{self, KdumpZlib, Phys, RawElf, Walker};
use common::{Outcome, address_set, open, read};
use ksw_vmcore::kallsyms::KallsymsNameIndex;
use ksw_vmcore::summary::DumpSummary;
use ksw_vmcore::{Dump, DumpFormat, Error, KernelMemory, OpenOptions};

#[test]
fn every_dump_is_described_as_the_guest_saw_itself() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let mut checked = 0;
    for run in fx.dump_runs() {
        let release = run.truth("release").trim().to_owned();
        let kallsyms = common::ground_truth_kallsyms(run);
        for d in run.dumps() {
            let (path, format, compression) = (&d.path, &d.format, &d.compression);
            let what = format!("{} {}", run.label(), path.display());
            let dump = open(run, path);
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
                assert_eq!(c.name(), compression.as_str(), "{what}");
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
    assert!(checked > 0, "no dumps checked");
    assert_eq!(
        checked,
        fx.dump_count(),
        "every dump of the matrix is checked"
    );
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
    let Some(fx) = common::fixtures() else {
        return;
    };
    let mut runs = 0;
    for run in fx.dump_runs() {
        let truth = common::ground_truth_kallsyms(run);
        let first = run.dumps().into_iter().next().unwrap();
        let dump = open(run, &first.path);
        let syms = dump
            .kallsyms()
            .unwrap_or_else(|e| panic!("{}: {e}", run.label()));
        let mut compared = 0;
        let mut wrong = Vec::new();
        for s in syms.symbols() {
            if let Some(&(addr, kind)) = truth.get(s.name) {
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
        runs += 1;
    }
    assert!(runs > 0 && runs == fx.dump_runs().len(), "{runs} runs");
}

#[test]
fn the_kernels_name_order_finds_what_the_decoded_table_finds() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let mut runs = 0;
    for run in fx.dump_runs() {
        let first = run.dumps().into_iter().next().unwrap();
        let dump = open(run, &first.path);
        let info = dump.vmcoreinfo().expect("VMCOREINFO");
        let index = KallsymsNameIndex::from_memory(&dump, info)
            .unwrap_or_else(|e| panic!("{}: {e}", run.label()))
            .unwrap_or_else(|| panic!("{}: no name order found", run.label()));
        let table = dump
            .kallsyms()
            .unwrap_or_else(|e| panic!("{}: {e}", run.label()));
        // every 61st name, and every name that several symbols share
        let mut seen = HashMap::new();
        for s in table.symbols() {
            *seen.entry(s.name).or_insert(0u32) += 1;
        }
        let mut names: Vec<&str> = table.symbols().step_by(61).map(|s| s.name).collect();
        let shared: Vec<&str> = seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(s, _)| *s)
            .collect();
        assert!(
            shared.len() > 10,
            "{}: {} shared names",
            run.label(),
            shared.len()
        );
        names.extend(shared);
        for name in &names {
            let got = index
                .address_of(&dump, name)
                .unwrap_or_else(|e| panic!("{}: {name}: {e}", run.label()));
            assert_eq!(got, table.address_of(name), "{}: {name}", run.label());
        }
        for absent in ["", "no_such_symbol_anywhere", "~", "_stext_", "init_tas"] {
            assert_eq!(
                index.address_of(&dump, absent).unwrap(),
                None,
                "{}: {absent:?}",
                run.label()
            );
        }
        runs += 1;
    }
    assert!(runs > 0 && runs == fx.dump_runs().len(), "{runs} runs");
}

/// Runs whose panic comes from NMI-like context, and their panic message
/// (see PANIC_OFF_CONSOLE in testdata/tests/test_fixtures.py).
const PANIC_OFF_CONSOLE: &[(&str, &str)] = &[
    (
        "kstackwatch-panic-irqoff",
        "kstackwatch: stack corruption caught, writer silent_corruption_unwitting [kstackwatch_test]",
    ),
    (
        "kstackwatch-panic-init",
        "kstackwatch: stack corruption caught, writer ksw_test_init_writer [kstackwatch_test_init]",
    ),
];

/// A read large enough to be split across threads (the kernel's BTF, 4
/// MiB and more) gives the bytes of the same read made a page at a time,
/// in every dump of every run: compressed and not, 4- and 5-level paging.
#[test]
fn a_large_read_equals_the_same_read_page_by_page() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let mut runs = 0;
    for run in fx.dump_runs() {
        for d in run.dumps() {
            let dump = open(run, &d.path);
            let (Ok(start), Ok(stop)) = (dump.symbol("__start_BTF"), dump.symbol("__stop_BTF"))
            else {
                panic!("{}: no BTF symbols", run.label());
            };
            // an odd start, to cross pages unaligned
            let (at, len) = (start.0 + 5, (stop.0 - start.0 - 5) as usize);
            let whole = dump
                .read_vec(ksw_vmcore::VirtAddr(at), len)
                .unwrap_or_else(|e| panic!("{}: {e}", d.path.display()));
            let mut paged = vec![0u8; len];
            for (i, part) in paged.chunks_mut(4096).enumerate() {
                dump.read_virt(ksw_vmcore::VirtAddr(at + i as u64 * 4096), part)
                    .unwrap();
            }
            assert!(whole == paged, "{}: the two reads differ", d.path.display());
        }
        runs += 1;
    }
    assert!(runs > 0);
}

#[test]
fn dmesg_agrees_with_the_serial_console() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let mut checked = 0;
    for run in fx.dump_runs() {
        let console = std::fs::read_to_string(run.dir.join("console.log")).unwrap();
        let console_lines: std::collections::HashSet<&str> =
            console.lines().map(|l| l.trim_end_matches('\r')).collect();
        // The pipeline takes the panic message from the console log, except
        // where the panic comes from NMI-like context and QEMU stops the
        // guest before the console is flushed: then it is only in the dump.
        let off_console = PANIC_OFF_CONSOLE.iter().find(|(name, _)| *name == run.name);
        let panic_message = match off_console {
            Some((_, message)) => {
                assert!(
                    run.manifest["panic_message"].is_null(),
                    "{}: a panic on the console",
                    run.label()
                );
                *message
            }
            None => run.manifest["panic_message"].as_str().unwrap_or_else(|| {
                panic!(
                    "{}: the manifest has no panic message (no panic on the console)",
                    run.label()
                )
            }),
        };
        for d in run.dumps() {
            let path = &d.path;
            let what = format!("{} {}", run.label(), path.display());
            let dump = open(run, path);
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
            if off_console.is_some() {
                // The console stops before the catch: its last kernel line
                // is in the log, before the panic (a kdump run's console
                // goes on with the capture kernel, whose lines are later
                // than the panic: they are left out by their timestamps).
                let panic_secs = log[at].ts_nsec as f64 / 1e9;
                let secs = |l: &str| -> Option<f64> {
                    l.strip_prefix('[')?.split(']').next()?.trim().parse().ok()
                };
                let last = console
                    .lines()
                    .map(|l| l.trim_end_matches('\r'))
                    .rfind(|l| secs(l).is_some_and(|t| t <= panic_secs))
                    .unwrap_or_else(|| panic!("{what}: no kernel line on the console"));
                let seen = log
                    .iter()
                    .position(|r| r.to_dmesg_lines().lines().any(|l| l == last))
                    .unwrap_or_else(|| panic!("{what}: {last:?} is not in the log"));
                assert!(
                    seen < at,
                    "{what}: the console's last line is after the panic"
                );
                checked += 1;
                continue;
            }
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
            checked += 1;
        }
    }
    assert!(checked > 0, "no dumps checked");
    assert_eq!(checked, fx.dump_count());
}

/// The independent reading of one crash: the unfiltered ELF dump where the
/// run has one (`vmcore.raw`, `qemu.elf`), read straight from its program
/// headers, else the zlib kdump-compressed file, read by the test's own
/// decoder; translated by the test's own page-table walk, from the
/// VMCOREINFO the guest's `/proc/kcore` showed. Nothing here is ksw's.
struct Truth {
    /// The dump file it reads.
    name: String,
    mem: Box<dyn Phys>,
    walker: Walker,
    /// True if `mem` is an unfiltered dump (every RAM page in it).
    unfiltered: bool,
}

impl Truth {
    fn of(run: &common::Run) -> Truth {
        let walker = Walker::from_vmcoreinfo(&independent::guest_vmcoreinfo(&run.dir));
        assert_eq!(
            walker.levels(),
            u32::from(run.paging()),
            "{}: the guest's VMCOREINFO and the run disagree on paging",
            run.label()
        );
        let dumps = run.dumps();
        if let Some(d) = dumps.iter().find(|d| d.is_unfiltered_elf()) {
            return Truth {
                name: d.name.clone(),
                mem: Box::new(RawElf::open(&d.path)),
                walker,
                unfiltered: true,
            };
        }
        let d = dumps
            .iter()
            .find(|d| d.name == "dump.kdump-zlib")
            .unwrap_or_else(|| {
                panic!("{}: neither an unfiltered ELF nor a zlib dump", run.label())
            });
        Truth {
            name: d.name.clone(),
            mem: Box::new(KdumpZlib::open(&d.path)),
            walker,
            unfiltered: false,
        }
    }

    fn read(&self, addr: u64, len: usize) -> Outcome {
        self.walker.read(&*self.mem, addr, len)
    }

    /// True if the pages holding `addr..addr + len` read as zeros or are
    /// excluded, in the truth.
    fn zero_pages(&self, addr: u64, len: u64) -> bool {
        [addr & !0xfff, (addr + len - 1) & !0xfff]
            .iter()
            .all(|&p| match self.read(p, 4096) {
                Outcome::Bytes(b) => b.iter().all(|&x| x == 0),
                Outcome::Excluded => true,
                _ => false,
            })
    }
}

#[test]
fn every_format_of_one_crash_reads_the_same_bytes() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    const LEN: usize = 48;
    for run in fx.dump_runs() {
        let truth = Truth::of(run);
        let dumps: Vec<(common::DumpFile, Dump)> = run
            .dumps()
            .into_iter()
            .map(|d| {
                let dump = open(run, &d.path);
                (d, dump)
            })
            .collect();
        let reference = dumps
            .iter()
            .position(|(d, _)| d.name == truth.name)
            .unwrap();
        // Only the choice of addresses uses ksw; the answers do not.
        let addrs = address_set(run, &dumps[reference].1, 3000);
        let expected: Vec<Outcome> = addrs.iter().map(|&a| truth.read(a, LEN)).collect();
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
        let mut kdump_family: Option<Vec<Outcome>> = None;
        for (d, dump) in &dumps {
            let name = &d.name;
            let got: Vec<Outcome> = addrs.iter().map(|&a| read(dump, a, LEN)).collect();
            for ((a, want), have) in addrs.iter().zip(&expected).zip(&got) {
                match (want, have) {
                    (w, h) if w == h => {}
                    // ksw reading the truth's own file must give exactly
                    // what the independent reader gives.
                    (w, h) if *name == truth.name => panic!(
                        "{} {name}: {a:#x}: ksw gives {h:?}, the independent reader {w:?}",
                        run.label()
                    ),
                    // A filtered dump may lack what the unfiltered one has.
                    (Outcome::Bytes(_), Outcome::Excluded)
                        if truth.unfiltered && d.producer.starts_with("makedumpfile") => {}
                    // makedumpfile's ELF output leaves zero pages out just as
                    // it leaves out excluded ones (p_filesz < p_memsz), while
                    // kdump-compressed keeps zero pages: "excluded" in the
                    // ELF must be a zero page in the kdump file.
                    (Outcome::Bytes(_), Outcome::Excluded) if d.is_makedumpfile_elf() => assert!(
                        truth.zero_pages(*a, LEN as u64),
                        "{} {name}: {a:#x} excluded, but not a zero page",
                        run.label()
                    ),
                    // The ELF writer only leaves out runs of 256 or more
                    // excluded pages and keeps shorter ones, so it may have
                    // data the kdump file excluded.
                    (Outcome::Excluded, Outcome::Bytes(_))
                        if !truth.unfiltered && d.is_makedumpfile_elf() => {}
                    (w, h) => panic!(
                        "{} {name}: {a:#x}: {h:?} but the independent reader of {} gives {w:?}",
                        run.label(),
                        truth.name
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
        }
    }
}

#[test]
fn the_kcore_head_of_a_live_guest_is_recognised() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let mut seen = 0;
    for run in fx.runs() {
        // Every run keeps the head of its guest's /proc/kcore.
        let head = run.dir.join("ground-truth/kcore.head");
        let bytes = std::fs::read(&head).unwrap_or_else(|e| panic!("{}: {e}", head.display()));
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
    assert!(seen > 0 && seen == fx.runs().len(), "{seen} kcore heads");
}

#[test]
fn ksw_run_inside_a_live_guest_reads_its_kcore() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let mut seen = 0;
    let live: Vec<&common::Run> = fx
        .runs()
        .iter()
        .filter(|r| r.expected.script == "live-kcore")
        .collect();
    for run in &live {
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
    assert_eq!(seen, live.len());
}

#[test]
fn direct_map_and_kernel_text_translate_as_the_kernel_maps_them() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    for run in fx.dump_runs() {
        let first = run.dumps().into_iter().next().unwrap();
        let dump = open(run, &first.path);
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
