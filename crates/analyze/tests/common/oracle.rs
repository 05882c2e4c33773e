//! Outside truth from binutils and gdb, for the tests that check what
//! `resolve` computes: the CFA rule per address as `readelf -wF` decodes
//! `.debug_frame` (GNU binutils' own CFI interpreter, which applies a
//! `.ko`'s `.rela.debug_frame` itself), instruction boundaries from gdb's
//! `disassemble`, stack slots from gdb's `info scope`, and C expressions
//! (member offsets) from gdb's `print`.
//!
//! Shared by crates/analyze/tests (through `common`) and crates/cli/tests
//! (through `#[path]`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The CFA rule of one row, as readelf prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `rsp+N`: CFA − SP = N.
    Sp(i64),
    /// Anything else (`rbp+16`, an expression): CFA − SP is not static.
    Other(String),
}

#[derive(Debug, Clone)]
struct Fde {
    begin: u64,
    end: u64,
    /// (address, rule) in address order; the CIE's initial rule when the
    /// FDE has no instructions of its own.
    rows: Vec<(u64, Rule)>,
}

/// `.debug_frame` as `readelf -wF` interprets it.
#[derive(Debug, Clone)]
pub struct Cfi {
    fdes: Vec<Fde>,
}

fn parse_rule(text: &str) -> Rule {
    match text.strip_prefix("rsp+").and_then(|n| n.parse().ok()) {
        Some(n) => Rule::Sp(n),
        None => Rule::Other(text.to_string()),
    }
}

impl Cfi {
    /// Run `readelf -wF` on `object` and parse its tables.
    pub fn read(object: &Path) -> Cfi {
        let out = Command::new("readelf")
            .arg("-wF")
            .arg(object)
            .output()
            .expect("run readelf (apt-get install binutils)");
        assert!(
            out.status.success(),
            "readelf -wF {}: {}",
            object.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let cfi = Cfi::parse(&String::from_utf8_lossy(&out.stdout));
        assert!(
            !cfi.fdes.is_empty(),
            "readelf found no FDE in {}",
            object.display()
        );
        cfi
    }

    /// Parse `readelf -wF` output.
    pub fn parse(text: &str) -> Cfi {
        // CIE offset → its initial CFA rule.
        let mut cies: BTreeMap<String, Rule> = BTreeMap::new();
        let mut fdes: Vec<Fde> = Vec::new();
        // What the rows being read belong to.
        enum Current {
            None,
            Cie(String),
            Fde(String),
        }
        let mut current = Current::None;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 4 && fields[3] == "CIE" {
                current = Current::Cie(fields[0].to_string());
                continue;
            }
            if fields.len() >= 6 && fields[3] == "FDE" {
                let cie = fields[4].strip_prefix("cie=").unwrap_or("").to_string();
                let range = fields[5].strip_prefix("pc=").unwrap_or("");
                let Some((b, e)) = range.split_once("..") else {
                    current = Current::None;
                    continue;
                };
                let (Ok(begin), Ok(end)) = (u64::from_str_radix(b, 16), u64::from_str_radix(e, 16))
                else {
                    current = Current::None;
                    continue;
                };
                fdes.push(Fde {
                    begin,
                    end,
                    rows: Vec::new(),
                });
                current = Current::Fde(cie);
                continue;
            }
            // A row: 16 hex digits, then the CFA rule.
            if fields.len() >= 2
                && fields[0].len() == 16
                && fields[0].bytes().all(|c| c.is_ascii_hexdigit())
            {
                let Ok(address) = u64::from_str_radix(fields[0], 16) else {
                    continue;
                };
                let rule = parse_rule(fields[1]);
                match &current {
                    Current::Cie(id) => {
                        cies.entry(id.clone()).or_insert(rule);
                    }
                    Current::Fde(_) => {
                        if let Some(fde) = fdes.last_mut() {
                            fde.rows.push((address, rule));
                        }
                    }
                    Current::None => {}
                }
            }
            if line.trim().is_empty() {
                // An FDE without rows of its own runs on its CIE's initial rule.
                if let Current::Fde(cie) = &current {
                    if let Some(fde) = fdes.last_mut().filter(|f| f.rows.is_empty()) {
                        if let Some(rule) = cies.get(cie) {
                            fde.rows.push((fde.begin, rule.clone()));
                        }
                    }
                }
            }
        }
        if let Current::Fde(cie) = &current {
            if let Some(fde) = fdes.last_mut().filter(|f| f.rows.is_empty()) {
                if let Some(rule) = cies.get(cie) {
                    fde.rows.push((fde.begin, rule.clone()));
                }
            }
        }
        fdes.sort_by_key(|f| f.begin);
        Cfi { fdes }
    }

