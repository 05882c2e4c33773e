//! Criterion benchmark: open a dump, read its VMCOREINFO, and make 10,000
//! random kernel page reads (direct map, kernel image, CPU stacks), on the
//! largest fixture dump and on the largest kdump-compressed one.
//!
//! Fixtures come from `KSW_FIXTURES` (default `~/.cache/ksw/fixtures`).
//! `benches/versus_drgn.py` runs the same workload against drgn.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use ksw_vmcore::{Dump, KernelMemory, VirtAddr};

fn fixture_dumps() -> Vec<PathBuf> {
    let root = std::env::var_os("KSW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/ksw/fixtures")
        });
    let mut dumps = Vec::new();
    for series in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for run in std::fs::read_dir(series.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(run.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                // Runs without VMCOREINFO in their dumps are left out.
                if (name.starts_with("dump.") || name.starts_with("qemu.") || name == "vmcore.raw")
                    && !run.file_name().to_string_lossy().contains("novmci")
                {
                    dumps.push(f.path());
                }
            }
        }
    }
    assert!(
        !dumps.is_empty(),
        "no fixture dumps under {} (run `python3 testdata/pipeline all`)",
        root.display()
    );
    dumps.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    dumps
}

fn addresses(dump: &Dump, n: usize) -> Vec<u64> {
    let page_offset = dump
        .read_u64(dump.symbol("page_offset_base").unwrap())
        .unwrap();
    let ram = dump.page_stats().present * 4096;
    let text = dump.symbol("_stext").unwrap().0;
    let end = dump.symbol("_end").unwrap().0;
    let sps: Vec<u64> = dump
        .cpus()
        .unwrap()
        .iter()
        .map(|c| c.registers.rsp())
        .collect();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let a = match i % 4 {
                0 | 1 => page_offset + s % ram,
                2 => text + s % (end - text),
                _ => sps[(s % sps.len() as u64) as usize].wrapping_sub(s % 16384),
            };
            a & !0xfff
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dumps = fixture_dumps();
    let largest = dumps[0].clone();
    let kdump = dumps
        .iter()
        .find(|p| p.to_string_lossy().contains("kdump"))
        .cloned();
    let mut group = c.benchmark_group("vmcore");
    group.sample_size(10);
    for path in std::iter::once(largest).chain(kdump) {
        let label = path
            .strip_prefix(path.ancestors().nth(3).unwrap())
            .unwrap()
            .display()
            .to_string();
        let addrs = addresses(&Dump::open(&path).unwrap(), 10_000);
        group.bench_function(format!("open+vmcoreinfo {label}"), |b| {
            b.iter(|| {
                let d = Dump::open(&path).unwrap();
                d.require_vmcoreinfo().unwrap().page_size
            })
        });
        group.bench_function(format!("open+10k page reads {label}"), |b| {
            let mut page = vec![0u8; 4096];
            b.iter(|| {
                let d = Dump::open(&path).unwrap();
                let _ = d.require_vmcoreinfo().unwrap();
                let mut ok = 0u32;
                for &a in &addrs {
                    ok += u32::from(d.read_virt(VirtAddr(a), &mut page).is_ok());
                }
                ok
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
