//! drgn (from PyPI, an oracle only) and ksw-vmcore read the same 10,000
//! kernel addresses from the same dump: text, data, the direct map, the
//! CPUs' vmalloc'd stacks, module memory and holes.
//!
//! Every dump drgn opens is compared: ELF (kdump, makedumpfile -E, QEMU),
//! kdump-compressed (zlib, lzo) and makedumpfile's flattened files.
//! Every address must give the same bytes, or fail in both. One known,
//! deliberate difference: where makedumpfile's ELF output leaves pages out
//! (`p_filesz < p_memsz`), drgn reads zeros and ksw reports "excluded";
//! there drgn's bytes must be zeros.
//!
//! drgn is found at `$KSW_DRGN_PYTHON` (default
//! `~/.cache/ksw/drgn-venv/bin/python`, which `python3 testdata/pipeline
//! oracle` sets up); without it this test fails, unless
//! `KSW_ALLOW_MISSING_FIXTURES=1`.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use common::{Outcome, address_set, read};
use ksw_vmcore::Dump;

const ORACLE: &str = r#"
import sys, drgn
dump, addrs, length = sys.argv[1], sys.argv[2], int(sys.argv[3])
prog = drgn.Program()
prog.set_core_dump(dump)
out = []
for line in open(addrs):
    a = int(line, 16)
    try:
        out.append(prog.read(a, length).hex())
    except drgn.FaultError:
        out.append("fault")
sys.stdout.write("\n".join(out) + "\n")
"#;

fn drgn_python() -> Option<PathBuf> {
    let p = std::env::var_os("KSW_DRGN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"));
            home.join(".cache/ksw/drgn-venv/bin/python")
        });
    if p.exists() {
        return Some(p);
    }
    if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "drgn oracle missing at {} (run `python3 testdata/pipeline oracle`, or set KSW_DRGN_PYTHON)",
        p.display()
    );
}

#[test]
fn ten_thousand_addresses_read_as_drgn_reads_them() {
    let Some(root) = common::fixtures_root() else {
        return;
    };
    let Some(python) = drgn_python() else { return };
    let tmp = std::env::temp_dir().join(format!("ksw-drgn-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let script = tmp.join("oracle.py");
    std::fs::write(&script, ORACLE).unwrap();
    let mut compared_dumps = Vec::new();
    for run in common::dump_runs(&root) {
        if !run.has_vmcoreinfo() {
            continue; // drgn refuses dumps without VMCOREINFO
        }
        for (path, format, _) in run.dumps() {
            // drgn 0.3.0 cannot open QEMU's flattened kdump files
            // (`KDUMP_ATTR_ARCH_NAME: Key has no value`); those are compared
            // with the QEMU ELF dump of the same crash by the fixtures test.
            if format == "flattened" && run.mode() == "qemu" {
                continue;
            }
            let dump = Dump::open(&path).unwrap();
            let addrs = address_set(&run, &dump, 10_000);
            let list = tmp.join("addrs.txt");
            let mut f = std::fs::File::create(&list).unwrap();
            for a in &addrs {
                writeln!(f, "{a:x}").unwrap();
            }
            drop(f);
            let len = 32;
            let out = Command::new(&python)
                .arg(&script)
                .arg(&path)
                .arg(&list)
                .arg(len.to_string())
                .output()
                .unwrap();
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
                    (Outcome::Bytes(b), d) if d != "fault" => {
                        assert_eq!(hex(b), d, "{} {a:#x}", path.display());
                        same_bytes += 1;
                    }
                    (Outcome::Unmapped | Outcome::NotInDump, "fault") => both_fault += 1,
                    // kdump-compressed: an excluded page is a fault in drgn.
                    (Outcome::Excluded, "fault") if format != "elf" => both_fault += 1,
                    (Outcome::Excluded, d) if d != "fault" && d.bytes().all(|c| c == b'0') => {
                        excluded_zeros += 1
                    }
                    (o, d) => panic!("{} {a:#x}: ksw {o:?}, drgn {d}", path.display()),
                }
            }
            assert!(
                same_bytes > 5000 && both_fault > 300,
                "{}: {same_bytes} same, {both_fault} faults",
                path.display()
            );
            compared_dumps.push(format!("{}: {same_bytes} same bytes, {both_fault} faults in both, {excluded_zeros} excluded/zeros", path.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(compared_dumps.len() >= 10, "{compared_dumps:?}");
    eprintln!("{}", compared_dumps.join("\n"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
