//! `ksw bt` and `ksw tasks`: stack traces and the task list of a dump,
//! from its memory alone. The model and the unwinder are
//! `ksw_analyze::kernel` and `ksw_analyze::unwind`; this file picks what
//! the flags ask for and renders it.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use ksw_analyze::kernel::Task;
use ksw_analyze::locals::{FrameVariables, VariableValue};
use ksw_analyze::symbolize;
use ksw_analyze::unwind::{self, CallerRule, TaskTrace, TraceOrigin};

use crate::flags::{BtArgs, DumpArgs};
use crate::inputs::{InputPaths, Inputs, dump_model, open_dump, with_inputs};

/// Runs `ksw bt`.
pub(crate) fn run(args: &BtArgs) -> Result<String> {
    let paths = InputPaths::new(&args.dump, &args.vmcoreinfo, &args.debug, args.json);
    with_inputs(&paths, |inputs| traces(args, inputs))
}

fn traces(args: &BtArgs, inputs: &Inputs<'_>) -> Result<String> {
    let model = inputs.model;
    let tasks = || -> Result<Vec<Task>> {
        let (tasks, warnings) = model.tasks().context("walking the task list")?;
        for w in &warnings {
            eprintln!("ksw: warning: task list: {w}");
        }
        Ok(tasks)
    };
    let traces: Vec<TaskTrace> = if let Some(seq) = args.catch {
        let ring = ksw_analyze::report::find_catch_log(model)
            .map_err(anyhow::Error::msg)
            .context("reading kstackwatch's catch ring")?
            .context("kstackwatch is not loaded in this dump")?;
        for w in &ring.warnings {
            eprintln!("ksw: warning: {w}");
        }
        let catches = ring.catches;
        let c = if seq == 0 {
            catches.last()
        } else {
            catches.iter().find(|c| c.seq == seq)
        };
        let c = c.with_context(|| match seq {
            0 => "kstackwatch's catch ring is empty".to_string(),
            s => format!(
                "no catch {s} in the ring (it holds {:?})",
                catches.iter().map(|c| c.seq).collect::<Vec<_>>()
            ),
        })?;
        vec![unwind::trace_catch(model, c)]
    } else if args.all {
        tasks()?
            .iter()
            .map(|t| unwind::trace_task(model, t))
            .collect::<Result<_, _>>()?
    } else if let Some(pid) = args.pid {
        let t = tasks()?
            .into_iter()
            .find(|t| t.pid == pid)
            .with_context(|| format!("no task with pid {pid} (see `ksw tasks`)"))?;
        vec![unwind::trace_task(model, &t)?]
    } else if let Some(addr) = &args.task {
        let a = u64::from_str_radix(addr.trim_start_matches("0x"), 16)
            .with_context(|| format!("--task {addr}: not a hexadecimal address"))?;
        let t = tasks()?
            .into_iter()
            .find(|t| t.address == a)
            .with_context(|| format!("no task_struct at {a:#x} in the task list"))?;
        vec![unwind::trace_task(model, &t)?]
    } else {
        let cpu = match args.cpu.or_else(|| model.panic_cpu()) {
            Some(c) => c,
            None => {
                bail!("the dump names no panic CPU: choose one with --cpu, or a task with --pid")
            }
        };
        vec![unwind::trace_cpu(model, cpu)?]
    };
    let mut traces = traces;
    for t in &mut traces {
        let lines = inputs.vmlinux.map(|v| v.lines);
        for n in symbolize::annotate_all(&mut t.trace, lines, inputs.modules) {
            eprintln!("ksw: note: {n}");
        }
    }
    if let (true, Some(v)) = (args.verbose, &inputs.vmlinux) {
        let variables = FrameVariables::new(v.sections, v.kaslr)?;
        for t in &mut traces {
            variables
                .annotate(&mut t.trace, model.symbols(), model.memory())
                .context("reading the variables from the debug vmlinux")?;
        }
    }
    if args.json {
        return Ok(serde_json::to_string_pretty(&traces)? + "\n");
    }
    let mut o = String::new();
    for (i, t) in traces.iter().enumerate() {
        if i > 0 {
            o.push('\n');
        }
        render_trace(&mut o, t);
    }
    Ok(o)
}

