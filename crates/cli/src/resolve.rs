//! `ksw resolve FUNC VAR`: find the debug files, ask the library for a
//! watch, and render it as a table or as JSON.
//!
//! Debug-file discovery happens here (the CLI edge) through
//! `ksw_analyze::locate`; the library only ever gets paths.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use ksw_analyze::locate::{self, Expected};
use ksw_analyze::{DebugFile, ElfImage, FrameLayout, Resolution, ResolveRequest};

use crate::flags::ResolveArgs;

/// Run the command and return what to print.
pub(crate) fn run(args: &ResolveArgs) -> anyhow::Result<String> {
    let files = open_debug_files(args)?;
    let refs: Vec<&DebugFile> = files.iter().collect();
    if args.list {
        let layout = ksw_analyze::frame_layout(&refs, &args.function)?;
        return if args.json {
            let mut text = serde_json::to_string_pretty(&layout).context("encoding JSON")?;
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
        let mut text = serde_json::to_string_pretty(&resolution).context("encoding JSON")?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(render(&resolution))
    }
}

/// The vmlinux and modules to search, checked against the kernel asked for.
fn open_debug_files(args: &ResolveArgs) -> anyhow::Result<Vec<DebugFile>> {
    let explicit_release = args.release.is_some();
    let expected = match &args.release {
        Some(release) => Expected {
            release: Some(release.clone()),
            build_id: None,
        },
        None if args.vmlinux.is_none() && args.module.is_empty() && args.module_dir.is_none() => {
            locate::running_kernel()
        }
        None => Expected::default(),
    };
    let mut files = Vec::new();
    let vmlinux_path = match &args.vmlinux {
        Some(path) => Some(path.clone()),
        None if args.module.is_empty() && args.module_dir.is_none() => {
            Some(locate::find_vmlinux(&args.root, &expected)?)
        }
        None if explicit_release => locate::find_vmlinux(&args.root, &expected).ok(),
        None => None,
    };
    let mut module_release = expected.release.clone();
    let mut in_vmlinux = false;
    if let Some(path) = vmlinux_path {
        let file = DebugFile::open(&path)?;
        {
            let image = ElfImage::parse(&file)?;
            locate::check_vmlinux(&image, &expected)?;
            module_release = module_release.or_else(|| image.kernel_release());
        }
        in_vmlinux = defines(&file, &args.function);
        files.push(file);
    }
    // Not in vmlinux and no module named: look through the release's
    // standard module directories (debug copies first) for the modules
    // that define it.
    if !in_vmlinux && args.module.is_empty() && args.module_dir.is_none() {
        if let Some(release) = &module_release {
            let mut seen = Vec::new();
            for dir in locate::module_dirs(&args.root, release) {
                for path in locate::module_files(&dir) {
                    let stem = module_stem(&path);
                    if seen.contains(&stem) {
                        continue;
                    }
                    let Ok(file) = locate::open(&path) else {
                        continue;
                    };
                    if defines(&file, &args.function) {
                        locate::check_module(&ElfImage::parse(&file)?, release)?;
                        seen.push(stem);
                        files.push(file);
                    }
                }
            }
        }
    }
    for path in &args.module {
        files.push(open_module(path, expected.release.as_deref())?);
    }
    if let Some(dir) = &args.module_dir {
        let mut searched = 0;
        for path in locate::module_files(dir) {
            searched += 1;
            let file = locate::open(&path)?;
            if defines(&file, &args.function) {
                if let Some(release) = &expected.release {
                    locate::check_module(&ElfImage::parse(&file)?, release)?;
                }
                files.push(file);
            }
        }
        if searched == 0 {
            bail!("no .ko or .ko.xz files under {}", dir.display());
        }
        if files.is_empty() {
            bail!(
                "none of the {searched} modules under {} defines `{}`",
                dir.display(),
                args.function
            );
        }
    }
    if files.is_empty() {
        bail!(
            "no debug files: pass --vmlinux, --module or --module-dir, or --release \
             with the -dbg package installed"
        );
    }
    Ok(files)
}

fn open_module(path: &Path, release: Option<&str>) -> anyhow::Result<DebugFile> {
    let file = locate::open(path)?;
    if let Some(release) = release {
        locate::check_module(&ElfImage::parse(&file)?, release)?;
    }
    Ok(file)
}

/// `ext4` for `.../ext4.ko` and `.../ext4.ko.xz`.
fn module_stem(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.trim_end_matches(".xz")
        .trim_end_matches(".ko")
        .replace('-', "_")
}

/// Whether a module defines a function called `name` or a copy of it.
fn defines(file: &DebugFile, name: &str) -> bool {
    let Ok(image) = ElfImage::parse(file) else {
        return false;
    };
    !image
        .function_symbols(|n| {
            n == name || (n.starts_with(name) && n.as_bytes().get(name.len()) == Some(&b'.'))
        })
        .is_empty()
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
    row("location", r.location.clone());
    row(
        "watched bytes",
        format!(
            "[{}, {}) of the object, at CFA{:+}",
            r.watched_part.0, r.watched_part.1, r.cfa_offset
        ),
    );
    row(
        "CFA − SP",
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

/// The library's reasons, shortened for a table cell.
fn short_location(text: &str) -> String {
    if let Some(inner) = text.strip_prefix("it never lives in stack memory (register-only: ") {
        return format!("not on the stack: {}", inner.trim_end_matches(')'));
    }
    if let Some(rest) = text.strip_prefix("it is optimised out") {
        return format!("optimised out{}", rest.split(':').next().unwrap_or(""));
    }
    text.to_string()
}

fn file_name(path: &str) -> String {
    PathBuf::from(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}
