//! `ksw analyze` on damaged and mismatched inputs: a real catch's ELF
//! dump with its catch ring patched (a future layout version, a torn ring,
//! a watch address on no stack, a victim that has exited), a missing
//! `.ko` and a `.ko` from another build. Each gets a named warning or
//! error, never a panic and never a made-up answer.

mod common;

use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};

use common::{fixtures, ksw_analyze as analyze};
use kstackwatch_contract::record::{Catch, CatchLog, HEADER_SIZE, VERSION};
use ksw_analyze::kernel::KernelModel;
use ksw_vmcore::{Dump, OpenOptions, VirtAddr};
use serde_json::Value;

/// A real catch's ELF dump in memory, with the means to patch kernel
/// virtual addresses in it.
struct PatchableDump {
    bytes: Vec<u8>,
    /// The ring's address.
    ring: u64,
    /// (physical start, file offset, size) of each PT_LOAD.
    loads: Vec<(u64, u64, u64)>,
    /// Another task than the victim, and a word of its stack.
    other_task: u64,
    other_stack_word: u64,
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

impl PatchableDump {
    fn load(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        // ELF64 program headers: PT_LOAD (1) p_offset, p_paddr, p_filesz
        let phoff = u64_at(&bytes, 0x20) as usize;
        let phentsize = u16::from_le_bytes([bytes[0x36], bytes[0x37]]) as usize;
        let phnum = u16::from_le_bytes([bytes[0x38], bytes[0x39]]) as usize;
        let loads = (0..phnum)
            .map(|i| &bytes[phoff + i * phentsize..])
            .filter(|h| u32::from_le_bytes(h[0..4].try_into().unwrap()) == 1)
            .map(|h| (u64_at(h, 0x18), u64_at(h, 0x08), u64_at(h, 0x20)))
            .collect();
        let dump = Dump::from_bytes(bytes.clone(), &OpenOptions::default()).unwrap();
        let model = KernelModel::from_dump(&dump).unwrap();
        let ring = ksw_analyze::report::find_catch_log(&model)
            .unwrap()
            .expect("a ring")
            .address;
        let slot0 = ring + HEADER_SIZE as u64;
        let mut w = [0u8; 4];
        dump_read(&dump, slot0 + offset_of!(Catch, victim_pid) as u64, &mut w);
        let victim_pid = i32::from_le_bytes(w);
        let (tasks, _) = model.tasks().unwrap();
        let other = tasks
            .iter()
            .find(|t| t.pid > 1 && t.pid != victim_pid)
            .expect("another task");
        let (other_task, other_stack_word) = (other.address, other.stack + 0x100);
        drop(model);
        Self {
            bytes,
            ring,
            loads,
            other_task,
            other_stack_word,
        }
    }

    /// The file offsets of `va`: every PT_LOAD that holds its page (a
    /// makedumpfile ELF may have overlapping segments).
    fn offsets_of(&self, va: u64) -> Vec<usize> {
        let dump = Dump::from_bytes(self.bytes.clone(), &OpenOptions::default()).unwrap();
        let pa = dump.translate(VirtAddr(va)).unwrap().phys.0;
        let found: Vec<usize> = self
            .loads
            .iter()
            .filter(|(s, _, n)| pa >= *s && pa < s + n)
            .map(|(start, off, _)| (off + (pa - start)) as usize)
            .collect();
        assert!(!found.is_empty(), "{va:#x} is in no PT_LOAD");
        found
    }

    fn patch(&mut self, va: u64, value: &[u8]) {
        for at in self.offsets_of(va) {
            self.bytes[at..at + value.len()].copy_from_slice(value);
        }
    }

    fn slot(&self, i: usize, field: usize) -> u64 {
        self.ring + (HEADER_SIZE + i * size_of::<Catch>() + field) as u64
    }

    /// `ksw analyze ARGS` on the patched dump, written to a directory of
    /// its own.
    fn analyze(&self, args: &[&str]) -> (Option<Value>, i32, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dump.elf");
        std::fs::write(&p, &self.bytes).unwrap();
        analyze(&p, args)
    }
}

fn dump_read(dump: &Dump, va: u64, buf: &mut [u8]) {
    let pa = dump.translate(VirtAddr(va)).unwrap().phys;
    dump.read_phys(pa, buf).unwrap();
}

fn fire(root: &Path) -> PathBuf {
    root.join("6.1/kstackwatch-panic-fire")
}

#[test]
fn a_future_record_version_is_refused_by_name() {
    let Some(root) = fixtures() else { return };
    let mut d = PatchableDump::load(&fire(root.as_path()).join("dump.elf"));
    d.patch(
        d.ring + offset_of!(CatchLog, version) as u64,
        &(VERSION + 1).to_le_bytes(),
    );
    let (_, code, err) = d.analyze(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("layout version {}", VERSION + 1))
            && err.contains(&format!("reads version {VERSION}")),
        "{err}"
    );
}

