//! kstackwatch's catch ring, read out of the module's memory.
//!
//! The module keeps its last catches in the global `ksw_catch_log`; the
//! symbol comes from the module's own kallsyms, and the bytes are decoded
//! by `kstackwatch-contract`, which checks magic, version and geometry.

use kstackwatch_contract::record::{Catch, CatchLog};
use ksw_vmcore::VirtAddr;

use super::{KernelError, KernelModel, Result};

/// The catches in the ring, oldest first, or `None` when kstackwatch is
/// not loaded (no `ksw_catch_log` symbol).
pub fn read(model: &KernelModel<'_>) -> Result<Option<Vec<Catch>>> {
    let Some(at) = model.symbols().address_of("ksw_catch_log") else {
        return Ok(None);
    };
    let bytes = model
        .memory()
        .read_vec(VirtAddr(at), std::mem::size_of::<CatchLog>())
        .map_err(|e| KernelError::Memory {
            what: "kstackwatch's catch log".into(),
            source: e,
        })?;
    let log = CatchLog::read(&bytes)
        .map_err(|e| KernelError::Corrupt(format!("kstackwatch's catch log: {e}")))?;
    Ok(Some(log.catches().into_iter().copied().collect()))
}
