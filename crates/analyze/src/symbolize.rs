//! Source positions for kernel addresses, from a debug file's DWARF.
//!
//! The physical frames of a trace come from memory (kallsyms, ORC); a
//! debug vmlinux only adds to them: `file:line` and the chain of inlined
//! functions at each pc (through the addr2line crate). The file is
//! accepted only when its build ID is the dump's, and addresses are moved
//! back by the KASLR offset before lookup.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

/// One level of the inline chain at a pc.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourcePosition {
    /// The function's source name (`crash_setup_regs`).
    pub function: Option<String>,
    /// The source file.
    pub file: Option<String>,
    /// The line.
    pub line: Option<u32>,
    /// True for a function inlined into the next level.
    pub inlined: bool,
}

/// Why a debug file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    /// The file cannot be read or parsed.
    #[error("{path}: {detail}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// It is the debug file of another build.
    #[error(
        "{path} is not this dump's kernel: its build ID is {file}, the dump's is {dump} (find the -dbg package of the dump's exact build)"
    )]
    WrongBuild {
        /// The file.
        path: PathBuf,
        /// The file's build ID.
        file: String,
        /// The dump's.
        dump: String,
    },
    /// It has no DWARF line information.
    #[error(
        "{0} has no .debug_info: pass the debug vmlinux (from the -dbg package), not the stripped image"
    )]
    NoDebugInfo(PathBuf),
}

/// A debug vmlinux placed at the dump's KASLR offset.
pub struct VmlinuxSource {
    loader: addr2line::Loader,
    kaslr_offset: u64,
}

impl std::fmt::Debug for VmlinuxSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmlinuxSource")
            .field("kaslr_offset", &self.kaslr_offset)
            .finish_non_exhaustive()
    }
}

/// The build ID of an ELF file, as lowercase hex.
pub fn build_id(path: &Path) -> Result<Option<String>, SymbolizeError> {
    let unreadable = |detail: String| SymbolizeError::Unreadable {
        path: path.to_path_buf(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    // SAFETY: the map is read only; a file changed under it gives wrong
    // bytes, which the parsers treat as any other bad input.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| unreadable(e.to_string()))?;
    let obj = object::File::parse(&*map).map_err(|e| unreadable(e.to_string()))?;
    let id = obj.build_id().map_err(|e| unreadable(e.to_string()))?;
    if obj
        .section_by_name(".debug_info")
        .is_none_or(|s| s.size() == 0)
    {
        return Err(SymbolizeError::NoDebugInfo(path.to_path_buf()));
    }
    Ok(id.map(|b| b.iter().map(|x| format!("{x:02x}")).collect()))
}

impl VmlinuxSource {
    /// Opens `path` for a dump whose build ID is `dump_build_id` (when the
    /// dump says) and whose kernel text moved by `kaslr_offset`.
    pub fn open(
        path: &Path,
        dump_build_id: Option<&str>,
        kaslr_offset: u64,
    ) -> Result<Self, SymbolizeError> {
        let id = build_id(path)?;
        if let (Some(file), Some(dump)) = (id.as_deref(), dump_build_id)
            && !dump.eq_ignore_ascii_case(file)
        {
            return Err(SymbolizeError::WrongBuild {
                path: path.to_path_buf(),
                file: file.to_string(),
                dump: dump.to_string(),
            });
        }
        let loader = addr2line::Loader::new(path).map_err(|e| SymbolizeError::Unreadable {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            loader,
            kaslr_offset,
        })
    }

    /// The inline chain at runtime address `pc`, innermost first; the last
    /// entry is the physical function. Empty when DWARF does not cover it.
    pub fn positions(&self, pc: u64) -> Vec<SourcePosition> {
        let probe = pc.wrapping_sub(self.kaslr_offset);
        let mut out = Vec::new();
        let Ok(mut frames) = self.loader.find_frames(probe) else {
            return out;
        };
        while let Ok(Some(f)) = frames.next() {
            let function = f
                .function
                .as_ref()
                .and_then(|n| n.raw_name().ok())
                .map(|n| n.into_owned());
            out.push(SourcePosition {
                function,
                file: f.location.as_ref().and_then(|l| l.file).map(str::to_string),
                line: f.location.as_ref().and_then(|l| l.line),
                inlined: true,
            });
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        out
    }
}

/// Adds source positions to the vmlinux frames of `trace` (module frames
/// need their `.ko`).
pub fn annotate(trace: &mut crate::unwind::Trace, source: &VmlinuxSource) {
    for f in &mut trace.frames {
        if f.symbol.as_ref().is_some_and(|s| s.module.is_none()) {
            // a return address belongs to the call before it
            let pc = if f.exact { f.pc } else { f.pc.wrapping_sub(1) };
            f.source = source.positions(pc);
        }
    }
}