#[test]
fn a_torn_ring_is_said_and_its_committed_catches_explained() {
    let Some(root) = fixtures() else { return };
    let mut d = PatchableDump::load(&fire(root.as_path()).join("dump.elf"));
    // catch 1 in slot 0, catch 3 in slot 2, slot 1 torn (seq 0): the
    // ring counts 3
    let n = size_of::<Catch>();
    let at0 = d.offsets_of(d.slot(0, 0))[0];
    let record: Vec<u8> = d.bytes[at0..at0 + n].to_vec();
    let mut third = record.clone();
    third[..8].copy_from_slice(&3u64.to_le_bytes());
    // write the copy field by field (a slot may cross a page)
    for (i, chunk) in third.chunks(8).enumerate() {
        d.patch(d.slot(2, i * 8), chunk);
    }
    d.patch(
        d.ring + offset_of!(CatchLog, total) as u64,
        &3u64.to_le_bytes(),
    );
    let modules = fire(root.as_path()).join("modules");
    let (v, code, err) = d.analyze(&["--module-dir", modules.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v = v.unwrap();
    let seqs: Vec<u64> = v["catches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 3]);
    assert_eq!(v["catch"]["seq"], 3);
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("counts 3 catches but 1 of its slots hold none"),
        "{warnings}"
    );
}

#[test]
fn a_watch_address_on_no_stack_is_named_not_placed() {
    let Some(root) = fixtures() else { return };
    let mut d = PatchableDump::load(&fire(root.as_path()).join("dump.elf"));
    // the ring's own address: module data, on no stack
    let ring = d.ring;
    d.patch(
        d.slot(0, offset_of!(Catch, watch_addr)),
        &ring.to_le_bytes(),
    );
    let (v, code, err) = d.analyze(&[]);
    assert_eq!(code, 0, "{err}");
    let v = v.unwrap();
    let slot = &v["catch"]["victim"]["slot"];
    assert_eq!(slot["kind"], "not-in-a-frame", "{slot}");
    assert!(
        slot["why"]
            .as_str()
            .unwrap()
            .contains("is not on the victim's stack"),
        "{slot}"
    );
    assert!(v["catch"]["victim"]["frame"].is_null());
    assert!(
        v["warnings"]
            .to_string()
            .contains("not on the victim's stack")
    );
}

#[test]
fn a_victim_that_has_exited_is_said() {
    let Some(root) = fixtures() else { return };
    // its task_struct reused by another task
    let mut reused = PatchableDump::load(&fire(root.as_path()).join("dump.elf"));
    let other = reused.other_task;
    reused.patch(
        reused.slot(0, offset_of!(Catch, victim_task)),
        &other.to_le_bytes(),
    );
    // a watch address on that task's stack, so that the exit is what is
    // said
    let word = reused.other_stack_word;
    reused.patch(
        reused.slot(0, offset_of!(Catch, watch_addr)),
        &word.to_le_bytes(),
    );
    let (v, code, err) = reused.analyze(&[]);
    assert_eq!(code, 0, "{err}");
    let v = v.unwrap();
    let slot = &v["catch"]["victim"]["slot"];
    assert!(
        slot["why"]
            .as_str()
            .unwrap_or("")
            .contains("the victim has exited"),
        "{slot}"
    );
    // its task_struct's page gone (freed and left out of the dump)
    let mut gone = PatchableDump::load(&fire(root.as_path()).join("dump.elf"));
    gone.patch(
        gone.slot(0, offset_of!(Catch, victim_task)),
        &0xffff_8880_dead_0000u64.to_le_bytes(),
    );
    let (v, code, err) = gone.analyze(&[]);
    assert_eq!(code, 0, "{err}");
    let v = v.unwrap();
    let why = v["catch"]["victim"]["slot"]["why"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        why.contains("is not readable") && why.contains("exited"),
        "{why}"
    );
}

#[test]
fn a_missing_or_foreign_ko_is_named_and_nothing_is_made_up() {
    let Some(root) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // the dump alone, in a directory without its .ko files
    let dump = tmp.path().join("dump.kdump-zlib");
    std::fs::copy(fire(root.as_path()).join("dump.kdump-zlib"), &dump).unwrap();
    let (v, code, err) = analyze(&dump, &[]);
    assert_eq!(code, 0, "{err}");
    let v = v.unwrap();
    let gaps = v["gaps"].to_string();
    assert!(gaps.contains("kstackwatch_test.ko"), "{gaps}");
    let w = &v["catch"]["writer"];
    assert_eq!(w["source"], serde_json::json!([]));
    assert!(w["function"].is_null());
    // the writer is still named by its symbol, and the store decoded
    assert_eq!(w["symbol"], "ksw_test_fire_writer");
    assert!(w["store"]["text"].as_str().unwrap().starts_with("mov"));
    assert_eq!(v["catch"]["victim"]["slot"]["kind"], "unnamed");
    // the .ko files of another build (the 6.12 run's) are refused by
    // build ID, and said so
    let foreign = root.join("6.12/kstackwatch-panic-fire/modules");
    let (v, code, err) = analyze(&dump, &["--module-dir", foreign.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        err.contains("is another build") || err.contains("is not in the module's memory"),
        "{err}"
    );
    let v = v.unwrap();
    assert!(v["gaps"].to_string().contains("kstackwatch_test.ko"));
    assert_eq!(v["catch"]["writer"]["source"], serde_json::json!([]));
}

#[test]
fn the_ring_is_found_by_its_magic_when_its_symbol_is_gone() {
    let Some(root) = fixtures() else { return };
    let mut d = PatchableDump::load(&fire(root.as_path()).join("dump.elf"));
    // every copy of the symbol's name in memory (the module's string
    // table), renamed
    let name = b"ksw_catch_log\0";
    let at: Vec<usize> = d
        .bytes
        .windows(name.len())
        .enumerate()
        .filter(|(_, w)| *w == name)
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty());
    for i in at {
        d.bytes[i + 12] = b'x';
    }
    let modules = fire(root.as_path()).join("modules");
    let (v, code, err) = d.analyze(&["--module-dir", modules.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v = v.unwrap();
    assert_eq!(v["catch"]["seq"], 1);
    assert!(
        v["warnings"].to_string().contains("was found by its magic"),
        "{}",
        v["warnings"]
    );
    assert_eq!(v["catch"]["victim"]["slot"]["kind"], "variable");
}

#[test]
fn a_victim_that_wrote_its_own_frame_is_placed_without_its_task_struct() {
    let Some(root) = fixtures() else { return };
    let dir = root.join("6.1/kstackwatch-panic-init");
    let modules = dir.join("modules");
    let args = ["--module-dir", modules.to_str().unwrap()];
    // an address no page table maps: the task_struct cannot be read
    let gone = 0xffff_ffff_ff00_0000u64.to_le_bytes();
    // the victim wrote its own local (the init scenario): the catch
    // record's registers are its stack at the write
    let mut d = PatchableDump::load(&dir.join("dump.elf"));
    d.patch(d.slot(0, offset_of!(Catch, victim_task)), &gone);
    d.patch(d.slot(0, offset_of!(Catch, writer_task)), &gone);
    let (v, code, err) = d.analyze(&args);
    assert_eq!(code, 0, "{err}");
    let v = v.unwrap();
    let victim = &v["catch"]["victim"];
    assert_eq!(victim["function"], "test_initcall_victim", "{victim}");
    assert_eq!(victim["slot"]["kind"], "variable", "{victim}");
    assert_eq!(victim["slot"]["path"], "local", "{victim}");
    assert!(
        v["warnings"]
            .to_string()
            .contains("it is the writer, so its stack is the catch record's"),
        "{}",
        v["warnings"]
    );
    // another task's unreadable task_struct is no such stack: not placed
    let mut d = PatchableDump::load(&dir.join("dump.elf"));
    d.patch(d.slot(0, offset_of!(Catch, victim_task)), &gone);
    let (v, code, err) = d.analyze(&args);
    assert_eq!(code, 0, "{err}");
    let v = v.unwrap();
    let victim = &v["catch"]["victim"];
    assert!(victim["function"].is_null(), "{victim}");
    assert_eq!(victim["slot"]["kind"], "not-in-a-frame", "{victim}");
}
