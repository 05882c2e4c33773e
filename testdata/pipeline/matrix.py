"""The fixture matrix: which runs each kernel series goes through, and the
stress variants that `pipeline stress-rate` boots again and again.

Not an input of any fixture: a run's own fields (scenarios.Run) are, so
adding or changing one run rebuilds that run only.
"""

import json
import shutil
import subprocess

import kernels
from common import CACHE, REPO, StepError, log, splats
from scenarios import Run, boot


# QEMU 7.2's TCG (Debian 12's QEMU) computes cmpxchg16b's flags from a
# stale lazy-flags state, so that RFLAGS get the reserved bits of another
# operand; after a return from #DB (iretq leaves that state), SLUB's
# this_cpu_cmpxchg16b then sends the guest into a double fault or worse.
# testdata/scenarios/tcg-cx16.c reproduces it with no module at all; QEMU
# 8.0 fixed it. Guests that load kstackwatch.ko, whose catches are #DBs,
# boot with the CPU's cx16 cleared, and SLUB takes its lock instead.
TCG_CX16 = "clearcpuid=cx16"


def with_tcg_cx16(append=""):
    """A kernel command line with TCG_CX16 added."""
    return f"{append} {TCG_CX16}".strip()


def standard_runs(series):
    """The fixture matrix every kernel series goes through."""
    return [
        Run("sysrq", "sysrq", raw_vmcore=(series == "6.1")),
        Run("sysrq-l4", "sysrq", paging=4),
        Run("sysrq-qemu", "sysrq", mode="qemu"),
        Run("sysrq-qemu-novmci", "sysrq", mode="qemu", vmcoreinfo=False),
        Run("live-kcore", "live-kcore", project_modules=True,
            binaries=[str(REPO / "target" / "release" / "ksw"), "/sbin/capsh"],
            append=with_tcg_cx16()),
    ] + kstackwatch_runs(series) + analyze_runs(series)


def kstackwatch_runs(series):
    """kstackwatch.ko through its scenarios (testdata/scenarios/kstackwatch*.sh)."""
    cx16 = with_tcg_cx16()
    return [
        Run("kstackwatch", "kstackwatch", mode="none", project_modules=True,
            timeout=600, binaries=["/sbin/capsh"], append=cx16),
        Run("kstackwatch-panic", "kstackwatch-panic", project_modules=True,
            append=cx16),
        Run("kstackwatch-panic-qemu", "kstackwatch-panic", mode="qemu",
            project_modules=True, append=cx16),
        Run("kstackwatch-panic-irqoff", "kstackwatch-panic", mode="qemu",
            project_modules=True, append=cx16),
        Run("kstackwatch-panic-init", "kstackwatch-panic", project_modules=True,
            append=cx16),
        stress_run("kstackwatch-stress"),
        stress_run("kstackwatch-stress-exitwindow"),
        Run("kstackwatch-bench", "kstackwatch-bench", mode="none",
            project_modules=True, append=cx16),
        Run("kstackwatch-bench-4cpu", "kstackwatch-bench", mode="none", cpus=4,
            project_modules=True, append=cx16),
        Run("kstackwatch-lockdown", "kstackwatch-lockdown", mode="none",
            project_modules=True, append=cx16),
        Run("kstackwatch-lockdown-boot", "kstackwatch-lockdown", mode="none",
            project_modules=True, append=with_tcg_cx16("lockdown=integrity")),
    ]


# The test module's scenarios that kstackwatch-panic-SCENARIO runs catch
# with ph=1 (silent has kstackwatch-panic and its variants above).
ANALYZE_SCENARIOS = ("fire", "canary", "recursion", "mthread", "overflow", "loop")


def analyze_runs(series):
    """A panic dump of every test-module scenario for `ksw analyze`
    (testdata/scenarios/kstackwatch-panic-scenario.sh): a kstackwatch catch
    with ph=1 per scenario, and a stack-protector panic with kstackwatch
    loaded but never configured. kdump mode: the capture kernel writes
    every makedumpfile format (guest/capture-init.sh has no way to ask for
    fewer); no raw /proc/vmcore copy, the costliest one."""
    runs = [Run(f"kstackwatch-panic-{s}", "kstackwatch-panic-scenario",
                project_modules=True, append=with_tcg_cx16())
            for s in ANALYZE_SCENARIOS]
    runs.append(Run("stack-protector", "kstackwatch-panic-scenario",
                    project_modules=True, append=with_tcg_cx16()))
    return runs


# What `pipeline stress-rate` boots again and again: the stress script's
# variants (testdata/scenarios/kstackwatch-stress.sh; "kstackwatch-stress"
# and "kstackwatch-stress-exitwindow" are also fixtures), its reconfiguration phase split in two
# (kstackwatch-stress-split.sh), and reproductions without kstackwatch of
# what TCG does to the guest (testdata/scenarios/tcg-*.sh).
STRESS_VARIANTS = ("kstackwatch-stress-noconfig", "kstackwatch-stress",
                   "kstackwatch-stress-exitwindow", "kstackwatch-split-full",
                   "kstackwatch-split-reconfonly", "kstackwatch-split-armedonly",
                   "kstackwatch-split-prelude",
                   "kstackwatch-hotplug",
                   "tcg-irqentry", "tcg-ftrace", "tcg-drhold", "tcg-cx16",
                   "tcg-cx16-cleared")


