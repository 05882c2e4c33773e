//! kstackwatch.ko's live state, read out of its memory through the state
//! map it publishes (`kstackwatch_contract::state_map`): the config, the
//! watchpoint slots, the per-task depth table and the counters. Which
//! debug register of which CPU holds which slot comes from the kernel's
//! own per-CPU shadows of the debug registers (`cpu_dr7`,
//! `cpu_debugreg`, `bp_per_reg`), so the view is what the CPUs were told,
//! not only what the module meant.
//!
//! Nothing here needs the module's `.ko`: the map names every offset.

use kstackwatch_contract::state_map::{self, Entry, StateMap};
use ksw_vmcore::VirtAddr;
use serde::Serialize;

use super::{KernelError, KernelModel, Result, Task};

/// x86_64 has four address debug registers.
const DEBUG_REGISTERS: usize = 4;
/// The most task-table entries believed (the module has 1024).
const MAX_TASK_ENTRIES: u64 = 1 << 16;
/// The largest struct of the module's state believed, in bytes.
const MAX_STRIDE: u64 = 1 << 16;
/// The largest object of the module's state believed, in bytes.
const MAX_OBJECT: u64 = 16 << 20;

/// The module's state.
#[derive(Debug, Clone, Serialize)]
pub struct KstackwatchState {
    /// Where the state map is.
    pub state_map: u64,
    /// The map was found by its magic, not by its symbol.
    pub found_by_magic: bool,
    /// The config string, when a watch is installed.
    pub config: Option<String>,
    /// A watch is installed.
    pub watching: bool,
    /// The probes act (false while a config is being swapped).
    pub enabled: bool,
    /// Bumped on every start and stop.
    pub generation: u64,
    /// Asynchronous IPIs not yet run.
    pub pending_ipis: i64,
    /// The word idle slots watch (nothing writes it).
    pub placeholder: u64,
    /// The module parameter `panic_on_catch`.
    pub panic_on_catch: bool,
    /// The watchpoint slots.
    pub slots: Vec<WatchSlot>,
    /// What each CPU's debug registers hold.
    pub cpus: Vec<CpuWatchpoints>,
    /// The per-task table's entries in use.
    pub tasks: Vec<TrackedTask>,
    /// Every counter, in the module's order.
    pub counters: Vec<Counter>,
    /// What could not be read.
    pub warnings: Vec<String>,
}

/// One preallocated watchpoint.
#[derive(Debug, Clone, Serialize)]
pub struct WatchSlot {
    /// Its index in the module.
    pub index: u64,
    /// Owned by an activation of the watched function.
    pub busy: bool,
    /// The address it watches.
    pub address: u64,
    /// `address` is the module's placeholder word: the slot is idle.
    pub idle: bool,
    /// The task whose activation armed it (when busy).
    pub victim: Option<TaskRef>,
    /// The SP at the probe when it was armed.
    pub armed_sp: u64,
    /// The watched word's value when it was armed, or after the last
    /// catch (the module compares each hit against it).
    pub last_value: u64,
    /// The activation's depth.
    pub depth: u64,
}

/// A task named by its `task_struct`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TaskRef {
    /// The `task_struct` address.
    pub address: u64,
    /// Its pid, when the task could be read.
    pub pid: Option<i32>,
    /// Its comm, when the task could be read.
    pub comm: Option<String>,
}

/// One CPU's debug registers, as the kernel last programmed them.
#[derive(Debug, Clone, Serialize)]
pub struct CpuWatchpoints {
    /// The CPU.
    pub cpu: u32,
    /// `cpu_dr7`.
    pub dr7: u64,
    /// DR0 to DR3.
    pub registers: Vec<DebugRegister>,
}

/// One address debug register.
#[derive(Debug, Clone, Serialize)]
pub struct DebugRegister {
    /// 0 to 3.
    pub index: u8,
    /// The address it holds.
    pub address: u64,
    /// DR7 enables it.
    pub enabled: bool,
    /// The kstackwatch slot whose breakpoint it is, if any.
    pub slot: Option<u64>,
}

/// One entry of the per-task table.
#[derive(Debug, Clone, Serialize)]
pub struct TrackedTask {
    /// The task.
    pub task: TaskRef,
    /// Live activations of the watched function.
    pub depth: i64,
    /// The activation that owns a slot, or -1.
    pub armed_depth: i64,
    /// That slot.
    pub slot: Option<u64>,
    /// The SP at the arming probe hit.
    pub sp: u64,
    /// Left from an earlier config (the module resets it on next use).
    pub stale: bool,
}

