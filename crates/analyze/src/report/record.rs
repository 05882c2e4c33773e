//! Finding kstackwatch's catch ring in a dump: by the module's symbol
//! `ksw_catch_log`, or, where the symbol cannot be read (the module's
//! symbol table is in an excluded page), by scanning the module's data
//! for the ring's magic. The bytes are decoded by `kstackwatch-contract`,
//! which refuses an unknown version.

use kstackwatch_contract::record::{self, Catch, RecordError};
use ksw_vmcore::VirtAddr;
use serde::Serialize;

use super::CatchSummary;
use crate::kernel::KernelModel;

/// The ring as found.
#[derive(Debug, Clone)]
pub struct CatchLog {
    /// Its address.
    pub address: u64,
    /// How it was found.
    pub found_by: FoundBy,
    /// The committed catches, oldest first.
    pub catches: Vec<Catch>,
    /// Torn or missing slots.
    pub warnings: Vec<String>,
}

/// How the ring was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FoundBy {
    /// The `ksw_catch_log` symbol.
    Symbol,
    /// The magic, in the module's data.
    Scan,
}

/// The ring of the kstackwatch module loaded in `model`; `Ok(None)` when
/// no kstackwatch is loaded; `Err` when it is there but unreadable or of
/// an unknown version.
pub fn find_catch_log(model: &KernelModel<'_>) -> Result<Option<CatchLog>, String> {
    let size = std::mem::size_of::<record::CatchLog>();
    let decode = |at: u64, found_by: FoundBy| -> Result<CatchLog, String> {
        let bytes = model.memory().read_vec(VirtAddr(at), size).map_err(|e| {
            format!("the ring at {at:#x} is not in the dump ({e}); a dump that keeps the module's data (makedumpfile -d 31 does) would hold it")
        })?;
        let ring = record::CatchLog::read(&bytes).map_err(|e| match e {
            RecordError::BadVersion(v) => format!(
                "the ring at {at:#x} has layout version {v}, and this ksw reads version {}: use the ksw built with the kstackwatch.ko that made the dump",
                record::VERSION
            ),
            other => format!("the ring at {at:#x}: {other}"),
        })?;
        let catches: Vec<Catch> = ring.catches().into_iter().copied().collect();
        let mut warnings = Vec::new();
        let expected = ring.total.min(record::RING as u64);
        if (catches.len() as u64) < expected {
            let empty: Vec<usize> = ring
                .records
                .iter()
                .enumerate()
                .filter(|(_, c)| c.seq == 0)
                .map(|(i, _)| i)
                .collect();
            warnings.push(format!(
                "the ring counts {} catches but {} of its slots hold none (slots {empty:?}): a catch was being written when the dump was taken, or the ring is damaged; those slots are skipped",
                ring.total,
                expected - catches.len() as u64
            ));
        }
        if let Some(max) = catches.iter().map(|c| c.seq).max() {
            if max > ring.total {
                warnings.push(format!(
                    "catch {max} is newer than the ring's count {}: the ring is damaged",
                    ring.total
                ));
            }
        }
        Ok(CatchLog {
            address: at,
            found_by,
            catches,
            warnings,
        })
    };
    if let Some(at) = model.symbols().address_of("ksw_catch_log") {
        return decode(at, FoundBy::Symbol).map(Some);
    }
    let Some(module) = model.modules().iter().find(|m| m.name == "kstackwatch") else {
        return Ok(None);
    };
    if let Some(at) = crate::kernel::modules::find_word(model.memory(), module, record::MAGIC) {
        return decode(at, FoundBy::Scan)
            .map(|mut r| {
                r.warnings.push(format!(
                    "kstackwatch's symbol ksw_catch_log is not readable; its ring was found by its magic at {at:#x}"
                ));
                r
            })
            .map(Some);
    }
    Err("kstackwatch is loaded but neither its symbol ksw_catch_log nor the ring's magic is in the dump's copy of its data".into())
}

/// The one-line summary of a catch.
pub(super) fn summary(model: &KernelModel<'_>, c: &Catch) -> CatchSummary {
    CatchSummary {
        seq: c.seq,
        timestamp_ns: c.timestamp_ns,
        cpu: c.cpu,
        function: c.func_name(),
        watch_address: c.watch_addr,
        writer: model
            .symbols()
            .lookup(c.regs.ip)
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("{:#x}", c.regs.ip)),
        writer_task: format!("{} ({})", c.writer_comm(), c.writer_pid),
    }
}
