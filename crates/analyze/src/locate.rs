//! Where a kernel's debug files are, and whether a file is the right one:
//! the whole discovery policy ([`debug_files_for`]: vmlinux by release or
//! build ID, modules by name, by directory, or by search of the release's
//! module directories for the one that defines a function).
//!
//! This is the only module that searches the filesystem; everything else
//! takes paths. Every search takes a `root` (normally `/`) so that an
//! unpacked package tree can stand in for a system.
//!
//! Standard places, in order, for release REL:
//! `/usr/lib/debug/boot/vmlinux-REL`, `/usr/lib/debug/lib/modules/REL/vmlinux`,
//! `/lib/modules/REL/build/vmlinux`, `/boot/vmlinux-REL`, and with a build ID
//! `/usr/lib/debug/.build-id/xx/yyyy.debug`. Modules: under
//! `/usr/lib/debug/lib/modules/REL/` and `/lib/modules/REL/` (`.ko`,
//! `.ko.xz`).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::elf::{DebugFile, ElfImage};
use crate::error::{Error, Result};

/// What the debug file must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The kernel release (`uname -r`).
    pub release: Option<String>,
    /// The kernel's GNU build ID.
    pub build_id: Option<Vec<u8>>,
}

/// The running kernel's release and build ID.
pub fn running_kernel() -> Expected {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let build_id = std::fs::read("/sys/kernel/notes")
        .ok()
        .and_then(|notes| build_id_from_notes(&notes));
    Expected { release, build_id }
}

/// The NT_GNU_BUILD_ID descriptor in a raw note section.
pub fn build_id_from_notes(notes: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0usize;
    let word = |i: usize| -> Option<usize> {
        notes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    while at + 12 <= notes.len() {
        let name_size = word(at)?;
        let desc_size = word(at + 4)?;
        let kind = word(at + 8)?;
        let name_start = at + 12;
        let desc_start = name_start.checked_add(name_size.div_ceil(4) * 4)?;
        let desc_end = desc_start.checked_add(desc_size)?;
        if kind == 3 && notes.get(name_start..name_start + name_size) == Some(b"GNU\0") {
            return notes.get(desc_start..desc_end).map(<[u8]>::to_vec);
        }
        at = desc_start.checked_add(desc_size.div_ceil(4) * 4)?;
    }
    None
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Candidate vmlinux paths for `release` under `root`, in search order.
pub fn vmlinux_candidates(root: &Path, release: &str, build_id: Option<&[u8]>) -> Vec<PathBuf> {
    let mut paths = vec![
        root.join(format!("usr/lib/debug/boot/vmlinux-{release}")),
        root.join(format!("usr/lib/debug/lib/modules/{release}/vmlinux")),
        root.join(format!("lib/modules/{release}/build/vmlinux")),
        root.join(format!("boot/vmlinux-{release}")),
    ];
    if let Some(id) = build_id.filter(|id| id.len() > 1) {
        let h = hex(id);
        paths.push(root.join(format!(
            "usr/lib/debug/.build-id/{}/{}.debug",
            &h[..2],
            &h[2..]
        )));
    }
    paths
}

/// The first existing vmlinux for `expected` under `root`.
pub fn find_vmlinux(root: &Path, expected: &Expected) -> Result<PathBuf> {
    let release = expected.release.as_deref().ok_or_else(|| {
        Error::Unsupported("no kernel release known: pass --release or --vmlinux".to_string())
    })?;
    let candidates = vmlinux_candidates(root, release, expected.build_id.as_deref());
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::DebugInfoNotFound {
            release: release.to_string(),
            searched: candidates.clone(),
        })
}

/// The first vmlinux for `expected` under `root` that is its build (see
/// [`check_vmlinux`]), and each existing candidate passed over, with why.
pub fn find_matching_vmlinux(
    root: &Path,
    expected: &Expected,
) -> (Option<PathBuf>, Vec<(PathBuf, Error)>) {
    let mut passed = Vec::new();
    let Some(release) = expected.release.as_deref() else {
        return (None, passed);
    };
    for path in vmlinux_candidates(root, release, expected.build_id.as_deref()) {
        if !path.is_file() {
            continue;
        }
        match open(&path).and_then(|file| check_vmlinux(&ElfImage::parse(&file)?, expected)) {
            Ok(()) => return (Some(path), passed),
            Err(e) => passed.push((path, e)),
        }
    }
    (None, passed)
}

/// The dumps in a crash directory, newest first: kdump-tools'
/// `/var/crash/STAMP/dump.STAMP` (beside `dmesg.STAMP`), or a `vmcore`
/// (RHEL's kdump), in `dir` itself or in its subdirectories (one level,
/// as `/var/crash/` holds one per crash). Newest by modification time,
/// then by name (kdump-tools' stamps are `YYYYMMDDHHMM`).
pub fn crash_dumps(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = |d: &Path| {
        std::fs::read_dir(d).map_err(|e| Error::Io {
            path: d.to_path_buf(),
            source: e,
        })
    };
    let is_dump = |p: &Path| {
        p.is_file()
            && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n == "vmcore" || n.strip_prefix("dump.").is_some_and(|s| !s.is_empty())
            })
    };
    let mut found = Vec::new();
    for entry in read(dir)?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // an unreadable crash directory is skipped, as kdump-tools'
            // own listing would
            if let Ok(inner) = read(&path) {
                found.extend(inner.flatten().map(|e| e.path()).filter(|p| is_dump(p)));
            }
        } else if is_dump(&path) {
            found.push(path);
        }
    }
    let mut dated: Vec<(std::time::SystemTime, PathBuf)> = found
        .into_iter()
        .map(|p| {
            let t = p
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    dated.sort_by(|a, b| b.cmp(a));
    Ok(dated.into_iter().map(|(_, p)| p).collect())
}

/// The standard module directories of `release`, debug copies first
/// (module files there: `.ko`, `.ko.xz`, `.ko.zst`).
pub fn module_dirs(root: &Path, release: &str) -> Vec<PathBuf> {
    vec![
        root.join(format!("usr/lib/debug/lib/modules/{release}")),
        root.join(format!("lib/modules/{release}")),
    ]
}

/// Module files under `dir`, recursively, sorted.
pub fn module_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                // `build` and `source` point at header trees, not modules.
                if !matches!(
                    path.file_name().and_then(|n| n.to_str()),
                    Some("build" | "source")
                ) {
                    stack.push(path);
                }
            } else if is_module_file(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_module_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".ko") || name.ends_with(".ko.xz") || name.ends_with(".ko.zst")
}