pub(crate) fn render_trace(o: &mut String, t: &TaskTrace) {
    match &t.task {
        Some(task) => {
            let _ = write!(
                o,
                "PID: {}  TASK: {:x}  CPU: {}  COMMAND: \"{}\"",
                task.pid, task.address, task.cpu, task.comm
            );
        }
        None => {
            let _ = write!(o, "CPU: {}  (task unknown)", t.cpu.unwrap_or(0));
        }
    }
    let origin = match t.origin {
        TraceOrigin::CrashRegisters => "registers saved at the crash",
        TraceOrigin::SwitchFrame => "switched out",
        TraceOrigin::StaleSwitchFrame => {
            "RUNNING, no saved registers: its last switch-out frame, stale"
        }
        TraceOrigin::CatchRecord => "the writer, from the kstackwatch catch record",
    };
    let _ = writeln!(o, "  ({origin})");
    let _ = writeln!(o, "Call Trace:");
    let mut open: Option<String> = None;
    for f in &t.trace.frames {
        let label = f.stack.label();
        if open.as_deref() != Some(label.as_str()) {
            if let Some(prev) = &open {
                let _ = writeln!(o, " </{prev}>");
            }
            let _ = writeln!(o, " <{label}>");
            open = Some(label);
        }
        // inlined functions first, innermost first, as extra lines
        for p in f.source.iter().filter(|p| p.inlined) {
            let _ = writeln!(
                o,
                " (inlined) {}{}",
                p.function.as_deref().unwrap_or("?"),
                position(p)
            );
        }
        let at = own_position(&f.source);
        let derived = match f.caller_rule {
            CallerRule::Orc => "",
            CallerRule::DwarfCfi => "  [caller found by the vmlinux's DWARF CFI: no ORC here]",
            CallerRule::SpTracking => "  [caller found by SP tracking: no ORC here]",
            CallerRule::FramePointerGuess => {
                "  [caller GUESSED from the frame pointer: no ORC here]"
            }
        };
        match &f.symbol {
            Some(s) => {
                let _ = writeln!(o, " {s}{at}{derived}");
            }
            None => {
                let _ = writeln!(o, " {:#x}{at}{derived}", f.pc);
            }
        }
        for v in &f.variables {
            let inlined = v
                .inlined_from
                .as_ref()
                .map(|f| format!("  [inlined {f}]"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "     {} {} = {}{inlined}",
                v.type_name,
                v.name,
                value_text(&v.value)
            );
        }
    }
    if let Some(prev) = &open {
        let _ = writeln!(o, " </{prev}>");
    }
    let _ = writeln!(o, "stop: {}", t.trace.stop);
}

pub(crate) fn value_text(v: &VariableValue) -> String {
    match v {
        VariableValue::Memory {
            integer: Some(i),
            address,
            ..
        } => format!("{i:#x}  (at {address:#x})"),
        VariableValue::Memory { bytes, address, .. } => {
            // long values are cut; --json has every byte
            let shown = if bytes.len() > 64 {
                format!("{}...", &bytes[..64])
            } else {
                bytes.clone()
            };
            format!("{{{shown}}}  ({} bytes at {address:#x})", bytes.len() / 2)
        }
        VariableValue::Unreadable { address } => format!("<not in the dump: {address:#x}>"),
        VariableValue::Register { register, value } => format!("{value:#x}  (in %{register})"),
        VariableValue::InRegister { register } => format!("<in %{register}, not recovered>"),
        VariableValue::OptimizedOut => "<optimized out>".into(),
        VariableValue::NotEvaluated { form } => format!("<not evaluated: {form}>"),
    }
}

/// `  file:line` of the function's own (not inlined) position in an
/// inline chain; empty without one.
pub(crate) fn own_position(source: &[symbolize::SourcePosition]) -> String {
    source
        .iter()
        .find(|p| !p.inlined)
        .map(position)
        .unwrap_or_default()
}

fn position(p: &symbolize::SourcePosition) -> String {
    match (&p.file, p.line) {
        (Some(f), Some(l)) => format!("  {f}:{l}"),
        (Some(f), None) => format!("  {f}"),
        _ => String::new(),
    }
}

/// Runs `ksw tasks`.
pub(crate) fn run_tasks(args: &DumpArgs) -> Result<String> {
    let dump = open_dump(&args.dump, &args.vmcoreinfo)?;
    let model = dump_model(&dump)?;
    let (tasks, warnings): (Vec<Task>, _) = model.tasks().context("walking the task list")?;
    for w in &warnings {
        eprintln!("ksw: warning: task list: {w}");
    }
    if args.json {
        return Ok(serde_json::to_string_pretty(&tasks)? + "\n");
    }
    let currents = model.current_tasks();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>7} {:>7} {:>3} ST {:<16} {:<16}",
        "PID", "TGID", "CPU", "TASK", "COMM"
    );
    for t in &tasks {
        let running = currents.contains(&Some(t.address));
        let _ = writeln!(
            o,
            "{}{:>6} {:>7} {:>3} {}  {:<16x} {}",
            if running { ">" } else { " " },
            t.pid,
            t.tgid,
            t.cpu,
            t.state.letter(),
            t.address,
            t.comm
        );
    }
    Ok(o)
}
