//! Shell integration: completion scripts (clap_complete) and man pages
//! (clap_mangen), generated from the flags themselves so that they never
//! drift from them. Generated copies ship in `crates/cli/doc/`, and a test
//! fails when they differ from what the current flags give.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::flags::Cli;

/// The completion script for `shell`.
pub(crate) fn completions(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ksw", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// ksw.1 as roff; with `dir`, every page written there and their names
/// listed instead.
pub(crate) fn manpages(dir: Option<&Path>) -> Result<String> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        // as generate_to() renders it: `ksw help` gets no page
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.disable_help_subcommand(true)).render(&mut out)?;
        return Ok(String::from_utf8_lossy(&out).into_owned());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    pages.sort();
    Ok(pages.join("\n") + "\n")
}
