//! `ksw resolve FUNC VAR`: find the debug files, ask the library for a
//! watch, and render it as a table or as JSON.
//!
//! Debug-file discovery is `ksw_analyze::locate`'s; this file turns the
//! flags into its `Search` and renders what comes back.

use std::path::PathBuf;

use anyhow::Context;
use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use ksw_analyze::locate::{self, Search};
use ksw_analyze::{
    DebugFile, ExpectedHit, FrameLayout, FrameSlot, OffStack, Resolution, ResolveRequest,
    StackLocation, VariableLocation, Watch,
};
use serde::Serialize;

use crate::flags::ResolveArgs;

/// Run the command and return what to print.
pub(crate) fn run(args: &ResolveArgs) -> anyhow::Result<String> {
    let files = open_debug_files(args)?;
    let refs: Vec<&DebugFile> = files.iter().collect();
    if args.list {
        let layout = ksw_analyze::frame_layout(&refs, &args.function)?;
        return if args.json {
            let mut text = serde_json::to_string_pretty(&LayoutJson::from(&layout))
                .context("encoding JSON")?;
            text.push('\n');
            Ok(text)
        } else {
            Ok(render_layout(&layout))
        };
    }
    let request = ResolveRequest {
        function: args.function.clone(),
        variable: args.variable.clone(),
        canary: args.canary,
        depth: args.depth,
        panic: args.panic,
    };
    let resolution = ksw_analyze::resolve(&refs, &request)?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&ResolutionJson::from(&resolution))
            .context("encoding JSON")?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(render(&resolution))
    }
}

/// The vmlinux and modules to search, found and checked by
/// `ksw_analyze::locate` from the flags.
fn open_debug_files(args: &ResolveArgs) -> anyhow::Result<Vec<DebugFile>> {
    let search = Search {
        root: args.root.clone(),
        release: args.release.clone(),
        vmlinux: args.vmlinux.clone(),
        modules: args.module.clone(),
        module_dir: args.module_dir.clone(),
    };
    Ok(locate::debug_files_for(&search, &args.function)?)
}

