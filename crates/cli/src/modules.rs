//! `ksw modules` and `ksw sym`: the loaded modules, and symbol lookups
//! both ways, on a dump or on /proc/kcore, from memory alone (kallsyms,
//! module symbol tables, section attributes); `sym` adds file:line when
//! the debug files are given.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use ksw_analyze::kernel::{KernelModel, Module, modules};
use ksw_analyze::locate::hex;
use ksw_analyze::symbolize;
use ksw_analyze::unwind::{Frame, Trace};
use serde::Serialize;

use crate::flags::{DumpArgs, SymArgs};
use crate::inputs::{InputPaths, dump_model, open_dump, with_inputs};

/// One module, as `ksw modules` lists it.
#[derive(Debug, Serialize)]
struct ModuleLine {
    name: String,
    /// Where its code starts (what /proc/modules prints).
    base: u64,
    /// Bytes it takes, as /proc/modules counts them.
    size: u64,
    state: ksw_analyze::kernel::ModuleState,
    /// Its GNU build ID, read from its `.note.gnu.build-id` in memory.
    build_id: Option<String>,
    /// `struct module`.
    address: u64,
}

fn line(model: &KernelModel<'_>, m: &Module) -> ModuleLine {
    // /proc/modules: 6.1's core_layout, 6.4+'s sum of mem[] (whose init
    // parts are zeroed once init is done); the code's start
    let size = m
        .regions
        .iter()
        .filter(|r| r.name != "init")
        .map(|r| r.size)
        .sum();
    let base = m
        .regions
        .iter()
        .find(|r| r.name == "core" || r.name == "text")
        .map_or(0, |r| r.base);
    let build_id = modules::sections(model.memory(), &model.layout().module, m)
        .ok()
        .and_then(|s| modules::build_id(model.memory(), &s))
        .map(|id| hex(&id));
    ModuleLine {
        name: m.name.clone(),
        base,
        size,
        state: m.state,
        build_id,
        address: m.address,
    }
}

/// Runs `ksw modules`.
pub(crate) fn run_modules(args: &DumpArgs) -> Result<String> {
    let dump = open_dump(&args.dump, &args.vmcoreinfo)?;
    let model = dump_model(&dump)?;
    let lines: Vec<ModuleLine> = model.modules().iter().map(|m| line(&model, m)).collect();
    if args.json {
        return Ok(serde_json::to_string_pretty(&lines)? + "\n");
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<24} {:>8} {:<9} {:<16} BUILD ID",
        "NAME", "SIZE", "STATE", "BASE"
    );
    for l in &lines {
        let state = serde_json::to_value(l.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{:?}", l.state));
        let _ = writeln!(
            o,
            "{:<24} {:>8} {:<9} {:<16x} {}",
            l.name,
            l.size,
            state,
            l.base,
            l.build_id.as_deref().unwrap_or("-")
        );
    }
    Ok(o)
}

/// One answer of `ksw sym`.
#[derive(Debug, Serialize)]
struct SymLine {
    /// What was asked.
    query: String,
    /// The address (asked, or found).
    address: Option<u64>,
    /// `name+off/size [module]`.
    symbol: Option<String>,
    /// The symbol's name and module, for a name lookup.
    name: Option<String>,
    module: Option<String>,
    /// Source positions, innermost first, with debug files.
    source: Vec<symbolize::SourcePosition>,
}

/// An address: `0x` and hex digits, or 16 hex digits as kallsyms prints.
fn parse_address(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| (s.len() == 16).then_some(s))?;
    u64::from_str_radix(digits, 16).ok()
}

/// Runs `ksw sym`.
pub(crate) fn run_sym(args: &SymArgs) -> Result<String> {
    let paths = InputPaths::new(&args.dump, &args.vmcoreinfo, &args.debug, args.json);
    with_inputs(&paths, |inputs| {
        let model = inputs.model;
        let mut out = Vec::new();
        for q in &args.what {
            let line = match parse_address(q) {
                Some(a) => {
                    let hit = model.symbols().lookup(a);
                    SymLine {
                        query: q.clone(),
                        address: Some(a),
                        symbol: hit.as_ref().map(|h| h.to_string()),
                        name: hit.as_ref().map(|h| h.name.clone()),
                        module: hit.and_then(|h| h.module),
                        source: Vec::new(),
                    }
                }
                None => {
                    let Some(a) = model.symbols().address_of(q) else {
                        if args.what.len() == 1 {
                            bail!("no symbol `{q}` in the kernel's or the modules' symbol tables");
                        }
                        out.push(SymLine {
                            query: q.clone(),
                            address: None,
                            symbol: None,
                            name: None,
                            module: None,
                            source: Vec::new(),
                        });
                        continue;
                    };
                    let hit = model.symbols().lookup(a);
                    SymLine {
                        query: q.clone(),
                        address: Some(a),
                        symbol: hit.as_ref().map(|h| h.to_string()),
                        name: Some(q.clone()),
                        module: hit.and_then(|h| h.module),
                        source: Vec::new(),
                    }
                }
            };
            out.push(line);
        }
        // file:line: the addresses as exact frames of one trace
        let mut trace = Trace {
            frames: out
                .iter()
                .map(|l| {
                    Frame::at(
                        l.address.unwrap_or(0),
                        model.symbols().lookup(l.address.unwrap_or(0)),
                    )
                })
                .collect(),
            stop: ksw_analyze::unwind::StopReason::EndOfStack,
        };
        let lines = inputs.vmlinux.map(|v| v.lines);
        for n in symbolize::annotate_all(&mut trace, lines, inputs.modules) {
            eprintln!("ksw: note: {n}");
        }
        for (l, f) in out.iter_mut().zip(trace.frames) {
            l.source = f.source;
        }
        if args.json {
            return Ok(serde_json::to_string_pretty(&out)? + "\n");
        }
        let mut o = String::new();
        for l in &out {
            let at = crate::bt::own_position(&l.source);
            match (l.address, &l.symbol) {
                (Some(a), Some(s)) => {
                    let _ = writeln!(o, "{a:016x} {s}{at}");
                }
                (Some(a), None) => {
                    let _ = writeln!(o, "{a:016x} (no symbol)");
                }
                (None, _) => {
                    let _ = writeln!(o, "{}: no such symbol", l.query);
                }
            }
        }
        Ok(o)
    })
}