/// The module file called `name` (with or without `.ko`) under `dirs`.
pub fn find_module(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let stem = name
        .trim_end_matches(".xz")
        .trim_end_matches(".zst")
        .trim_end_matches(".ko")
        .replace('-', "_");
    for dir in dirs {
        for path in module_files(dir) {
            let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let file_stem = file
                .trim_end_matches(".xz")
                .trim_end_matches(".zst")
                .trim_end_matches(".ko")
                .replace('-', "_");
            if file_stem == stem {
                return Some(path);
            }
        }
    }
    None
}

/// Open a debug file, decompressing `.xz` and `.zst`.
pub fn open(path: &Path) -> Result<DebugFile> {
    if path.extension().and_then(|e| e.to_str()) == Some("zst") {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(std::io::BufReader::new(file))
            .map_err(|e| Error::Malformed {
                path: path.to_path_buf(),
                what: format!("cannot decompress: {e}"),
            })?;
        let mut bytes = Vec::new();
        decoder.read_to_end(&mut bytes).map_err(io)?;
        return Ok(DebugFile::from_bytes(path, bytes));
    }
    if path.extension().and_then(|e| e.to_str()) == Some("xz") {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut compressed = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut compressed))
            .map_err(io)?;
        let mut bytes = Vec::new();
        lzma_rs::xz_decompress(&mut compressed.as_slice(), &mut bytes).map_err(|e| {
            Error::Malformed {
                path: path.to_path_buf(),
                what: format!("cannot decompress: {e}"),
            }
        })?;
        return Ok(DebugFile::from_bytes(path, bytes));
    }
    DebugFile::open(path)
}

/// Check that a vmlinux is the one `expected` names: build ID when both
/// sides have one, else the release in `linux_banner`.
pub fn check_vmlinux(image: &ElfImage<'_>, expected: &Expected) -> Result<()> {
    let mismatch = |expected: String, found: String| Error::Mismatch {
        path: image.path().to_path_buf(),
        expected,
        found,
    };
    if let (Some(want), Some(have)) = (&expected.build_id, image.build_id()) {
        if want.as_slice() != have {
            return Err(mismatch(
                format!("build ID {}", hex(want)),
                format!("build ID {}", hex(have)),
            ));
        }
        return Ok(());
    }
    if let Some(want) = &expected.release {
        let Some(have) = image.kernel_release() else {
            return Err(mismatch(
                format!("release {want}"),
                "no linux_banner (is it a vmlinux?)".to_string(),
            ));
        };
        if &have != want {
            return Err(mismatch(
                format!("release {want}"),
                format!("release {have}"),
            ));
        }
    }
    Ok(())
}

/// Check that a module was built for `release` (its `vermagic`).
pub fn check_module(image: &ElfImage<'_>, release: &str) -> Result<()> {
    match image.module_vermagic() {
        Some(v) if v.split_whitespace().next() == Some(release) => Ok(()),
        Some(v) => Err(Error::Mismatch {
            path: image.path().to_path_buf(),
            expected: format!("vermagic {release}"),
            found: format!("vermagic {v}"),
        }),
        None => Ok(()),
    }
}

/// Where to look for debug files, as the user said it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    /// The filesystem root the standard places are under (normally `/`).
    pub root: PathBuf,
    /// The kernel release to find files for; `None`: the running kernel's,
    /// unless files are named explicitly.
    pub release: Option<String>,
    /// An explicit vmlinux.
    pub vmlinux: Option<PathBuf>,
    /// Explicit module files (`.ko`, `.ko.xz`).
    pub modules: Vec<PathBuf>,
    /// A directory whose modules are searched for the function.
    pub module_dir: Option<PathBuf>,
}