    fn rule_in(fde: &Fde, address: u64) -> Result<Rule, String> {
        fde.rows
            .iter()
            .rev()
            .find(|(at, _)| *at <= address)
            .map(|(_, r)| r.clone())
            .ok_or_else(|| format!("readelf: no CFA row at {address:#x}"))
    }

    /// CFA − SP in effect at `address` of a linked image (vmlinux).
    pub fn cfa_minus_sp(&self, address: u64) -> Result<i64, String> {
        let covering: Vec<&Fde> = self
            .fdes
            .iter()
            .filter(|f| f.begin <= address && address < f.end)
            .collect();
        let [fde] = covering.as_slice() else {
            return Err(format!(
                "readelf: {} FDEs cover {address:#x}",
                covering.len()
            ));
        };
        match Cfi::rule_in(fde, address)? {
            Rule::Sp(n) => Ok(n),
            Rule::Other(r) => Err(format!("readelf: CFA is {r} at {address:#x}")),
        }
    }

    /// CFA − SP at `begin + offset` in a relocatable object, where every
    /// section starts at 0: the one FDE that spans exactly the function
    /// `[begin, begin + size)` (its symbol's value and size).
    pub fn cfa_minus_sp_in_function(
        &self,
        begin: u64,
        size: u64,
        offset: u64,
    ) -> Result<i64, String> {
        let exact: Vec<&Fde> = self
            .fdes
            .iter()
            .filter(|f| f.begin == begin && f.end == begin + size)
            .collect();
        let [fde] = exact.as_slice() else {
            return Err(format!(
                "readelf: {} FDEs span exactly {begin:#x}..{:#x}",
                exact.len(),
                begin + size
            ));
        };
        match Cfi::rule_in(fde, begin + offset)? {
            Rule::Sp(n) => Ok(n),
            Rule::Other(r) => Err(format!("readelf: CFA is {r} at +{offset:#x}")),
        }
    }
}

/// One instruction of gdb's `disassemble`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insn {
    /// Its address as gdb laid the file out.
    pub address: u64,
    /// Offset in the function (`<+N>`).
    pub offset: u64,
    /// The instruction (AT&T).
    pub text: String,
}

impl Insn {
    /// Whether execution can leave this instruction other than by falling
    /// through to the next one.
    pub fn transfers_control(&self) -> bool {
        let mnemonic = self.text.split_whitespace().next().unwrap_or("");
        mnemonic.starts_with('j')
            || mnemonic.starts_with("call")
            || mnemonic.starts_with("ret")
            || mnemonic.starts_with("loop")
            || matches!(
                mnemonic,
                "int3" | "ud2" | "hlt" | "syscall" | "sysret" | "iret" | "iretq"
            )
    }
}

/// A function's instructions, in order.
pub type Disassembly = Vec<Insn>;

