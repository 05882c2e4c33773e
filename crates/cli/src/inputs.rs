//! What the commands that read a dump load before they answer: the dump,
//! the kernel model read out of it, the debug vmlinux (checked by build
//! ID, read once for its lines, CFI, types and variables) and the loaded
//! modules' `.ko` files (checked by build ID against memory).
//!
//! Everything borrows from the dump and the mapped files, so the inputs
//! live in one stack frame and a command runs inside [`with_inputs`].

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ksw_analyze::cfi::DwarfCallFrames;
use ksw_analyze::debuginfod::Debuginfod;
use ksw_analyze::kernel::types::DwarfKernelTypes;
use ksw_analyze::kernel::{KernelModel, VmlinuxLoan};
use ksw_analyze::locate::Expected;
use ksw_analyze::report::VmlinuxDebug;
use ksw_analyze::symbolize::{self, ModuleDebugFile, VmlinuxSource};
use ksw_analyze::{DebugSections, ElfImage};
use ksw_vmcore::{Dump, OpenOptions};

use crate::progress::DownloadBar;

/// Where the inputs come from.
pub(crate) struct InputPaths<'a> {
    pub(crate) dump: &'a Path,
    pub(crate) vmcoreinfo: &'a Option<PathBuf>,
    pub(crate) vmlinux: Option<&'a Path>,
    pub(crate) module_dirs: &'a [PathBuf],
    /// Where the standard debug-file places are looked for.
    pub(crate) sysroot: &'a Path,
    /// Never fetch from debuginfod.
    pub(crate) offline: bool,
    /// The output is JSON (no progress bar).
    pub(crate) json: bool,
    /// The notes and warnings already printed, for a command that loads
    /// its inputs again and again (`ksw live --watch`): each is said once.
    pub(crate) said: Option<&'a RefCell<HashSet<String>>>,
}

impl<'a> InputPaths<'a> {
    /// The inputs of a command over `dump` with `debug`'s files.
    pub(crate) fn new(
        dump: &'a Path,
        vmcoreinfo: &'a Option<PathBuf>,
        debug: &'a crate::flags::DebugFileArgs,
        json: bool,
    ) -> Self {
        Self {
            dump,
            vmcoreinfo,
            vmlinux: debug.vmlinux.as_deref(),
            module_dirs: &debug.module_dir,
            sysroot: &debug.sysroot,
            offline: debug.offline,
            json,
            said: None,
        }
    }

    /// Prints `line` to stderr, unless it was already said.
    fn say(&self, line: String) {
        if let Some(said) = self.said {
            if !said.borrow_mut().insert(line.clone()) {
                return;
            }
        }
        eprintln!("{line}");
    }
}

/// The loaded inputs.
pub(crate) struct Inputs<'a> {
    pub(crate) dump: &'a Dump,
    pub(crate) model: &'a KernelModel<'a>,
    pub(crate) vmlinux: Option<VmlinuxDebug<'a>>,
    pub(crate) modules: &'a [ModuleDebugFile],
}

impl Inputs<'_> {
    /// Where this release's debug vmlinux is in Debian's -dbg package.
    pub(crate) fn vmlinux_hint(&self) -> Option<PathBuf> {
        let release = self.dump.vmcoreinfo()?.osrelease.as_deref()?;
        Some(PathBuf::from(format!(
            "/usr/lib/debug/boot/vmlinux-{release}"
        )))
    }
}

/// The kernel's build ID as VMCOREINFO gives it (hex), as bytes.
fn dump_build_id(dump: &Dump) -> Option<Vec<u8>> {
    let hex = dump.vmcoreinfo()?.trusted_build_id()?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The dump's debug vmlinux in the standard places under `sysroot`, by
/// release and build ID; a file there of another build is named and
/// passed over.
fn find_vmlinux(dump: &Dump, paths: &InputPaths<'_>) -> Option<PathBuf> {
    let expected = Expected {
        release: dump.vmcoreinfo()?.osrelease.clone(),
        build_id: dump_build_id(dump),
    };
    let (found, passed) = ksw_analyze::locate::find_matching_vmlinux(paths.sysroot, &expected);
    for (path, e) in passed {
        paths.say(format!("ksw: note: {} passed over: {e}", path.display()));
    }
    if let Some(path) = &found {
        paths.say(format!("ksw: note: debug vmlinux: {}", path.display()));
    }
    found
}

/// The dump's debug vmlinux from debuginfod (or its cache), by the
/// dump's build ID.
fn fetch_vmlinux(
    dump: &Dump,
    client: &Debuginfod,
    bar: &DownloadBar,
    paths: &InputPaths<'_>,
) -> Option<PathBuf> {
    let id = dump_build_id(dump)?;
    match client.debuginfo(&id, bar) {
        Ok(path) => {
            paths.say(format!("ksw: note: debug vmlinux: {}", path.display()));
            Some(path)
        }
        Err(e) => {
            paths.say(format!("ksw: note: debug vmlinux: debuginfod: {e}"));
            None
        }
    }
}

/// Opens a dump (or /proc/kcore).
pub(crate) fn open_dump(dump: &Path, vmcoreinfo: &Option<PathBuf>) -> Result<Dump> {
    let options = OpenOptions {
        vmcoreinfo_override: vmcoreinfo.clone(),
    };
    Dump::open_with(dump, &options).with_context(|| format!("opening {}", dump.display()))
}

/// The kernel's model from a dump alone (no debug files), for the
/// commands that name no addresses; what could not be read goes to stderr.
pub(crate) fn dump_model(dump: &Dump) -> Result<KernelModel<'_>> {
    let model = KernelModel::from_dump(dump).context("reading the kernel's model from the dump")?;
    for w in model.warnings() {
        eprintln!("ksw: warning: {w}");
    }
    Ok(model)
}