impl Search {
    /// Whether no file or directory was named.
    fn names_nothing(&self) -> bool {
        self.vmlinux.is_none() && self.modules.is_empty() && self.module_dir.is_none()
    }

    /// What the files must match: the release asked for, else the running
    /// kernel when nothing was named, else nothing.
    pub fn expected(&self) -> Expected {
        match &self.release {
            Some(release) => Expected {
                release: Some(release.clone()),
                build_id: None,
            },
            None if self.names_nothing() => running_kernel(),
            None => Expected::default(),
        }
    }
}

/// The debug files to resolve `function` against, vmlinux first, each
/// checked against the kernel asked for:
/// - the vmlinux named, or found for the release (required when nothing
///   else is named; tried when a release is given with modules);
/// - when the function is not in vmlinux and no module was named, the
///   modules under the release's standard module directories that define
///   it (debug copies first, one per module name);
/// - the modules named;
/// - the modules under `module_dir` that define it.
pub fn debug_files_for(search: &Search, function: &str) -> Result<Vec<DebugFile>> {
    let expected = search.expected();
    let mut files = Vec::new();
    let vmlinux_path = match &search.vmlinux {
        Some(path) => Some(path.clone()),
        None if search.modules.is_empty() && search.module_dir.is_none() => {
            Some(find_vmlinux(&search.root, &expected)?)
        }
        None if search.release.is_some() => find_vmlinux(&search.root, &expected).ok(),
        None => None,
    };
    let mut module_release = expected.release.clone();
    let mut in_vmlinux = false;
    if let Some(path) = vmlinux_path {
        let file = DebugFile::open(&path)?;
        {
            let image = ElfImage::parse(&file)?;
            check_vmlinux(&image, &expected)?;
            module_release = module_release.or_else(|| image.kernel_release());
        }
        in_vmlinux = defines(&file, function);
        files.push(file);
    }
    // Not in vmlinux and no module named: look through the release's
    // standard module directories (debug copies first) for the modules
    // that define it.
    if !in_vmlinux && search.modules.is_empty() && search.module_dir.is_none() {
        if let Some(release) = &module_release {
            let mut seen = Vec::new();
            for dir in module_dirs(&search.root, release) {
                for path in module_files(&dir) {
                    let stem = module_stem(&path);
                    if seen.contains(&stem) {
                        continue;
                    }
                    let Ok(file) = open(&path) else {
                        continue;
                    };
                    if defines(&file, function) {
                        check_module(&ElfImage::parse(&file)?, release)?;
                        seen.push(stem);
                        files.push(file);
                    }
                }
            }
        }
    }
    for path in &search.modules {
        let file = open(path)?;
        if let Some(release) = &expected.release {
            check_module(&ElfImage::parse(&file)?, release)?;
        }
        files.push(file);
    }
    if let Some(dir) = &search.module_dir {
        let mut searched = 0;
        for path in module_files(dir) {
            searched += 1;
            let file = open(&path)?;
            if defines(&file, function) {
                if let Some(release) = &expected.release {
                    check_module(&ElfImage::parse(&file)?, release)?;
                }
                files.push(file);
            }
        }
        if searched == 0 {
            return Err(Error::NoModuleFiles { dir: dir.clone() });
        }
        if files.is_empty() {
            return Err(Error::NotInModules {
                dir: dir.clone(),
                searched,
                function: function.to_string(),
            });
        }
    }
    if files.is_empty() {
        return Err(Error::NoDebugFiles);
    }
    Ok(files)
}

/// `ext4` for `.../ext4.ko` and `.../ext4.ko.xz`.
fn module_stem(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.trim_end_matches(".xz")
        .trim_end_matches(".ko")
        .replace('-', "_")
}

/// Whether a file defines a function called `name` or a copy of it
/// (`name.isra.0`); `false` for a file that is not a usable ELF image.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gnu_build_id_note() {
        let mut notes = Vec::new();
        // An unrelated note first.
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&6u32.to_le_bytes());
        notes.extend_from_slice(b"Xen\0linu");
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&3u32.to_le_bytes());
        notes.extend_from_slice(&3u32.to_le_bytes());
        notes.extend_from_slice(b"GNU\0\xab\xcd\xef\0");
        assert_eq!(build_id_from_notes(&notes), Some(vec![0xab, 0xcd, 0xef]));
        assert_eq!(build_id_from_notes(&notes[..20]), None);
    }

    #[test]
    fn lists_standard_places_in_order() {
        let paths = vmlinux_candidates(
            Path::new("/r"),
            "6.1.0-54-cloud-amd64",
            Some(&[0x12, 0x34, 0x56]),
        );
        assert_eq!(
            paths[0],
            Path::new("/r/usr/lib/debug/boot/vmlinux-6.1.0-54-cloud-amd64")
        );
        assert_eq!(
            paths.last().map(PathBuf::as_path),
            Some(Path::new("/r/usr/lib/debug/.build-id/12/3456.debug"))
        );
    }
}