/// Run gdb in batch mode on `object` with `commands`; its stdout.
pub fn gdb(object: &Path, commands: &[String]) -> String {
    let mut cmd = Command::new("gdb");
    cmd.args(["-batch", "-nx"]);
    for c in commands {
        cmd.arg("-ex").arg(c);
    }
    cmd.arg(object);
    let out = cmd.output().expect("run gdb (apt-get install gdb)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `Dump of assembler code for function F:` block: F → instructions.
pub fn parse_disassembly(text: &str) -> BTreeMap<String, Disassembly> {
    let mut result = BTreeMap::new();
    let mut current: Option<(String, Disassembly)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Dump of assembler code for function ") {
            current = Some((rest.trim_end_matches(':').to_string(), Vec::new()));
            continue;
        }
        if line.starts_with("End of assembler dump.") {
            if let Some((name, insns)) = current.take() {
                result.insert(name, insns);
            }
            continue;
        }
        let Some((_, insns)) = current.as_mut() else {
            continue;
        };
        // "   0xffffffff813485a5 <+5>:\tpush   %r12" (or "=> 0x..." at the pc).
        let line = line.trim_start_matches("=>").trim_start();
        let Some((head, text)) = line.split_once(":\t") else {
            continue;
        };
        let Some((address, offset)) = head.split_once(' ') else {
            continue;
        };
        let Some(address) = address
            .strip_prefix("0x")
            .and_then(|a| u64::from_str_radix(a, 16).ok())
        else {
            continue;
        };
        let Some(offset) = offset
            .strip_prefix("<+")
            .and_then(|o| o.strip_suffix('>'))
            .and_then(|o| o.parse().ok())
        else {
            continue;
        };
        insns.push(Insn {
            address,
            offset,
            text: text.trim().to_string(),
        });
    }
    result
}

/// CFA − SP after the instruction at `offset` of `function` ran and fell
/// through: the rule at the next instruction's address, by gdb's
/// instruction boundaries. `cfa_at` maps a function-relative offset to
/// the readelf rule.
pub fn cfa_minus_sp_after(
    disassembly: &Disassembly,
    offset: u64,
    cfa_at: impl Fn(u64) -> Result<i64, String>,
) -> Result<i64, String> {
    let index = disassembly
        .iter()
        .position(|i| i.offset == offset)
        .ok_or_else(|| format!("+{offset:#x} is not an instruction boundary (gdb)"))?;
    let insn = &disassembly[index];
    if insn.transfers_control() {
        return Err(format!(
            "+{offset:#x} `{}` transfers control (gdb)",
            insn.text
        ));
    }
    let next = disassembly
        .get(index + 1)
        .ok_or_else(|| format!("+{offset:#x} is the function's last instruction (gdb)"))?;
    cfa_at(next.offset)
}

/// A stack slot gdb's `info scope` reports: (name, `DW_OP_fbreg` offset, length).
pub type Slot = (String, i64, u64);

/// Every `Scope for F:` block: F → its `DW_OP_fbreg` slots (empty when
/// gdb lists none). Other locations (registers, location lists,
/// optimised out) are not slots and are left out.
pub fn parse_scopes(text: &str) -> BTreeMap<String, Vec<Slot>> {
    let mut scopes: BTreeMap<String, Vec<Slot>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("Scope for ") {
            let name = rest.trim_end_matches(':').to_string();
            scopes.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        // Symbol NAME is a complex DWARF expression:
        //      0: DW_OP_fbreg -60
        // , length 20.
        let Some(rest) = line.strip_prefix("Symbol ") else {
            continue;
        };
        let Some((symbol, "is a complex DWARF expression:")) = rest.split_once(' ') else {
            continue;
        };
        let (Some(op), Some(len)) = (lines.get(i + 1), lines.get(i + 2)) else {
            continue;
        };
        let Some(offset) = op
            .trim()
            .strip_prefix("0: DW_OP_fbreg ")
            .and_then(|o| o.trim().parse::<i64>().ok())
        else {
            continue;
        };
        let Some(length) = len
            .strip_prefix(", length ")
            .and_then(|l| l.strip_suffix('.'))
            .and_then(|l| l.parse::<u64>().ok())
        else {
            continue;
        };
        if let Some(f) = &current {
            scopes
                .entry(f.clone())
                .or_default()
                .push((symbol.to_string(), offset, length));
        }
    }
    scopes
}

/// A symbol's value and size from `nm -S` (section-relative in a `.ko`).
pub fn nm_symbol(object: &Path, name: &str) -> Option<(u64, u64)> {
    let out = Command::new("nm")
        .args(["-S", "--defined-only"])
        .arg(object)
        .output()
        .expect("run nm (apt-get install binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let found: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [value, size, kind, n] if *n == name && matches!(*kind, "t" | "T") => Some((
                    u64::from_str_radix(value, 16).ok()?,
                    u64::from_str_radix(size, 16).ok()?,
                )),
                _ => None,
            }
        })
        .collect();
    match found.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}
