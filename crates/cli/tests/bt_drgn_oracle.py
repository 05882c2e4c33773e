"""drgn's stack traces of a dump, for the `ksw bt` oracle test (bt_drgn.rs).

Run with the drgn venv's python:  bt_drgn_oracle.py DUMP VMLINUX
drgn opens DUMP itself and reads VMLINUX's DWARF (no module debug info).
Prints one JSON array: one entry per task drgn enumerates
(`for_each_task`, the PID table; where that walk meets a page the dump left out, an entry
{"address": 0, "source": "enumeration-error", "error"} says so and the
crashed thread is added), then the idle task (pid 0, not in the
PID table) of every possible CPU (possible, since panic() marks the CPUs
it stops offline), each task once:

  {"address", "pid", "comm", "cpu", "on_cpu", "crashed",
   "source": "pid-table"|"idle", "error": null or drgn's exception,
   "list_prev", "list_next": the task_structs before and after it on the
   process list (init_task.tasks) for a thread-group leader, else null,
   "frames": [...]}

and per frame, in drgn's order, inline frames included:

  {"pc", "inline", "interrupted", "function" (DWARF name or null),
   "symbol" (ELF symbol containing the call site, as frame.symbol()),
   "symbol_address", "symbol_size",
   "labels" (every ELF symbol name at the nearest symbol address at or
   below the call site and not below "symbol": what a kallsyms lookup
   names, labels such as entry_SYSCALL_64_after_hwframe included),
   "module" (drgn's module of pc, null for vmlinux)}

The call site is pc for an interrupted frame and pc - 1 for a return
address, as in frame.symbol().
"""

import bisect
import json
import sys

import drgn
from drgn.helpers.linux.cpumask import for_each_possible_cpu
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import cpu_curr, idle_task, task_cpu


def main():
    dump, vmlinux = sys.argv[1:3]
    prog = drgn.Program()
    prog.set_core_dump(dump)
    prog.load_debug_info([vmlinux])

    # Every ELF symbol of vmlinux by address, for the kallsyms-style name.
    by_addr = {}
    for s in prog.symbols():
        if s.address:
            by_addr.setdefault(s.address, set()).add(s.name)
    addrs = sorted(by_addr)

    def labels(site, floor):
        i = bisect.bisect_right(addrs, site) - 1
        if i < 0 or addrs[i] < floor:
            return []
        return sorted(by_addr[addrs[i]])

    try:
        crashed = prog.crashed_thread().object.value_()
    except (LookupError, ValueError, drgn.FaultError):
        crashed = None

    def module_of(pc):
        try:
            mod = prog.module(pc)
        except LookupError:
            return None
        name = getattr(mod, "name", None)
        return None if name in (None, "kernel") else name

    def frames_of(task):
        out = []
        for f in prog.stack_trace(task):
            site = f.pc - (0 if f.interrupted else 1)
            try:
                sym = f.symbol()
            except LookupError:
                sym = None
            out.append({
                "pc": f.pc,
                "inline": f.is_inline,
                "interrupted": f.interrupted,
                "function": f.name,
                "symbol": sym.name if sym else None,
                "symbol_address": sym.address if sym else None,
                "symbol_size": sym.size if sym else None,
                "labels": labels(site, sym.address) if sym else [],
                "module": module_of(f.pc),
            })
        return out

    tasks_off = drgn.offsetof(prog.type("struct task_struct"), "tasks")

    def entry(task, source):
        e = {"address": task.value_(), "pid": None, "comm": None, "cpu": None,
             "on_cpu": False, "crashed": task.value_() == crashed,
             "source": source, "error": None, "frames": [],
             "list_prev": None, "list_next": None}
        try:
            e["pid"] = task.pid.value_()
            e["comm"] = task.comm.string_().decode(errors="replace")
            e["cpu"] = task_cpu(task)
            e["on_cpu"] = cpu_curr(prog, e["cpu"]).value_() == task.value_()
            if task.group_leader.value_() == task.value_():
                e["list_prev"] = task.tasks.prev.value_() - tasks_off
                e["list_next"] = task.tasks.next.value_() - tasks_off
            e["frames"] = frames_of(task)
        except Exception as err:  # drgn's answer, whatever it is, is data
            e["error"] = f"{type(err).__name__}: {err}"
        return e

    out, seen = [], set()
    try:
        for task in for_each_task(prog):
            if task.value_() not in seen:
                seen.add(task.value_())
                out.append(entry(task, "pid-table"))
    except drgn.FaultError as err:
        # the PID table itself runs through a page the dump left out: the
        # walk ends here, and says so
        out.append({"address": 0, "source": "enumeration-error",
                    "error": f"FaultError: {err}", "crashed": False})
    # the crashed thread, in case the walk did not reach it
    task = prog.crashed_thread().object
    if task.value_() not in seen:
        seen.add(task.value_())
        out.append(entry(task, "crashed"))
    # Possible, not online: a CPU stopped by panic() is marked offline.
    for cpu in for_each_possible_cpu(prog):
        task = idle_task(prog, cpu)
        if task.value_() not in seen:
            seen.add(task.value_())
            out.append(entry(task, "idle"))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
