//! `ksw analyze` where kdump-tools leaves a crash: `/var/crash/STAMP/`
//! holding `dump.STAMP` and `dmesg.STAMP`, the debug vmlinux in
//! `/usr/lib/debug/boot/`, the modules in `/lib/modules/RELEASE/`. With no
//! flag but the directory (and `--sysroot` standing in for `/`), the
//! report equals the one given explicit paths. Built from the committed
//! sample and the pipeline's unpacked -dbg package.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample/kstackwatch-6.1")
}

fn ksw(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .output()
        .expect("run ksw")
}

/// A root with two crashes, the newer one the sample, and the debug files
/// where Debian puts them.
fn crash_tree() -> (tempfile::TempDir, PathBuf) {
    let vmlinux = common::debug_vmlinux("6.1");
    let release = vmlinux
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinux-"))
        .expect("vmlinux-RELEASE")
        .to_string();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let boot = r.join("usr/lib/debug/boot");
    std::fs::create_dir_all(&boot).unwrap();
    symlink(&vmlinux, boot.join(format!("vmlinux-{release}"))).unwrap();
    let extra = r.join(format!("lib/modules/{release}/updates/dkms"));
    std::fs::create_dir_all(&extra).unwrap();
    for ko in ["kstackwatch.ko", "kstackwatch_test.ko"] {
        symlink(sample().join("modules").join(ko), extra.join(ko)).unwrap();
    }
    // an older crash whose dump is not a dump, and the sample's
    let old = r.join("var/crash/202612010000");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("dump.202612010000"), b"not a dump").unwrap();
    let stamp = r.join("var/crash/202612050101");
    std::fs::create_dir_all(&stamp).unwrap();
    let dump = stamp.join("dump.202612050101");
    std::fs::copy(sample().join("dump.kdump-zlib"), &dump).unwrap();
    std::fs::write(stamp.join("dmesg.202612050101"), b"").unwrap();
    let touch = |p: &Path, t: &str| {
        assert!(
            Command::new("touch")
                .args(["-d", t])
                .arg(p)
                .status()
                .unwrap()
                .success()
        );
    };
    touch(&old.join("dump.202612010000"), "2026-12-01 00:00");
    touch(&dump, "2026-12-05 01:01");
    (root, dump)
}

#[test]
fn a_crash_directory_and_the_standard_places_give_the_explicit_report() {
    let (root, dump) = crash_tree();
    let r = root.path();
    let explicit = ksw(&[
        Path::new("analyze"),
        &dump,
        Path::new("--vmlinux"),
        &common::debug_vmlinux("6.1"),
        Path::new("--module-dir"),
        &sample().join("modules"),
        Path::new("--sysroot"),
        Path::new("/nonexistent"),
    ]);
    let explicit_text = String::from_utf8(explicit.stdout).unwrap();
    assert_eq!(explicit.status.code(), Some(0), "{explicit_text}");
    // the explicit report has what the debug files add
    assert!(explicit_text.contains("ksw_test.c:"), "{explicit_text}");
    for dir in [r.join("var/crash"), r.join("var/crash/202612050101")] {
        let found = ksw(&[Path::new("analyze"), &dir, Path::new("--sysroot"), r]);
        let stderr = String::from_utf8_lossy(&found.stderr);
        assert_eq!(found.status.code(), Some(0), "{}: {stderr}", dir.display());
        assert_eq!(
            String::from_utf8(found.stdout).unwrap(),
            explicit_text,
            "{}",
            dir.display()
        );
        assert!(
            stderr.contains("dump.202612050101"),
            "names the dump it chose: {stderr}"
        );
        assert!(
            stderr.contains("debug vmlinux: "),
            "names the vmlinux it found: {stderr}"
        );
    }
}

#[test]
fn all_lists_every_dump_newest_first_and_names_the_unreadable_one() {
    let (root, _) = crash_tree();
    let r = root.path();
    let out = ksw(&[
        Path::new("analyze"),
        &r.join("var/crash"),
        Path::new("--all"),
        Path::new("--json"),
        Path::new("--sysroot"),
        r,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines = lines.as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0]["dump"]
            .as_str()
            .unwrap()
            .ends_with("dump.202612050101")
    );
    assert_eq!(lines[0]["catch"], 1);
    let writer = lines[0]["writer"].as_str().unwrap();
    assert!(
        writer.starts_with("silent_corruption_unwitting (") && writer.contains("ksw_test.c:"),
        "{writer}"
    );
    assert!(lines[0]["release"].as_str().unwrap().starts_with("6.1."));
    assert!(
        lines[1]["dump"]
            .as_str()
            .unwrap()
            .ends_with("dump.202612010000")
    );
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a kernel dump"),
        "{}",
        lines[1]
    );
}

