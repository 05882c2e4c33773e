//! Command-line flags. Parsing only: no I/O happens here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Find the silent writer behind kernel stack corruption, in a crash dump
/// or on a live system.
#[derive(Debug, Parser)]
#[command(name = "ksw", version, long_about = None)]
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
    /// kstackwatch.ko, from its catch record in the dump: the line that
    /// wrote, the variable it hit, the depth. A dump without a catch gets
    /// the panic, and for a stack-protector panic the watch to run next.
    /// Exit code 0: a catch was reported; 3: the dump holds no catch (the
    /// panic report was printed); 1: an error; 2: a usage error.
    Analyze(AnalyzeArgs),
    /// Turn a function's local variable into a kstackwatch watch string.
    Resolve(ResolveArgs),
    /// Print the stack trace of a task or CPU in a dump, from its memory
    /// alone (kallsyms, BTF and ORC read out of the dump).
    Bt(BtArgs),
    /// List the tasks in a dump: pid, tgid, CPU, state, task_struct, comm.
    Tasks(DumpArgs),
    /// List the loaded modules: name, size, state, base, build ID (as
    /// /proc/modules and /sys/module/*/notes give them).
    Modules(DumpArgs),
    /// Look up symbols: an address (0x...) gives `name+off/size [module]`
    /// and, with debug files, file:line; a name gives its address.
    Sym(SymArgs),
    /// Print a C expression over kernel globals with its type, as drgn
    /// prints an object: `init_task.comm`, `jiffies`,
    /// `per_cpu(runqueues, 0).nr_running`, `*(struct task_struct *)0x...`.
    Print(PrintArgs),
    /// Show kstackwatch.ko's state on the running kernel (/proc/kcore) or
    /// in a dump: its config, the watchpoint slots and what each CPU's
    /// debug registers hold, the per-task depth table, the counters, and
    /// every catch in its ring explained as `ksw analyze` explains one.
    /// Read from memory alone: the module describes its own state.
    Live(LiveArgs),
    /// Print a shell completion script, e.g.
    /// `ksw completions bash > /usr/share/bash-completion/completions/ksw`.
    Completions(CompletionsArgs),
    /// Print ksw's man page (roff), or with --dir write one page per
    /// command there (ksw.1, ksw-analyze.1, ...).
    Manpage(ManpageArgs),
}

/// Arguments of `ksw completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Arguments of `ksw manpage`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManpageArgs {
    /// Write ksw.1 and a page per command into this directory instead.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
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

/// The debug files a command may use besides the dump.
#[derive(Debug, clap::Args)]
pub(crate) struct DebugFileArgs {
    /// The debug vmlinux of the dump's build (its -dbg package, checked by
    /// build ID): file:line, inlined functions and variables of vmlinux
    /// code, its DWARF CFI where ORC has no rule, and struct layouts when
    /// the dump's own BTF is unusable. Frames and symbols come from the
    /// dump either way.
    #[arg(long, value_name = "FILE")]
    pub(crate) vmlinux: Option<PathBuf>,
    /// A directory with the loaded modules' .ko files (.ko, .ko.xz,
    /// .ko.zst; searched recursively; repeatable), besides
    /// /lib/modules/RELEASE and the dump's own directory: each is checked
    /// by build ID against the module in memory and adds file:line to its
    /// code.
    #[arg(long, value_name = "DIR")]
    pub(crate) module_dir: Vec<PathBuf>,
    /// Where the standard places are, for the debug files found by the
    /// dump's release and build ID when --vmlinux is not given
    /// (/usr/lib/debug/boot/vmlinux-RELEASE, /usr/lib/debug/.build-id/,
    /// /usr/lib/debug/lib/modules/RELEASE/, /lib/modules/RELEASE/): an
    /// unpacked package tree, say.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub(crate) sysroot: PathBuf,
    /// Never fetch debug files: without this, a debug file found nowhere
    /// on disk is asked for by build ID from the debuginfod servers in
    /// DEBUGINFOD_URLS (cached where elfutils caches them).
    #[arg(long)]
    pub(crate) offline: bool,
}

/// Arguments of `ksw live`.
#[derive(Debug, clap::Args)]
pub(crate) struct LiveArgs {
    /// The memory to read: the running kernel's /proc/kcore, or a dump.
    #[arg(long, value_name = "FILE", default_value = "/proc/kcore")]
    pub(crate) core: PathBuf,
    /// Print JSON instead of text (with --watch, one document per line).
    #[arg(long)]
    pub(crate) json: bool,
    /// Read again every SECS seconds and redraw, like top, until Ctrl-C
    /// or until kstackwatch is unloaded.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    pub(crate) watch: Option<f64>,
    /// A file holding VMCOREINFO text (see `ksw info`).
    #[arg(long, value_name = "FILE")]
    pub(crate) vmcoreinfo: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) debug: DebugFileArgs,
}

/// A refresh interval: a positive number of seconds, at most a day.
fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

/// Arguments of `ksw bt`.
#[derive(Debug, clap::Args)]
pub(crate) struct BtArgs {
    /// The dump file (ELF vmcore, kdump-compressed, flattened) or
    /// /proc/kcore.
    pub(crate) dump: PathBuf,
    /// What CPU N ran at the crash (default: the panic CPU).
    #[arg(long, value_name = "N", conflicts_with_all = ["pid", "task", "all"])]
    pub(crate) cpu: Option<u32>,
    /// The task with this PID.
    #[arg(long, value_name = "N", conflicts_with_all = ["task", "all"])]
    pub(crate) pid: Option<i32>,
    /// The task whose task_struct is at this (hexadecimal) address.
    #[arg(long, value_name = "ADDR", conflicts_with = "all")]
    pub(crate) task: Option<String>,
    /// Every task.
    #[arg(long, conflicts_with = "catch")]
    pub(crate) all: bool,
    /// The writer at kstackwatch catch SEQ (default: the newest), from the
    /// registers in its catch record.
    #[arg(long, value_name = "SEQ", num_args = 0..=1, default_missing_value = "0",
          conflicts_with_all = ["cpu", "pid", "task"])]
    pub(crate) catch: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// A file holding VMCOREINFO text (see `ksw info`).
    #[arg(long, value_name = "FILE")]
    pub(crate) vmcoreinfo: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) debug: DebugFileArgs,
    /// Also print each vmlinux frame's parameters and locals with their
    /// values (needs --vmlinux).
    #[arg(short, long, requires = "vmlinux")]
    pub(crate) verbose: bool,
}

