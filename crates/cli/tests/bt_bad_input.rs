//! Bad input: real fixture dumps damaged in one place each (an excluded
//! stack page, a corrupted return address, a looping frame chain, a task
//! list pointer into garbage, a module list cycle, BTF cut short). `ksw bt`
//! and `ksw tasks` must name what they met, as a stop reason or an error,
//! and keep everything before the damage; never panic, hang or print a
//! trace that is silently wrong.
//!
//! Each case copies `SERIES/sysrq/dump.elf` (makedumpfile's ELF output)
//! and patches the bytes that back a kernel virtual address: the address
//! goes through the dump's own page tables (`Dump::translate`) to a
//! physical address, and through the ELF program headers to a file offset.
//! Fixtures as in `bt.rs`.

mod common;

use common::{debug_vmlinux, fixtures};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ksw_analyze::kernel::KernelModel;
use ksw_vmcore::{Dump, KernelMemory, VirtAddr};

const SERIES: [&str; 2] = ["6.1", "6.12"];

/// How long one `ksw` run may take before it counts as a hang (a debug
/// build reads a dump in a few seconds).
const HANG_AFTER: Duration = Duration::from_secs(120);

/// What one `ksw` run gave.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "ksw failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap()
    }
}

/// Runs `ksw ARGS DUMP`, failing the test on a hang, a panic (exit 101)
/// or a signal.
fn ksw(args: &[&str], dump: &Path) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .arg(dump)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > HANG_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ksw {args:?} {}: no answer in {HANG_AFTER:?}",
                dump.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let o = Outcome {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    };
    assert!(
        o.code == 0 || o.code == 1,
        "ksw {args:?} {}: exit {:?} (101 is a panic)\n{}",
        dump.display(),
        status,
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    o
}

/// One `PT_LOAD` program header of an ELF core.
#[derive(Debug, Clone, Copy)]
struct Load {
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    /// The whole 56-byte header, to copy fields this test does not touch.
    raw: [u8; 56],
}

const PT_LOAD: u32 = 1;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Every program header of an ELF core, raw.
fn program_headers(elf: &[u8]) -> Vec<[u8; 56]> {
    assert_eq!(&elf[..4], b"\x7fELF");
    let phoff = u64_at(elf, 0x20) as usize;
    let phentsize = u16::from_le_bytes([elf[0x36], elf[0x37]]) as usize;
    let phnum = u16::from_le_bytes([elf[0x38], elf[0x39]]) as usize;
    assert_eq!(phentsize, 56);
    (0..phnum)
        .map(|i| {
            elf[phoff + i * 56..phoff + (i + 1) * 56]
                .try_into()
                .unwrap()
        })
        .collect()
}

fn as_load(raw: &[u8; 56]) -> Option<Load> {
    (u32::from_le_bytes(raw[..4].try_into().unwrap()) == PT_LOAD).then(|| Load {
        offset: u64_at(raw, 8),
        vaddr: u64_at(raw, 16),
        paddr: u64_at(raw, 24),
        filesz: u64_at(raw, 32),
        memsz: u64_at(raw, 40),
        raw: *raw,
    })
}

fn encode_load(l: &Load) -> [u8; 56] {
    let mut raw = l.raw;
    raw[8..16].copy_from_slice(&l.offset.to_le_bytes());
    raw[16..24].copy_from_slice(&l.vaddr.to_le_bytes());
    raw[24..32].copy_from_slice(&l.paddr.to_le_bytes());
    raw[32..40].copy_from_slice(&l.filesz.to_le_bytes());
    raw[40..48].copy_from_slice(&l.memsz.to_le_bytes());
    raw
}

/// A fixture dump, read once, with its kernel model for addresses and
/// offsets, and a copy of its bytes to damage.
struct Patient {
    series: &'static str,
    original: PathBuf,
    dump: Dump,
    bytes: Vec<u8>,
}

