//! The report of a dump without a catch: the panic reason from the log,
//! the panic CPU's stack and, for a stack-protector panic, the function
//! whose canary failed, the arrays below its canary (an overflow runs
//! upward into it), and the kstackwatch watch that catches the writer on
//! the next run.

use serde::Serialize;

use super::{DebugInputs, Gap, annotate_trace, frame_gaps, frame_variables};
use crate::kernel::KernelModel;
use crate::locals::FrameVariable;
use crate::resolve::{ResolveRequest, VariableLocation, frame_layout, resolve};
use crate::unwind::{self, TaskTrace};
use ksw_vmcore::printk::LogRecord;

/// What a dump without a catch says.
#[derive(Debug, Clone, Serialize)]
pub struct PanicReport {
    /// The panic message, or the first Oops/BUG line.
    pub reason: Option<String>,
    /// The CPU that panicked.
    pub cpu: Option<u32>,
    /// Its stack.
    pub stack: Option<TaskTrace>,
    /// For a stack-protector panic: the function and what to do next.
    pub stack_protector: Option<StackProtector>,
}

/// A stack-protector panic, explained.
#[derive(Debug, Clone, Serialize)]
pub struct StackProtector {
    /// The function whose canary failed, as the kernel named it.
    pub function: String,
    /// Its frame in the panic CPU's stack, when found.
    pub frame: Option<usize>,
    /// That frame's parameters and locals.
    pub locals: Vec<FrameVariable>,
    /// The canary's CFA-relative offset, from the function's prologue.
    pub canary_cfa_offset: Option<i64>,
    /// Arrays below the canary, nearest first: the likely overflow.
    pub arrays_below_canary: Vec<String>,
    /// The watch that catches the writer on the next run (`ph=1`).
    pub next_watch: Option<String>,
    /// The command that gives it.
    pub next_command: String,
    /// Why no watch could be given.
    pub note: Option<String>,
}

const PANIC_PREFIX: &str = "Kernel panic - not syncing: ";
const STACK_PROTECTOR: &str = "stack-protector: Kernel stack is corrupted in: ";

/// The panic message of a log: the last "Kernel panic - not syncing"
/// line, else the first BUG/Oops line.
pub(super) fn panic_message(log: &[LogRecord]) -> Option<String> {
    log.iter()
        .rev()
        .find_map(|r| r.text.strip_prefix(PANIC_PREFIX))
        .map(|t| t.trim_end().to_string())
        .or_else(|| {
            log.iter()
                .find(|r| r.text.starts_with("BUG: ") || r.text.starts_with("Oops: "))
                .map(|r| r.text.trim_end().to_string())
        })
}

/// The function a stack-protector panic names: `foo` of
/// `foo+0x1d/0x40 [mod]`.
pub(super) fn stack_protector_function(message: &str) -> Option<String> {
    let rest = message.split(STACK_PROTECTOR).nth(1)?;
    let name = rest.split(['+', ' ']).next()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

pub(super) fn report(
    model: &KernelModel<'_>,
    debug: &DebugInputs<'_>,
    message: Option<&str>,
    gaps: &mut Vec<Gap>,
    warnings: &mut Vec<String>,
) -> PanicReport {
    let cpu = model.panic_cpu();
    let stack = cpu.and_then(|cpu| match unwind::trace_cpu(model, cpu) {
        Ok(mut t) => {
            annotate_trace(debug, &mut t, warnings);
            frame_gaps(&t, debug, gaps);
            Some(t)
        }
        Err(e) => {
            warnings.push(format!("the panic CPU's stack: {e}"));
            None
        }
    });
    if cpu.is_none() {
        warnings.push("the dump names no panic CPU".into());
    }
    let stack_protector = message.and_then(stack_protector_function).map(|f| {
        let mut sp = explain_stack_protector(debug, &f, stack.as_ref());
        if let (Some(i), Some(st)) = (sp.frame, &stack) {
            sp.locals = frame_variables(model, debug, st, i, warnings);
        }
        sp
    });
    PanicReport {
        reason: message.map(str::to_string),
        cpu,
        stack,
        stack_protector,
    }
}

fn explain_stack_protector(
    debug: &DebugInputs<'_>,
    function: &str,
    stack: Option<&TaskTrace>,
) -> StackProtector {
    let frame = stack.and_then(|s| {
        s.trace.frames.iter().position(|f| {
            f.symbol.as_ref().is_some_and(|s| {
                s.name == function || super::victim::source_name(&s.name) == function
            })
        })
    });
    let found = frame.and_then(|i| stack.map(|s| &s.trace.frames[i]));
    let module = found.and_then(|f| f.symbol.as_ref()?.module.clone());
    let file = match &module {
        None => debug.vmlinux.as_ref().map(|v| v.file),
        Some(m) => debug
            .modules
            .iter()
            .find(|d| &d.module == m)
            .map(|d| d.file()),
    };
    let next_command = format!("ksw resolve {function} --canary --panic");
    let mut out = StackProtector {
        function: function.to_string(),
        frame,
        locals: Vec::new(),
        canary_cfa_offset: None,
        arrays_below_canary: Vec::new(),
        next_watch: None,
        next_command,
        note: None,
    };
    let Some(file) = file else {
        out.note = Some(match &module {
            Some(m) => format!("the watch needs {m}.ko of the loaded build (--module-dir)"),
            None => "the watch needs the debug vmlinux of this release (--vmlinux)".into(),
        });
        return out;
    };
    let request = ResolveRequest {
        function: function.to_string(),
        variable: None,
        canary: true,
        depth: None,
        panic: true,
    };
    match resolve(&[file], &request) {
        Ok(r) => {
            out.canary_cfa_offset = Some(r.cfa_offset);
            out.next_watch = Some(r.key_value.clone());
            if let Ok(layout) = frame_layout(&[file], function) {
                let mut arrays: Vec<(i64, String)> = layout
                    .variables
                    .iter()
                    .filter(|v| v.type_name.ends_with(']'))
                    .filter(|v| matches!(v.location, VariableLocation::Stack(_)))
                    .filter_map(|v| {
                        let end = v.cfa_offset?.checked_add(i64::try_from(v.size?).ok()?)?;
                        (end <= r.cfa_offset).then(|| {
                            (
                                r.cfa_offset - end,
                                format!(
                                    "{} {} (CFA{:+}, {} bytes, {} below the canary)",
                                    v.type_name,
                                    v.name,
                                    v.cfa_offset.unwrap_or(0),
                                    v.size.unwrap_or(0),
                                    r.cfa_offset - end
                                ),
                            )
                        })
                    })
                    .collect();
                arrays.sort();
                out.arrays_below_canary = arrays.into_iter().map(|(_, t)| t).collect();
            }
        }
        Err(e) => out.note = Some(format!("{}: {e}", out.next_command)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_protector_message_names_the_function() {
        for (m, f) in [
            (
                "stack-protector: Kernel stack is corrupted in: ksw_test_canary_victim+0x5d/0x60 [kstackwatch_test]",
                Some("ksw_test_canary_victim"),
            ),
            (
                "stack-protector: Kernel stack is corrupted in: do_sys_poll",
                Some("do_sys_poll"),
            ),
            ("sysrq triggered crash", None),
        ] {
            assert_eq!(stack_protector_function(m).as_deref(), f, "{m}");
        }
    }
}
