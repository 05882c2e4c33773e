//! Whole-program questions, asked only when a direct lookup failed.
//!
//! Telling "this function exists only inlined" from "no such function"
//! needs every unit's DIEs. That is done here, in parallel over units, and
//! only after a cheap check: the name must appear in `.debug_str` at all.

use gimli::{AttributeValue, Reader as _};

use crate::dwarf::{DebugSections, Reader};
use crate::error::Result;

/// Some functions that `name` is inlined into, when it has an abstract
/// instance (`DW_AT_inline`) and no out-of-line copy. `None` when the name
/// is not a subprogram at all, or the DWARF is larger than `limit` bytes.
pub(crate) fn inlined_into(
    sections: &DebugSections<'_>,
    name: &str,
    limit: usize,
) -> Result<Option<String>> {
    if !sections.strings_contain(name) {
        return Ok(None);
    }
    if sections.debug_info_len() > limit {
        return Ok(None);
    }
    let dwarf = sections.dwarf()?;
    let mut headers = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| sections.err(e))? {
        headers.push(header);
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = headers.len().div_ceil(workers).max(1);
    let results: Vec<Result<Vec<String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = headers
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<Vec<String>> {
                    let dwarf = sections.dwarf()?;
                    let mut callers = Vec::new();
                    for header in part {
                        let unit = dwarf.unit(header.clone()).map_err(|e| sections.err(e))?;
                        scan_unit(sections, &dwarf, &unit, name, &mut callers)?;
                        if callers.len() >= 4 {
                            break;
                        }
                    }
                    Ok(callers)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(Vec::new())))
            .collect()
    });
    let mut callers = Vec::new();
    for r in results {
        callers.extend(r?);
    }
    callers.sort();
    callers.dedup();
    if callers.is_empty() {
        return Ok(None);
    }
    callers.truncate(4);
    Ok(Some(callers.join(", ")))
}

fn scan_unit(
    sections: &DebugSections<'_>,
    dwarf: &gimli::Dwarf<Reader<'_>>,
    unit: &gimli::Unit<Reader<'_>>,
    name: &str,
    callers: &mut Vec<String>,
) -> Result<()> {
    let e = |err| sections.err(err);
    let string = |value| -> Option<String> {
        dwarf
            .attr_string(unit, value)
            .ok()
            .and_then(|r| r.to_string_lossy().ok().map(|s| s.into_owned()))
    };
    // Pass 1: abstract instances named `name`.
    let mut abstracts = Vec::new();
    let mut cursor = unit.entries();
    while let Some((_, entry)) = cursor.next_dfs().map_err(e)? {
        if entry.tag() != gimli::DW_TAG_subprogram
            || entry.attr_value(gimli::DW_AT_inline).map_err(e)?.is_none()
        {
            continue;
        }
        if let Some(value) = entry.attr_value(gimli::DW_AT_name).map_err(e)? {
            if string(value).as_deref() == Some(name) {
                abstracts.push(entry.offset());
            }
        }
    }
    if abstracts.is_empty() {
        return Ok(());
    }
    // Pass 2: the top-level functions containing inlined copies of them.
    let mut cursor = unit.entries();
    let mut depth = 0isize;
    let mut current_function: Option<String> = None;
    while let Some((delta, entry)) = cursor.next_dfs().map_err(e)? {
        depth += delta;
        if depth == 1 && entry.tag() == gimli::DW_TAG_subprogram {
            current_function = entry
                .attr_value(gimli::DW_AT_name)
                .map_err(e)?
                .and_then(&string)
                .or_else(|| match entry.attr_value(gimli::DW_AT_abstract_origin) {
                    Ok(Some(AttributeValue::UnitRef(o))) => unit
                        .entry(o)
                        .ok()
                        .and_then(|d| d.attr_value(gimli::DW_AT_name).ok().flatten())
                        .and_then(&string),
                    _ => None,
                });
        }
        if entry.tag() == gimli::DW_TAG_inlined_subroutine {
            if let Some(AttributeValue::UnitRef(origin)) =
                entry.attr_value(gimli::DW_AT_abstract_origin).map_err(e)?
            {
                if abstracts.contains(&origin) {
                    if let Some(f) = &current_function {
                        if !callers.contains(f) {
                            callers.push(f.clone());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
