//! Source files for the report's line texts. DWARF names a file by the
//! path it had when it was built (the compilation directory joined with
//! the line table's directory); the build tree is seldom where the report
//! is read. A file is looked for, in order: under each `--source-map`
//! OLD=NEW rewrite of its path, as named, and under each `--source-dir`
//! by its path's tails (`a/b/c.c`, `b/c.c`, `c.c`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Finds source files and reads lines from them; files are read once.
#[derive(Debug, Default)]
pub struct SourceFinder {
    dirs: Vec<PathBuf>,
    maps: Vec<(String, String)>,
    cache: RefCell<HashMap<String, Option<Vec<String>>>>,
    /// Files found to differ from the build: their lines are not shown.
    differ: RefCell<Vec<String>>,
}

impl SourceFinder {
    /// Looks under `dirs` and through the `maps` (OLD, NEW) prefix
    /// rewrites.
    pub fn new(dirs: Vec<PathBuf>, maps: Vec<(String, String)>) -> Self {
        Self {
            dirs,
            maps,
            cache: RefCell::default(),
            differ: RefCell::default(),
        }
    }

    /// Checks a found `file` against what DWARF says of its build: the
    /// identifier `name` is declared on `line`. A file that fails is
    /// another version of the source (edited since the build), and its
    /// lines are withheld rather than shown wrong; returns false then.
    pub fn check(&self, file: &str, line: u64, name: &str) -> bool {
        let Some(text) = u32::try_from(line)
            .ok()
            .and_then(|l| self.read_line(file, l))
        else {
            return true;
        };
        let declared = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == name);
        let mut differ = self.differ.borrow_mut();
        if !declared && !differ.iter().any(|f| f == file) {
            differ.push(file.to_string());
        }
        declared
    }

    /// A warning for each file found to differ from the build.
    pub fn warnings(&self) -> Vec<String> {
        self.differ
            .borrow()
            .iter()
            .map(|f| format!("{f} differs from the source the code was built from (its declarations are not on the lines DWARF gives): its lines are not shown"))
            .collect()
    }

    /// Where `file` is on this machine, if anywhere.
    pub fn find(&self, file: &str) -> Option<PathBuf> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        for (old, new) in &self.maps {
            if let Some(rest) = file.strip_prefix(old.as_str()) {
                candidates.push(PathBuf::from(format!("{new}{rest}")));
            }
        }
        candidates.push(PathBuf::from(file));
        let parts: Vec<&str> = file.split('/').filter(|p| !p.is_empty()).collect();
        for dir in &self.dirs {
            for i in 0..parts.len() {
                candidates.push(dir.join(parts[i..].join("/")));
            }
        }
        candidates.into_iter().find(|p| p.is_file())
    }

    /// The text of `line` (1-based) of `file`, without its newline; `None`
    /// when the file is not found or differs from the build.
    pub fn line(&self, file: &str, line: u32) -> Option<String> {
        if self.differ.borrow().iter().any(|f| f == file) {
            return None;
        }
        self.read_line(file, line)
    }

    fn read_line(&self, file: &str, line: u32) -> Option<String> {
        let mut cache = self.cache.borrow_mut();
        let lines = cache.entry(file.to_string()).or_insert_with(|| {
            let path = self.find(file)?;
            read_lines(&path)
        });
        lines
            .as_ref()?
            .get((line as usize).checked_sub(1)?)
            .map(|l| l.trim_end().to_string())
    }
}

fn read_lines(path: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(path).ok()?;
    Some(
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_found_by_its_tail_under_a_source_dir_and_through_a_map() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("module")).unwrap();
        std::fs::write(
            dir.path().join("module/ksw_test.c"),
            "one\n  two  \nthree\n",
        )
        .unwrap();
        let by_dir = SourceFinder::new(vec![dir.path().to_path_buf()], vec![]);
        assert_eq!(
            by_dir.line("/build/tree/module/ksw_test.c", 2).as_deref(),
            Some("  two")
        );
        assert_eq!(by_dir.line("/build/tree/module/ksw_test.c", 4), None);
        assert_eq!(by_dir.line("/build/tree/module/other.c", 1), None);
        // a file whose line 2 does not declare `three` is another version
        assert!(by_dir.check("/build/tree/module/ksw_test.c", 2, "two"));
        assert!(!by_dir.check("/build/tree/module/ksw_test.c", 2, "three"));
        assert_eq!(by_dir.line("/build/tree/module/ksw_test.c", 1), None);
        let by_map = SourceFinder::new(
            vec![],
            vec![("/build/tree".into(), dir.path().display().to_string())],
        );
        assert_eq!(
            by_map.line("/build/tree/module/ksw_test.c", 3).as_deref(),
            Some("three")
        );
    }
}