/// One counter.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Counter {
    /// Its name, as `/proc/kstackwatch` prints it.
    pub name: String,
    /// Its value.
    pub value: i64,
}

/// The state of the kstackwatch module loaded in `model`; `Ok(None)`
/// when it is not loaded.
pub fn read(model: &KernelModel<'_>) -> Result<Option<KstackwatchState>> {
    let Some(module) = model.modules().iter().find(|m| m.name == "kstackwatch") else {
        return Ok(None);
    };
    let (at, found_by_magic) = match model.symbols().address_of("ksw_state_map") {
        Some(at) => (at, false),
        None => match super::modules::find_word(model.memory(), module, state_map::MAGIC) {
            Some(at) => (at, true),
            None => {
                return Err(KernelError::Corrupt(
                    "kstackwatch is loaded but neither its symbol ksw_state_map nor the map's magic is readable: a module older than the state map (rebuild kstackwatch.ko), or a dump without its data".into(),
                ));
            }
        },
    };
    let bytes = model
        .memory()
        .read_vec(VirtAddr(at), state_map::SIZE)
        .map_err(|e| KernelError::Memory {
            what: "kstackwatch's state map".into(),
            source: e,
        })?;
    let map = StateMap::read(&bytes).map_err(|e| {
        KernelError::Corrupt(format!(
            "kstackwatch's state map at {at:#x}: {e}; use the ksw built with this kstackwatch.ko"
        ))
    })?;
    let r = Reader { model, map: &map };
    let ksw = r.object("ksw")?;
    let watching = r.int(ksw, "ksw_state.watching")? != 0;
    let generation = r.int(ksw, "ksw_state.gen")?;
    let mut warnings = Vec::new();
    if found_by_magic {
        warnings.push(format!(
            "kstackwatch's symbol ksw_state_map is not readable; its state map was found by its magic at {at:#x}"
        ));
    }
    let placeholder = r.object("ksw_holder")?;
    let nr = r.object_int("ksw_nr_wps")? as i32;
    let wps = r.elements("ksw_wps", "struct ksw_wp", nr.max(0) as u64)?;
    let slots = r.slots(&wps, placeholder)?;
    let cpus = r.cpus(&wps, &slots).unwrap_or_else(|e| {
        warnings.push(format!("the CPUs' debug registers: {e}"));
        Vec::new()
    });
    Ok(Some(KstackwatchState {
        state_map: at,
        found_by_magic,
        config: watching
            .then(|| r.text(ksw, "ksw_state.cfg.raw"))
            .transpose()?,
        watching,
        enabled: r.int(ksw, "ksw_state.enabled")? != 0,
        generation,
        pending_ipis: r.signed(ksw, "ksw_state.pending_ipis")?,
        placeholder,
        panic_on_catch: r.object_int("panic_on_catch")? != 0,
        tasks: r.tasks(generation, &wps, &slots)?,
        slots,
        cpus,
        counters: map
            .under("ksw_state.stats.")
            .map(|(name, e)| {
                Ok(Counter {
                    name: name.to_string(),
                    value: r.field(ksw, e, false)?,
                })
            })
            .collect::<Result<_>>()?,
        warnings,
    }))
}

/// Reads the module's objects through the map.
struct Reader<'a, 'm> {
    model: &'a KernelModel<'m>,
    map: &'a StateMap,
}

impl Reader<'_, '_> {
    fn entry(&self, name: &str) -> Result<&Entry> {
        self.map.get(name).ok_or_else(|| {
            KernelError::Corrupt(format!(
                "kstackwatch's state map has no entry {name}: the module is of another version than this ksw"
            ))
        })
    }

    fn object(&self, name: &str) -> Result<u64> {
        Ok(self.entry(name)?.value)
    }

    /// `len` bytes at `at`; `what` names them in an error.
    fn bytes(&self, at: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        self.model
            .memory()
            .read_vec(VirtAddr(at), len as usize)
            .map_err(|e| KernelError::Memory {
                what: format!("kstackwatch's {what} at {at:#x}"),
                source: e,
            })
    }

