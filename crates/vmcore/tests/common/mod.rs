//! Shared test support: finding the pipeline's fixtures, their ground
//! truth, a small deterministic PRNG, and a writer for synthetic
//! kdump-compressed files.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ksw_vmcore::{Dump, Error, KernelMemory, VirtAddr};

/// The fixture root: `$KSW_FIXTURES`, else `~/.cache/ksw/fixtures`.
/// Returns `None` (skip) only when it is missing and
/// `KSW_ALLOW_MISSING_FIXTURES=1`; otherwise a missing root fails the test.
pub fn fixtures_root() -> Option<PathBuf> {
    let root = std::env::var_os("KSW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"));
            home.join(".cache/ksw/fixtures")
        });
    let usable = root.is_dir() && runs_under(&root).next().is_some();
    if usable {
        return Some(root);
    }
    if std::env::var("KSW_ALLOW_MISSING_FIXTURES").as_deref() == Ok("1") {
        eprintln!(
            "fixtures missing at {}; skipped because KSW_ALLOW_MISSING_FIXTURES=1",
            root.display()
        );
        return None;
    }
    panic!(
        "no fixture dumps under {} (set KSW_FIXTURES, or run `python3 testdata/pipeline all`; \
         set KSW_ALLOW_MISSING_FIXTURES=1 to skip)",
        root.display()
    );
}

/// One pipeline run: `<root>/<series>/<run>/` with its manifest.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub series: String,
    pub name: String,
    pub manifest: serde_json::Value,
}

impl Run {
    /// The dumps the manifest lists: (file, format, compression).
    pub fn dumps(&self) -> Vec<(PathBuf, String, String)> {
        let mut out = Vec::new();
        if let Some(d) = self.manifest["dumps"].as_object() {
            for (name, v) in d {
                let p = self.dir.join(name);
                out.push((
                    p,
                    v["format"].as_str().unwrap_or("").to_owned(),
                    v["compression"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
        out.sort();
        out
    }

    pub fn truth(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("ground-truth").join(name))
            .unwrap_or_else(|e| panic!("{}: ground truth {name}: {e}", self.dir.display()))
    }

    pub fn has_vmcoreinfo(&self) -> bool {
        self.manifest["run"]["vmcoreinfo"].as_bool().unwrap_or(true)
    }

    pub fn mode(&self) -> &str {
        self.manifest["run"]["mode"].as_str().unwrap_or("")
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

fn runs_under(root: &Path) -> impl Iterator<Item = Run> {
    let mut runs = Vec::new();
    let mut series: Vec<_> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    series.sort();
    for s in series {
        let mut dirs: Vec<_> = std::fs::read_dir(&s)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for d in dirs {
            let Ok(text) = std::fs::read_to_string(d.join("manifest.json")) else {
                continue;
            };
            let Ok(manifest) = serde_json::from_str(&text) else {
                continue;
            };
            runs.push(Run {
                series: s
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                name: d
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                dir: d,
                manifest,
            });
        }
    }
    runs.into_iter()
}

/// Every run that has at least one dump.
pub fn dump_runs(root: &Path) -> Vec<Run> {
    let runs: Vec<Run> = runs_under(root).filter(|r| !r.dumps().is_empty()).collect();
    assert!(
        !runs.is_empty(),
        "no runs with dumps under {}",
        root.display()
    );
    runs
}

/// Every run, with or without dumps.
pub fn all_runs(root: &Path) -> Vec<Run> {
    runs_under(root).collect()
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