#[test]
fn a_directory_without_dumps_and_all_without_a_directory_are_refused() {
    let empty = tempfile::tempdir().unwrap();
    let out = ksw(&[Path::new("analyze"), empty.path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dump in"));
    let dump = sample().join("dump.kdump-zlib");
    let out = ksw(&[Path::new("analyze"), &dump, Path::new("--all")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--all takes a crash directory"));
}

/// The same on the machine's own standard places, with no flag at all:
/// the crash under /var/crash, the vmlinux under /usr/lib/debug/boot and
/// the modules under /lib/modules/RELEASE, each put there for the test
/// (as root, as CI runs) and taken away after. A place that already
/// exists is left alone and the test fails, rather than guess.
#[test]
fn with_no_flag_at_all_on_the_machines_own_standard_places() {
    let vmlinux = common::debug_vmlinux("6.1");
    let name = vmlinux.file_name().unwrap().to_owned();
    let release = name
        .to_str()
        .unwrap()
        .strip_prefix("vmlinux-")
        .unwrap()
        .to_string();
    let stamp = Path::new("/var/crash").join(format!("ksw-test-{}", std::process::id()));
    let boot = Path::new("/usr/lib/debug/boot");
    let placed_vmlinux = boot.join(&name);
    let modules = Path::new("/lib/modules").join(&release);
    for p in [&placed_vmlinux, &modules, &stamp] {
        assert!(
            !p.exists(),
            "{} exists: this test will not touch it",
            p.display()
        );
    }
    /// Removes what the test placed, whatever happens.
    struct Placed(Vec<PathBuf>);
    impl Drop for Placed {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
            }
        }
    }
    let _placed = Placed(vec![placed_vmlinux.clone(), modules.clone(), stamp.clone()]);
    std::fs::create_dir_all(boot).expect("root is needed (CI runs as root)");
    symlink(&vmlinux, &placed_vmlinux).unwrap();
    std::fs::create_dir_all(modules.join("updates")).unwrap();
    for ko in ["kstackwatch.ko", "kstackwatch_test.ko"] {
        symlink(
            sample().join("modules").join(ko),
            modules.join("updates").join(ko),
        )
        .unwrap();
    }
    std::fs::create_dir_all(&stamp).unwrap();
    std::fs::copy(
        sample().join("dump.kdump-zlib"),
        stamp.join("dump.202612050101"),
    )
    .unwrap();

    let explicit = ksw(&[
        Path::new("analyze"),
        &stamp.join("dump.202612050101"),
        Path::new("--vmlinux"),
        &vmlinux,
        Path::new("--module-dir"),
        &sample().join("modules"),
    ]);
    let found = ksw(&[Path::new("analyze"), &stamp]);
    let stderr = String::from_utf8_lossy(&found.stderr);
    assert_eq!(found.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("debug vmlinux: {}", placed_vmlinux.display())),
        "{stderr}"
    );
    let text = String::from_utf8(found.stdout).unwrap();
    assert!(text.contains("ksw_test.c:"), "{text}");
    assert_eq!(text, String::from_utf8(explicit.stdout).unwrap());
}

/// A vmlinux of another build where the release says is named and passed
/// over; the right one, under `.build-id/`, is used.
#[test]
fn a_vmlinux_of_another_build_is_passed_over_for_the_build_ids() {
    let (root, dump) = crash_tree();
    let r = root.path();
    let boot = r.join("usr/lib/debug/boot");
    let placed = std::fs::read_dir(&boot)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&placed).unwrap();
    symlink(common::debug_vmlinux("6.12"), &placed).unwrap();
    let id = Command::new("readelf")
        .arg("-n")
        .arg(common::debug_vmlinux("6.1"))
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&id.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .expect("a build ID");
    let by_id = r.join(format!("usr/lib/debug/.build-id/{}", &id[..2]));
    std::fs::create_dir_all(&by_id).unwrap();
    symlink(
        common::debug_vmlinux("6.1"),
        by_id.join(format!("{}.debug", &id[2..])),
    )
    .unwrap();
    let out = ksw(&[Path::new("analyze"), &dump, Path::new("--sysroot"), r]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{} passed over", placed.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("debug vmlinux: {}", by_id.display())),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ksw_test.c:"));
}
