//! `ksw analyze`: the corruption report. The report is
//! `ksw_analyze::report::Report`; this file loads the inputs, renders the
//! report as sections (comfy-table) or JSON, and picks the exit code.

use std::fmt::Write as _;
use std::process::ExitCode;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use comfy_table::{Cell, ContentArrangement, Table, presets::NOTHING};
use ksw_analyze::locals::FrameVariable;
use ksw_analyze::locate;
use ksw_analyze::report::{
    self, CatchReport, DebugInputs, Gap, PanicReport, Report, ReportOptions, Slot, SourceFinder,
    SourceLine,
};
use serde::Serialize;

use crate::bt::{own_position, render_trace, value_text};
use crate::flags::AnalyzeArgs;
use crate::inputs::{InputPaths, with_inputs};
use crate::progress::StepBar;

/// The exit code of a report that found no catch (the panic report was
/// printed): apart from 0 (a catch), 1 (an error) and 2 (usage).
pub(crate) const NO_CATCH: u8 = 3;

/// Runs `ksw analyze`; returns the output and the exit code.
pub(crate) fn run(args: &AnalyzeArgs) -> Result<(String, ExitCode)> {
    if !args.dump.is_dir() {
        if args.all {
            bail!(
                "--all takes a crash directory (such as /var/crash), and {} is not one",
                args.dump.display()
            );
        }
        return report_one(args, &args.dump);
    }
    let dumps = locate::crash_dumps(&args.dump)?;
    let Some(newest) = dumps.first() else {
        bail!(
            "no dump in {}: kdump-tools writes STAMP/dump.STAMP there, kdump a vmcore; \
             give the dump file itself if it has another name",
            args.dump.display()
        );
    };
    if args.all {
        return Ok((summarize(args, &dumps)?, ExitCode::SUCCESS));
    }
    eprintln!("ksw: note: the newest dump there: {}", newest.display());
    report_one(args, newest)
}

/// One line of `ksw analyze --all`.
#[derive(Debug, Serialize)]
struct DumpLine {
    dump: PathBuf,
    release: Option<String>,
    panic: Option<String>,
    /// The catch explained, if kstackwatch caught a write.
    catch: Option<u64>,
    /// Who wrote, as the report's headline says it.
    writer: Option<String>,
    /// Why the dump could not be read.
    error: Option<String>,
}

/// Every dump of a crash directory in one table (or JSON list); a dump
/// that cannot be read gets its error on its line.
fn summarize(args: &AnalyzeArgs, dumps: &[PathBuf]) -> Result<String> {
    let bar = StepBar::new(dumps.len() as u64, "reading the dumps", args.json);
    let lines: Vec<DumpLine> = dumps
        .iter()
        .map(|dump| (dump, build_report(args, dump)))
        .inspect(|_| bar.step())
        .map(|(dump, report)| match report {
            Ok(r) => DumpLine {
                dump: dump.clone(),
                release: r.release.clone(),
                panic: r.panic_message.clone(),
                catch: r.catch.as_ref().map(|c| c.seq),
                writer: r.catch.as_ref().map(catch_headline),
                error: None,
            },
            Err(e) => DumpLine {
                dump: dump.clone(),
                release: None,
                panic: None,
                catch: None,
                writer: None,
                error: Some(format!("{e:#}")),
            },
        })
        .collect();
    if args.json {
        return Ok(serde_json::to_string_pretty(&lines)? + "\n");
    }
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec!["DUMP", "RELEASE", "PANIC", "CATCH"]);
    for l in &lines {
        let catch = match (&l.error, l.catch, &l.writer) {
            (Some(e), _, _) => format!("cannot read: {e}"),
            (None, Some(seq), Some(w)) => format!("#{seq}: {w}"),
            _ => "no".into(),
        };
        t.add_row(vec![
            l.dump.display().to_string(),
            l.release.clone().unwrap_or_else(|| "?".into()),
            l.panic.clone().unwrap_or_else(|| "-".into()),
            catch,
        ]);
    }
    let mut o = String::new();
    for line in t.to_string().lines() {
        let _ = writeln!(o, "{}", line.trim_end());
    }
    Ok(o)
}

