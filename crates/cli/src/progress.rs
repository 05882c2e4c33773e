//! Progress bars on stderr, for work long enough to wonder about: only
//! when stderr is a terminal, and never beside `--json` output.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ksw_analyze::debuginfod::DownloadProgress;

/// A bar of `len` (unknown: `None`) on stderr when it is a terminal and
/// the output is not JSON, else none.
fn watched_bar(len: Option<u64>, json: bool) -> Option<ProgressBar> {
    let shown = !json && std::io::stderr().is_terminal();
    shown.then(|| ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr()))
}

/// A bar over `n` steps (the dumps of `ksw analyze --all`), drawn only
/// where a person watches.
pub(crate) struct StepBar {
    bar: Option<ProgressBar>,
}

impl StepBar {
    /// A bar of `n` steps when stderr is a terminal and the output is not
    /// JSON.
    pub(crate) fn new(n: u64, what: &str, json: bool) -> Self {
        let bar = watched_bar(Some(n), json);
        if let Some(bar) = &bar {
            if let Ok(style) = ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}") {
                bar.set_style(style);
            }
            bar.set_message(format!("ksw: {what}"));
        }
        StepBar { bar }
    }

    /// One more step done.
    pub(crate) fn step(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

impl Drop for StepBar {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A bar for downloads, drawn only where a person watches.
pub(crate) struct DownloadBar {
    bar: Option<ProgressBar>,
}

impl DownloadBar {
    /// A bar when stderr is a terminal and the output is not JSON.
    pub(crate) fn new(json: bool) -> Self {
        DownloadBar {
            bar: watched_bar(None, json),
        }
    }
}

impl DownloadProgress for DownloadBar {
    fn start(&self, what: &str, total: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        bar.reset();
        bar.set_length(total.unwrap_or(0));
        let template = if total.is_some() {
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}"
        } else {
            "{msg} {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(format!("ksw: fetching {what}"));
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
