//! `ksw info`: describe a dump. The description is
//! `ksw_vmcore::summary::DumpSummary`; this file only renders it.

use std::fmt::Write as _;

use anyhow::Result;
use ksw_vmcore::summary::DumpSummary;
use ksw_vmcore::{Dump, OpenOptions};

use crate::flags::DumpArgs;

/// Runs `ksw info`.
pub(crate) fn run(args: &DumpArgs) -> Result<String> {
    let options = OpenOptions {
        vmcoreinfo_override: args.vmcoreinfo.clone(),
    };
    let dump = Dump::open_with(&args.dump, &options)?;
    let summary = DumpSummary::collect(&dump);
    if args.json {
        Ok(serde_json::to_string_pretty(&summary)? + "\n")
    } else {
        Ok(render_text(&summary))
    }
}

fn render_text(s: &DumpSummary) -> String {
    let mut o = String::new();
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(o, "dump:              {}", s.path);
    let mut format = s.format_description.to_owned();
    if let Some(c) = s.compression {
        let _ = write!(format, ", {} pages", c.name());
    }
    if let Some(v) = s.kdump_header_version {
        let _ = write!(format, ", header version {v}");
    }
    let _ = writeln!(o, "format:            {format}");
    if let Some(l) = s.dump_level {
        let _ = writeln!(o, "dump level:        {l}");
    }
    let _ = writeln!(o, "vmcoreinfo:        {}", s.vmcoreinfo_source);
    let _ = writeln!(o, "kernel release:    {}", or_none(&s.kernel_release));
    let build = match (&s.build_id, s.build_id_ignored) {
        (Some(b), _) => b.clone(),
        (None, true) => "(ignored: this release writes a garbage BUILD-ID)".into(),
        (None, false) => "-".into(),
    };
    let _ = writeln!(o, "build ID:          {build}");
    let _ = writeln!(o, "KASLR offset:      {}", or_none(&s.kaslr_offset));
    let _ = writeln!(o, "phys_base:         {}", or_none(&s.phys_base));
    let levels = s
        .page_table_levels
        .map(|l| format!("{l}-level"))
        .unwrap_or_else(|| "-".into());
    let _ = writeln!(
        o,
        "page tables:       {levels} (root at {})",
        or_none(&s.page_table_root)
    );
    let _ = writeln!(o, "direct map:        {}", or_none(&s.direct_map_base));
    let crash = s
        .crash_time
        .map(|t| format!("{t} (unix seconds)"))
        .unwrap_or_else(|| "- (not saved by kdump)".into());
    let _ = writeln!(o, "crash time:        {crash}");
    if let Some(t) = s.dump_timestamp {
        let _ = writeln!(o, "dump written:      {t} (unix seconds)");
    }
    let panic = s
        .panic_cpu
        .map(|c| c.to_string())
        .unwrap_or_else(|| "-".into());
    let _ = writeln!(o, "panic CPU:         {panic}");
    let p = &s.pages;
    let _ = writeln!(
        o,
        "pages:             {} present, {} dumped, {} excluded",
        p.present, p.dumped, p.excluded
    );
    let _ = writeln!(o, "CPUs:              {}", s.cpus.len());
    for c in &s.cpus {
        let mark = if c.panicked { "  <- panic" } else { "" };
        let _ = writeln!(
            o,
            "  cpu {:<3} pid {:<7} pc {}  sp {}{mark}",
            c.cpu, c.pid, c.pc, c.sp
        );
    }
    for problem in &s.problems {
        let _ = writeln!(o, "warning: {problem}");
    }
    o
}
