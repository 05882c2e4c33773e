//! `ksw live`: kstackwatch's state on the running kernel (or in a dump),
//! once or refreshed in place. The view is
//! `ksw_analyze::report::LiveReport`; this file renders it as text tables
//! or JSON and runs the refresh loop.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use comfy_table::{Table, presets::NOTHING};
use ksw_analyze::kernel::kstackwatch::{KstackwatchState, TaskRef};
use ksw_analyze::report::{self, DebugInputs, LiveReport, SourceFinder};

use crate::analyze::{catch_headline, render_gaps_and_warnings, seconds, section};
use crate::flags::LiveArgs;
use crate::inputs::{InputPaths, with_inputs};

/// Runs `ksw live`, printing as it goes.
pub(crate) fn run(args: &LiveArgs) -> Result<ExitCode> {
    let said = RefCell::new(HashSet::new());
    let Some(interval) = args.watch else {
        let view = read(args, &said)?;
        print(&render(args, &view))?;
        return Ok(ExitCode::SUCCESS);
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    let redraw = !args.json && std::io::stdout().is_terminal();
    let mut was_loaded = false;
    loop {
        let view = match read(args, &said) {
            Ok(view) => view,
            // the module's memory may go between reading the module list
            // and reading the module: look again once
            Err(_) if was_loaded => {
                std::thread::sleep(Duration::from_millis(200));
                read(args, &said)?
            }
            Err(e) => return Err(e),
        };
        if was_loaded && !view.loaded {
            eprintln!("ksw: kstackwatch was unloaded; stopping");
            return Ok(ExitCode::SUCCESS);
        }
        was_loaded |= view.loaded;
        let mut text = render(args, &view);
        if redraw {
            // home, then clear: a redraw in place
            text = format!("\x1b[H\x1b[2J{text}");
        } else if !args.json {
            text.push('\n');
        }
        if print(&text).is_err() {
            // a closed pipe ends the watch
            return Ok(ExitCode::SUCCESS);
        }
        if stopped_within(&stop, Duration::from_secs_f64(interval)) {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// Sleeps `wait`, in short slices; true as soon as `stop` is set.
fn stopped_within(stop: &AtomicBool, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    loop {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - now));
    }
}

/// One read of everything, from a fresh open of the memory; a note about
/// the inputs is printed the first time only (`said`).
fn read(args: &LiveArgs, said: &RefCell<HashSet<String>>) -> Result<LiveReport> {
    let mut paths = InputPaths::new(&args.core, &args.vmcoreinfo, &args.debug, args.json);
    paths.said = Some(said);
    with_inputs(&paths, |inputs| {
        let debug = DebugInputs {
            vmlinux: inputs.vmlinux,
            modules: inputs.modules,
            sources: SourceFinder::new(Vec::new(), Vec::new()),
            vmlinux_hint: inputs.vmlinux_hint(),
        };
        Ok(report::build_live(inputs.model, &debug)?)
    })
}

fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn render(args: &LiveArgs, view: &LiveReport) -> String {
    if args.json {
        let json = if args.watch.is_some() {
            serde_json::to_string(view)
        } else {
            serde_json::to_string_pretty(view)
        };
        return json.unwrap_or_default() + "\n";
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "kernel {}, read from {}",
        view.release.as_deref().unwrap_or("?"),
        args.core.display()
    );
    match &view.state {
        None if view.loaded => {
            let _ = writeln!(
                o,
                "kstackwatch: loaded, its state unreadable (see WARNINGS)"
            );
        }
        None => {
            let _ = writeln!(o, "kstackwatch: not loaded");
        }
        Some(s) => render_state(&mut o, view, s),
    }
    if !view.catches.is_empty() {
        section(
            &mut o,
            &format!("CATCHES ({} in the ring)", view.catches.len()),
        );
        for c in &view.catches {
            let _ = writeln!(
                o,
                "  #{} cpu {} at {} s: {}",
                c.seq,
                c.cpu,
                seconds(c.timestamp_ns),
                catch_headline(c)
            );
        }
        let _ = writeln!(o, "  (ksw analyze --catch SEQ explains one in full)");
    }
    render_gaps_and_warnings(&mut o, &view.gaps, &view.warnings);
    o
}

fn task_name(t: &TaskRef) -> String {
    match (&t.comm, t.pid) {
        (Some(c), Some(p)) => format!("{c} (pid {p})"),
        _ => format!("task_struct {:#x} (unreadable)", t.address),
    }
}

/// A table's lines, without comfy-table's trailing blanks.
fn put(o: &mut String, t: &Table) {
    for line in t.to_string().lines() {
        let _ = writeln!(o, "{}", line.trim_end());
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header.to_vec());
    t
}

fn render_state(o: &mut String, view: &LiveReport, s: &KstackwatchState) {
    match (&s.config, &view.watch) {
        (Some(c), Some(w)) => {
            let what = if w.canary {
                "the stack canary".to_string()
            } else {
                format!("SP+{} ({} bytes)", w.sp_offset, w.len)
            };
            let _ = writeln!(
                o,
                "kstackwatch: watching `{c}`: {what} of {}+{:#x}, activation {}{}",
                w.function,
                w.func_offset,
                w.depth,
                if w.panic { ", panic on a catch" } else { "" }
            );
        }
        (Some(c), None) => {
            let _ = writeln!(o, "kstackwatch: watching `{c}`");
        }
        (None, _) => {
            let _ = writeln!(o, "kstackwatch: loaded, idle (no watch installed)");
        }
    }
    let _ = writeln!(
        o,
        "probes {}, generation {}, {} IPI(s) pending, panic_on_catch {}",
        if s.enabled { "enabled" } else { "disabled" },
        s.generation,
        s.pending_ipis,
        if s.panic_on_catch { "on" } else { "off" }
    );

    section(o, "WATCHPOINT SLOTS");
    if s.slots.is_empty() {
        let _ = writeln!(o, "  none allocated");
    } else {
        let mut t = table(&[
            "slot",
            "state",
            "address",
            "victim",
            "depth",
            "armed SP",
            "last value",
        ]);
        for w in &s.slots {
            let armed = w.busy && !w.idle;
            t.add_row(vec![
                w.index.to_string(),
                if armed {
                    "armed"
                } else if w.busy {
                    "claimed"
                } else {
                    "free"
                }
                .to_string(),
                if w.idle {
                    "(placeholder)".into()
                } else {
                    format!("{:#x}", w.address)
                },
                w.victim.as_ref().map(task_name).unwrap_or_default(),
                if armed {
                    w.depth.to_string()
                } else {
                    String::new()
                },
                if armed {
                    format!("{:#x}", w.armed_sp)
                } else {
                    String::new()
                },
                if armed {
                    format!("{:#x}", w.last_value)
                } else {
                    String::new()
                },
            ]);
        }
        put(o, &t);
    }

    if !s.cpus.is_empty() {
        section(o, "DEBUG REGISTERS (as the kernel last programmed them)");
        let mut t = table(&["cpu", "DR0", "DR1", "DR2", "DR3"]);
        for c in &s.cpus {
            let mut row = vec![c.cpu.to_string()];
            for r in &c.registers {
                let address = if r.address == s.placeholder {
                    "(placeholder)".to_string()
                } else {
                    format!("{:#x}", r.address)
                };
                row.push(match (r.enabled, r.slot) {
                    (false, _) => "-".into(),
                    (true, Some(slot)) => format!("{address} slot {slot}"),
                    (true, None) => address,
                });
            }
            t.add_row(row);
        }
        put(o, &t);
    }

    section(o, "TASKS IN THE DEPTH TABLE");
    if s.tasks.is_empty() {
        let _ = writeln!(o, "  none");
    } else {
        let mut t = table(&["task", "depth", "armed at", "slot", "SP at arming", ""]);
        for e in &s.tasks {
            t.add_row(vec![
                task_name(&e.task),
                e.depth.to_string(),
                if e.armed_depth < 0 {
                    "-".into()
                } else {
                    e.armed_depth.to_string()
                },
                e.slot.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                if e.sp == 0 {
                    "-".into()
                } else {
                    format!("{:#x}", e.sp)
                },
                if e.stale {
                    "left from an earlier config".into()
                } else {
                    String::new()
                },
            ]);
        }
        put(o, &t);
    }

    section(o, "COUNTERS");
    let mut t = table(&["counter", "value", "counter", "value", "counter", "value"]);
    for chunk in s.counters.chunks(3) {
        let mut row = Vec::new();
        for c in chunk {
            row.push(c.name.clone());
            row.push(c.value.to_string());
        }
        t.add_row(row);
    }
    put(o, &t);
}
