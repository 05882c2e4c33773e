//! A debuginfod client, by elfutils' conventions, so that its cache is
//! shared with gdb, drgn and `debuginfod-find`:
//!
//! - servers from `DEBUGINFOD_URLS` (space-separated), asked in order;
//! - `GET URL/buildid/HEX/debuginfo`;
//! - the cache in `DEBUGINFOD_CACHE_PATH`, else
//!   `$XDG_CACHE_HOME/debuginfod_client`, else
//!   `~/.cache/debuginfod_client`, one file per build ID at
//!   `HEX/debuginfo`;
//! - `DEBUGINFOD_MAXSIZE` bounds a download (bytes).
//!
//! An answer is kept only once it is whole (its `Content-Length`, when
//! given, all there), within the size bound, and an ELF file whose GNU
//! build ID is the one asked for. It is written beside the cache entry
//! and renamed into place after those checks, so a refused or interrupted
//! download never leaves a cache entry behind. An empty entry (elfutils'
//! mark of a recent miss) counts as absent.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::elf::ElfImage;
use crate::locate::hex;

/// What went wrong getting a debug file.
#[derive(Debug, thiserror::Error)]
pub enum DebuginfodError {
    /// `--offline`, and the file is not cached.
    #[error(
        "the debug file of build ID {build_id} is not in {cache}, and --offline forbids fetching it"
    )]
    Offline {
        /// The build ID, hex.
        build_id: String,
        /// The cache directory.
        cache: PathBuf,
    },
    /// A server could not be reached, or answered with an HTTP error.
    #[error("{url}: {what}")]
    Server {
        /// What was asked.
        url: String,
        /// Why it failed.
        what: String,
    },
    /// The server does not have the file (404).
    #[error("{url}: the server has no such file")]
    NotFound {
        /// What was asked.
        url: String,
    },
    /// The answer is not the file asked for.
    #[error("{url}: refused, {what}")]
    Refused {
        /// What was asked.
        url: String,
        /// What is wrong with the answer.
        what: String,
    },
    /// The cache could not be written.
    #[error("debuginfod cache {path}: {source}")]
    Cache {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Told how a download goes (a progress bar, or nothing).
pub trait DownloadProgress {
    /// A download of `total` bytes (when the server says) begins.
    fn start(&self, what: &str, total: Option<u64>);
    /// `bytes` more arrived.
    fn advance(&self, bytes: u64);
    /// It ended, well or not.
    fn finish(&self);
}

/// No progress shown.
pub struct NoProgress;

impl DownloadProgress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// The default bound on a download: larger than any vmlinux's debug file.
const DEFAULT_MAX_SIZE: u64 = 4 << 30;

/// The servers, the cache, and whether fetching is allowed.
#[derive(Debug, Clone)]
pub struct Debuginfod {
    urls: Vec<String>,
    cache: PathBuf,
    offline: bool,
    max_size: u64,
    /// One HTTP agent for every fetch, made at the first: its connections
    /// and TLS setup are reused across the files of one run.
    agent: OnceLock<ureq::Agent>,
}

/// The HTTP agent: HTTP errors are answers to read, not failures, and a
/// server that does not answer is given up on.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Debuginfod {
    /// The client the environment describes; `None` when
    /// `DEBUGINFOD_URLS` names no server (as elfutils' client, which then
    /// reads no cache either).
    pub fn from_env(offline: bool) -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let urls: Vec<String> = var("DEBUGINFOD_URLS")
            .map(|v| {
                v.split_whitespace()
                    .map(|u| u.trim_end_matches('/').to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let cache = var("DEBUGINFOD_CACHE_PATH")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| Path::new(&d).join("debuginfod_client")))
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache/debuginfod_client")))?;
        if urls.is_empty() {
            return None;
        }
        let max_size = var("DEBUGINFOD_MAXSIZE")
            .and_then(|v| v.trim().parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_MAX_SIZE);
        Some(Debuginfod {
            urls,
            cache,
            offline,
            max_size,
            agent: OnceLock::new(),
        })
    }

    /// The cache directory.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// Where the debug file of `build_id` is (or would be) cached.
    pub fn cached_path(&self, build_id: &[u8]) -> PathBuf {
        self.cache.join(hex(build_id)).join("debuginfo")
    }

    /// The debug file of `build_id`: from the cache, else from the first
    /// server that has it (unless offline); the last server's error when
    /// none has it.
    pub fn debuginfo(
        &self,
        build_id: &[u8],
        progress: &dyn DownloadProgress,
    ) -> Result<PathBuf, DebuginfodError> {
        let path = self.cached_path(build_id);
        if path.metadata().is_ok_and(|m| m.is_file() && m.len() > 0) {
            return Ok(path);
        }
        if self.offline {
            return Err(DebuginfodError::Offline {
                build_id: hex(build_id),
                cache: self.cache.clone(),
            });
        }
        let mut last = DebuginfodError::NotFound {
            url: "DEBUGINFOD_URLS".into(),
        };
        for url in &self.urls {
            match self.fetch(url, build_id, &path, progress) {
                Ok(()) => return Ok(path),
                // the next server may have it
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn fetch(
        &self,
        server: &str,
        build_id: &[u8],
        dest: &Path,
        progress: &dyn DownloadProgress,
    ) -> Result<(), DebuginfodError> {
        let id = hex(build_id);
        let url = format!("{server}/buildid/{id}/debuginfo");
        let server_err = |what: String| DebuginfodError::Server {
            url: url.clone(),
            what,
        };
        let refused = |what: String| DebuginfodError::Refused {
            url: url.clone(),
            what,
        };
        let response = self
            .agent
            .get_or_init(agent)
            .get(&url)
            .call()
            .map_err(|e| server_err(format!("cannot be reached: {e}")))?;
        let status = response.status();
        if status.as_u16() == 404 {
            return Err(DebuginfodError::NotFound { url });
        }
        if !status.is_success() {
            return Err(server_err(format!("HTTP {status}")));
        }
        let declared: Option<u64> = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        if let Some(n) = declared.filter(|&n| n > self.max_size) {
            return Err(refused(format!(
                "it is {n} bytes, over the {} bytes allowed (DEBUGINFOD_MAXSIZE)",
                self.max_size
            )));
        }
        let dir = dest.parent().unwrap_or(&self.cache);
        let cache_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DebuginfodError::Cache { path, source }
        };
        std::fs::create_dir_all(dir).map_err(cache_err(dir))?;
        let part = dir.join(format!(".debuginfo.ksw-{}", std::process::id()));
        let mut out = std::fs::File::create(&part).map_err(cache_err(&part))?;
        // the temporary file goes whatever happens below
        let _remove = RemoveOnDrop(&part);
        progress.start(&format!("debuginfo {id}"), declared);
        let mut body = response
            .into_body()
            .into_with_config()
            .limit(self.max_size + 1)
            .reader();
        let mut got: u64 = 0;
        let mut buf = vec![0u8; 1 << 16];
        let copied = loop {
            match body.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    got += n as u64;
                    if got > self.max_size {
                        break Err(refused(format!(
                            "its body goes past the {} bytes allowed (DEBUGINFOD_MAXSIZE)",
                            self.max_size
                        )));
                    }
                    if let Err(e) = out.write_all(&buf[..n]) {
                        break Err(cache_err(&part)(e));
                    }
                    progress.advance(n as u64);
                }
                Err(e) => {
                    break Err(refused(format!(
                        "the body broke off after {got} bytes: {e}"
                    )));
                }
            }
        };
        progress.finish();
        copied?;
        if let Some(n) = declared.filter(|&n| n != got) {
            return Err(refused(format!(
                "the body ended after {got} of its {n} bytes"
            )));
        }
        out.sync_all().map_err(cache_err(&part))?;
        drop(out);
        let file = crate::locate::open(&part)
            .map_err(|e| refused(format!("the answer cannot be read back: {e}")))?;
        let answered = ElfImage::parse(&file)
            .map_err(|e| refused(format!("the answer is not an ELF file: {e}")))?
            .build_id()
            .map(hex);
        if answered.as_deref() != Some(id.as_str()) {
            return Err(refused(format!(
                "the answer's build ID is {}, not {id}",
                answered.as_deref().unwrap_or("missing")
            )));
        }
        std::fs::rename(&part, dest).map_err(cache_err(dest))?;
        Ok(())
    }
}

/// Removes a file when dropped (a no-op once it has been renamed away).
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(cache: &Path, offline: bool) -> Debuginfod {
        Debuginfod {
            urls: vec!["http://127.0.0.1:9".into()],
            cache: cache.to_path_buf(),
            offline,
            max_size: DEFAULT_MAX_SIZE,
            agent: OnceLock::new(),
        }
    }

    #[test]
    fn a_cached_file_is_used_and_an_empty_one_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let c = client(dir.path(), true);
        let id = [0xab, 0xcd, 0x01];
        let path = c.cached_path(&id);
        assert_eq!(path, dir.path().join("abcd01/debuginfo"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // elfutils marks a recent miss with an empty file
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            c.debuginfo(&id, &NoProgress),
            Err(DebuginfodError::Offline { .. })
        ));
        std::fs::write(&path, b"x").unwrap();
        assert_eq!(c.debuginfo(&id, &NoProgress).unwrap(), path);
    }
}