/// The report of one dump, rendered, and its exit code.
fn report_one(args: &AnalyzeArgs, dump: &Path) -> Result<(String, ExitCode)> {
    let report = build_report(args, dump)?;
    let code = if report.catch.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NO_CATCH)
    };
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render(&report)
    };
    Ok((text, code))
}

fn build_report(args: &AnalyzeArgs, dump: &Path) -> Result<Report> {
    let paths = InputPaths::new(dump, &args.vmcoreinfo, &args.debug, args.json);
    let sources = SourceFinder::new(args.source_dir.clone(), args.source_map.clone());
    with_inputs(&paths, move |inputs| {
        let debug = DebugInputs {
            vmlinux: inputs.vmlinux,
            modules: inputs.modules,
            sources,
            vmlinux_hint: inputs.vmlinux_hint(),
        };
        Ok(report::build(
            inputs.model,
            &debug,
            &ReportOptions { catch: args.catch },
        )?)
    })
}

pub(crate) fn section(o: &mut String, title: &str) {
    let _ = writeln!(o, "\n== {title} ==");
}

/// Two columns, no borders: the report's sections.
fn rows(o: &mut String, rows: &[(&str, String)]) {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    for (k, v) in rows {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    }
    for line in t.to_string().lines() {
        let _ = writeln!(o, "{}", line.trim_end());
    }
}

fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "kernel {}; panic: {}",
        r.release.as_deref().unwrap_or("?"),
        r.panic_message.as_deref().unwrap_or("none in the log")
    );
    match &r.catches {
        None => {
            let _ = writeln!(o, "kstackwatch: not loaded in this dump");
        }
        Some(list) => {
            let _ = writeln!(o, "kstackwatch: {} catch(es) in its ring", list.len());
            if list.len() > 1 {
                let mut t = Table::new();
                t.load_preset(NOTHING).set_header(vec![
                    "seq", "time", "cpu", "function", "address", "writer", "task",
                ]);
                for c in list {
                    t.add_row(vec![
                        c.seq.to_string(),
                        seconds(c.timestamp_ns),
                        c.cpu.to_string(),
                        c.function.clone(),
                        format!("{:#x}", c.watch_address),
                        c.writer.clone(),
                        c.writer_task.clone(),
                    ]);
                }
                let _ = writeln!(o, "{t}");
            }
        }
    }
    if let Some(c) = &r.catch {
        render_catch(&mut o, c);
    }
    if let Some(p) = &r.panic {
        render_panic(&mut o, p);
    }
    render_gaps_and_warnings(&mut o, &r.gaps, &r.warnings);
    o
}

/// The closing sections of a report: what debug info it lacked, and its
/// warnings.
pub(crate) fn render_gaps_and_warnings(o: &mut String, gaps: &[Gap], warnings: &[String]) {
    if !gaps.is_empty() {
        section(o, "MISSING DEBUG INFO");
        for g in gaps {
            let _ = writeln!(o, "  {}: needs {}", g.what, g.wanted);
        }
    }
    if !warnings.is_empty() {
        section(o, "WARNINGS");
        for w in warnings {
            let _ = writeln!(o, "  {w}");
        }
    }
}

pub(crate) fn seconds(ns: u64) -> String {
    format!("{}.{:06}", ns / 1_000_000_000, ns % 1_000_000_000 / 1000)
}

fn source_rows(lines: &[SourceLine]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let at = match (&l.file, l.line) {
            (Some(f), Some(n)) => format!("{f}:{n}"),
            (Some(f), None) => f.clone(),
            _ => "?".into(),
        };
        let what = if l.inlined { "inlined in" } else { "called in" };
        let label = if i == 0 { "line" } else { what };
        let func = l.function.as_deref().unwrap_or("?");
        out.push((label, format!("{at}  ({func})")));
        if let Some(t) = &l.text {
            out.push(("", format!("| {}", t.trim())));
        }
    }
    out
}