def tcg_cx16_binary():
    """testdata/scenarios/tcg-cx16.c, built static for the guest."""
    src = REPO / "testdata" / "scenarios" / "tcg-cx16.c"
    out = CACHE / "build" / "tcg-cx16" / "tcg-cx16"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-Wall", "-static", "-o", str(out), str(src)],
                       check=True)
    return out


def stress_run(name):
    if name == "tcg-cx16":
        return Run(name, name, mode="none", cpus=4, mem="1G",
                   binaries=[str(tcg_cx16_binary())], timeout=200)
    if name == "tcg-cx16-cleared":
        return Run(name, "tcg-cx16", mode="none", cpus=4, mem="1G",
                   binaries=[str(tcg_cx16_binary())], timeout=200,
                   append="clearcpuid=cx16")
    if name == "kstackwatch-hotplug":
        return Run(name, name, mode="none", cpus=4, mem="1G", project_modules=True,
                   timeout=600, append=with_tcg_cx16())
    if name.startswith("kstackwatch-split-"):
        return Run(name, "kstackwatch-stress-split", mode="none", cpus=4, mem="1G",
                   project_modules=True, timeout=300,
                   append=with_tcg_cx16("log_buf_len=16M"))
    if name.startswith("tcg-"):
        return Run(name, name, mode="none", cpus=4, mem="1G",
                   project_modules=True, timeout=200)
    # a log buffer large enough that no report is lost between two copies
    return Run(name, "kstackwatch-stress", mode="none", cpus=4, mem="1G",
               project_modules=True, timeout=400,
               append=with_tcg_cx16("log_buf_len=16M"))


def reconfig_counters(final):
    """What the module counted in a stress boot's reconfiguration phase:
    its #DB hits, how many of them the exit-path filter dropped (the
    exit-window hits) and how many became catches, summed over its configs
    (each config restarts the counters: reconfig.counters has each one's
    before it was replaced, after-reconfig.state the last one's)."""
    lines = []
    for name in ("reconfig.counters", "after-reconfig.state"):
        path = final / name
        if path.exists():
            text = path.read_text(errors="replace")
            lines += (text.split() if name == "reconfig.counters"
                      else text.replace(": ", ":").splitlines())
    counters = {}
    for field in lines:
        key, _, value = field.partition(":")
        if key in ("hits", "trampoline_filtered", "catches") and value.strip().isdigit():
            counters[key] = counters.get(key, 0) + int(value)
    return counters


def stress_rate(series, boots, variants=STRESS_VARIANTS):
    """Boot each stress variant `boots` times, round robin so that host load
    weighs on all alike, and count the boots that fail: no finish, or a
    splat on the console or in a phase's dmesg. Writes one JSON file per
    variant under CACHE/stress-rate/SERIES (so that runs of other variants
    may go on meanwhile) and keeps the failures' logs there."""
    kernel = kernels.Kernel(series)
    out = CACHE / "stress-rate" / series
    out.mkdir(parents=True, exist_ok=True)
    report = {name: json.loads((out / f"{name}.json").read_text())
              for name in variants if (out / f"{name}.json").exists()}
    for i in range(boots):
        for name in variants:
            r = stress_run(name)
            step = f"{series}/{name} boot {i + 1}/{boots}"
            # apart from the fixture runs' directories, which may run meanwhile
            work = CACHE / "stress-rate" / "work" / series / name
            final = work.with_name(f"{name}.out")
            entry = {"outcome": "pass"}
            logs = []
            try:
                # the scripts print a line at least every few seconds
                boot(kernel, r, step, "stress-rate", final, work, stall=150)
                logs = [final / "console.log", *sorted(final.glob("phase-*.dmesg"))]
                bad = [line for p in logs for line in splats(p.read_text(errors="replace"))]
                if bad:
                    entry = {"outcome": "splat", "first": bad[0].strip()}
                entry.update(reconfig_counters(final))
            except StepError as e:
                entry = {"outcome": "fail", "first": str(e).splitlines()[0]}
                # a hang also leaves the vCPUs' registers and APICs
                logs = [work / "console.log", work / "hang-state.txt"]
            if entry["outcome"] != "pass":
                k = len(report.get(name, [])) + 1
                entry["logs"] = []
                for p in logs:
                    if p.exists():
                        keep = out / f"{name}.boot{k}.{p.name}"
                        shutil.copy(p, keep)
                        entry["logs"].append(str(keep))
            report.setdefault(name, []).append(entry)
            (out / f"{name}.json").write_text(json.dumps(report[name], indent=1) + "\n")
            log(f"{step}: {entry['outcome']} {entry.get('first', '')}")
    summary = {name: {"boots": len(v), "failures": sum(e["outcome"] != "pass" for e in v),
                      "exit_window_hits": sum(e.get("trampoline_filtered", 0) for e in v)}
               for name, v in report.items()}
    return summary
