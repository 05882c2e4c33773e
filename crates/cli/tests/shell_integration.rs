//! The man pages and completion scripts shipped in `crates/cli/doc/` are
//! what the current flags generate: a flag added without regenerating
//! them fails here.
//!
//! Regenerate with:
//!
//! ```text
//! cargo run -p ksw -- manpage --dir crates/cli/doc/man
//! cargo run -p ksw -- completions bash > crates/cli/doc/completions/ksw.bash
//! cargo run -p ksw -- completions zsh > crates/cli/doc/completions/_ksw
//! cargo run -p ksw -- completions fish > crates/cli/doc/completions/ksw.fish
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn doc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("doc")
}

fn ksw(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .output()
        .expect("run ksw");
    assert!(
        out.status.success(),
        "ksw {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The `.1` files of a directory, by name.
fn pages(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn the_shipped_man_pages_are_what_the_flags_give() {
    let fresh = tempfile::tempdir().unwrap();
    let listed = ksw(&["manpage", "--dir", fresh.path().to_str().unwrap()]);
    let fresh = pages(fresh.path());
    let shipped = pages(&doc().join("man"));
    // one page per command, the listing names them
    for cmd in ["ksw.1", "ksw-analyze.1", "ksw-live.1", "ksw-completions.1"] {
        assert!(fresh.contains_key(cmd), "{cmd} not generated");
    }
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        shipped.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>(),
        "the set of pages changed: regenerate crates/cli/doc/man (see this file's top)"
    );
    for (name, text) in &fresh {
        assert!(
            shipped[name] == *text,
            "crates/cli/doc/man/{name} is stale: regenerate it (see this file's top)"
        );
    }
    // the page printed without --dir is ksw.1
    assert_eq!(ksw(&["manpage"]), fresh["ksw.1"]);
}

#[test]
fn the_shipped_completions_are_what_the_flags_give() {
    for (shell, file) in [("bash", "ksw.bash"), ("zsh", "_ksw"), ("fish", "ksw.fish")] {
        let fresh = ksw(&["completions", shell]);
        // every command completes
        for cmd in ["analyze", "live", "tasks", "manpage"] {
            assert!(fresh.contains(cmd), "{shell}: {cmd} missing");
        }
        let path = doc().join("completions").join(file);
        let shipped =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            shipped == fresh,
            "{} is stale: regenerate it (see this file's top)",
            path.display()
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcsh"));
}
