//! Shared test support: the pipeline's fixture matrix and its ground
//! truth, independent readers to compare ksw with (`independent`), a small
//! deterministic PRNG, and a writer for synthetic kdump-compressed files.
#![allow(dead_code)]

pub mod independent;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ksw_vmcore::{Dump, Error, KernelMemory, OpenOptions, VirtAddr};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The kernel series to check: `$KSW_SERIES` (default `6.1 6.12`). An
/// empty list is an error, not a test of nothing.
pub fn series() -> Vec<String> {
    let text = std::env::var("KSW_SERIES").unwrap_or_else(|_| "6.1 6.12".into());
    let series: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    assert!(
        !series.is_empty(),
        "KSW_SERIES is set but names no kernel series ({text:?})"
    );
    series
}

/// One run of the fixture matrix, as `standard_runs()` in
/// testdata/pipeline/matrix.py defines it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub series: String,
    pub name: String,
    pub script: String,
    pub mode: String,
    pub raw_vmcore: bool,
}

impl Expected {
    /// The dumps this run must have made.
    pub fn dump_names(&self) -> Vec<&'static str> {
        match self.mode.as_str() {
            "kdump" => {
                let mut v = vec!["dump.kdump-zlib", "dump.kdump-lzo", "dump.flat", "dump.elf"];
                if self.raw_vmcore {
                    v.push("vmcore.raw");
                }
                v
            }
            "qemu" => vec!["qemu.elf", "qemu.kdump-zlib.flat"],
            _ => vec![],
        }
    }
}

/// The fixture matrix of every series in [`series`], read from the
/// pipeline itself (`standard_runs()`), so the tests and the pipeline
/// cannot disagree on which runs exist.
pub fn expected_matrix() -> Vec<Expected> {
    const PRINT: &str = "import json, sys\n\
        sys.path.insert(0, 'testdata/pipeline')\n\
        import matrix\n\
        print(json.dumps([[s, r.name, r.script, r.mode, bool(r.raw_vmcore)]\n\
            for s in sys.argv[1:] for r in matrix.standard_runs(s)]))";
    let series = series();
    let out = Command::new("python3")
        .arg("-c")
        .arg(PRINT)
        .args(&series)
        .current_dir(repo_root())
        .output()
        .expect("run python3 to read the fixture matrix");
    assert!(
        out.status.success(),
        "reading standard_runs() from testdata/pipeline/matrix.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, String, String, String, bool)> =
        serde_json::from_slice(&out.stdout).expect("standard_runs() as JSON");
    for s in &series {
        assert!(
            rows.iter().any(|r| &r.0 == s),
            "standard_runs({s:?}) is empty"
        );
    }
    rows.into_iter()
        .map(|(series, name, script, mode, raw_vmcore)| Expected {
            series,
            name,
            script,
            mode,
            raw_vmcore,
        })
        .collect()
}

/// The fixture root: `$KSW_FIXTURES`, else `~/.cache/ksw/fixtures`.
pub fn root_path() -> PathBuf {
    std::env::var_os("KSW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"));
            home.join(".cache/ksw/fixtures")
        })
}

/// The fixtures of the whole matrix. Tests check every run that exists;
/// when this value is dropped at the end of a test, any run of the matrix
/// that is missing fails that test ("fixture missing: ..."), so a partial
/// matrix (say, 6.1 alone) never passes.
pub struct Fixtures {
    pub root: PathBuf,
    runs: Vec<Run>,
    missing: Vec<String>,
}

impl Fixtures {
    /// Every run of the matrix that exists, in matrix order.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The runs that made dumps (kdump and QEMU modes).
    pub fn dump_runs(&self) -> Vec<&Run> {
        self.runs
            .iter()
            .filter(|r| r.expected.mode != "none")
            .collect()
    }

    /// How many dumps the present runs list.
    pub fn dump_count(&self) -> usize {
        self.runs.iter().map(|r| r.dumps().len()).sum()
    }

