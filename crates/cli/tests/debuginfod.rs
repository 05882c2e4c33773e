//! Debug files fetched by build ID from a real debuginfod server
//! (elfutils' `debuginfod`, Debian package `debuginfod`, installed by
//! `python3 testdata/pipeline deps`), started on 127.0.0.1 over a
//! directory holding the committed sample's module files. `ksw analyze`
//! on the sample dump, given no module directory, fetches what it lacks
//! by the build IDs in the dump's memory.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/sample/kstackwatch-6.1")
}

/// kstackwatch_test.ko's build ID, the one the sample's catch is in.
fn test_module_id() -> String {
    let out = Command::new("readelf")
        .args(["-n"])
        .arg(sample().join("modules/kstackwatch_test.ko"))
        .output()
        .expect("readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("a build ID")
        .to_string()
}

/// A debuginfod serving `dir`, killed when dropped.
struct Server {
    child: Child,
    url: String,
    _db: tempfile::TempDir,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let db = tempfile::tempdir().unwrap();
        let child = Command::new("debuginfod")
            .arg("-F")
            .arg(dir)
            .args(["-p", &port.to_string(), "-t", "0", "-d"])
            .arg(db.path().join("db.sqlite"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("debuginfod is missing: run `python3 testdata/pipeline deps`");
        let url = format!("http://127.0.0.1:{port}");
        let server = Server {
            child,
            url,
            _db: db,
        };
        // ready once it has indexed the directory
        let probe = format!("{}/buildid/{}/debuginfo", server.url, test_module_id());
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            let ok = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", &probe])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return server;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("debuginfod did not serve {probe} within 60 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The served directory: the sample's module files.
fn served() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for ko in ["kstackwatch.ko", "kstackwatch_test.ko"] {
        std::fs::copy(sample().join("modules").join(ko), dir.path().join(ko)).unwrap();
    }
    dir
}

/// The sample dump alone in a directory (ksw also looks for modules
/// beside a dump, and the sample's are there).
fn lone_dump() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.kdump-zlib");
    std::fs::copy(sample().join("dump.kdump-zlib"), &dump).unwrap();
    (dir, dump)
}

thread_local! {
    static DUMP: (tempfile::TempDir, PathBuf) = lone_dump();
}

fn dump() -> PathBuf {
    DUMP.with(|d| d.1.clone())
}

/// `ksw analyze` on the sample with no module directory, with `env`.
fn analyze(extra: &[&str], env: &[(&str, &Path)], urls: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ksw"));
    cmd.arg("analyze")
        .arg(dump())
        .args(["--sysroot", "/nonexistent"])
        .args(extra)
        .env("DEBUGINFOD_URLS", urls)
        .env_remove("DEBUGINFOD_MAXSIZE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ksw");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_fetch_by_build_id_gives_the_local_report_and_a_second_run_uses_the_cache() {
    let dir = served();
    let cache = tempfile::tempdir().unwrap();
    let env = [("DEBUGINFOD_CACHE_PATH", cache.path())];
    let explicit = Command::new(env!("CARGO_BIN_EXE_ksw"))
        .arg("analyze")
        .arg(dump())
        .arg("--module-dir")
        .arg(sample().join("modules"))
        .args(["--sysroot", "/nonexistent", "--offline"])
        .output()
        .unwrap();
    let explicit = text(&explicit.stdout);
    assert!(explicit.contains("ksw_test.c:"), "{explicit}");

    let server = Server::start(dir.path());
    let first = analyze(&[], &env, &server.url);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout), explicit);
    let id = test_module_id();
    let entry = cache.path().join(&id).join("debuginfo");
    assert!(entry.is_file(), "{} not cached", entry.display());
    assert!(
        text(&first.stderr).contains(&format!(
            "module kstackwatch_test: debug file {}",
            entry.display()
        )),
        "{}",
        text(&first.stderr)
    );
    // no server now: the same report, from the cache
    drop(server);
    let second = analyze(&[], &env, "http://127.0.0.1:9");
    assert_eq!(text(&second.stdout), explicit, "{}", text(&second.stderr));
}

#[test]
fn a_stopped_server_is_named_and_offline_fetches_nothing() {
    let dir = served();
    let cache = tempfile::tempdir().unwrap();
    let env = [("DEBUGINFOD_CACHE_PATH", cache.path())];
    let server = Server::start(dir.path());
    let url = server.url.clone();
    // offline with the server up: nothing fetched, and said why
    let offline = analyze(&["--offline"], &env, &url);
    assert_eq!(offline.status.code(), Some(0));
    assert!(!text(&offline.stdout).contains("ksw_test.c:"));
    assert!(
        text(&offline.stderr).contains("--offline forbids fetching"),
        "{}",
        text(&offline.stderr)
    );
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "nothing cached"
    );
    // the server stopped: the report still comes, and the note names it
    drop(server);
    let down = analyze(&[], &env, &url);
    assert_eq!(down.status.code(), Some(0));
    let err = text(&down.stderr);
    assert!(
        err.contains(&format!("{url}/buildid/")) && err.contains("cannot be reached"),
        "{err}"
    );
    assert!(
        !cache
            .path()
            .join(test_module_id())
            .join("debuginfo")
            .exists()
    );
}

#[test]
fn a_wrong_build_id_and_an_oversize_body_are_refused_and_not_cached() {
    let dir = served();
    let cache = tempfile::tempdir().unwrap();
    let env = [("DEBUGINFOD_CACHE_PATH", cache.path())];
    let server = Server::start(dir.path());
    let id = test_module_id();
    // the server indexed kstackwatch_test.ko by its build ID; its bytes
    // are now another module's (mtime kept, so the server still serves
    // the file it indexed)
    let victim = dir.path().join("kstackwatch_test.ko");
    let mtime = std::fs::metadata(&victim).unwrap().modified().unwrap();
    std::fs::copy(dir.path().join("kstackwatch.ko"), &victim).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let wrong = analyze(&[], &env, &server.url);
    let err = text(&wrong.stderr);
    assert!(
        err.contains("refused, the answer's build ID is") && err.contains(&format!("not {id}")),
        "{err}"
    );
    assert!(
        !cache.path().join(&id).join("debuginfo").exists(),
        "a refused answer is not cached"
    );
    assert!(!text(&wrong.stdout).contains("ksw_test.c:"));
    // a bound below the module's size
    let mut small = Command::new(env!("CARGO_BIN_EXE_ksw"));
    small
        .arg("analyze")
        .arg(dump())
        .args(["--sysroot", "/nonexistent"])
        .env("DEBUGINFOD_URLS", &server.url)
        .env("DEBUGINFOD_CACHE_PATH", cache.path())
        .env("DEBUGINFOD_MAXSIZE", "1000");
    let out = small.output().unwrap();
    let err = text(&out.stderr);
    assert!(
        err.contains("over the 1000 bytes allowed") || err.contains("past the 1000 bytes allowed"),
        "{err}"
    );
    let left: Vec<_> = walk(cache.path());
    assert!(
        !cache.path().join(&id).join("debuginfo").exists(),
        "{left:?}"
    );
    assert!(
        left.iter().all(|p| !p.to_string_lossy().contains(".ksw-")),
        "no partial file: {left:?}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