impl Patient {
    fn new(root: &Path, series: &'static str) -> Self {
        let original = root.join(series).join("sysrq/dump.elf");
        Self {
            series,
            dump: Dump::open(&original).unwrap(),
            bytes: std::fs::read(&original).unwrap(),
            original,
        }
    }

    fn model(&self) -> KernelModel<'_> {
        KernelModel::from_dump(&self.dump).unwrap()
    }

    fn symbol(&self, name: &str) -> u64 {
        self.dump.symbol(name).unwrap().0
    }

    fn read_u64(&self, va: u64) -> u64 {
        self.dump.read_u64(VirtAddr(va)).unwrap()
    }

    /// The file offsets of the byte at kernel virtual address `va`: one
    /// per `PT_LOAD` whose file data holds it (kernel text and data are
    /// also inside a RAM segment, and a reader may use either).
    fn file_offsets(&self, va: u64) -> Vec<usize> {
        let phys = self.dump.translate(VirtAddr(va)).unwrap().phys.0;
        let offsets: Vec<usize> = program_headers(&self.bytes)
            .iter()
            .filter_map(as_load)
            .filter(|l| l.paddr <= phys && phys < l.paddr + l.filesz)
            .map(|l| (l.offset + (phys - l.paddr)) as usize)
            .collect();
        assert!(
            !offsets.is_empty(),
            "{va:#x} (physical {phys:#x}) is not in the file"
        );
        offsets
    }

    /// Sets the word at `va` in `bytes` (a copy of the dump) to `value`.
    fn with_word(&self, bytes: &mut [u8], va: u64, value: u64) {
        // a word never straddles a page in these cases
        assert_eq!(va % 8, 0);
        for at in self.file_offsets(va) {
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
    }

    /// The patched dump `bytes` written to `dir` as `name`.
    fn write(&self, dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(format!("{}-{name}.elf", self.series));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The bytes with the 4 KiB physical page that backs `va` excluded,
    /// as makedumpfile's ELF output excludes pages: every `PT_LOAD` that
    /// holds it is split so that the page lies past a segment's
    /// `p_filesz`. The new program header table is appended to the file.
    fn with_page_excluded(&self, va: u64) -> Vec<u8> {
        let page = self.dump.translate(VirtAddr(va)).unwrap().phys.0 & !0xfff;
        let mut headers = Vec::new();
        for raw in program_headers(&self.bytes) {
            match as_load(&raw) {
                Some(l) if l.paddr <= page && page < l.paddr + l.filesz => {
                    let before = page - l.paddr;
                    let after = before + 4096;
                    if before > 0 {
                        headers.push(encode_load(&Load {
                            filesz: before,
                            memsz: before,
                            ..l
                        }));
                    }
                    // the page itself: in memory, not in the file
                    // p_vaddr moves with p_paddr, unless it is "none" (-1)
                    let vaddr = |delta: u64| match l.vaddr {
                        u64::MAX => u64::MAX,
                        v => v.wrapping_add(delta),
                    };
                    headers.push(encode_load(&Load {
                        paddr: page,
                        vaddr: vaddr(before),
                        offset: l.offset + before,
                        filesz: 0,
                        memsz: 4096,
                        ..l
                    }));
                    if after < l.memsz {
                        headers.push(encode_load(&Load {
                            paddr: page + 4096,
                            vaddr: vaddr(after),
                            offset: l.offset + after,
                            filesz: l.filesz.saturating_sub(after),
                            memsz: l.memsz - after,
                            ..l
                        }));
                    }
                }
                _ => headers.push(raw),
            }
        }
        let mut bytes = self.bytes.clone();
        while bytes.len() % 8 != 0 {
            bytes.push(0);
        }
        let phoff = bytes.len() as u64;
        for h in &headers {
            bytes.extend_from_slice(h);
        }
        bytes[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&u16::try_from(headers.len()).unwrap().to_le_bytes());
        bytes
    }
}

/// The panic CPU's trace of the undamaged dump.
fn undamaged_trace(p: &Patient) -> serde_json::Value {
    let v = ksw(&["bt", "--json"], &p.original).json();
    let t = v[0]["trace"].clone();
    assert_eq!(t["stop"]["reason"], "user-mode", "{}: {t}", p.series);
    assert!(t["frames"].as_array().unwrap().len() >= 8, "{t}");
    t
}

fn frames(trace: &serde_json::Value) -> &Vec<serde_json::Value> {
    trace["frames"].as_array().unwrap()
}

fn sp_of(frame: &serde_json::Value) -> u64 {
    frame["sp"].as_u64().unwrap()
}

#[test]
fn an_excluded_stack_page_stops_the_walk_where_it_starts() {
    let Some(root) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    for series in SERIES {
        let p = Patient::new(&root, series);
        let want = undamaged_trace(&p);
        let want = frames(&want);
        // the page that holds the second frame's return address: the
        // first frame comes from the crash registers, the second needs
        // the stack
        let ret_addr_at = sp_of(&want[1]) - 8;
        let dump = p.write(dir.path(), "excluded", &p.with_page_excluded(ret_addr_at));
        // the file is still a good dump, with one page more excluded
        let excluded = |path: &Path| {
            ksw(&["info", "--json"], path).json()["pages"]["excluded"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(excluded(&dump), excluded(&p.original) + 1, "{series}");
        let got = ksw(&["bt", "--json"], &dump).json();
        let got = &got[0]["trace"];
        assert_eq!(got["stop"]["reason"], "unreadable-stack", "{series}: {got}");
        let addr = got["stop"]["addr"].as_u64().unwrap();
        assert_eq!(addr & !0xfff, ret_addr_at & !0xfff, "{series}: {got}");
        assert_eq!(frames(got)[..], want[..1], "{series}");
        // the text names the address
        let text = ksw(&["bt"], &dump);
        assert!(
            text.stdout
                .contains(&format!("stop: stack word at {addr:#x} cannot be read")),
            "{}",
            text.stdout
        );
    }
}

#[test]
fn a_corrupted_return_address_is_not_kernel_text() {
    let Some(root) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    for series in SERIES {
        let p = Patient::new(&root, series);
        let want = undamaged_trace(&p);
        let want = frames(&want);
        // the return address of frame 3 (into __handle_sysrq)
        let at = sp_of(&want[3]) - 8;
        assert_eq!(p.read_u64(at), want[3]["pc"].as_u64().unwrap());
        for (name, garbage, reason) in [
            // a user-space-looking value
            ("retaddr-user", 0x4141_4141_4141_4141u64, "not-kernel-text"),
            // a kernel address that is not code: the direct map's start
            ("retaddr-data", 0xffff_8880_0000_0000, "no-unwind-info"),
        ] {
            let mut bytes = p.bytes.clone();
            p.with_word(&mut bytes, at, garbage);
            let dump = p.write(dir.path(), name, &bytes);
            let got = ksw(&["bt", "--json"], &dump).json();
            let got = &got[0]["trace"];
            assert_eq!(got["stop"]["reason"], reason, "{series} {name}: {got}");
            assert_eq!(got["stop"]["pc"].as_u64(), Some(garbage), "{series} {name}");
            let kept = frames(got);
            assert_eq!(kept[..3], want[..3], "{series} {name}: the frames before");
            // a kernel address gets a frame of its own, which says
            // it is no function
            if reason == "no-unwind-info" {
                assert_eq!(kept.len(), 4, "{series} {name}: {got}");
                assert!(kept[3]["symbol"].is_null(), "{series} {name}: {got}");
                assert_eq!(kept[3]["pc"].as_u64(), Some(garbage));
            } else {
                assert_eq!(kept.len(), 3, "{series} {name}: {got}");
            }
        }
    }
}

#[test]
fn a_frame_chain_that_loops_back_is_not_progressing() {
    let Some(root) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    for series in SERIES {
        let p = Patient::new(&root, series);
        let want = undamaged_trace(&p);
        let want = frames(&want);
        // the syscall's pt_regs at the top of the task stack: make it a
        // kernel-mode frame whose sp points back down to frame 1, so that
        // following it would replay the chain for ever
        let pid1 = ksw(&["bt", "--json"], &p.original).json();
        let stack = pid1[0]["task"]["stack"].as_u64().unwrap();
        let regs = stack + ksw_analyze::kernel::THREAD_SIZE - 21 * 8;
        assert!(sp_of(want.last().unwrap()) <= regs);
        let mut bytes = p.bytes.clone();
        p.with_word(&mut bytes, regs + 16 * 8, want[2]["pc"].as_u64().unwrap()); // ip
        p.with_word(&mut bytes, regs + 17 * 8, 0x10); // cs: kernel
        p.with_word(&mut bytes, regs + 19 * 8, sp_of(&want[1])); // sp
        let dump = p.write(dir.path(), "loop", &bytes);
        let got = ksw(&["bt", "--json"], &dump).json();
        let got = &got[0]["trace"];
        assert_eq!(got["stop"]["reason"], "not-progressing", "{series}: {got}");
        assert_eq!(
            got["stop"]["sp"].as_u64(),
            Some(sp_of(want.last().unwrap()))
        );
        assert_eq!(got["stop"]["next_sp"].as_u64(), Some(sp_of(&want[1])));
        assert_eq!(frames(got), want, "{series}: every real frame kept");
    }
}

#[test]
fn a_task_list_pointer_into_garbage_is_named() {
    let Some(root) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    for series in SERIES {
        let p = Patient::new(&root, series);
        let model = p.model();
        let (tasks, warnings) = model.tasks().unwrap();
        assert!(warnings.is_empty(), "{series}: {warnings:?}");
        let init = p.symbol("init_task");
        let next_at = init + model.layout().task_tasks;
        for (name, garbage) in [
            // unmapped (a list poison value)
            ("tasks-poison", 0xdead_0000_0000_0100u64),
            // mapped, but not a task: kernel text
            ("tasks-text", p.symbol("panic")),
            // mapped, but not a task: the head of another list
            ("tasks-modules", p.symbol("modules")),
        ] {
            let mut bytes = p.bytes.clone();
            p.with_word(&mut bytes, next_at, garbage);
            let dump = p.write(dir.path(), name, &bytes);
            let out = ksw(&["tasks", "--json"], &dump);
            eprintln!("{series} {name}: exit {} {}", out.code, out.stderr);
            if out.code == 0 {
                let got: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                let got = got.as_array().unwrap();
                assert!(
                    out.stderr.contains("ksw: warning: task list:"),
                    "{series} {name}: {}",
                    out.stderr
                );
                // what is listed is real: every task is one of the
                // undamaged list's
                for t in got {
                    let a = t["address"].as_u64().unwrap();
                    assert!(
                        tasks.iter().any(|w| w.address == a),
                        "{series} {name}: garbage listed as a task: {t}"
                    );
                }
            } else {
                assert!(
                    out.stderr.contains("walking the task list"),
                    "{series} {name}: {}",
                    out.stderr
                );
            }
            // the panic CPU's trace does not need the list
            let bt = ksw(&["bt", "--json"], &dump).json();
            assert_eq!(bt[0]["trace"]["stop"]["reason"], "user-mode");
        }
    }
}

#[test]
fn a_module_list_cycle_is_named_and_the_trace_kept() {
    let Some(root) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    for series in SERIES {
        let p = Patient::new(&root, series);
        let model = p.model();
        let modules = model.modules();
        assert!(modules.len() >= 2, "{series}: {} modules", modules.len());
        let list = model.layout().module.list;
        let want = undamaged_trace(&p);
        // the last module's `list.next` goes back to the first module
        // instead of to the head
        let first = modules[0].address + list;
        let last = modules[modules.len() - 1].address + list;
        for (name, garbage) in [
            ("modules-cycle", first),
            ("modules-null", 0),
            ("modules-poison", 0xdead_0000_0000_0100),
        ] {
            let mut bytes = p.bytes.clone();
            p.with_word(&mut bytes, last, garbage);
            let dump = p.write(dir.path(), name, &bytes);
            let out = ksw(&["bt", "--json"], &dump);
            eprintln!("{series} {name}: exit {} {}", out.code, out.stderr);
            let want_warning = if name == "modules-cycle" {
                format!("ksw: warning: modules: the module list loops at {first:#x}")
            } else {
                "ksw: warning: modules:".to_string()
            };
            assert!(
                out.stderr.contains(&want_warning),
                "{series} {name}: {}",
                out.stderr
            );
            let got = out.json();
            assert_eq!(got[0]["trace"], want, "{series} {name}");
        }
    }
}

#[test]
fn btf_cut_short_is_an_error_that_says_so_or_dwarf_stands_in() {
    let Some(root) = fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    for series in SERIES {
        let p = Patient::new(&root, series);
        let start = p.symbol("__start_BTF");
        let stop = p.symbol("__stop_BTF");
        // struct btf_header: magic u16, version u8, flags u8, hdr_len u32,
        // type_off u32, type_len u32, str_off u32, str_len u32
        let header = p.read_u64(start + 8); // type_off, type_len
        let (type_off, type_len) = (header as u32, (header >> 32) as u32);
        let strings = p.read_u64(start + 16); // str_off, str_len
        let (str_off, str_len) = (strings as u32, (strings >> 32) as u32);
        assert_eq!(u64::from(24 + str_off + str_len), stop - start, "{series}");
        for (name, type_len, str_len, want) in [
            // the strings run past __stop_BTF: the section lost its end
            (
                "btf-strings",
                type_len,
                str_len + 4096,
                "BTF truncated: the string section ends at byte",
            ),
            // the type section ends in the middle of a record
            (
                "btf-types",
                type_len / 2 + 2,
                str_len,
                "BTF truncated: a type record",
            ),
        ] {
            let mut bytes = p.bytes.clone();
            p.with_word(
                &mut bytes,
                start + 8,
                u64::from(type_off) | u64::from(type_len) << 32,
            );
            p.with_word(
                &mut bytes,
                start + 16,
                u64::from(str_off) | u64::from(str_len) << 32,
            );
            let dump = p.write(dir.path(), name, &bytes);
            // with the debug vmlinux, its DWARF stands in for the BTF
            if name == "btf-types" {
                let vmlinux = debug_vmlinux(series);
                let out = ksw(
                    &["bt", "--json", "--vmlinux", vmlinux.to_str().unwrap()],
                    &dump,
                );
                assert_eq!(out.code, 0, "{series} {name} --vmlinux: {}", out.stderr);
                assert!(
                    out.stderr
                        .contains("struct layouts come from the vmlinux's DWARF instead"),
                    "{}",
                    out.stderr
                );
                let got = out.json();
                let want = undamaged_trace(&p);
                let pcs = |t: &serde_json::Value| -> Vec<u64> {
                    t["frames"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f["pc"].as_u64().unwrap())
                        .collect()
                };
                assert_eq!(
                    pcs(&got[0]["trace"]),
                    pcs(&want),
                    "{series}: the trace through DWARF's layouts"
                );
            }
            for command in ["bt", "tasks"] {
                let out = ksw(&[command], &dump);
                assert_eq!(out.code, 1, "{series} {name} {command}: {}", out.stdout);
                assert!(out.stdout.is_empty());
                assert!(
                    out.stderr.contains("the kernel's BTF: ") && out.stderr.contains(want),
                    "{series} {name} {command}: {}",
                    out.stderr
                );
            }
        }
    }
}
