#!/usr/bin/env python3
"""Side by side: `ksw bt` (no vmlinux) and drgn (PyPI, with the debug
vmlinux's DWARF) open a dump, print the panic CPU's trace, and print every
task's trace, each step in its own process, in one run.

Not a test and in no test run: a measurement to read. Usage (from the
repository root; builds `ksw` in release mode first):

    python3 crates/cli/benches/bt_versus_drgn.py DUMP VMLINUX [RUNS]
    e.g. python3 crates/cli/benches/bt_versus_drgn.py \
        ~/.cache/ksw/fixtures/6.1/sysrq/dump.kdump-zlib \
        ~/.cache/ksw/kernels/6.1/root/usr/lib/debug/boot/vmlinux-6.1.0-54-cloud-amd64

drgn is taken from $KSW_DRGN_PYTHON (default
~/.cache/ksw/drgn-venv/bin/python). Each of the six commands runs RUNS
times (default 5), interleaved, after one warm-up run each (page cache);
each run is a fresh process under a small Python wrapper so that its peak
RSS (ru_maxrss of the wrapper's children) is its own. Reported: median and
range of wall time (process start to exit, including Python start-up for
drgn), median peak RSS, and the ratios against the goals (ksw at most 1/5
of drgn's wall time, at most 64 MiB peak RSS).

ksw runs without a vmlinux only: `ksw bt` has no --vmlinux option yet.
`ksw info` stands for "open" (it opens the dump and reads VMCOREINFO and
the CPUs' notes, no symbols); drgn's "open" is Program + set_core_dump +
load_debug_info(vmlinux).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

# argv: STEP DUMP VMLINUX, STEP one of open, panic, all. Prints what it
# traced as text (as ksw does), then one JSON line with its own timings.
DRGN_SIDE = r"""
import json, sys, time
t0 = time.perf_counter()
import drgn
from drgn.helpers.linux.pid import for_each_task
step, dump, vmlinux = sys.argv[1:4]
prog = drgn.Program()
prog.set_core_dump(dump)
prog.load_debug_info([vmlinux])
opened = time.perf_counter()
out, traced, failed = [], 0, 0
if step == "panic":
    out.append(str(prog.crashed_thread().stack_trace()))
    traced = 1
elif step == "all":
    for task in for_each_task(prog):
        try:
            out.append(f"PID {task.pid.value_()} {task.comm.string_().decode()}")
            out.append(str(prog.stack_trace(task)))
            traced += 1
        except (drgn.FaultError, ValueError, LookupError):
            failed += 1
done = time.perf_counter()
sys.stdout.write("\n".join(out) + "\n")
print(json.dumps({"open_s": opened - t0, "work_s": done - opened,
                  "traced": traced, "failed": failed}))
"""

WRAPPER = (
    "import json,resource,subprocess,sys,time\n"
    "t=time.perf_counter()\n"
    "o=subprocess.run(sys.argv[1:],capture_output=True,text=True)\n"
    "w=time.perf_counter()-t\n"
    "r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'rc':o.returncode,'wall':w,'rss_kb':r,"
    "'tail':(o.stdout.strip().splitlines() or [''])[-1],'err':o.stderr[-500:]}))\n"
)


def measure(cmd):
    """One run of cmd in a fresh wrapper: wall seconds, peak RSS, last line."""
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out)
    if r["rc"] != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r['rc']}): {r['err']}")
    return r


def interleaved(commands, runs):
    """{name: [measure() of each run]}: one warm-up run of every command
    (page cache), then `runs` rounds, each running every command once."""
    for cmd in commands.values():
        measure(cmd)
    results = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            results[name].append(measure(cmd))
    return results


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    dump, vmlinux = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    drgn_py = os.environ.get("KSW_DRGN_PYTHON",
                             os.path.expanduser("~/.cache/ksw/drgn-venv/bin/python"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ksw"], check=True)
    ksw = os.path.join("target", "release", "ksw")
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "drgn_side.py")
        with open(script, "w") as f:
            f.write(DRGN_SIDE)
        steps = [
            ("open", [ksw, "info", dump], [drgn_py, script, "open", dump, vmlinux]),
            ("panic CPU trace", [ksw, "bt", dump], [drgn_py, script, "panic", dump, vmlinux]),
            ("--all", [ksw, "bt", "--all", dump], [drgn_py, script, "all", dump, vmlinux]),
        ]
        results = {name: ([], []) for name, _, _ in steps}
        for _, ours, theirs in steps:  # warm-up
            measure(ours)
            measure(theirs)
        for _ in range(runs):
            for name, ours, theirs in steps:
                results[name][0].append(measure(ours))
                results[name][1].append(measure(theirs))

    def med(rs, key):
        return statistics.median(r[key] for r in rs)

    print(f"dump: {dump} ({os.path.getsize(dump) / 2**20:.0f} MiB), {runs} runs each")
    print("ksw: release build, no vmlinux (ksw bt has no --vmlinux yet); "
          "drgn: vmlinux DWARF")
    print(f"{'step':16} {'side':5} {'wall median':>12} {'(min-max)':>16} {'peak RSS':>10}"
          f" {'ksw/drgn wall':>14}  goals (<=0.20, <=64 MiB)")
    for name, _, _ in steps:
        ours, theirs = results[name]
        ratio = med(ours, "wall") / med(theirs, "wall")
        rss = med(ours, "rss_kb") / 1024
        for side, rs in (("ksw", ours), ("drgn", theirs)):
            walls = [r["wall"] for r in rs]
            line = (f"{name:16} {side:5} {statistics.median(walls):10.3f} s "
                    f"({min(walls):.3f}-{max(walls):.3f}) {med(rs, 'rss_kb') / 1024:7.1f} MiB")
            if side == "ksw":
                ok = ("met" if ratio <= 0.2 else "MISSED") + ", " + ("met" if rss <= 64 else "MISSED")
                line += f" {ratio:14.3f}  {ok}"
            print(line)
        inner = [json.loads(r["tail"]) for r in theirs]
        print(f"{'':16} drgn inside: open {statistics.median(i['open_s'] for i in inner):.3f} s, "
              f"work {statistics.median(i['work_s'] for i in inner):.3f} s, "
              f"{inner[0]['traced']} traced, {inner[0]['failed']} failed")


if __name__ == "__main__":
    main()
