#!/usr/bin/env python3
"""Side by side, in one run: the everyday commands (`ksw tasks`, `ksw
modules`, and each command's time to its answer with no vmlinux, `ksw
live` among them) and
drgn (PyPI, with the debug vmlinux's DWARF) giving the same answers: the
task list (pid, comm, state) and the module list (name, base, size).

Not a test and in no test run: a measurement to read. Usage (from the
repository root; builds `ksw` in release mode first):

    python3 crates/cli/benches/everyday_versus_drgn.py DUMP VMLINUX [RUNS]
    e.g. python3 crates/cli/benches/everyday_versus_drgn.py \
        testdata/sample/kstackwatch-6.1/dump.kdump-zlib \
        ~/.cache/ksw/kernels/6.1/root/usr/lib/debug/boot/vmlinux-6.1.0-54-cloud-amd64

DUMP may be /proc/kcore (as root) for the live case. drgn is taken from
$KSW_DRGN_PYTHON (default ~/.cache/ksw/drgn-venv/bin/python). Each
command runs RUNS times (default 5), interleaved, after one warm-up run
each, each run a fresh process (see bt_versus_drgn.py's `measure`).
Reported: median wall time and peak RSS; the goals: `ksw tasks` plus
`ksw modules` (two processes, their times added) at most 1/5 of drgn's
one process for both answers, and every command at most 50 ms.
"""

import os
import statistics
import subprocess
import sys
import tempfile

from bt_versus_drgn import interleaved

# argv: DUMP VMLINUX. Prints every task and every module, as ksw does.
DRGN_SIDE = r"""
import sys
import drgn
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.module import for_each_module
from drgn.helpers.linux.sched import task_state_to_char
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
out = []
for t in for_each_task(prog):
    out.append("%d %s %s" % (t.pid.value_(), t.comm.string_().decode(), task_state_to_char(t)))
for m in for_each_module(prog):
    try:
        base, size = m.mem[0].base.value_(), m.mem[0].size.value_()
    except AttributeError:
        base, size = m.core_layout.base.value_(), m.core_layout.size.value_()
    out.append("%s %#x %d" % (m.name.string_().decode(), base, size))
sys.stdout.write("\n".join(out) + "\n")
"""


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    dump, vmlinux = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    drgn_py = os.environ.get("KSW_DRGN_PYTHON",
                             os.path.expanduser("~/.cache/ksw/drgn-venv/bin/python"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ksw"], check=True)
    ksw = os.path.join("target", "release", "ksw")
    commands = {
        "info": [ksw, "info", dump],
        "dmesg": [ksw, "dmesg", dump],
        "tasks": [ksw, "tasks", dump],
        "modules": [ksw, "modules", dump],
        "sym": [ksw, "sym", dump, "schedule", "0xffffffff81000000"],
        "print": [ksw, "print", dump, "init_task.comm"],
        "bt": [ksw, "bt", dump],
        "live": [ksw, "live", "--core", dump],
    }
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "drgn_side.py")
        with open(script, "w") as f:
            f.write(DRGN_SIDE)
        commands["drgn tasks+modules"] = [drgn_py, script, dump, vmlinux]
        results = interleaved(commands, runs)

    def med(name, key):
        return statistics.median(r[key] for r in results[name])

    print(f"dump: {dump}, {runs} runs each; ksw with no vmlinux, drgn with its DWARF")
    for name in commands:
        walls = [r["wall"] for r in results[name]]
        line = (f"{name:20} {med(name, 'wall'):7.3f} s ({min(walls):.3f}-{max(walls):.3f})"
                f" {med(name, 'rss_kb') / 1024:7.1f} MiB")
        if not name.startswith("drgn"):
            line += "  <= 50 ms: " + ("met" if med(name, "wall") <= 0.05 else "MISSED")
        print(line)
    ours = med("tasks", "wall") + med("modules", "wall")
    ratio = ours / med("drgn tasks+modules", "wall")
    print(f"ksw tasks + modules {ours:.3f} s, {ratio:.3f} of drgn's: "
          + ("met" if ratio <= 0.2 else "MISSED") + " (goal <= 0.2)")


if __name__ == "__main__":
    main()
