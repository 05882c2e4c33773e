//! Command-line flags. Parsing only: no I/O happens here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Find the silent writer behind kernel stack corruption, in a crash dump
/// or on a live system.
#[derive(Debug, Parser)]
#[command(name = "ksw", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The command set of ksw.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Describe a dump: format, kernel release, build ID, KASLR offset,
    /// paging, CPUs and crash time.
    Info(DumpArgs),
    /// Print the kernel log (printk ring buffer) saved in a dump.
    Dmesg(DumpArgs),
    /// Write a source-level report of a stack corruption caught by
    /// kstackwatch.ko, from its catch record in the dump.
    Analyze(DumpArgs),
    /// Turn a function's local variable into a kstackwatch watch string.
    Resolve(ResolveArgs),
    /// Print the stack trace of a task or CPU in a dump.
    Bt(DumpArgs),
    /// Inspect the running kernel through /proc/kcore.
    Live,
}

impl Command {
    /// The command's name as typed on the command line.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Info(_) => "info",
            Command::Dmesg(_) => "dmesg",
            Command::Analyze(_) => "analyze",
            Command::Resolve(_) => "resolve",
            Command::Bt(_) => "bt",
            Command::Live => "live",
        }
    }
}

/// Arguments of the commands that read a dump.
#[derive(Debug, clap::Args)]
pub(crate) struct DumpArgs {
    /// The dump file (ELF vmcore, kdump-compressed, flattened) or
    /// /proc/kcore.
    pub(crate) dump: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// A file holding VMCOREINFO text, for dumps without it (QEMU without
    /// `-device vmcoreinfo`) or to override the dump's own.
    #[arg(long, value_name = "FILE")]
    pub(crate) vmcoreinfo: Option<PathBuf>,
}

/// Arguments of `ksw resolve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResolveArgs {
    /// The function to probe.
    pub(crate) function: String,
    /// The local variable or parameter to watch, with an optional member
    /// or index path (`req.hdr.len`, `buf[8]`).
    pub(crate) variable: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_planned_command() {
        for args in [
            &["ksw", "info", "d"][..],
            &["ksw", "dmesg", "d", "--json"],
            &["ksw", "analyze", "d"],
            &["ksw", "resolve", "f", "v"],
            &["ksw", "bt", "d"],
            &["ksw", "live"],
        ] {
            let cli = Cli::try_parse_from(args).expect("planned command parses");
            assert_eq!(cli.command.name(), args[1]);
        }
    }

    #[test]
    fn rejects_unknown_command() {
        assert!(Cli::try_parse_from(["ksw", "frobnicate"]).is_err());
    }
}
