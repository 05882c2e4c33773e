"""The fixture matrix: which runs each kernel series goes through, and the
stress variants that `pipeline stress-rate` boots again and again.

Not an input of any fixture: a run's own fields (scenarios.Run) are, so
adding or changing one run rebuilds that run only.
"""

import json
import shutil

import kernels
from common import CACHE, REPO, StepError, log, splats
from scenarios import Run, boot


def standard_runs(series):
    """The fixture matrix every kernel series goes through."""
    return [
        Run("sysrq", "sysrq", raw_vmcore=(series == "6.1")),
        Run("sysrq-l4", "sysrq", paging=4),
        Run("sysrq-qemu", "sysrq", mode="qemu"),
        Run("sysrq-qemu-novmci", "sysrq", mode="qemu", vmcoreinfo=False),
        Run("live-kcore", "live-kcore", mode="none",
            binaries=[str(REPO / "target" / "release" / "ksw")]),
    ] + kstackwatch_runs(series)


def kstackwatch_runs(series):
    """kstackwatch.ko through its scenarios (testdata/scenarios/kstackwatch*.sh)."""
    return [
        Run("kstackwatch", "kstackwatch", mode="none", project_modules=True,
            timeout=600, binaries=["/sbin/capsh"]),
        Run("kstackwatch-panic", "kstackwatch-panic", project_modules=True),
        Run("kstackwatch-panic-qemu", "kstackwatch-panic", mode="qemu",
            project_modules=True),
        Run("kstackwatch-panic-irqoff", "kstackwatch-panic", mode="qemu",
            project_modules=True),
        Run("kstackwatch-panic-init", "kstackwatch-panic", project_modules=True),
        stress_run("kstackwatch-stress"),
        Run("kstackwatch-bench", "kstackwatch-bench", mode="none",
            project_modules=True),
        Run("kstackwatch-bench-4cpu", "kstackwatch-bench", mode="none", cpus=4,
            project_modules=True),
        Run("kstackwatch-lockdown", "kstackwatch-lockdown", mode="none",
            project_modules=True),
        Run("kstackwatch-lockdown-boot", "kstackwatch-lockdown", mode="none",
            project_modules=True, append="lockdown=integrity"),
    ]


# What `pipeline stress-rate` boots again and again: the stress script's
# variants (testdata/scenarios/kstackwatch-stress.sh; "kstackwatch-stress"
# is also a fixture), its reconfiguration phase split in two
# (kstackwatch-stress-split.sh), and reproductions without kstackwatch of
# what TCG does to the guest (testdata/scenarios/tcg-*.sh).
STRESS_VARIANTS = ("kstackwatch-stress-noconfig", "kstackwatch-stress",
                   "kstackwatch-stress-exitwindow", "kstackwatch-split-full",
                   "kstackwatch-split-reconfonly", "kstackwatch-split-armedonly",
                   "kstackwatch-split-prelude",
                   "tcg-irqentry", "tcg-ftrace", "tcg-drhold")


def stress_run(name):
    if name.startswith("kstackwatch-split-"):
        return Run(name, "kstackwatch-stress-split", mode="none", cpus=4, mem="1G",
                   project_modules=True, timeout=300, append="log_buf_len=16M")
    if name.startswith("tcg-"):
        return Run(name, name, mode="none", cpus=4, mem="1G",
                   project_modules=True, timeout=200)
    # a log buffer large enough that no report is lost between two copies
    return Run(name, "kstackwatch-stress", mode="none", cpus=4, mem="1G",
               project_modules=True, timeout=400, append="log_buf_len=16M")


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
            except StepError as e:
                entry = {"outcome": "fail", "first": str(e).splitlines()[0]}
                logs = [work / "console.log"]
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
    summary = {name: {"boots": len(v), "failures": sum(e["outcome"] != "pass" for e in v)}
               for name, v in report.items()}
    return summary
