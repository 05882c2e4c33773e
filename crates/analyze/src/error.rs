//! The error type of the debug-info layer and of `resolve`.
//!
//! Every variant carries what a user needs to act on it: the file, the
//! name that was not found and the names that were, or the reason a
//! variable cannot be watched. Nothing here panics on bad input; malformed
//! files become [`Error::Malformed`] or [`Error::Dwarf`].

use std::fmt;
use std::path::PathBuf;

use crate::dwarf::Place;
use crate::register::Register;

/// A function that a name could refer to, listed when the name is ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    /// The ELF symbol, as a kprobe names it (`foo.isra.0`, `foo.cold`).
    pub symbol: String,
    /// The symbol's address as stated in the file (SVMA).
    pub address: u64,
    /// The compilation unit or object that defines it, where known.
    pub defined_in: String,
    /// Why this candidate is listed, or why it is not a probe target.
    pub note: String,
}

/// Why a variable has no stack slot a watch could use.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum OffStack {
    /// No location at any pc.
    OptimisedOut,
    /// A location list with no entries.
    EmptyLocationList,
    /// A `static` local, at a fixed address.
    Static {
        /// The address.
        address: u64,
    },
    /// Only ever in one register.
    RegisterOnly {
        /// The register.
        register: Register,
    },
    /// One location for the whole scope that is not a stack slot.
    Elsewhere {
        /// The location.
        place: Place,
    },
    /// A location list none of whose places is in stack memory.
    NeverInMemory {
        /// Its distinct places, in list order.
        places: Vec<Place>,
    },
    /// A location list that uses more than one stack slot.
    SeveralSlots,
    /// A location list that puts it in its slot only over part of the
    /// function, so no probe point keeps it there until the return.
    PartlyInSlot {
        /// The pc ranges where it is in the slot, as offsets in the function.
        ranges: Vec<(u64, u64)>,
    },
}