fn render_catch(o: &mut String, c: &CatchReport) {
    let mut flags = Vec::new();
    if c.canary {
        flags.push("canary watch");
    }
    if c.self_write {
        flags.push("written by the victim itself");
    }
    if c.panicked {
        flags.push("the module panicked");
    }
    section(
        o,
        &format!(
            "CATCH {} (cpu {}, {} s{}{})",
            c.seq,
            c.cpu,
            seconds(c.timestamp_ns),
            if flags.is_empty() { "" } else { ", " },
            flags.join(", ")
        ),
    );
    let _ = writeln!(o, "{}", catch_headline(c));
    let w = &c.writer;
    let v = &c.victim;
    let _ = writeln!(o, "watch: {}", c.config);

    section(o, "WRITER");
    let mut wr: Vec<(&str, String)> = vec![(
        "task",
        format!("{} (pid {}), task_struct {:#x}", w.comm, w.pid, w.task),
    )];
    match &w.store {
        Some(s) => {
            wr.push((
                "store",
                format!(
                    "{:#x} {}  {}",
                    s.address,
                    s.symbol.as_deref().unwrap_or("?"),
                    s.text
                ),
            ));
            if let Some(to) = s.writes_to {
                let same = if to == v.address {
                    " (the watched address)"
                } else {
                    ""
                };
                wr.push(("writes to", format!("{to:#x}{same}")));
            }
        }
        None => wr.push(("trap ip", format!("{:#x} (store not found)", w.trap_ip))),
    }
    match (&w.function, &w.symbol) {
        (Some(f), Some(s)) if f != s => wr.push(("function", format!("{f} (symbol {s})"))),
        (Some(f), _) => wr.push(("function", f.clone())),
        (None, Some(s)) => wr.push(("function", format!("{s} (no DWARF)"))),
        (None, None) => {}
    }
    wr.extend(source_rows(&w.source));
    if let Some(p) = &w.through {
        let target = if p.value == v.address {
            format!(" = &{}", victim_name(c))
        } else {
            String::new()
        };
        wr.push((
            "through",
            format!(
                "{} ({}) in {}: {:#x}{target}",
                p.name, p.type_name, p.held_in, p.value
            ),
        ));
    }
    rows(o, &wr);

    section(o, "VICTIM");
    let mut vr: Vec<(&str, String)> = vec![(
        "task",
        format!("{} (pid {}), task_struct {:#x}", v.comm, v.pid, v.task),
    )];
    if let (Some(i), Some(st)) = (v.frame, &v.stack) {
        let f = &st.trace.frames[i];
        let sym = f
            .symbol
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("{:#x}", f.pc));
        let at = own_position(&f.source);
        vr.push(("frame", format!("#{i} {sym}{at}")));
    }
    let slot = match &v.slot {
        Slot::Variable {
            path,
            type_name,
            part_type,
            cfa_offset,
            parameter,
            decl_line,
        } => {
            let part = part_type
                .as_ref()
                .filter(|t| *t != type_name)
                .map(|t| format!(", element {t}"))
                .unwrap_or_default();
            let kind = if *parameter { "parameter" } else { "local" };
            let decl = decl_line
                .map(|l| format!(", declared on line {l}"))
                .unwrap_or_default();
            format!("{path}: {kind} {type_name}{part} at CFA{cfa_offset:+}{decl}")
        }
        Slot::Canary { cfa_offset } => format!("the stack-protector canary at CFA{cfa_offset:+}"),
        Slot::ReturnAddress => "the return address".into(),
        Slot::Unnamed { cfa_offset, why } => format!("CFA{cfa_offset:+}: {why}"),
        Slot::NotInAFrame { why } => why.clone(),
    };
    vr.push(("slot", slot));
    vr.push(("address", format!("{:#x}, {} bytes", v.address, v.len)));
    let value = |x: &report::Value| match &x.decoded {
        Some(d) => format!("{:#x}  {d}", x.raw),
        None => format!("{:#x}", x.raw),
    };
    vr.push(("before", value(&v.old_value)));
    vr.push(("after", value(&v.new_value)));
    rows(o, &vr);
    if !v.locals.is_empty() {
        let _ = writeln!(o, "  the frame's variables now:");
        render_locals(o, &v.locals);
    }

    section(o, "DEPTH");
    let d = &c.depth;
    let mut dr = vec![("recorded", d.recorded.to_string())];
    if let Some(n) = d.activations {
        dr.push((
            "on the stack",
            match d.frame_depth {
                Some(f) => format!("activation {f} (from the outermost) of {n}"),
                None => format!("{n} activation(s); none holds the watched address"),
            },
        ));
    }
    dr.push(("armed SP", format!("{:#x}", d.armed_sp)));
    if let Some(sp) = d.unwound_sp {
        let mark = if sp == d.armed_sp {
            " (agrees)"
        } else {
            " (DISAGREES)"
        };
        dr.push(("unwound SP", format!("{sp:#x}{mark}")));
    }
    rows(o, &dr);

    if let Some(rc) = &c.resolve {
        section(o, "THE LOOP");
        let mut lr = vec![("command", rc.command.clone())];
        if let Some(p) = &rc.produced {
            lr.push(("gives", p.clone()));
        }
        lr.push((
            "same watch",
            if rc.same_watch {
                "yes".to_string()
            } else {
                "no".to_string()
            },
        ));
        if let Some(n) = &rc.note {
            lr.push(("note", n.clone()));
        }
        rows(o, &lr);
    }

    section(o, "WRITER STACK");
    render_trace(o, &w.stack);
    if let Some(st) = &v.stack {
        section(o, "VICTIM STACK");
        render_trace(o, st);
    }
}