    /// The integer member `e` of the object at `base` (at most 9 bytes
    /// are read: `le_int` refuses more than 8).
    fn field(&self, base: u64, e: &Entry, signed: bool) -> Result<i64> {
        let b = self.bytes(base.wrapping_add(e.value), e.size.min(9), &e.name)?;
        le_int(&b, signed)
    }

    /// The integer object `name` (unsigned).
    fn object_int(&self, name: &str) -> Result<u64> {
        let e = self.entry(name)?;
        Ok(self.field(0, e, false)? as u64)
    }

    /// The member `name` of the object at `base`, unsigned.
    fn int(&self, base: u64, name: &str) -> Result<u64> {
        Ok(self.field(base, self.entry(name)?, false)? as u64)
    }

    /// The member `name` of the object at `base`, sign-extended.
    fn signed(&self, base: u64, name: &str) -> Result<i64> {
        self.field(base, self.entry(name)?, true)
    }

    /// The NUL-terminated text member `name` of the object at `base`.
    fn text(&self, base: u64, name: &str) -> Result<String> {
        let e = self.entry(name)?;
        let b = self.bytes(base.wrapping_add(e.value), e.size.min(4096), name)?;
        Ok(kstackwatch_contract::record::c_str(&b))
    }

    /// An array object's base, element size and element count (`count`
    /// at most, and no more than the object's size holds).
    fn array(&self, object: &str, ty: &str, count: u64) -> Result<(u64, u64, u64)> {
        let o = self.entry(object)?;
        let stride = self.entry(ty)?.size;
        if stride == 0 || stride > MAX_STRIDE || o.size > MAX_OBJECT {
            return Err(KernelError::Corrupt(format!(
                "kstackwatch's state map gives {ty} {stride} bytes and {object} {}: not believed",
                o.size
            )));
        }
        Ok((o.value, stride, count.min(o.size / stride)))
    }

    /// An array object's elements' addresses (see [`Self::array`]).
    fn elements(&self, object: &str, ty: &str, count: u64) -> Result<Vec<u64>> {
        let (base, stride, n) = self.array(object, ty, count)?;
        Ok((0..n)
            .map(|i| base.wrapping_add(i.wrapping_mul(stride)))
            .collect())
    }

    fn task(&self, address: u64) -> TaskRef {
        let t = Task::read(self.model.memory(), self.model.layout(), address).ok();
        TaskRef {
            address,
            pid: t.as_ref().map(|t| t.pid),
            comm: t.map(|t| t.comm),
        }
    }

    fn slots(&self, wps: &[u64], placeholder: u64) -> Result<Vec<WatchSlot>> {
        wps.iter()
            .map(|&wp| {
                let busy = self.int(wp, "ksw_wp.busy")? != 0;
                let address = self.int(wp, "ksw_wp.addr")?;
                let victim = self.int(wp, "ksw_wp.victim")?;
                Ok(WatchSlot {
                    index: self.int(wp, "ksw_wp.index")?,
                    busy,
                    address,
                    idle: address == placeholder,
                    victim: (busy && victim != 0).then(|| self.task(victim)),
                    armed_sp: self.int(wp, "ksw_wp.armed_sp")?,
                    last_value: self.int(wp, "ksw_wp.old_value")?,
                    depth: self.int(wp, "ksw_wp.depth")?,
                })
            })
            .collect()
    }