    /// The runs of the matrix that have no fixture.
    pub fn missing(&self) -> &[String] {
        &self.missing
    }
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        if !self.missing.is_empty() && !std::thread::panicking() {
            panic!(
                "fixture missing: {} under {} (the present runs were checked; make the rest with \
                 `python3 testdata/pipeline all`)",
                self.missing.join(", "),
                self.root.display()
            );
        }
    }
}

/// The fixture matrix under [`root_path`]. A manifest that does not parse,
/// or that disagrees with the matrix, fails at once; missing runs fail when
/// the returned [`Fixtures`] is dropped. `None` (skip) only when the whole
/// root is missing and `KSW_ALLOW_MISSING_FIXTURES=1`.
pub fn fixtures() -> Option<Fixtures> {
    let root = root_path();
    if !root.is_dir() {
        if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") {
            eprintln!(
                "fixtures missing at {}; skipped because KSW_ALLOW_MISSING_FIXTURES=1",
                root.display()
            );
            return None;
        }
        panic!(
            "fixture missing: no fixture root at {} (set KSW_FIXTURES, or run `python3 \
             testdata/pipeline all`; KSW_ALLOW_MISSING_FIXTURES=1 skips when the whole root is \
             missing)",
            root.display()
        );
    }
    let mut runs = Vec::new();
    let mut missing = Vec::new();
    for expected in expected_matrix() {
        let dir = root.join(&expected.series).join(&expected.name);
        let manifest_path = dir.join("manifest.json");
        let label = format!("{}/{}", expected.series, expected.name);
        let text = match std::fs::read_to_string(&manifest_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(label);
                continue;
            }
            Err(e) => panic!("{}: {e}", manifest_path.display()),
        };
        let manifest: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", manifest_path.display()));
        let run = Run {
            dir,
            series: expected.series.clone(),
            name: expected.name.clone(),
            manifest,
            expected,
        };
        run.check_against_matrix();
        runs.push(run);
    }
    Some(Fixtures {
        root,
        runs,
        missing,
    })
}

impl Fixtures {
    /// For each series, an unfiltered ELF vmcore that carries VMCOREINFO:
    /// the raw `/proc/vmcore` copy where a run kept one, else a QEMU ELF
    /// dump taken with `-device vmcoreinfo`. Fails if a series has none.
    pub fn unfiltered_elf_per_series(&self) -> Vec<(&Run, DumpFile)> {
        let mut out = Vec::new();
        for series in series() {
            let runs: Vec<&Run> = self
                .dump_runs()
                .into_iter()
                .filter(|r| r.series == series && r.has_vmcoreinfo())
                .collect();
            let pick = runs
                .iter()
                .find_map(|r| r.dump("vmcore.raw").map(|d| (*r, d)))
                .or_else(|| {
                    runs.iter()
                        .find_map(|r| r.dump("qemu.elf").map(|d| (*r, d)))
                });
            match pick {
                Some(p) => out.push(p),
                None if self
                    .missing
                    .iter()
                    .any(|m| m.starts_with(&format!("{series}/"))) =>
                {
                    // The Drop check names the missing fixtures.
                }
                None => panic!("{series}: no unfiltered ELF vmcore with VMCOREINFO in the matrix"),
            }
        }
        out
    }
}

/// One dump a manifest lists.
#[derive(Debug, Clone)]
pub struct DumpFile {
    pub path: PathBuf,
    pub name: String,
    pub format: String,
    pub compression: String,
    /// Who wrote it: `makedumpfile -d 31`, `cp /proc/vmcore`,
    /// `qemu dump-guest-memory`.
    pub producer: String,
}

impl DumpFile {
    /// An ELF file written by makedumpfile (`-E`): pages it filtered out
    /// are inside segments but not in the file.
    pub fn is_makedumpfile_elf(&self) -> bool {
        self.format == "elf" && self.producer.starts_with("makedumpfile")
    }

