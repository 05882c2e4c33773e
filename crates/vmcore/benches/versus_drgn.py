#!/usr/bin/env python3
"""Side by side: ksw-vmcore and drgn (PyPI) open a dump, read VMCOREINFO
and read the same 10,000 random kernel pages, each in its own process.
Prints wall time and peak RSS of both, and the ratios.

Usage: versus_drgn.py DUMP [N]   (run from the repository root; drgn is
taken from $KSW_DRGN_PYTHON, default ~/.cache/ksw/drgn-venv/bin/python)
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

DRGN_SIDE = r"""
import sys, time, json, drgn
t0 = time.perf_counter()
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
opened = time.perf_counter() - t0
ok = faults = checksum = 0
for line in open(sys.argv[2]):
    try:
        page = prog.read(int(line, 16), 4096)
        ok += 1
        checksum += sum(page)
    except drgn.FaultError:
        faults += 1
print(json.dumps({"open_s": opened, "total_s": time.perf_counter() - t0,
                  "ok": ok, "faults": faults, "checksum": checksum}))
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


def main():
    dump = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
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
        # Once each to warm the page cache, then the measured runs.
        run_isolated([exe, dump, addrs])
        run_isolated([drgn_py, script, dump, addrs])
        ours = run_isolated([exe, dump, addrs])
        theirs = run_isolated([drgn_py, script, dump, addrs])
    a, b = ours["inner"], theirs["inner"]
    # Where makedumpfile's ELF output leaves pages out, drgn reads zeros and
    # ksw reports "excluded", so the counts may differ but not the sum.
    if a["checksum"] != b["checksum"] or a["ok"] > b["ok"]:
        sys.exit(f"the two sides read different data: ksw {a}, drgn {b}")
    print(f"dump: {dump} ({os.path.getsize(dump) / 2**20:.0f} MiB), {n} page reads; "
          f"ksw: {a['ok']} read, {a['faults']} faults or excluded; drgn: {b['ok']} read; same checksum")
    print(f"ksw-vmcore: wall {ours['wall']:.3f} s (open {a['open_s']:.4f} s), peak RSS {ours['rss_kb'] / 1024:.1f} MiB")
    print(f"drgn:       wall {theirs['wall']:.3f} s (open {b['open_s']:.4f} s), peak RSS {theirs['rss_kb'] / 1024:.1f} MiB")
    print(f"speed-up {theirs['wall'] / ours['wall']:.1f}x, RSS ratio {theirs['rss_kb'] / max(ours['rss_kb'], 1):.1f}x")


if __name__ == "__main__":
    main()
