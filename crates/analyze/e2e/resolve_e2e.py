"""End to end: watch strings that `ksw resolve` builds from a variable's
*name* arm kstackwatch.ko in QEMU and catch every test-module scenario.

    cargo build --release -p ksw
    python3 crates/analyze/e2e/resolve_e2e.py [6.1|6.12]

It drives the fixture pipeline (testdata/pipeline): builds the project's
modules against the kernel's headers, runs `ksw resolve --module
kstackwatch_test.ko FUNC VAR --json` for each scenario's victim, writes a
guest scenario that arms each string (key=value and positional) and
triggers the scenario, boots it (QEMU TCG, no dump), and checks each case
against the test module's ground truth (`truth scenario=S victim=F
local=ADDR len=L depth=D writer=W`) and the module's own bookkeeping:

- at least one catch report, and every report names the truth's writer
  (in kstackwatch_test), victim, depth and length, at the local's address
  (`watch: addr=ADDR`), with the config the case armed and a changed value;
- `/proc/kstackwatch` after the trigger (cases/NAME.state): still
  watching the function, offset, SP offset, length and depth ksw resolved,
  one catch counted per report, armed at least once, and as many disarms
  as arms (every armed activation returned and was disarmed);
- no splat (common.splats: WARNING, BUG, Oops, ...) on the console or in
  any dmesg the run saved.

Exit status 1 when any check fails. The guest scenario is generated into
a scratch directory; nothing in testdata/ is modified.
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "testdata/pipeline"))
sys.path.insert(0, str(REPO / "testdata/tests"))
import kernels  # noqa: E402
import matrix  # noqa: E402
import scenarios  # noqa: E402
from common import splats  # noqa: E402
# The test module's truth lines and the catch report, parsed as the
# fixture tests parse them.
from test_kstackwatch import reports, state, truths  # noqa: E402

def check_case(name, scenario, resolved, dmesg, config, st):
    """Every problem with one case (empty: it passed)."""
    problems = []
    truth = {}
    for t in truths(dmesg):
        if t["scenario"] == scenario:
            truth[int(t["local"], 16)] = t
    if not truth:
        problems.append(f"no truth line for scenario {scenario}")
    got = reports(dmesg)
    if not got:
        problems.append("no catch report")
    # With many workers several victims are corrupted, and the first catch
    # need not be the first victim: each report is judged against the
    # truth of the local it caught. A later catch of the same local is the
    # test module putting a canary back (ksw_test_canary_restore): only
    # its address is checked.
    seen = set()
    for r in got:
        addr = int(r["addr"], 16)
        t = truth.get(addr)
        if t is None:
            problems.append(f"caught {r['addr']}, not a local the test module reported "
                            f"({sorted(hex(a) for a in truth)})")
            continue
        if addr in seen:
            continue
        seen.add(addr)
        for key, want in (("writer", t["writer"]), ("mod", "kstackwatch_test"),
                          ("func", t["victim"]), ("depth", t["depth"]),
                          ("len", t["len"]), ("config", config)):
            if r[key] != want:
                problems.append(f"report {key}={r[key]!r}, expected {want!r}")
        if r["old"] == r["new"]:
            problems.append(f"old == new == {r['old']}: not a change")
    watch = resolved["watch"]
    want_state = {
        "state": "watching",
        "func_name": watch["function"],
        "func_offset": hex(watch["function_offset"]),
        "sp_offset": str(watch["sp_offset"]),
        "watch_len": str(watch["watch_len"]),
        "depth": str(watch["depth"] or 0),
        "catches": str(len(got)),
    }
    for key, want in want_state.items():
        if st.get(key) != want:
            problems.append(f"/proc/kstackwatch {key}: {st.get(key)!r}, expected {want!r}")
    arms, disarms = st.get("arms"), st.get("disarms")
    if not arms or not arms.isdigit() or int(arms) < 1:
        problems.append(f"never armed (arms: {arms!r})")
    elif arms != disarms:
        problems.append(f"arms {arms} != disarms {disarms}")
    return problems

series = sys.argv[1] if len(sys.argv) > 1 else "6.1"
ksw = REPO / "target/release/ksw"
kernel = kernels.Kernel(series)
kos = scenarios.build_project_modules(
    kernel, Path(tempfile.mkdtemp(prefix="ksw-resolve-e2e-build-")) / "kstackwatch-mod")
test_ko = next(k for k in kos if k.name == "kstackwatch_test.ko")
cases = [
    ("fire", ["test_watch_fire", "buf[1]"], "fire"),
    ("canary", ["test_canary_overflow", "--canary"], "canary"),
    ("recursion", ["recursive_corruption_test", "local", "--depth", "3"], "recursion 3"),
    ("silent", ["silent_corruption_victim", "local"], "silent"),
    ("mthread", ["test_mthread_victim", "buf[2]"], "mthread 8 8"),
    ("overflow", ["test_overflow_victim", "--canary"], "overflow"),
    ("loop", ["test_loop_victim", "local"], "loop"),
]
lines = [". /ksw/kstackwatch-lib.sh", 'echo "ksw-scenario: resolve on $(uname -r)"', "ksw_load"]
resolved = {}
for name, args, trigger in cases:
    out = subprocess.run([ksw, "resolve", "--module", test_ko, *args, "--json"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    resolved[name] = r
    for g, s in (("kv", r["key_value"]), ("pos", r["positional"])):
        lines.append(f'ksw_case "{name}-{g}" "{s}" "{trigger}"')
lines += ["rmmod kstackwatch_test", "rmmod kstackwatch"]
sdir = Path(tempfile.mkdtemp(prefix="ksw-resolve-e2e-"))
for lib in scenarios.SCENARIOS.glob("*-lib.sh"):
    shutil.copy(lib, sdir / lib.name)
(sdir / "kstackwatch-resolve.sh").write_text("\n".join(lines) + "\n")
scenarios.SCENARIOS = sdir
# booted as every kstackwatch guest is: without cx16 (matrix.TCG_CX16)
run = scenarios.Run("kstackwatch-resolve", "kstackwatch-resolve", mode="none",
                    project_modules=True, timeout=600, append=matrix.with_tcg_cx16())
fixture = scenarios.execute(series, run, force=True)
print("fixture", fixture)
ok = 0
total = 0
for name, _, _ in cases:
    for g in ("kv", "pos"):
        total += 1
        case = fixture / "cases" / f"{name}-{g}"
        d = case.with_suffix(".dmesg").read_text(errors="replace")
        cfg = case.with_suffix(".config").read_text().strip()
        problems = check_case(name, name, resolved[name], d, cfg,
                              state(case.with_suffix(".state")))
        ok += not problems
        print(f"{name}-{g:3} {'OK' if not problems else 'FAIL'}  [{cfg}]")
        for p in problems:
            print(f"    {p}")
# No splat anywhere the run kept kernel output.
for path in [fixture / "console.log", *sorted(fixture.rglob("*.dmesg"))]:
    total += 1
    found = splats(path.read_text(errors="replace")) if path.exists() else [f"{path} missing"]
    if found:
        print(f"splat in {path}:")
        for line in found[:10]:
            print(f"    {line}")
    else:
        ok += 1
shutil.rmtree(sdir, ignore_errors=True)
print(f"{ok} passed, {total - ok} failed")
sys.exit(0 if ok == total else 1)