    /// Each CPU's DR0-DR3 and DR7 from the kernel's shadows; a register
    /// is a slot's when `bp_per_reg` holds that slot's perf event there.
    fn cpus(&self, wps: &[u64], slots: &[WatchSlot]) -> Result<Vec<CpuWatchpoints>> {
        let sym = |name: &str| {
            self.model
                .symbols()
                .address_of(name)
                .ok_or_else(|| KernelError::NoSymbol(name.into()))
        };
        let (dr7, debugreg, per_reg) = (sym("cpu_dr7")?, sym("cpu_debugreg")?, sym("bp_per_reg")?);
        let mem = self.model.memory();
        let read = |at: u64, what: &str| {
            mem.read_u64(VirtAddr(at)).map_err(|e| KernelError::Memory {
                what: what.to_string(),
                source: e,
            })
        };
        // each slot's per-CPU pointer to its perf events
        let per_cpu_events: Vec<(u64, u64)> = wps
            .iter()
            .zip(slots)
            .filter_map(|(&wp, s)| Some((self.int(wp, "ksw_wp.events").ok()?, s.index)))
            .collect();
        let mut out = Vec::new();
        for (cpu, &off) in self.model.per_cpu_offsets().iter().enumerate() {
            let dr7_value = read(dr7.wrapping_add(off), &format!("cpu_dr7 of CPU {cpu}"))?;
            // this CPU's perf event of each slot
            let events: Vec<(u64, u64)> = per_cpu_events
                .iter()
                .filter_map(|&(events, slot)| {
                    let event = read(events.wrapping_add(off), "a slot's perf event").ok()?;
                    Some((event, slot))
                })
                .collect();
            let registers = (0..DEBUG_REGISTERS)
                .map(|i| {
                    let at = |base: u64| base.wrapping_add(off) + 8 * i as u64;
                    let event = read(at(per_reg), &format!("bp_per_reg of CPU {cpu}"))?;
                    Ok(DebugRegister {
                        index: i as u8,
                        address: read(at(debugreg), &format!("cpu_debugreg of CPU {cpu}"))?,
                        enabled: (dr7_value >> (2 * i)) & 3 != 0,
                        slot: events
                            .iter()
                            .find(|(e, _)| *e != 0 && *e == event)
                            .map(|&(_, s)| s),
                    })
                })
                .collect::<Result<_>>()?;
            out.push(CpuWatchpoints {
                cpu: cpu as u32,
                dr7: dr7_value,
                registers,
            });
        }
        Ok(out)
    }

    fn tasks(&self, generation: u64, wps: &[u64], slots: &[WatchSlot]) -> Result<Vec<TrackedTask>> {
        let (base, stride, n) = self.array("ksw_tasks", "struct ksw_task_ctx", MAX_TASK_ENTRIES)?;
        // one read of the whole table
        let table = self.bytes(base, n * stride, "task table")?;
        let field = |i: usize, name: &str, signed: bool| -> Result<i64> {
            let e = self.entry(name)?;
            let at = (i as u64 * stride).checked_add(e.value);
            let span = at.and_then(|a| Some(a as usize..a.checked_add(e.size)? as usize));
            let bytes = span.and_then(|r| table.get(r)).ok_or_else(|| {
                KernelError::Corrupt(format!(
                    "kstackwatch's state map puts {name} outside its struct"
                ))
            })?;
            le_int(bytes, signed)
        };
        let mut out = Vec::new();
        for i in 0..n as usize {
            let task = field(i, "ksw_task_ctx.task", false)? as u64;
            if task == 0 {
                continue;
            }
            let wp = field(i, "ksw_task_ctx.wp", false)? as u64;
            out.push(TrackedTask {
                task: self.task(task),
                depth: field(i, "ksw_task_ctx.depth", true)?,
                armed_depth: field(i, "ksw_task_ctx.armed_depth", true)?,
                slot: wps.iter().position(|&w| w == wp).map(|p| slots[p].index),
                sp: field(i, "ksw_task_ctx.sp", false)? as u64,
                stale: field(i, "ksw_task_ctx.gen", false)? as u64 != generation,
            });
        }
        Ok(out)
    }
}

/// A little-endian integer of 1 to 8 bytes, sign-extended when `signed`.
fn le_int(bytes: &[u8], signed: bool) -> Result<i64> {
    if !(1..=8).contains(&bytes.len()) {
        return Err(KernelError::Corrupt(format!(
            "kstackwatch's state map gives an integer of {} bytes",
            bytes.len()
        )));
    }
    let v = bytes.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x));
    let shift = 64 - 8 * bytes.len() as u32;
    Ok(if signed {
        ((v << shift) as i64) >> shift
    } else {
        v as i64
    })
}

#[cfg(test)]
mod tests {
    use super::le_int;

    #[test]
    fn integers_of_every_width_and_sign() {
        assert_eq!(le_int(&[0xff], false).unwrap(), 0xff);
        assert_eq!(le_int(&[0xff], true).unwrap(), -1);
        assert_eq!(le_int(&[0xfe, 0xff, 0xff, 0xff], true).unwrap(), -2);
        assert_eq!(le_int(&[0x34, 0x12], false).unwrap(), 0x1234);
        assert_eq!(le_int(&[0xff; 8], false).unwrap() as u64, u64::MAX);
        assert!(le_int(&[], false).is_err());
        assert!(le_int(&[0; 9], true).is_err());
    }
}