/// Arguments of `ksw analyze`.
#[derive(Debug, clap::Args)]
pub(crate) struct AnalyzeArgs {
    /// The dump file (any format `ksw info` reads), /proc/kcore, or a
    /// crash directory: kdump-tools' /var/crash/ or one of its STAMP
    /// directories (the newest dump there is reported).
    pub(crate) dump: PathBuf,
    /// With a crash directory: one line per dump there (release, panic,
    /// catch, writer), newest first.
    #[arg(long)]
    pub(crate) all: bool,
    /// Explain catch SEQ of kstackwatch's ring (default: the newest).
    #[arg(long, value_name = "SEQ")]
    pub(crate) catch: Option<u64>,
    /// The debug files (a catch in module code needs only its .ko).
    #[command(flatten)]
    pub(crate) debug: DebugFileArgs,
    /// A directory to look for source files in, by the tail of the path
    /// DWARF gives (repeatable).
    #[arg(long, value_name = "DIR")]
    pub(crate) source_dir: Vec<PathBuf>,
    /// Rewrite the start of source paths: OLD=NEW (repeatable), for
    /// sources moved since the build.
    #[arg(long, value_name = "OLD=NEW", value_parser = parse_source_map)]
    pub(crate) source_map: Vec<(String, String)>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// A file holding VMCOREINFO text (see `ksw info`).
    #[arg(long, value_name = "FILE")]
    pub(crate) vmcoreinfo: Option<PathBuf>,
}

fn parse_source_map(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((old, new)) if !old.is_empty() => Ok((old.to_string(), new.to_string())),
        _ => Err(format!("`{s}` is not OLD=NEW")),
    }
}

/// Arguments of `ksw sym`.
#[derive(Debug, clap::Args)]
pub(crate) struct SymArgs {
    /// The dump file or /proc/kcore.
    pub(crate) dump: PathBuf,
    /// Addresses (`0x...`, or 16 hex digits as /proc/kallsyms prints
    /// them) and symbol names.
    #[arg(required = true)]
    pub(crate) what: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// A file holding VMCOREINFO text (see `ksw info`).
    #[arg(long, value_name = "FILE")]
    pub(crate) vmcoreinfo: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) debug: DebugFileArgs,
}

/// Arguments of `ksw print`.
#[derive(Debug, clap::Args)]
pub(crate) struct PrintArgs {
    /// The dump file or /proc/kcore.
    pub(crate) dump: PathBuf,
    /// The expression: globals, `.` `->` `[i]` `*` `&`, casts to a named
    /// type (`(struct rq *)`, `(unsigned long)`), `per_cpu(VAR, CPU)`.
    pub(crate) expression: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// A file holding VMCOREINFO text (see `ksw info`).
    #[arg(long, value_name = "FILE")]
    pub(crate) vmcoreinfo: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) debug: DebugFileArgs,
}

/// Arguments of `ksw resolve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResolveArgs {
    /// The function to probe (`foo`, or an exact copy such as `foo.isra.0`).
    pub(crate) function: String,
    /// The local variable or parameter to watch, with an optional member
    /// or index path (`req.hdr.len`, `buf[8]`). Not with --canary.
    #[arg(required_unless_present_any = ["canary", "list"], conflicts_with_all = ["canary", "list"])]
    pub(crate) variable: Option<String>,
    /// Watch the function's stack-protector canary slot.
    #[arg(long, conflicts_with = "list")]
    pub(crate) canary: bool,
    /// List the function's locals and parameters and where they live.
    #[arg(long)]
    pub(crate) list: bool,
    /// The debug vmlinux (default: found for --release or the running kernel).
    #[arg(long, value_name = "PATH")]
    pub(crate) vmlinux: Option<PathBuf>,
    /// A kernel module with debug info (.ko or .ko.xz); repeatable.
    #[arg(long, value_name = "PATH")]
    pub(crate) module: Vec<PathBuf>,
    /// Look for the function in every module under this directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) module_dir: Option<PathBuf>,
    /// The kernel release to find debug files for (default: running).
    #[arg(long, value_name = "REL")]
    pub(crate) release: Option<String>,
    /// Filesystem root the standard debug paths are searched under.
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub(crate) root: PathBuf,
    /// Watch only at this recursion depth (dp=, 0 = outermost).
    #[arg(long, value_name = "N")]
    pub(crate) depth: Option<u16>,
    /// Panic the kernel on a hit (ph=1).
    #[arg(long)]
    pub(crate) panic: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
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
            &["ksw", "bt", "d", "--pid", "1"],
            &["ksw", "tasks", "d", "--json"],
            &["ksw", "live"],
            &["ksw", "live", "--core", "d", "--watch", "0.5", "--json"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn a_refresh_interval_is_a_positive_number_of_seconds() {
        for bad in ["0", "-1", "soon", "1e9"] {
            assert!(
                Cli::try_parse_from(["ksw", "live", "--watch", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_unknown_command() {
        assert!(Cli::try_parse_from(["ksw", "frobnicate"]).is_err());
    }
}
