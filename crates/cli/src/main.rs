//! `ksw`: the command-line front end.
//!
//! A thin layer: `flags` parses the command line, and each command calls
//! into the library crates and renders what they return. Exit codes: 0 on
//! success, 1 when a command ran but found a problem in its input, 2 on a
//! usage error or a command this build does not provide, 3 when `analyze`
//! found no catch in the dump (and printed the panic's report instead).

mod analyze;
mod bt;
mod dmesg;
mod flags;
mod info;
mod inputs;
mod live;
mod modules;
mod print;
mod resolve;

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
    if let Command::Analyze(args) = &command {
        let (text, code) = analyze::run(args)?;
        print_all(&text);
        return Ok(code);
    }
    if let Command::Live(args) = &command {
        return live::run(args);
    }
    let output = match &command {
        Command::Info(args) => Some(info::run(args)?),
        Command::Dmesg(args) => Some(dmesg::run(args)?),
        Command::Resolve(args) => Some(resolve::run(args)?),
        Command::Bt(args) => Some(bt::run(args)?),
        Command::Tasks(args) => Some(bt::run_tasks(args)?),
        Command::Modules(args) => Some(modules::run_modules(args)?),
        Command::Sym(args) => Some(modules::run_sym(args)?),
        Command::Print(args) => Some(print::run(args)?),
        _ => None,
    };
    if let Some(text) = output {
        print_all(&text);
        return Ok(ExitCode::SUCCESS);
    }
    let name = command.name();
    // Commands land one issue at a time; until then say so plainly rather
    // than print anything that could be mistaken for an answer.
    eprintln!("ksw: `{name}` is not available in this build yet");
    Ok(ExitCode::from(2))
}

/// Writes `text` to stdout; a closed pipe (`ksw dmesg | head`) is not an
/// error.
fn print_all(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
