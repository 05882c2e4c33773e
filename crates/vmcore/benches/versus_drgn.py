#!/usr/bin/env python3
"""Side by side: ksw-vmcore and drgn (PyPI) open a dump, read VMCOREINFO
and read the same N random kernel pages, each in its own process.

Both sides do the same timed work: the address list is parsed before the
clock starts, the timed loop only reads each page into memory, and the
checksum (the guard that both read the same data) is computed after the
clock stops. Each side runs RUNS times (default 5), alternating, after one
warm-up run each; the report gives the median and range of the read loop,
of opening the dump, and of the whole process (wall time, including
interpreter start-up for drgn), and peak RSS.

Usage: versus_drgn.py DUMP [N] [RUNS]   (run from the repository root;
drgn is taken from $KSW_DRGN_PYTHON, default
~/.cache/ksw/drgn-venv/bin/python)
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

DRGN_SIDE = r"""
import sys, time, json, drgn
addrs = [int(line, 16) for line in open(sys.argv[2])]
t0 = time.perf_counter()
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
opened = time.perf_counter()
pages = []
faults = 0
for a in addrs:
    try:
        pages.append(prog.read(a, 4096))
    except drgn.FaultError:
        faults += 1
done = time.perf_counter()
checksum = sum(sum(p) for p in pages)
print(json.dumps({"open_s": opened - t0, "read_s": done - opened,
                  "total_s": done - t0, "ok": len(pages), "faults": faults,
                  "checksum": checksum}))
"""


def run_isolated(cmd):
    """Runs cmd under a fresh Python wrapper so ru_maxrss is its own."""
    wrapper = ("import resource,subprocess,sys,time,json;t=time.perf_counter();"
               "o=subprocess.run(sys.argv[1:],check=True,capture_output=True,text=True).stdout;"
               "w=time.perf_counter()-t;"
               "r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
               "print(json.dumps({'inner':json.loads(o.strip().splitlines()[-1]),'wall':w,'rss_kb':r}))")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def summary(samples):
    """Median and range of a list of seconds."""
    return (f"median {statistics.median(samples):.4f} s "
            f"(min {min(samples):.4f}, max {max(samples):.4f})")


def main():
    dump = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    drgn_py = os.environ.get("KSW_DRGN_PYTHON",
                             os.path.expanduser("~/.cache/ksw/drgn-venv/bin/python"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ksw-vmcore",
                    "--example", "read_pages"], check=True)
    exe = os.path.join("target", "release", "examples", "read_pages")
    with tempfile.TemporaryDirectory() as tmp:
        addrs = os.path.join(tmp, "addrs")
        with open(addrs, "w") as f:
            subprocess.run([exe, dump, "--generate", str(n)], check=True, stdout=f)
        script = os.path.join(tmp, "drgn_side.py")
        with open(script, "w") as f:
            f.write(DRGN_SIDE)
        ours_cmd = [exe, dump, addrs]
        theirs_cmd = [drgn_py, script, dump, addrs]
        # One warm-up each (page cache), then alternating measured runs.
        run_isolated(ours_cmd)
        run_isolated(theirs_cmd)
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(run_isolated(ours_cmd))
            theirs.append(run_isolated(theirs_cmd))
    # Every run of both sides must read the same data. Where makedumpfile's
    # ELF output leaves pages out, drgn reads zeros and ksw reports
    # "excluded", so the counts may differ but not the sum.
    a, b = ours[0]["inner"], theirs[0]["inner"]
    checksums = {r["inner"]["checksum"] for r in ours + theirs}
    if len(checksums) != 1 or any(r["inner"]["ok"] < a["ok"] for r in theirs):
        sys.exit(f"the two sides read different data: ksw {[r['inner'] for r in ours]}, "
                 f"drgn {[r['inner'] for r in theirs]}")

    def col(results, key):
        return [r["inner"][key] for r in results]

    ours_read, theirs_read = col(ours, "read_s"), col(theirs, "read_s")
    ours_wall, theirs_wall = [r["wall"] for r in ours], [r["wall"] for r in theirs]
    print(f"dump: {dump} ({os.path.getsize(dump) / 2**20:.0f} MiB), {n} page reads, "
          f"{runs} runs each; ksw: {a['ok']} read, {a['faults']} faults or excluded; "
          f"drgn: {b['ok']} read; same checksum")
    for name, res, read in (("ksw-vmcore", ours, ours_read), ("drgn", theirs, theirs_read)):
        print(f"{name:10}  read loop {summary(read)}")
        print(f"{'':10}  open      {summary(col(res, 'open_s'))}")
        print(f"{'':10}  process   {summary([r['wall'] for r in res])}, "
              f"peak RSS {statistics.median(r['rss_kb'] for r in res) / 1024:.1f} MiB")
    print(f"read loop: drgn / ksw = "
          f"{statistics.median(theirs_read) / statistics.median(ours_read):.1f}x (medians); "
          f"whole process: drgn / ksw = "
          f"{statistics.median(theirs_wall) / statistics.median(ours_wall):.1f}x (medians)")


if __name__ == "__main__":
    main()
