//! drgn (from PyPI, an oracle only) and ksw-vmcore read the same 10,000
//! kernel addresses from the same dump: text, data, the direct map, the
//! CPUs' vmalloc'd stacks, module memory and holes.
//!
//! Every dump of the fixture matrix is compared. drgn opens ELF (kdump,
//! makedumpfile -E, QEMU), kdump-compressed and makedumpfile's flattened
//! files itself. QEMU's flattened files (which drgn 0.3.0's libkdumpfile
//! refuses) and dumps without VMCOREINFO are handed to drgn as physical
//! memory through its custom-kernel interface, read by the independent
//! Python reader `testdata/tests/dumpfmt.py` (as `drgn_oracle.py --custom`
//! does), with the VMCOREINFO the guest's `/proc/kcore` showed where the
//! dump has none.
//!
//! Every address must give the same bytes, or fail in both. One known,
//! deliberate difference, allowed only for ELF files written by
//! makedumpfile (`-E`): where they leave pages out (`p_filesz <
//! p_memsz`), drgn reads zeros and ksw reports "excluded"; there drgn's
//! bytes must be zeros.
//!
//! drgn is found at `$KSW_DRGN_PYTHON` (default
//! `~/.cache/ksw/drgn-venv/bin/python`, which `python3 testdata/pipeline
//! oracle` sets up); without it this test fails.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use common::{Outcome, address_set, read};

/// argv: TESTS_DIR MODE DUMP ADDRS LENGTH [VMCOREINFO_FILE]; MODE is
/// `native` (drgn opens the file) or `custom` (pages through dumpfmt.py).
const ORACLE: &str = r#"
import mmap, sys
tests_dir, mode, dump, addrs, length = sys.argv[1:6]
vmci_file = sys.argv[6] if len(sys.argv) > 6 else None
length = int(length)
sys.path.insert(0, tests_dir)
import drgn
import dumpfmt

