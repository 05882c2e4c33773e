//! The view of `ksw live`: kstackwatch's state as it is now (config,
//! slots, debug registers, task table, counters), and every catch in its
//! ring explained as `ksw analyze` explains one. It reads a running
//! kernel through /proc/kcore as well as a dump.

use serde::Serialize;

use super::{CatchReport, DebugInputs, Gap, ReportError, WatchFacts, explain, record};
use crate::kernel::kstackwatch::{self, KstackwatchState};
use crate::kernel::{KernelModel, ModuleState};

/// What `ksw live` shows.
#[derive(Debug, Clone, Serialize)]
pub struct LiveReport {
    /// The kernel release.
    pub release: Option<String>,
    /// kstackwatch is loaded.
    pub loaded: bool,
    /// Its state; `None` when it is not loaded or its state is unreadable
    /// (the reason is in `warnings`).
    pub state: Option<KstackwatchState>,
    /// The installed watch, parsed.
    pub watch: Option<WatchFacts>,
    /// The catches in its ring, oldest first, each explained.
    pub catches: Vec<CatchReport>,
    /// What the explanations could not say, and which file would let them.
    pub gaps: Vec<Gap>,
    /// Disagreements and doubts; never hidden.
    pub warnings: Vec<String>,
}

/// Builds the view of the kernel behind `model`.
pub fn build_live(
    model: &KernelModel<'_>,
    debug: &DebugInputs<'_>,
) -> Result<LiveReport, ReportError> {
    let mut warnings = Vec::new();
    let mut gaps = Vec::new();
    let module = model.modules().iter().find(|m| m.name == "kstackwatch");
    // a module on its way out is freeing the memory this would read
    if module.is_some_and(|m| m.state == ModuleState::Going) {
        warnings.push("kstackwatch is being unloaded".into());
    }
    let loaded = module.is_some_and(|m| m.state != ModuleState::Going);
    // an unreadable state still leaves the catches to show
    let state = if loaded {
        kstackwatch::read(model).unwrap_or_else(|e| {
            warnings.push(format!("kstackwatch's state: {e}"));
            None
        })
    } else {
        None
    };
    let mut watch = None;
    if let Some(s) = &state {
        warnings.extend(s.warnings.iter().cloned());
        if let Some(config) = &s.config {
            match WatchFacts::parse(config) {
                Ok(w) => watch = w,
                Err(e) => warnings.push(format!(
                    "the module's config {config:?} does not parse: {e}"
                )),
            }
        }
    }
    let mut catches = Vec::new();
    if loaded {
        if let Some(ring) = record::find_catch_log(model).map_err(ReportError::Ring)? {
            warnings.extend(ring.warnings.iter().cloned());
            for c in &ring.catches {
                catches.push(explain(model, debug, c, &mut gaps, &mut warnings));
            }
        }
    }
    warnings.extend(debug.sources.warnings());
    gaps.dedup();
    Ok(LiveReport {
        release: model.dump().vmcoreinfo().and_then(|i| i.osrelease.clone()),
        loaded,
        state,
        watch,
        catches,
        gaps,
        warnings,
    })
}
