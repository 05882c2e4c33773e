//! Opens a dump and reads kernel pages: the Rust half of
//! `benches/versus_drgn.py`.
//!
//! `read_pages DUMP --generate N` prints N random kernel page addresses
//! (direct map, kernel text and data, the CPUs' stacks), one hex number a
//! line. `read_pages DUMP ADDRS` opens the dump, reads VMCOREINFO and then
//! one 4096-byte page at each address into memory, and prints a JSON line
//! with the times taken (open, read loop, both), how many reads succeeded
//! and a checksum of the pages read (computed after the clock stops).

use std::time::Instant;

use ksw_vmcore::{Dump, KernelMemory, VirtAddr};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dump_path), Some(what)) = (args.get(1), args.get(2)) else {
        return Err("usage: read_pages DUMP (--generate N | ADDRS)".into());
    };
    if what == "--generate" {
        let n: u64 = args.get(3).ok_or("--generate N")?.parse()?;
        let dump = Dump::open(dump_path.as_ref())?;
        let page_offset = dump.read_u64(dump.symbol("page_offset_base")?)?;
        let ram = dump.page_stats().present * 4096;
        let text = dump.symbol("_stext")?.0;
        let end = dump.symbol("_end")?.0;
        let sps: Vec<u64> = dump.cpus()?.iter().map(|c| c.registers.rsp()).collect();
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for i in 0..n {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let a = match i % 4 {
                0 | 1 => page_offset + s % ram.max(1),
                2 => text + s % (end - text),
                _ if !sps.is_empty() => {
                    sps[(s % sps.len() as u64) as usize].wrapping_sub(s % 16384)
                }
                _ => page_offset + s % ram.max(1),
            };
            println!("{:x}", a & !0xfff);
        }
        return Ok(());
    }
    let addrs: Vec<u64> = std::fs::read_to_string(what)?
        .lines()
        .filter_map(|l| u64::from_str_radix(l.trim(), 16).ok())
        .collect();
    let start = Instant::now();
    let dump = Dump::open(dump_path.as_ref())?;
    let release = dump
        .require_vmcoreinfo()?
        .osrelease
        .clone()
        .unwrap_or_default();
    let opened = Instant::now();
    // The timed loop only reads pages into memory, as the drgn side of
    // versus_drgn.py does; the checksum is computed after the clock stops.
    let mut pages = vec![0u8; addrs.len() * 4096];
    let mut read = vec![false; addrs.len()];
    for (i, &a) in addrs.iter().enumerate() {
        read[i] = dump
            .read_virt(VirtAddr(a), &mut pages[i * 4096..(i + 1) * 4096])
            .is_ok();
    }
    let done = Instant::now();
    let ok = read.iter().filter(|&&r| r).count();
    let faults = addrs.len() - ok;
    let checksum: u64 = pages
        .chunks(4096)
        .zip(&read)
        .filter(|(_, r)| **r)
        .map(|(p, _)| p.iter().map(|&b| u64::from(b)).sum::<u64>())
        .sum();
    println!(
        "{{\"release\": \"{release}\", \"open_s\": {:.6}, \"read_s\": {:.6}, \"total_s\": {:.6}, \"ok\": {ok}, \"faults\": {faults}, \"checksum\": {checksum}}}",
        (opened - start).as_secs_f64(),
        (done - opened).as_secs_f64(),
        (done - start).as_secs_f64()
    );
    Ok(())
}