/// Loads the inputs named by `paths` and runs `f` over them. Warnings
/// and notes about the inputs go to stderr.
pub(crate) fn with_inputs<T>(
    paths: &InputPaths<'_>,
    f: impl FnOnce(&Inputs<'_>) -> Result<T>,
) -> Result<T> {
    let dump = open_dump(paths.dump, paths.vmcoreinfo)?;
    let kaslr = dump.vmcoreinfo().and_then(|i| i.kernel_offset).unwrap_or(0);
    let debuginfod = Debuginfod::from_env(paths.offline);
    let bar = DownloadBar::new(paths.json);
    let found = match paths.vmlinux {
        Some(_) => None,
        None => find_vmlinux(&dump, paths)
            .or_else(|| fetch_vmlinux(&dump, debuginfod.as_ref()?, &bar, paths)),
    };
    let file = paths
        .vmlinux
        .or(found.as_deref())
        .map(ksw_analyze::locate::open)
        .transpose()?;
    let image = file.as_ref().map(ElfImage::parse).transpose()?;
    if let Some(image) = &image {
        symbolize::check_build(image, dump.vmcoreinfo().and_then(|i| i.trusted_build_id()))?;
    }
    let sections = image.as_ref().map(DebugSections::load).transpose()?;
    let lines = sections
        .as_ref()
        .map(|s| VmlinuxSource::new(s, kaslr))
        .transpose()?;
    let call_frames = sections.as_ref().map(|s| DwarfCallFrames::new(s, kaslr));
    // read only if the kernel's BTF is missing or damaged
    let types = sections.as_ref().map(DwarfKernelTypes::new).transpose()?;
    let loan = types.as_ref().map(|types| VmlinuxLoan {
        btf: image
            .as_ref()
            .and_then(|i| i.alloc_section(".BTF"))
            .map(|(_, bytes)| bytes),
        types,
    });
    let mut model = KernelModel::from_dump_with(&dump, loan.as_ref())
        .context("reading the kernel's model from the dump")?;
    if let Some(c) = &call_frames {
        model.set_call_frames(c);
    }
    // every command that loads inputs names addresses: the symbol table
    // is built now, so that what it could not read is said with the rest
    model.symbols();
    for w in model.warnings() {
        paths.say(format!("ksw: warning: {w}"));
    }
    // the modules' own .ko files: the flags', the release's, the dump's
    let mut dirs = paths.module_dirs.to_vec();
    if let Some(release) = dump.vmcoreinfo().and_then(|i| i.osrelease.as_deref()) {
        dirs.extend(ksw_analyze::locate::module_dirs(paths.sysroot, release));
    }
    if let Some(parent) = paths.dump.parent() {
        dirs.push(if parent.as_os_str().is_empty() {
            ".".into()
        } else {
            parent.to_path_buf()
        });
    }
    let fetch = |name: &str, id: &[u8]| -> Option<PathBuf> {
        let client = debuginfod.as_ref()?;
        match client.debuginfo(id, &bar) {
            Ok(path) => {
                paths.say(format!(
                    "ksw: note: module {name}: debug file {}",
                    path.display()
                ));
                Some(path)
            }
            Err(e) => {
                paths.say(format!("ksw: note: module {name}: debuginfod: {e}"));
                None
            }
        }
    };
    let fetch: Option<&symbolize::FetchByBuildId<'_>> = debuginfod.is_some().then_some(&fetch);
    let (modules, notes) = symbolize::module_debug_files(&model, &dirs, fetch);
    for n in &notes {
        paths.say(format!("ksw: note: {n}"));
    }
    let vmlinux = match (&file, &sections, &lines) {
        (Some(file), Some(sections), Some(lines)) => Some(VmlinuxDebug {
            file,
            sections,
            lines,
            kaslr,
        }),
        _ => None,
    };
    f(&Inputs {
        dump: &dump,
        model: &model,
        vmlinux,
        modules: &modules,
    })
}