/// The explanation table, with both watch strings first.
fn render(r: &Resolution) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(110);
    let mut row = |key: &str, value: String| {
        table.add_row(vec![Cell::new(key), Cell::new(value)]);
    };
    row(
        "function",
        format!("{} at {:#x}", r.symbol, r.function_address),
    );
    row("unit", format!("{} ({})", r.unit, file_name(&r.object)));
    row(
        "probe",
        format!(
            "+{:#x}: {}\n{}\n{}",
            r.watch.function_offset,
            r.probe_instruction,
            r.probe_source.as_deref().unwrap_or("(no line info)"),
            r.probe_reason
        ),
    );
    row(
        "variable",
        format!("{}: {} ({} bytes)", r.variable, r.type_name, r.object_size),
    );
    row("location", stack_location_text(&r.location));
    // A realigned frame's offsets are from SP after the realignment.
    let base = match r.location.cfa_offset() {
        None => "the realigned SP",
        Some(_) => "CFA",
    };
    row(
        "watched bytes",
        format!(
            "[{}, {}) of the object, at {base}{:+}",
            r.watched_part.0, r.watched_part.1, r.cfa_offset
        ),
    );
    row(
        &format!("{base} − SP").replace("the realigned SP − SP", "realigned SP − SP"),
        format!(
            "{} after the probed instruction ({})",
            r.cfa_to_sp, r.cfa_source
        ),
    );
    row(
        "SP offset",
        format!("{} = {} {:+}", r.watch.sp_offset, r.cfa_to_sp, r.cfa_offset),
    );
    if !r.expected_hits.is_empty() {
        let hits: Vec<String> = r
            .expected_hits
            .iter()
            .map(|h| {
                format!(
                    "+{:#x} {} — {}{}",
                    h.offset,
                    h.instruction,
                    h.why,
                    h.source
                        .as_ref()
                        .map_or(String::new(), |s| format!(" ({s})"))
                )
            })
            .collect();
        row("expected hits", hits.join("\n"));
    }
    if !r.caveats.is_empty() {
        row(
            "caveats",
            r.caveats
                .iter()
                .map(|c| format!("• {c}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let positional = r
        .positional
        .clone()
        .unwrap_or_else(|| "(the positional grammar cannot say ph=1)".to_string());
    format!("{}\n{positional}\n\n{table}\n", r.key_value)
}

/// The `--list` table: every local and parameter, stack slots first.
fn render_layout(layout: &FrameLayout) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(110)
        .set_header(vec!["name", "type", "size", "CFA offset", "where"]);
    let mut variables: Vec<_> = layout.variables.iter().collect();
    variables.sort_by_key(|v| (v.cfa_offset.is_none(), v.cfa_offset));
    for v in variables {
        let mut name = v.name.clone();
        if v.parameter {
            name.push_str(" (param)");
        }
        if let Some(callee) = &v.inlined_from {
            name.push_str(&format!(" [{callee}]"));
        } else if v.in_block {
            name.push_str(" [block]");
        }
        table.add_row(vec![
            Cell::new(name),
            Cell::new(&v.type_name),
            Cell::new(v.size.map_or("?".to_string(), |s| s.to_string())),
            Cell::new(v.cfa_offset.map_or("-".to_string(), |o| format!("{o:+}"))),
            Cell::new(short_location(&v.location)),
        ]);
    }
    format!(
        "{} at {:#x} ({})\n{table}\n",
        layout.symbol, layout.function_address, layout.unit
    )
}

/// A slot as DWARF (or the prologue, for the canary) states it.
fn stack_location_text(location: &StackLocation) -> String {
    match *location {
        StackLocation::FrameBase { cfa_offset } => {
            format!("DW_OP_fbreg {cfa_offset} (CFA{cfa_offset:+})")
        }
        StackLocation::LocationList {
            cfa_offset: Some(cfa_offset),
            ..
        } => format!("location list; stack CFA{cfa_offset:+} over part of the function"),
        StackLocation::LocationList {
            sp_offset: Some(sp_offset),
            ..
        } => format!("location list; stack SP{sp_offset:+} over part of the function"),
        StackLocation::LocationList { .. } => "location list; stack".to_string(),
        StackLocation::RegisterBased {
            register,
            offset,
            cfa_offset,
        } => {
            let cfa = cfa_offset.map_or(String::new(), |c| format!(", CFA{c:+}"));
            format!(
                "DW_OP_breg{} {offset} (%{}{offset:+}{cfa})",
                register.dwarf_number(),
                register.text()
            )
        }
        StackLocation::Canary {
            cfa_offset,
            store_offset,
        } => format!("CFA{cfa_offset:+} (stored at +{store_offset:#x})"),
    }
}

/// Where a local lives, or the library's reason it is not on the stack.
fn variable_location_text(location: &VariableLocation) -> String {
    match location {
        VariableLocation::Stack(slot) => stack_location_text(slot),
        VariableLocation::NotOnStack(reason) => reason.to_string(),
    }
}

/// [`variable_location_text`], shortened for a table cell.
fn short_location(location: &VariableLocation) -> String {
    match location {
        VariableLocation::NotOnStack(OffStack::NeverInMemory { places }) => {
            // As the table always showed it: without trailing parentheses
            // (which also drops the last place's own closing one).
            format!(
                "not on the stack: {}",
                ksw_analyze::places_summary(places).trim_end_matches(')')
            )
        }
        VariableLocation::NotOnStack(OffStack::OptimisedOut | OffStack::EmptyLocationList) => {
            "optimised out".to_string()
        }
        other => variable_location_text(other),
    }
}

/// [`Resolution`] as JSON: its fields in order, the location as text.
#[derive(Serialize)]
struct ResolutionJson<'a> {
    watch: &'a Watch,
    key_value: &'a str,
    positional: Option<&'a str>,
    object: &'a str,
    symbol: &'a str,
    function_address: u64,
    unit: &'a str,
    variable: &'a str,
    type_name: &'a str,
    object_size: u64,
    watched_part: (u64, u64),
    location: String,
    cfa_offset: i64,
    cfa_to_sp: i64,
    cfa_source: &'a str,
    probe_instruction: &'a str,
    probe_source: Option<&'a str>,
    probe_reason: &'a str,
    expected_hits: &'a [ExpectedHit],
    caveats: &'a [String],
}

impl<'a> From<&'a Resolution> for ResolutionJson<'a> {
    fn from(r: &'a Resolution) -> ResolutionJson<'a> {
        ResolutionJson {
            watch: &r.watch,
            key_value: &r.key_value,
            positional: r.positional.as_deref(),
            object: &r.object,
            symbol: &r.symbol,
            function_address: r.function_address,
            unit: &r.unit,
            variable: &r.variable,
            type_name: &r.type_name,
            object_size: r.object_size,
            watched_part: r.watched_part,
            location: stack_location_text(&r.location),
            cfa_offset: r.cfa_offset,
            cfa_to_sp: r.cfa_to_sp,
            cfa_source: &r.cfa_source,
            probe_instruction: &r.probe_instruction,
            probe_source: r.probe_source.as_deref(),
            probe_reason: &r.probe_reason,
            expected_hits: &r.expected_hits,
            caveats: &r.caveats,
        }
    }
}

/// [`FrameLayout`] as JSON, each location as text.
#[derive(Serialize)]
struct LayoutJson<'a> {
    symbol: &'a str,
    function_address: u64,
    unit: &'a str,
    variables: Vec<SlotJson<'a>>,
}

/// [`FrameSlot`] as JSON.
#[derive(Serialize)]
struct SlotJson<'a> {
    name: &'a str,
    parameter: bool,
    cfa_offset: Option<i64>,
    size: Option<u64>,
    type_name: &'a str,
    location: String,
    in_block: bool,
    inlined_from: Option<&'a str>,
}

impl<'a> From<&'a FrameLayout> for LayoutJson<'a> {
    fn from(layout: &'a FrameLayout) -> LayoutJson<'a> {
        let slot = |v: &'a FrameSlot| SlotJson {
            name: &v.name,
            parameter: v.parameter,
            cfa_offset: v.cfa_offset,
            size: v.size,
            type_name: &v.type_name,
            location: variable_location_text(&v.location),
            in_block: v.in_block,
            inlined_from: v.inlined_from.as_deref(),
        };
        LayoutJson {
            symbol: &layout.symbol,
            function_address: layout.function_address,
            unit: &layout.unit,
            variables: layout.variables.iter().map(slot).collect(),
        }
    }
}

fn file_name(path: &str) -> String {
    PathBuf::from(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}
