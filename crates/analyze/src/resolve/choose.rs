//! Choosing what a name refers to: the function symbol among its
//! compiler-made copies and same-named statics in every debug file, and
//! the variable among a function's locals, parameters and inlined locals;
//! with near-name suggestions when nothing matches.

use super::frame::{FrameRegs, stack_slot};
use crate::dwarf::{self, DebugInfo, DebugSections, Variable};
use crate::elf::{ElfImage, FunctionSymbol};
use crate::error::{Candidate, Error, Result};

/// The variable called `name` in `function`: its own local or parameter
/// first, then one of an inlined callee; ambiguity is an error unless only
/// one candidate has a stack slot.
pub(super) fn variable<'v>(
    function: &'v dwarf::Function,
    name: &str,
    regs: &FrameRegs<'_>,
) -> Result<&'v Variable> {
    let own: Vec<&Variable> = function
        .variables
        .iter()
        .filter(|v| v.name == name && v.inlined_from.is_none())
        .collect();
    let matches = if own.is_empty() {
        function
            .variables
            .iter()
            .filter(|v| v.name == name)
            .collect()
    } else {
        own
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut names: Vec<String> =
                function.variables.iter().map(|v| v.name.clone()).collect();
            names.sort();
            names.dedup();
            let mut suggestions = nearest(name, names.iter().map(String::as_str), 6);
            if suggestions.is_empty() && names.len() <= 8 {
                // Nothing close: a short function's whole list helps more.
                suggestions = names;
            }
            Err(Error::UnknownVariable {
                function: function.name.clone(),
                name: name.to_string(),
                suggestions,
            })
        }
        many => {
            // The same declaration seen twice (a concrete and an inlined
            // copy with one location) is not an ambiguity.
            let first = many[0];
            if many
                .iter()
                .all(|v| v.location == first.location && v.decl_line == first.decl_line)
            {
                return Ok(first);
            }
            // Only one of them has a stack slot: that is the one to watch.
            let on_stack: Vec<&&Variable> = many
                .iter()
                .filter(|v| stack_slot(function, v, regs).is_ok())
                .collect();
            if let [only] = on_stack.as_slice() {
                return Ok(only);
            }
            Err(Error::AmbiguousVariable {
                function: function.name.clone(),
                name: name.to_string(),
                places: many
                    .iter()
                    .map(|v| {
                        format!(
                            "declared at line {}{}{}",
                            v.decl_line.map_or("?".into(), |l| l.to_string()),
                            v.inlined_from
                                .as_ref()
                                .map_or(String::new(), |c| format!(", inlined from {c}")),
                            if v.block_ranges.is_some() {
                                ", in a block"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect(),
            })
        }
    }
}

/// Names near `name`: by edit distance, and those containing it.
pub(super) fn nearest<'a>(
    name: &str,
    names: impl Iterator<Item = &'a str>,
    limit: usize,
) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = names
        .filter(|n| *n != name)
        .filter_map(|n| {
            let d = edit_distance(name, n);
            let close = d <= (name.len() / 3).max(2) || (name.len() >= 4 && n.contains(name));
            close.then_some((d, n))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(limit)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a = a.as_bytes();
    let b = b.as_bytes();
    if a.len().abs_diff(b.len()) > 8 {
        return usize::MAX / 2;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current[j + 1] = (previous[j] + cost)
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// GCC's suffixes for function copies: the part after the first `.`.
fn is_copy_of(symbol: &str, name: &str) -> bool {
    symbol.len() > name.len() + 1
        && symbol.starts_with(name)
        && symbol.as_bytes()[name.len()] == b'.'
}

/// The function symbol `name` refers to, in which image, with caveats
/// about copies and cold parts.
pub(super) fn function<'i, 'f>(
    images: &'i [ElfImage<'f>],
    name: &str,
) -> Result<(&'i ElfImage<'f>, FunctionSymbol<'f>, Vec<String>)> {
    let mut found: Vec<(usize, FunctionSymbol<'f>)> = Vec::new();
    for (index, image) in images.iter().enumerate() {
        for symbol in image.function_symbols(|n| n == name || is_copy_of(n, name)) {
            if !found
                .iter()
                .any(|(i, s)| *i == index && s.address == symbol.address)
            {
                found.push((index, symbol));
            }
        }
    }
    let mut caveats = Vec::new();
    let exact: Vec<&(usize, FunctionSymbol<'f>)> =
        found.iter().filter(|(_, s)| s.name == name).collect();
    let cold = |s: &FunctionSymbol<'_>| s.name.ends_with(".cold") || s.name.contains(".cold.");
    let callable: Vec<&(usize, FunctionSymbol<'f>)> =
        found.iter().filter(|(_, s)| !cold(s)).collect();
    let candidates = |list: &[&(usize, FunctionSymbol<'f>)]| -> Vec<Candidate> {
        list.iter()
            .map(|(i, s)| Candidate {
                symbol: s.name.to_string(),
                address: s.address,
                defined_in: unit_name_for(&images[*i], s.address),
                note: if cold(s) {
                    "cold part: not an entry point".into()
                } else if s.name == name {
                    if s.local {
                        "static".into()
                    } else {
                        "global".into()
                    }
                } else {
                    "compiler-made copy (parameters may differ)".into()
                },
            })
            .collect()
    };
    let chosen = if exact.len() == 1 && callable.len() == 1 {
        exact[0]
    } else if exact.is_empty() && callable.len() == 1 {
        let only = callable[0];
        caveats.push(format!(
            "`{name}` exists only as the compiler-made copy `{}`; the probe is on that copy",
            only.1.name
        ));
        only
    } else if callable.len() > 1 || exact.len() > 1 {
        let all: Vec<&(usize, FunctionSymbol<'f>)> = found.iter().collect();
        return Err(Error::AmbiguousFunction {
            name: name.to_string(),
            candidates: candidates(&all),
        });
    } else {
        // No callable copy: inlined everywhere, only a cold part, or unknown.
        if let Some(callers) = inlined_callers(images, name)? {
            return Err(Error::InlinedOnly {
                name: name.to_string(),
                callers,
            });
        }
        let mut suggestions = Vec::new();
        for image in images {
            let names = image.function_symbols(|_| true);
            suggestions.extend(nearest(name, names.iter().map(|s| s.name), 6));
        }
        suggestions.sort();
        suggestions.dedup();
        suggestions.truncate(6);
        return Err(Error::UnknownFunction {
            name: name.to_string(),
            searched: images
                .iter()
                .map(|i| i.path().display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            suggestions,
        });
    };
    if found.iter().any(|(_, s)| cold(s)) {
        caveats.push(format!(
            "`{name}` has a .cold part: the watch stays armed while it runs there too"
        ));
    }
    Ok((&images[chosen.0], chosen.1.clone(), caveats))
}

fn unit_name_for(image: &ElfImage<'_>, address: u64) -> String {
    let Ok(sections) = DebugSections::load(image) else {
        return image.path().display().to_string();
    };
    let Ok(info) = DebugInfo::new(&sections) else {
        return image.path().display().to_string();
    };
    match info.unit_for_address(address) {
        Ok(Some(unit)) => unit.name(),
        _ => image.path().display().to_string(),
    }
}

/// Largest `.debug_info` scanned to tell "inlined only" from "unknown".
/// This is an error path, and the scan is parallel: on the 589 MB 6.1
/// vmlinux it takes about 3 s, so there is no practical limit.
const INLINE_SCAN_LIMIT: usize = 1 << 40;

/// When `name` is a subprogram that only appears inlined, some callers.
fn inlined_callers(images: &[ElfImage<'_>], name: &str) -> Result<Option<String>> {
    for image in images {
        let sections = match DebugSections::load(image) {
            Ok(s) => s,
            Err(Error::NoDebugInfo { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(found) = crate::index::inlined_into(&sections, name, INLINE_SCAN_LIMIT)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}
