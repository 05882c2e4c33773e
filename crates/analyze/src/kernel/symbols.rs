//! Address → `name+off/size [module]`, the way the kernel prints it.
//!
//! Built once from kallsyms (read out of memory, no vmlinux needed) and
//! from each module's own symbol table; sorted by address so that every
//! lookup is a binary search. vmlinux names stay in the kallsyms table
//! (borrowed, not copied); a vmlinux symbol's size is the distance to the
//! next higher symbol, as the kernel's `kallsyms_lookup()` computes it.
//! Module symbols come with the sizes the kernel computes for them (see
//! [`super::modules::symbols`]).

use ksw_vmcore::kallsyms::Kallsyms;

/// Where an address falls.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SymbolHit {
    /// The symbol's name.
    pub name: String,
    /// The offset of the address into it.
    pub offset: u64,
    /// The symbol's size.
    pub size: u64,
    /// The module, `None` for vmlinux.
    pub module: Option<String>,
}

impl std::fmt::Display for SymbolHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{:#x}/{:#x}", self.name, self.offset, self.size)?;
        if let Some(m) = &self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

/// Whose name table an entry's name is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    /// Index into kallsyms.
    Kallsyms(u32),
    /// Index into the module symbol names, and the module's index.
    Module(u32, u32),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u64,
    size: u64,
    name: Name,
}

/// The sorted symbol table.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable<'k> {
    kallsyms: Option<&'k Kallsyms>,
    entries: Vec<Entry>,
    module_names: Vec<String>,
    symbol_names: Vec<String>,
}

/// A module's name and its symbols: (name, address, size).
pub type ModuleSymbols = (String, Vec<(String, u64, u64)>);

/// Symbols beyond this distance from their start are not believed: the
/// address is probably not in any symbol at all.
const MAX_SYMBOL_SIZE: u64 = 1 << 20;

impl<'k> SymbolTable<'k> {
    /// The table of vmlinux's kallsyms (text and data alike, as the
    /// kernel's own lookup uses them).
    pub fn from_kallsyms(k: &'k Kallsyms) -> Self {
        let mut entries: Vec<Entry> = k
            .symbols()
            .enumerate()
            // absolute per-CPU symbols are offsets, not addresses
            .filter(|(_, s)| s.address.0 >= 0xffff_8000_0000_0000)
            .map(|(i, s)| Entry {
                address: s.address.0,
                size: 0,
                name: Name::Kallsyms(i as u32),
            })
            .collect();
        entries.sort_by_key(|e| e.address);
        // up to the next higher address (entries sharing one address
        // share the next)
        let mut next = u64::MAX;
        for i in (0..entries.len()).rev() {
            if i + 1 < entries.len() && entries[i + 1].address > entries[i].address {
                next = entries[i + 1].address;
            }
            entries[i].size = if next == u64::MAX {
                0
            } else {
                next - entries[i].address
            };
        }
        Self {
            kallsyms: Some(k),
            entries,
            ..Default::default()
        }
    }

    /// Adds modules' symbols: for each module, its name and its symbols
    /// (name, address, size).
    pub fn add_modules(&mut self, modules: Vec<ModuleSymbols>) {
        for (module, symbols) in modules {
            let m = self.module_names.len() as u32;
            self.module_names.push(module);
            for (name, address, size) in symbols {
                let n = self.symbol_names.len() as u32;
                self.symbol_names.push(name);
                self.entries.push(Entry {
                    address,
                    size,
                    name: Name::Module(n, m),
                });
            }
        }
        self.entries.sort_by_key(|e| e.address);
    }

    fn name(&self, n: Name) -> &str {
        match n {
            Name::Kallsyms(i) => self
                .kallsyms
                .and_then(|k| k.get(i as usize))
                .map_or("", |s| s.name),
            Name::Module(i, _) => self.symbol_names.get(i as usize).map_or("", String::as_str),
        }
    }

    fn module(&self, n: Name) -> Option<&str> {
        match n {
            Name::Kallsyms(_) => None,
            Name::Module(_, m) => self.module_names.get(m as usize).map(String::as_str),
        }
    }

    /// The symbol an address lies in, if any.
    pub fn lookup(&self, addr: u64) -> Option<SymbolHit> {
        let i = self
            .entries
            .partition_point(|e| e.address <= addr)
            .checked_sub(1)?;
        let at = self.entries[i].address;
        // among aliases (symbols at one address) the first in table
        // order, as the kernel's lookups pick it (`init_module` and the
        // function module_init() names: the local one comes first)
        let first = self.entries[..=i]
            .iter()
            .rposition(|e| e.address != at)
            .map_or(0, |p| p + 1);
        let e = &self.entries[first];
        let offset = addr - e.address;
        let inside = if e.size == 0 {
            offset < MAX_SYMBOL_SIZE
        } else {
            offset < e.size
        };
        inside.then(|| SymbolHit {
            name: self.name(e.name).to_string(),
            offset,
            size: e.size,
            module: self.module(e.name).map(str::to_string),
        })
    }

    /// A symbol's address by name: vmlinux first, then modules.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        if let Some(a) = self.kallsyms.and_then(|k| k.address_of(name)) {
            return Some(a.0);
        }
        let i = self.symbol_names.iter().position(|n| n == name)? as u32;
        self.entries
            .iter()
            .find(|e| matches!(e.name, Name::Module(n, _) if n == i))
            .map(|e| e.address)
    }

    /// The number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_symbols_keep_their_sizes() {
        let mut t = SymbolTable::default();
        t.add_modules(vec![(
            "m".into(),
            vec![("f".into(), 0x1000, 0x10), ("g".into(), 0x1100, 0)],
        )]);
        assert_eq!(t.lookup(0x1008).unwrap().to_string(), "f+0x8/0x10 [m]");
        assert_eq!(t.lookup(0x1010), None, "past f's size");
        // a size of 0 means unknown: believed up to MAX_SYMBOL_SIZE
        assert_eq!(t.lookup(0x1150).unwrap().to_string(), "g+0x50/0x0 [m]");
        assert_eq!(t.lookup(0xfff), None);
        assert_eq!(t.address_of("g"), Some(0x1100));
        assert_eq!(t.address_of("h"), None);
    }
}