impl fmt::Display for OffStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffStack::OptimisedOut => write!(f, "it is optimised out: no location at any pc"),
            OffStack::EmptyLocationList => {
                write!(f, "it is optimised out: its location list is empty")
            }
            OffStack::Static { address } => write!(
                f,
                "it is a static variable at {address:#x}, not on the stack; watch it with an \
                 ordinary data breakpoint (perf mem / hw_breakpoint) instead"
            ),
            OffStack::RegisterOnly { register } => write!(
                f,
                "it lives only in register %{}; registers cannot be watched",
                register.text()
            ),
            OffStack::Elsewhere { place } => write!(f, "its location is {place}"),
            OffStack::NeverInMemory { places } => write!(
                f,
                "it never lives in stack memory (register-only: {})",
                crate::dwarf::places_summary(places)
            ),
            OffStack::SeveralSlots => write!(f, "its location list uses several stack slots"),
            OffStack::PartlyInSlot { ranges } => write!(
                f,
                "its location list puts it in the stack slot only over {} (and in registers \
                 elsewhere); no probe point keeps it in the slot until the function returns",
                ranges
                    .iter()
                    .map(|(b, e)| format!("+{b:#x}..+{e:#x}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Errors of the debug-info layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or mapped.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No debug vmlinux in any of the standard places.
    #[error(
        "no debug vmlinux for {release}; looked at {}. Install linux-image-{release}-dbg \
         (or pass --vmlinux)",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    DebugInfoNotFound {
        /// The kernel release.
        release: String,
        /// The paths tried, in order.
        searched: Vec<PathBuf>,
    },
    /// A module directory holds no module files.
    #[error("no .ko or .ko.xz files under {}", .dir.display())]
    NoModuleFiles {
        /// The directory.
        dir: PathBuf,
    },
    /// None of the modules under a directory defines the function.
    #[error("none of the {searched} modules under {} defines `{function}`", .dir.display())]
    NotInModules {
        /// The directory.
        dir: PathBuf,
        /// How many module files were searched.
        searched: usize,
        /// The function.
        function: String,
    },
    /// Nothing to search: no file named and none found.
    #[error(
        "no debug files: pass --vmlinux, --module or --module-dir, or --release \
         with the -dbg package installed"
    )]
    NoDebugFiles,
    /// The file is not an ELF file this crate understands.
    #[error("{path}: not a usable x86_64 ELF file: {reason}")]
    NotElf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file has no DWARF debug info.
    #[error(
        "{path}: no DWARF debug info (.debug_info is missing); use the unstripped \
         vmlinux and modules of the kernel's -dbg package (/usr/lib/debug/boot/, \
         /usr/lib/debug/lib/modules/), or a .ko built with debug info"
    )]
    NoDebugInfo {
        /// The file.
        path: PathBuf,
    },
    /// The DWARF could not be parsed.
    #[error("{path}: malformed DWARF: {source}")]
    Dwarf {
        /// The file.
        path: PathBuf,
        /// gimli's description.
        source: gimli::Error,
    },
    /// A structure in the file is inconsistent.
    #[error("{path}: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        what: String,
    },
    /// The debug file is not the one for the kernel that was asked for.
    #[error("{path} does not match: expected {expected}, found {found}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What was expected (build ID or release).
        expected: String,
        /// What the file has.
        found: String,
    },
    /// No function of that name.
    #[error("no function `{name}` in {searched}{}", suggest(.suggestions))]
    UnknownFunction {
        /// The name asked for.
        name: String,
        /// Which files were searched.
        searched: String,
        /// Near names.
        suggestions: Vec<String>,
    },
    /// The function exists only inlined into its callers: nothing to probe.
    #[error(
        "`{name}` has no out-of-line copy: it exists only inlined into {callers}; \
         probe one of those callers and watch the variable there"
    )]
    InlinedOnly {
        /// The function.
        name: String,
        /// Some of the functions it is inlined into.
        callers: String,
    },
    /// The name refers to several functions.
    #[error(
        "`{name}` is ambiguous; name one of these exactly:{}\n(kprobes find functions by \
         symbol name, and kallsyms resolves a name that several statics share to just one \
         of them, so only a unique symbol can be watched)",
        list(.candidates)
    )]
    AmbiguousFunction {
        /// The name asked for.
        name: String,
        /// The copies found.
        candidates: Vec<Candidate>,
    },
    /// No variable of that name in the function.
    #[error("`{function}` has no local or parameter `{name}`{}", suggest(.suggestions))]
    UnknownVariable {
        /// The function.
        function: String,
        /// The variable asked for.
        name: String,
        /// The names the function does have, nearest first.
        suggestions: Vec<String>,
    },
    /// Several variables of that name in the function.
    #[error("`{function}` has several variables named `{name}`:{}", lines(.places))]
    AmbiguousVariable {
        /// The function.
        function: String,
        /// The variable asked for.
        name: String,
        /// Where each is declared.
        places: Vec<String>,
    },
    /// The variable is not in stack memory where it could be watched.
    #[error("`{name}` in `{function}` cannot be watched: {reason}")]
    NotOnStack {
        /// The function.
        function: String,
        /// The variable.
        name: String,
        /// Where it lives instead.
        reason: OffStack,
    },
    /// The member/index path is wrong or goes through a pointer.
    #[error("bad variable path `{path}`: {reason}")]
    BadPath {
        /// The path as typed.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No stack-protector slot in the function.
    #[error("`{function}` has no stack-protector canary of its own: {reason}")]
    NoCanary {
        /// The function.
        function: String,
        /// Why none was found, and what to do.
        reason: String,
    },
    /// No instruction is a safe place for the probe.
    #[error("no safe probe point in `{function}`: {reason}")]
    NoProbePoint {
        /// The function.
        function: String,
        /// Why.
        reason: String,
    },
    /// Something this version does not handle yet.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

fn suggest(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", names.join(", "))
    }
}

fn list(candidates: &[Candidate]) -> String {
    let mut out = String::new();
    for c in candidates {
        out.push_str(&format!(
            "\n  {:<40} {:#x}  {}  {}",
            c.symbol, c.address, c.defined_in, c.note
        ));
    }
    out
}

fn lines(places: &[String]) -> String {
    places.iter().map(|p| format!("\n  {p}")).collect()
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
