//! `ksw dmesg`: the kernel log saved in a dump, read through VMCOREINFO
//! alone (no vmlinux needed). The records come from
//! `ksw_vmcore::printk`; this file only renders them.

use anyhow::Result;
use ksw_vmcore::{Dump, OpenOptions};

use crate::flags::DumpArgs;

/// Runs `ksw dmesg`.
pub(crate) fn run(args: &DumpArgs) -> Result<String> {
    let options = OpenOptions {
        vmcoreinfo_override: args.vmcoreinfo.clone(),
    };
    let dump = Dump::open_with(&args.dump, &options)?;
    let records = dump.kernel_log()?;
    if args.json {
        return Ok(serde_json::to_string_pretty(&records)? + "\n");
    }
    let mut out = String::new();
    for r in &records {
        out.push_str(&r.to_dmesg_lines());
        out.push('\n');
    }
    Ok(out)
}