    /// An unfiltered dump: `/proc/vmcore` as is, or QEMU's ELF.
    pub fn is_unfiltered_elf(&self) -> bool {
        self.name == "vmcore.raw" || self.name == "qemu.elf"
    }
}

/// One pipeline run: `<root>/<series>/<run>/` with its manifest.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub series: String,
    pub name: String,
    pub manifest: serde_json::Value,
    pub expected: Expected,
}

impl Run {
    fn check_against_matrix(&self) {
        let label = self.label();
        let field = |k: &str| self.manifest["run"][k].as_str().map(str::to_owned);
        assert_eq!(
            field("name").as_deref(),
            Some(self.name.as_str()),
            "{label}: manifest run name"
        );
        assert_eq!(
            field("mode").as_deref(),
            Some(self.expected.mode.as_str()),
            "{label}: the manifest's mode is not the matrix's (a stale fixture?)"
        );
        let names: Vec<String> = self.dumps().into_iter().map(|d| d.name).collect();
        for want in self.expected.dump_names() {
            assert!(
                names.iter().any(|n| n == want),
                "{label}: the manifest lists no {want} (it has {names:?})"
            );
        }
        for d in self.dumps() {
            assert!(
                !d.format.is_empty() && !d.producer.is_empty(),
                "{label}: {} has no format or producer in the manifest",
                d.name
            );
        }
    }