/// The watched slot's name: `func's path`, its canary or return address.
fn victim_name(c: &CatchReport) -> String {
    let v = &c.victim;
    match &v.slot {
        Slot::Variable { path, .. } => format!(
            "{}'s {path}",
            v.function.as_deref().unwrap_or("the victim frame")
        ),
        Slot::Canary { .. } => format!(
            "{}'s stack canary",
            v.function.as_deref().unwrap_or("the victim frame")
        ),
        Slot::ReturnAddress => format!(
            "{}'s return address",
            v.function.as_deref().unwrap_or("the victim frame")
        ),
        _ => format!("{:#x}", v.address),
    }
}

/// One sentence: who wrote what over which variable of which task.
pub(crate) fn catch_headline(c: &CatchReport) -> String {
    let w = &c.writer;
    let v = &c.victim;
    let victim_name = victim_name(c);
    let writer_func = w
        .function
        .clone()
        .or_else(|| w.symbol.clone())
        .unwrap_or_else(|| format!("{:#x}", w.trap_ip));
    let line = w
        .source
        .first()
        .and_then(|l| Some(format!("{}:{}", l.file.as_deref()?, l.line?)))
        .unwrap_or_else(|| "an unknown line".into());
    format!(
        "{writer_func} ({line}) wrote {:#x} over {:#x} in {victim_name}, {} (pid {}), depth {}",
        v.new_value.raw, v.old_value.raw, v.comm, v.pid, c.depth.recorded
    )
}

fn render_locals(o: &mut String, vars: &[FrameVariable]) {
    for v in vars {
        let _ = writeln!(
            o,
            "     {} {} = {}",
            v.type_name,
            v.name,
            value_text(&v.value)
        );
    }
}

fn render_panic(o: &mut String, p: &PanicReport) {
    section(o, "NO CATCH: THE PANIC");
    let mut pr = vec![(
        "reason",
        p.reason
            .clone()
            .unwrap_or_else(|| "no panic message in the log".into()),
    )];
    if let Some(c) = p.cpu {
        pr.push(("cpu", c.to_string()));
    }
    rows(o, &pr);
    if let Some(sp) = &p.stack_protector {
        section(o, "STACK PROTECTOR");
        let mut sr = vec![("function", sp.function.clone())];
        if let Some(off) = sp.canary_cfa_offset {
            sr.push(("canary", format!("at CFA{off:+}")));
        }
        for (i, a) in sp.arrays_below_canary.iter().enumerate() {
            sr.push((
                if i == 0 {
                    "likely overflow"
                } else {
                    "also below"
                },
                a.clone(),
            ));
        }
        if let Some(w) = &sp.next_watch {
            sr.push(("next run", format!("echo '{w}' > /proc/kstackwatch")));
        }
        sr.push(("from", sp.next_command.clone()));
        if let Some(n) = &sp.note {
            sr.push(("note", n.clone()));
        }
        rows(o, &sr);
        if !sp.locals.is_empty() {
            let _ = writeln!(o, "  the frame's variables:");
            render_locals(o, &sp.locals);
        }
    }
    if let Some(st) = &p.stack {
        section(o, "PANIC CPU STACK");
        render_trace(o, st);
    }
}