def custom(path, vmci):
    prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                      drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    f = open(path, "rb")
    data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    segments = 0
    if data[:4] == b"\x7fELF":
        core = dumpfmt.parse_elf(data)
        for off, _v, paddr, filesz, _m in core.loads:
            if filesz:
                prog.add_memory_segment(
                    paddr, filesz,
                    lambda a, n, o, p, base=off: data[base + o:base + o + n],
                    physical=True)
                segments += 1
        vmci = vmci or (core.note("VMCOREINFO") or [None])[0]
    else:
        if data[:16] == dumpfmt.FLAT_SIGNATURE:
            data, _ = dumpfmt.unflatten(data)
        pages = dumpfmt.KdumpPages(data)
        # Only the pages the dump holds (second bitmap): the rest fault,
        # as they do when drgn opens a kdump file itself.
        bits, pfn, n = pages.bitmap2, 0, pages.max_pfn
        while pfn < n:
            if not (bits[pfn // 8] >> (pfn % 8)) & 1:
                pfn += 1
                continue
            start = pfn
            while pfn < n and (bits[pfn // 8] >> (pfn % 8)) & 1:
                pfn += 1
            prog.add_memory_segment(start * dumpfmt.PAGE, (pfn - start) * dumpfmt.PAGE,
                                    lambda a, n, o, p: pages.read(a, n), physical=True)
            segments += 1
        vmci = vmci or pages.header.vmcoreinfo or None
    if not vmci:
        raise SystemExit("no VMCOREINFO in the dump and none given")
    if not segments:
        raise SystemExit("no memory in the dump")
    prog.set_linux_kernel_custom(vmci, False)
    return prog

vmci = open(vmci_file, "rb").read() if vmci_file else None
if mode == "native":
    prog = drgn.Program()
    prog.set_core_dump(dump)
else:
    prog = custom(dump, vmci)
out = []
for line in open(addrs):
    a = int(line, 16)
    try:
        out.append(prog.read(a, length).hex())
    except drgn.FaultError:
        out.append("fault")
sys.stdout.write("\n".join(out) + "\n")
"#;

fn drgn_python() -> PathBuf {
    let p = std::env::var_os("KSW_DRGN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"));
            home.join(".cache/ksw/drgn-venv/bin/python")
        });
    assert!(
        p.exists(),
        "drgn oracle missing at {} (run `python3 testdata/pipeline oracle`, or set KSW_DRGN_PYTHON)",
        p.display()
    );
    p
}

/// Whether drgn's answer `theirs` (hex) for `len` bytes at `a` is zeros
/// in every page part that ksw finds excluded, and ksw's bytes in every
/// other part, with at least one part excluded.
fn excluded_part_is_zeros(dump: &ksw_vmcore::Dump, a: u64, len: usize, theirs: &str) -> bool {
    const PAGE: u64 = 4096;
    let (mut at, end, mut excluded) = (a, a + len as u64, false);
    while at < end {
        let n = ((at / PAGE + 1) * PAGE).min(end) - at;
        let part = &theirs[2 * (at - a) as usize..2 * (at - a + n) as usize];
        match read(dump, at, n as usize) {
            Outcome::Excluded if part.bytes().all(|c| c == b'0') => excluded = true,
            Outcome::Bytes(b) if hex(&b) == part => {}
            _ => return false,
        }
        at += n;
    }
    excluded
}

#[test]
fn ten_thousand_addresses_read_as_drgn_reads_them() {
    let Some(fx) = common::fixtures() else {
        return;
    };
    let python = drgn_python();
    let tests_dir = common::repo_root().join("testdata/tests");
    let tmp = std::env::temp_dir().join(format!("ksw-drgn-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let script = tmp.join("oracle.py");
    std::fs::write(&script, ORACLE).unwrap();
    let mut compared_dumps = Vec::new();
    for run in fx.dump_runs() {
        // A dump without VMCOREINFO gets the one the guest's /proc/kcore
        // showed, read by the test, not by ksw.
        let vmci_file = (!run.has_vmcoreinfo()).then(|| {
            let f = tmp.join(format!("{}-{}.vmcoreinfo", run.series, run.name));
            std::fs::write(&f, common::independent::guest_vmcoreinfo(&run.dir)).unwrap();
            f
        });
        // One address list per crash, chosen from its first dump: every
        // format of the crash is asked the same addresses.
        let addrs = {
            let first = run.dumps().into_iter().next().unwrap();
            address_set(run, &common::open(run, &first.path), 10_000)
        };
        let list = tmp.join(format!("{}-{}.addrs", run.series, run.name));
        let mut f = std::fs::File::create(&list).unwrap();
        for a in &addrs {
            writeln!(f, "{a:x}").unwrap();
        }
        drop(f);
        for d in run.dumps() {
            let path = &d.path;
            // drgn 0.3.0 cannot open QEMU's flattened kdump files
            // (`KDUMP_ATTR_ARCH_NAME: Key has no value`) nor dumps without
            // VMCOREINFO: those go through dumpfmt.py.
            let custom = vmci_file.is_some() || (d.format == "flattened" && run.mode() == "qemu");
            let dump = common::open(run, path);
            let len = 32;
            let mut cmd = Command::new(&python);
            cmd.arg(&script)
                .arg(&tests_dir)
                .arg(if custom { "custom" } else { "native" })
                .arg(path)
                .arg(&list)
                .arg(len.to_string());
            if let Some(v) = &vmci_file {
                cmd.arg(v);
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "drgn on {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let answers: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            assert_eq!(answers.len(), addrs.len(), "{}", path.display());
            let (mut same_bytes, mut both_fault, mut excluded_zeros) = (0, 0, 0);
            for (a, drgn) in addrs.iter().zip(&answers) {
                let ours = read(&dump, *a, len);
                match (&ours, drgn.as_str()) {
                    (Outcome::Bytes(b), theirs) if theirs != "fault" => {
                        assert_eq!(hex(b), theirs, "{} {a:#x}", path.display());
                        same_bytes += 1;
                    }
                    (Outcome::Unmapped | Outcome::NotInDump, "fault") => both_fault += 1,
                    // kdump-compressed: an excluded page is a fault in drgn.
                    (Outcome::Excluded, "fault") if d.format != "elf" => both_fault += 1,
                    // makedumpfile -E: left-out pages read as zeros in drgn
                    // (a read across a page boundary: the left-out page's
                    // part is zeros, the other part drgn's bytes).
                    (Outcome::Excluded, z)
                        if d.is_makedumpfile_elf()
                            && z != "fault"
                            && excluded_part_is_zeros(&dump, *a, len, z) =>
                    {
                        excluded_zeros += 1
                    }
                    (o, dr) => panic!("{} {a:#x}: ksw {o:?}, drgn {dr}", path.display()),
                }
            }
            assert!(
                same_bytes > 5000 && both_fault > 300,
                "{}: {same_bytes} same, {both_fault} faults",
                path.display()
            );
            compared_dumps.push(format!(
                "{} ({}): {same_bytes} same bytes, {both_fault} faults in both, {excluded_zeros} excluded/zeros",
                path.display(),
                if custom { "custom" } else { "native" }
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("{}", compared_dumps.join("\n"));
    assert!(!compared_dumps.is_empty());
    assert_eq!(
        compared_dumps.len(),
        fx.dump_count(),
        "every dump of the matrix is compared with drgn"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