    /// The dumps the manifest lists, by file name.
    pub fn dumps(&self) -> Vec<DumpFile> {
        let mut out = Vec::new();
        if let Some(d) = self.manifest["dumps"].as_object() {
            for (name, v) in d {
                let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
                out.push(DumpFile {
                    path: self.dir.join(name),
                    name: name.clone(),
                    format: s("format"),
                    compression: s("compression"),
                    producer: s("producer"),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The dump with this file name.
    pub fn dump(&self, name: &str) -> Option<DumpFile> {
        self.dumps().into_iter().find(|d| d.name == name)
    }

    pub fn truth(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("ground-truth").join(name))
            .unwrap_or_else(|e| panic!("{}: ground truth {name}: {e}", self.dir.display()))
    }

    pub fn has_vmcoreinfo(&self) -> bool {
        self.manifest["run"]["vmcoreinfo"].as_bool().unwrap_or(true)
    }

    pub fn mode(&self) -> &str {
        &self.expected.mode
    }

    pub fn paging(&self) -> u8 {
        self.manifest["run"]["paging"].as_u64().unwrap_or(0) as u8
    }

    pub fn cpus(&self) -> u32 {
        self.manifest["run"]["cpus"].as_u64().unwrap_or(0) as u32
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.series, self.name)
    }

    /// `--vmcoreinfo` for runs whose dumps lack VMCOREINFO: the guest's
    /// `/sys/kernel/vmcoreinfo` (address and size of the note).
    pub fn vmcoreinfo_override(&self) -> Option<PathBuf> {
        (!self.has_vmcoreinfo()).then(|| self.dir.join("ground-truth/vmcoreinfo"))
    }
}

/// Opens a dump of `run` with ksw, with `--vmcoreinfo` where it needs one.
pub fn open(run: &Run, path: &Path) -> Dump {
    let options = OpenOptions {
        vmcoreinfo_override: run.vmcoreinfo_override(),
    };
    Dump::open_with(path, &options).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `/proc/kallsyms` of the guest: vmlinux symbols only (no `[module]`),
/// name → (address, type). Names that occur twice are dropped.
pub fn ground_truth_kallsyms(run: &Run) -> HashMap<String, (u64, char)> {
    let mut map = HashMap::new();
    let mut dup = std::collections::HashSet::new();
    for line in run.truth("kallsyms").lines() {
        let mut f = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if f.next().is_some() {
            continue; // a module symbol
        }
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        let kind = kind.chars().next().unwrap_or('?');
        if map.insert(name.to_owned(), (addr, kind)).is_some() {
            dup.insert(name.to_owned());
        }
    }
    for d in dup {
        map.remove(&d);
    }
    map
}

/// `/proc/modules` of the guest: (name, size, address).
pub fn ground_truth_modules(run: &Run) -> Vec<(String, u64, u64)> {
    run.truth("modules")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let addr = u64::from_str_radix(f.last()?.trim_start_matches("0x"), 16).ok()?;
            Some((f.first()?.to_string(), f.get(1)?.parse().ok()?, addr))
        })
        .collect()
}

/// xorshift64*: deterministic, seedable, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A page for [`write_kdump`]: its PFN, its contents, and how to store it.
pub struct SyntheticPage {
    pub pfn: u64,
    pub data: Vec<u8>,
    /// makedumpfile's per-page flag: 0 (stored), 1 zlib, 2 lzo, 4 snappy,
    /// 0x20 zstd.
    pub flags: u32,
}

/// Writes a kdump-compressed (header version 6) file as makedumpfile lays
/// it out: header, sub-header with VMCOREINFO text, the two bitmaps, page
/// descriptors and page data. `present` extra PFNs are marked present in
/// RAM but excluded from the dump.
pub fn write_kdump(
    vmcoreinfo: &[u8],
    pages: &[SyntheticPage],
    excluded: &[u64],
    max_mapnr: u64,
    status: u32,
) -> Vec<u8> {
    write_kdump_version(6, vmcoreinfo, pages, excluded, max_mapnr, status)
}

/// [`write_kdump`] in an older header version: before 3 the sub-header
/// has no VMCOREINFO, before 6 no 64-bit `max_mapnr`.
pub fn write_kdump_version(
    version: i32,
    vmcoreinfo: &[u8],
    pages: &[SyntheticPage],
    excluded: &[u64],
    max_mapnr: u64,
    status: u32,
) -> Vec<u8> {
    use std::io::Write;
    const BS: usize = 4096;
    let mut out = vec![0u8; BS];
    out[..8].copy_from_slice(b"KDUMP   ");
    out[8..12].copy_from_slice(&version.to_le_bytes());
    let release = b"6.1.0-synthetic";
    out[12 + 130..12 + 130 + release.len()].copy_from_slice(release);
    out[12 + 260..12 + 266].copy_from_slice(b"x86_64");
    out[424..428].copy_from_slice(&status.to_le_bytes());
    out[428..432].copy_from_slice(&(BS as i32).to_le_bytes());
    let sub_blocks = 1 + (104 + vmcoreinfo.len()).div_ceil(BS);
    out[432..436].copy_from_slice(&(sub_blocks as i32).to_le_bytes());
    let bitmap_bytes = (max_mapnr as usize).div_ceil(8).div_ceil(BS) * BS;
    let bitmap_blocks = 2 * bitmap_bytes / BS;
    out[436..440].copy_from_slice(&(bitmap_blocks as u32).to_le_bytes());
    out[440..444].copy_from_slice(&(max_mapnr as u32).to_le_bytes());
    out[460..464].copy_from_slice(&1i32.to_le_bytes());
    // Sub-header.
    let mut sub = vec![0u8; sub_blocks * BS];
    sub[8..12].copy_from_slice(&31i32.to_le_bytes());
    let vi_off = (BS + 104) as u64;
    sub[32..40].copy_from_slice(&vi_off.to_le_bytes());
    sub[40..48].copy_from_slice(&(vmcoreinfo.len() as u64).to_le_bytes());
    sub[96..104].copy_from_slice(&max_mapnr.to_le_bytes());
    sub[104..104 + vmcoreinfo.len()].copy_from_slice(vmcoreinfo);
    out.extend_from_slice(&sub);
    // Bitmaps.
    let mut bm1 = vec![0u8; bitmap_bytes];
    let mut bm2 = vec![0u8; bitmap_bytes];
    let mut sorted: Vec<&SyntheticPage> = pages.iter().collect();
    sorted.sort_by_key(|p| p.pfn);
    for p in &sorted {
        bm1[(p.pfn / 8) as usize] |= 1 << (p.pfn % 8);
        bm2[(p.pfn / 8) as usize] |= 1 << (p.pfn % 8);
    }
    for &e in excluded {
        bm1[(e / 8) as usize] |= 1 << (e % 8);
    }
    out.extend_from_slice(&bm1);
    out.extend_from_slice(&bm2);
    // Descriptors, then data.
    let mut data_off = (out.len() + sorted.len() * 24) as u64;
    let mut descs = Vec::new();
    let mut blobs = Vec::new();
    for p in &sorted {
        let blob = match p.flags {
            0 => p.data.clone(),
            1 => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&p.data).unwrap();
                e.finish().unwrap()
            }
            2 => lzokay_native::compress(&p.data).unwrap(),
            4 => snap::raw::Encoder::new().compress_vec(&p.data).unwrap(),
            0x20 => ruzstd::encoding::compress_to_vec(
                &p.data[..],
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
            f => panic!("flag {f:#x}"),
        };
        descs.extend_from_slice(&data_off.to_le_bytes());
        descs.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        descs.extend_from_slice(&p.flags.to_le_bytes());
        descs.extend_from_slice(&0u64.to_le_bytes());
        data_off += blob.len() as u64;
        blobs.extend_from_slice(&blob);
    }
    out.extend_from_slice(&descs);
    out.extend_from_slice(&blobs);
    out
}

/// What reading an address gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Bytes(Vec<u8>),
    Excluded,
    NotInDump,
    Unmapped,
}

