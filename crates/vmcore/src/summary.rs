//! What `ksw info` shows: a dump described as plain data.
//!
//! [`DumpSummary::collect`] gathers format, kernel identity, paging, CPUs
//! and page statistics. Parts that cannot be had (no VMCOREINFO, an
//! unreadable page) are left empty and explained in `problems`, so one
//! missing piece never hides the rest.

use serde::Serialize;

use crate::cpu::CpuState;
use crate::dump::{Dump, DumpFormat};
use crate::kdump::{Compression, PageStats};
use crate::memory::KernelMemory;

/// A description of a dump.
#[derive(Debug, Clone, Serialize)]
pub struct DumpSummary {
    /// The file.
    pub path: String,
    /// The format.
    pub format: DumpFormat,
    /// The format, in words.
    pub format_description: &'static str,
    /// Page compression (kdump-compressed formats only).
    pub compression: Option<Compression>,
    /// The kdump header version (kdump-compressed formats only).
    pub kdump_header_version: Option<i32>,
    /// makedumpfile's dump level (`-d`), where recorded.
    pub dump_level: Option<i32>,
    /// Where VMCOREINFO came from.
    pub vmcoreinfo_source: &'static str,
    /// `uname -r` of the dumped kernel.
    pub kernel_release: Option<String>,
    /// The kernel's build ID, unless known to be garbage for this release.
    pub build_id: Option<String>,
    /// True if VMCOREINFO had a build ID that was ignored because this
    /// release is known to write garbage there.
    pub build_id_ignored: bool,
    /// The KASLR offset of kernel text.
    pub kaslr_offset: Option<String>,
    /// `phys_base`.
    pub phys_base: Option<String>,
    /// Page-table levels (4 or 5).
    pub page_table_levels: Option<u8>,
    /// The physical address of the kernel's top page table.
    pub page_table_root: Option<String>,
    /// Where KASLR put the direct map of physical memory
    /// (`page_offset_base`).
    pub direct_map_base: Option<String>,
    /// Seconds since the epoch when kdump saved the crash.
    pub crash_time: Option<i64>,
    /// The dump header's timestamp (kdump-compressed), seconds since the
    /// epoch.
    pub dump_timestamp: Option<i64>,
    /// The CPU that panicked.
    pub panic_cpu: Option<u32>,
    /// Per-CPU registers.
    pub cpus: Vec<CpuSummary>,
    /// Page statistics.
    pub pages: PageStats,
    /// Problems met while opening or describing the dump.
    pub problems: Vec<String>,
}

/// One CPU in a [`DumpSummary`].
#[derive(Debug, Clone, Serialize)]
pub struct CpuSummary {
    /// CPU number.
    pub cpu: u32,
    /// `pr_pid`.
    pub pid: u32,
    /// Instruction pointer.
    pub pc: String,
    /// Stack pointer.
    pub sp: String,
    /// True for the CPU that panicked.
    pub panicked: bool,
    /// How the registers were matched to the CPU.
    pub matched_by: crate::cpu::CpuMatch,
}

impl From<&CpuState> for CpuSummary {
    fn from(s: &CpuState) -> Self {
        CpuSummary {
            cpu: s.cpu,
            pid: s.pid,
            pc: format!("{:#x}", s.registers.rip()),
            sp: format!("{:#x}", s.registers.rsp()),
            panicked: s.panicked,
            matched_by: s.matched_by,
        }
    }
}

impl DumpSummary {
    /// Describes `dump`.
    pub fn collect(dump: &Dump) -> DumpSummary {
        let mut problems: Vec<String> = dump.warnings().to_vec();
        let info = dump.vmcoreinfo();
        let kdump = dump.kdump_header();
        if info.is_none()
            && let Err(e) = dump.require_vmcoreinfo()
        {
            problems.push(e.to_string());
        }
        let release = info
            .and_then(|i| i.osrelease.clone())
            .or_else(|| kdump.map(|h| h.release.clone()).filter(|r| !r.is_empty()))
            .or_else(|| release_from_memory(dump));
        let cpus = match dump.cpus() {
            Ok(c) => c.iter().map(CpuSummary::from).collect(),
            Err(e) => {
                problems.push(format!("CPU registers: {e}"));
                Vec::new()
            }
        };
        let panic_cpu = match dump.panic_cpu() {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("panic CPU: {e}"));
                None
            }
        };
        DumpSummary {
            path: dump.path().display().to_string(),
            format: dump.format(),
            format_description: dump.format().describe(),
            compression: dump.compression(),
            kdump_header_version: kdump.map(|h| h.header_version),
            dump_level: kdump.map(|h| h.dump_level),
            vmcoreinfo_source: dump.vmcoreinfo_source(),
            kernel_release: release,
            build_id: info.and_then(|i| i.trusted_build_id().map(str::to_owned)),
            build_id_ignored: info
                .is_some_and(|i| i.build_id.is_some() && i.build_id_is_known_bad()),
            kaslr_offset: info
                .and_then(|i| i.kernel_offset)
                .map(|o| format!("{o:#x}")),
            phys_base: info
                .and_then(|i| i.number("phys_base"))
                // Signed, as the kernel prints it: KASLR may load the
                // kernel below its link address.
                .map(|p| match p {
                    p if p < 0 => format!("-{:#x}", p.unsigned_abs()),
                    p => format!("{p:#x}"),
                }),
            page_table_levels: info.map(|i| i.page_table_levels()),
            page_table_root: dump.page_table_walker().ok().map(|w| w.top().to_string()),
            direct_map_base: dump
                .symbol("page_offset_base")
                .and_then(|a| dump.read_u64(a))
                .ok()
                .map(|v| format!("{v:#x}")),
            crash_time: info.and_then(|i| i.crash_time),
            dump_timestamp: kdump.map(|h| h.timestamp).filter(|&t| t != 0),
            panic_cpu,
            cpus,
            pages: dump.page_stats(),
            problems,
        }
    }
}

/// `init_uts_ns.name.release`, read from memory when no header names the
/// release.
fn release_from_memory(dump: &Dump) -> Option<String> {
    let info = dump.vmcoreinfo()?;
    let uts = info.symbol("init_uts_ns")?;
    let name = info.offset("uts_namespace.name")?;
    // struct new_utsname: six 65-byte fields; release is the third.
    let raw = dump
        .read_vec(crate::addr::VirtAddr(uts.0 + name + 2 * 65), 65)
        .ok()?;
    let s = crate::bytes::c_str(&raw);
    (!s.is_empty()).then(|| String::from_utf8_lossy(s).into_owned())
}
