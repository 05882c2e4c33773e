//! Where a kernel's debug files are, and whether a file is the right one.
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

/// All kernel module files (`.ko`, `.ko.xz`) under the standard module
/// directories of `release`, debug copies first.
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
    name.ends_with(".ko") || name.ends_with(".ko.xz")
}

/// The module file called `name` (with or without `.ko`) under `dirs`.
pub fn find_module(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let stem = name
        .trim_end_matches(".xz")
        .trim_end_matches(".ko")
        .replace('-', "_");
    for dir in dirs {
        for path in module_files(dir) {
            let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let file_stem = file
                .trim_end_matches(".xz")
                .trim_end_matches(".ko")
                .replace('-', "_");
            if file_stem == stem {
                return Some(path);
            }
        }
    }
    None
}

/// Open a debug file, decompressing `.xz`.
pub fn open(path: &Path) -> Result<DebugFile> {
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