pub fn read(dump: &Dump, addr: u64, len: usize) -> Outcome {
    match dump.read_vec(VirtAddr(addr), len) {
        Ok(b) => Outcome::Bytes(b),
        Err(Error::Excluded(_)) => Outcome::Excluded,
        Err(Error::NotInDump(_)) => Outcome::NotInDump,
        Err(Error::Unmapped { .. }) => Outcome::Unmapped,
        Err(e) => panic!("{}: {addr:#x}: unexpected error {e}", dump.path().display()),
    }
}

/// Kernel addresses of every kind: text and data symbols, the direct map,
/// the CPUs' (vmalloc'd) stacks, module memory, and holes.
pub fn address_set(run: &Run, dump: &Dump, n: usize) -> Vec<u64> {
    let mut rng = Rng(0x5eed_0000
        ^ run
            .label()
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    let truth = ground_truth_kallsyms(run);
    let mut syms: Vec<u64> = truth
        .values()
        .filter(|(a, k)| *a >= 0xffff_ffff_8000_0000 && "TtRrDdBb".contains(*k))
        .map(|(a, _)| *a)
        .collect();
    syms.sort();
    let modules = ground_truth_modules(run);
    let page_offset = dump
        .read_u64(dump.symbol("page_offset_base").unwrap())
        .unwrap();
    let ram = dump.page_stats().present.max(1) * 4096;
    let sps: Vec<u64> = dump
        .cpus()
        .unwrap()
        .iter()
        .map(|c| c.registers.rsp())
        .collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let a = match rng.below(6) {
            0 | 1 => syms[rng.below(syms.len() as u64) as usize] + rng.below(512),
            2 => page_offset + rng.below(ram),
            3 => sps[rng.below(sps.len() as u64) as usize]
                .wrapping_sub(8192)
                .wrapping_add(rng.below(16384)),
            4 if !modules.is_empty() => {
                let (_, size, base) = &modules[rng.below(modules.len() as u64) as usize];
                base + rng.below(*size)
            }
            _ => 0xffff_0000_0000_0000 | rng.next(),
        };
        out.push(a);
    }
    out
}
