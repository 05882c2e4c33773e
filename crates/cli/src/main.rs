//! `ksw`: the command-line front end.
//!
//! A thin layer: `flags` parses the command line, and each command calls
//! into the library crates and renders what they return. Exit codes: 0 on
//! success, 1 when a command ran but found a problem in its input, 2 on a
//! usage error, 3 when `analyze` found no catch in the dump (and printed
//! the panic's report instead).

mod analyze;
mod bt;
mod dmesg;
mod flags;
mod info;
mod inputs;
mod live;
mod modules;
mod print;
mod progress;
mod resolve;
mod shell;

use std::process::ExitCode;

use clap::Parser;

use crate::flags::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ksw: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    let text = match &command {
        Command::Analyze(args) => {
            let (text, code) = analyze::run(args)?;
            print_all(&text);
            return Ok(code);
        }
        Command::Live(args) => return live::run(args),
        Command::Info(args) => info::run(args)?,
        Command::Dmesg(args) => dmesg::run(args)?,
        Command::Resolve(args) => resolve::run(args)?,
        Command::Bt(args) => bt::run(args)?,
        Command::Tasks(args) => bt::run_tasks(args)?,
        Command::Modules(args) => modules::run_modules(args)?,
        Command::Sym(args) => modules::run_sym(args)?,
        Command::Print(args) => print::run(args)?,
        Command::Completions(args) => shell::completions(args.shell),
        Command::Manpage(args) => shell::manpages(args.dir.as_deref())?,
    };
    print_all(&text);
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to stdout; a closed pipe (`ksw dmesg | head`) is not an
/// error.
fn print_all(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
