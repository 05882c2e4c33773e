#!/usr/bin/env python3
"""Side by side, in one run: `ksw analyze` on the committed sample (a real
kstackwatch catch on Debian's 6.1 kernel), without and with the debug
vmlinux, and drgn (PyPI) loading the same dump with the vmlinux's DWARF
and the sample's .ko files and printing the crashed thread's trace: the
least a drgn user does before starting on the catch by hand.

Not a test and in no test run: a measurement to read. Usage (from the
repository root; builds `ksw` in release mode first):

    python3 crates/cli/benches/analyze_versus_drgn.py VMLINUX [RUNS]
    e.g. python3 crates/cli/benches/analyze_versus_drgn.py \
        ~/.cache/ksw/kernels/6.1/root/usr/lib/debug/boot/vmlinux-6.1.0-54-cloud-amd64

drgn is taken from $KSW_DRGN_PYTHON (default
~/.cache/ksw/drgn-venv/bin/python). Each command runs RUNS times (default
5), interleaved, after one warm-up run each (page cache); each run is a
fresh process under a small Python wrapper, so that its peak RSS is its
own. Reported: median and range of wall time (process start to exit,
Python start-up included for drgn), median peak RSS, and the goals:
`ksw analyze` without vmlinux at most 0.2 s and 64 MiB; with vmlinux at
most 1/5 of drgn's time.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

# one fresh process per run, its own peak RSS: as the bt bench measures
from bt_versus_drgn import interleaved

SAMPLE = os.path.join("testdata", "sample", "kstackwatch-6.1")

# argv: DUMP VMLINUX KO... Loads everything, prints the crashed thread's
# trace, then one JSON line with its own timings.
DRGN_SIDE = r"""
import json, sys, time
t0 = time.perf_counter()
import drgn
dump, vmlinux, *kos = sys.argv[1:]
prog = drgn.Program()
prog.set_core_dump(dump)
prog.load_debug_info([vmlinux, *kos])
opened = time.perf_counter()
trace = str(prog.crashed_thread().stack_trace())
done = time.perf_counter()
sys.stdout.write(trace + "\n")
print(json.dumps({"open_s": opened - t0, "work_s": done - opened}))
"""

def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    vmlinux = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    drgn_py = os.environ.get("KSW_DRGN_PYTHON",
                             os.path.expanduser("~/.cache/ksw/drgn-venv/bin/python"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ksw"], check=True)
    ksw = os.path.join("target", "release", "ksw")
    dump = os.path.join(SAMPLE, "dump.kdump-zlib")
    modules = os.path.join(SAMPLE, "modules")
    kos = sorted(os.path.join(modules, k) for k in os.listdir(modules) if k.endswith(".ko"))
    analyze = [ksw, "analyze", dump, "--module-dir", modules]
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "drgn_side.py")
        with open(script, "w") as f:
            f.write(DRGN_SIDE)
        commands = {
            "ksw analyze, no vmlinux": analyze,
            "ksw analyze --vmlinux": analyze + ["--vmlinux", vmlinux],
            "drgn load + crashed thread": [drgn_py, script, dump, vmlinux, *kos],
        }
        results = interleaved(commands, runs)

    def med(name, key):
        return statistics.median(r[key] for r in results[name])

    print(f"sample: {dump}, {runs} runs each")
    for name in commands:
        walls = [r["wall"] for r in results[name]]
        print(f"{name:28} {statistics.median(walls):7.3f} s ({min(walls):.3f}-{max(walls):.3f})"
              f" {med(name, 'rss_kb') / 1024:7.1f} MiB")
    bare = med("ksw analyze, no vmlinux", "wall")
    bare_rss = med("ksw analyze, no vmlinux", "rss_kb") / 1024
    ratio = med("ksw analyze --vmlinux", "wall") / med("drgn load + crashed thread", "wall")
    inner = [json.loads(r["tail"]) for r in results["drgn load + crashed thread"]]
    print(f"drgn inside: load {statistics.median(i['open_s'] for i in inner):.3f} s, "
          f"trace {statistics.median(i['work_s'] for i in inner):.3f} s")
    print(f"goal: no vmlinux <= 0.2 s: {bare:.3f} s {'met' if bare <= 0.2 else 'MISSED'}; "
          f"<= 64 MiB: {bare_rss:.1f} MiB {'met' if bare_rss <= 64 else 'MISSED'}; "
          f"with vmlinux <= 1/5 of drgn: {ratio:.3f} {'met' if ratio <= 0.2 else 'MISSED'}")


if __name__ == "__main__":
    main()
