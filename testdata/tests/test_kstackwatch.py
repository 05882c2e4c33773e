"""kstackwatch.ko in real kernels: the catches of the `kstackwatch` and
`kstackwatch-panic` fixtures, checked against the ground truth that
kstackwatch_test prints (the victim local's address, depth and writer).

Runs on every series in $KSW_SERIES (default 6.1 and 6.12): 6.1 exercises
the kretprobe exit hook, 6.12 the fprobe one. A missing fixture is a
failure: `python3 testdata/pipeline run kstackwatch --kernel SERIES`.
"""

import errno
import json
import mmap
import os
import re
import struct
import subprocess
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pipeline"))

import matrix  # noqa: E402
from common import CACHE, splats  # noqa: E402

FIXTURES = Path(os.environ.get("KSW_FIXTURES", CACHE / "fixtures"))
SERIES = os.environ.get("KSW_SERIES", "6.1 6.12").split()
EXIT_HOOK = {"6.1": "kretprobe", "6.12": "fprobe"}

# Cases of testdata/scenarios/kstackwatch.sh that must catch, and the
# scenario whose truth line they are judged against.
CATCH_CASES = {
    f"{s}-{g}": s
    for s in ("fire", "recursion", "silent", "canary", "overflow")
    for g in ("kv", "pos")
}
CATCH_CASES.update({"canary-kvso": "canary", "overflow-kvso": "overflow",
                    "loop-kv": "loop", "recursion-depth1": "recursion",
                    "silent-reconfig": "silent", "exit-kv": "exit",
                    "irqoff-kv": "irqoff"})
CLEAN_CASES = ["fire-clean", "recursion-clean", "silent-clean",
               "canary-clean", "overflow-clean", "recursion-wrongdepth"]

TRUTH = re.compile(r"truth scenario=(\S+) victim=(\S+) local=(0x[0-9a-f]+) "
                   r"len=(\d+) depth=(\d+) writer=(\S+)")
REPORT = re.compile(
    r"KStackWatch: Caught stack corruption =+\n"
    r".*?kstackwatch: config: (?P<config>[^\n]*)\n"
    r".*?kstackwatch: writer: (?P<writer>[^+\s]+)\+0x[0-9a-f]+/0x[0-9a-f]+ \[(?P<mod>\w+)\] "
    r"ip=(?P<ip>0x[0-9a-f]+) comm=(?P<wcomm>\S+) pid=(?P<wpid>\d+) cpu=(?P<cpu>\d+)\n"
    r".*?kstackwatch: watch: addr=(?P<addr>0x[0-9a-f]+) len=(?P<len>\d+) "
    r"old=(?P<old>0x[0-9a-f]+) new=(?P<new>0x[0-9a-f]+)\n"
    r".*?kstackwatch: victim: func=(?P<func>\S+) depth=(?P<depth>\d+) comm=(?P<vcomm>\S+) "
    r"pid=(?P<vpid>\d+) armed_sp=(?P<sp>0x[0-9a-f]+)\n"
    r".*?kstackwatch: record: seq=(?P<seq>\d+) flags=(?P<flags>0x[0-9a-f]+)\n")
SCENARIO_SCRIPT = HERE.parent / "scenarios" / "kstackwatch.sh"


def fixture(series, name):
    d = FIXTURES / series / name
    if not (d / "manifest.json").exists():
        raise AssertionError(f"fixture {d} is missing: run "
                             f"`python3 testdata/pipeline run {name} --kernel {series}`")
    return d


def truths(text):
    return [dict(zip(("scenario", "victim", "local", "len", "depth", "writer"), m))
            for m in TRUTH.findall(text)]


def reports(text):
    # The printk prefix ("[  1.2] ") is dropped by the lazy ".*?".
    return [m.groupdict() for m in REPORT.finditer(text)]


def state(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        k, _, v = line.partition(": ")
        out[k] = v
    return out


def counter_lines(path):
    """The stress script's per-config counter lines (`WHAT N key:value...`)."""
    return [{k: int(v) for k, v in (f.split(":") for f in line.split()[2:])}
            for line in Path(path).read_text().splitlines()]


class Catches(unittest.TestCase):
    def each(self):
        for series in SERIES:
            yield series, fixture(series, "kstackwatch")

    def test_every_scenario_catches_the_true_writer(self):
        for series, d in self.each():
            for case, scenario in CATCH_CASES.items():
                with self.subTest(series=series, case=case):
                    text = (d / "cases" / f"{case}.dmesg").read_text()
                    (truth,) = [t for t in truths(text) if t["scenario"] == scenario]
                    got = reports(text)
                    self.assertTrue(got, "no catch report")
                    first = got[0]
                    self.assertEqual(first["writer"], truth["writer"])
                    self.assertEqual(first["mod"], "kstackwatch_test")
                    self.assertEqual(first["func"], truth["victim"])
                    self.assertEqual(int(first["addr"], 16), int(truth["local"], 16))
                    self.assertEqual(first["len"], truth["len"])
                    self.assertEqual(first["depth"], truth["depth"])
                    config = (d / "cases" / f"{case}.config").read_text().strip()
                    self.assertEqual(first["config"], config)
                    self.assertNotEqual(first["old"], first["new"])
                    # later catches (a canary put back) hit the same slot
                    for r in got:
                        self.assertEqual(r["addr"], first["addr"])
                    st = state(d / "cases" / f"{case}.state")
                    self.assertEqual(st["state"], "watching")
                    self.assertEqual(st["exit_hook"], EXIT_HOOK[series])
                    self.assertEqual(int(st["catches"]), len(got))
                    self.assertEqual(st["arms"], st["disarms"])

    def test_reconfiguration_keeps_the_probes(self):
        for series, d in self.each():
            with self.subTest(series=series):
                text = (d / "cases" / "silent-reconfig.dmesg").read_text()
                # a re-registration would stop the old watch before the new
                # one starts; the only stop here is the case's final reset
                self.assertIn("(probes kept)", text)
                self.assertLess(text.index("Caught stack corruption"),
                                text.index("stop watching"))

    def test_both_grammars_arm_the_same_watch(self):
        for series, d in self.each():
            for s in ("fire", "recursion", "silent", "canary", "overflow"):
                with self.subTest(series=series, scenario=s):
                    kv = state(d / "cases" / f"{s}-kv.state")
                    pos = state(d / "cases" / f"{s}-pos.state")
                    for k in ("func_name", "func_offset", "depth", "mode",
                              "sp_offset", "watch_len"):
                        self.assertEqual(kv[k], pos[k], k)

    def test_clean_runs_catch_nothing(self):
        for series, d in self.each():
            for case in CLEAN_CASES:
                with self.subTest(series=series, case=case):
                    text = (d / "cases" / f"{case}.dmesg").read_text()
                    self.assertEqual(reports(text), [])
                    st = state(d / "cases" / f"{case}.state")
                    self.assertEqual(st["catches"], "0")
                    self.assertGreaterEqual(int(st["arms"]), 1, "never armed")
                    self.assertEqual(st["arms"], st["disarms"])
                    if case != "recursion-wrongdepth":
                        self.assertNotIn("unhappy", text)

    def test_return_trampoline_is_filtered(self):
        for series, d in self.each():
            with self.subTest(series=series):
                st = state(d / "cases" / "silent-clean.state")
                self.assertGreaterEqual(int(st["trampoline_filtered"]), 1)
                for case in CATCH_CASES:
                    text = (d / "cases" / f"{case}.dmesg").read_text()
                    for r in reports(text):
                        self.assertNotIn("trampoline", r["writer"])

    def test_probe_in_a_loop_arms_once(self):
        for series, d in self.each():
            with self.subTest(series=series):
                st = state(d / "cases" / "loop-kv.state")
                self.assertEqual(st["arms"], "1")
                self.assertEqual(st["loop_skips"], "3")

    def test_many_workers(self):
        for series, d in self.each():
            with self.subTest(series=series):
                text = (d / "cases" / "mthread-kv.dmesg").read_text()
                corrupted = {int(t["local"], 16) for t in truths(text)}
                got = reports(text)
                self.assertGreaterEqual(len(got), 2)
                for r in got:
                    self.assertEqual(r["writer"], "test_mthread_corrupting")
                    self.assertEqual(r["wcomm"], "corrupting")
                    self.assertIn(int(r["addr"], 16), corrupted)
                    self.assertNotEqual(r["wpid"], r["vpid"])
                st = state(d / "cases" / "mthread-kv.state")
                self.assertEqual(st["arms"], st["disarms"])
                self.assertEqual(int(st["catches"]), len(got))

    def test_victim_that_dies_in_the_function_leaves_no_watch(self):
        """The victim kthread exits inside the watched function: its watch is
        dropped at once (no catch, every slot free), and a new task at the
        dead one's task_struct address is watched from depth 0."""
        for series, d in self.each():
            with self.subTest(series=series):
                died = state(d / "cases" / "exit-kv.state1")
                self.assertEqual(died["arms"], "1")
                self.assertEqual(died["exit_disarms"], "1")
                self.assertEqual(died["disarms"], "1")
                self.assertEqual(died["catches"], "0")
                self.assertEqual(died["slots_free"], died["slots_total"])
                text = (d / "cases" / "exit-kv.dmesg").read_text()
                m = re.search(r"exit: new task (0x[0-9a-f]+), dead task (0x[0-9a-f]+), "
                              r"same=(\d) after (\d+) tries", text)
                self.assertTrue(m, "the reuse phase did not run")
                self.assertEqual(m.group(3), "1",
                                 "no new task at the dead task's address: not tested")
                (rep,) = reports(text)
                self.assertEqual(rep["func"], "test_exit_victim")
                self.assertEqual(rep["depth"], "0")
                self.assertEqual(rep["vcomm"], "ksw_exit_victim")

    def test_interrupts_running_the_function_are_not_watched(self):
        """Task, hard IRQ and softirq context run one function whose canary
        is watched: only the task's activations arm, on its own stack, and
        the interrupts' ones are counted and left alone."""
        for series, d in self.each():
            with self.subTest(series=series):
                text = (d / "cases" / "irq-canary.dmesg").read_text()
                m = re.search(r"irq: task=(\d+) hardirq=(\d+) softirq=(\d+) "
                              r"foreign_stack=(\d+)", text)
                self.assertTrue(m, "the irq scenario did not finish")
                task, hard, soft = (int(m.group(i)) for i in (1, 2, 3))
                self.assertEqual(task, 200)
                self.assertGreaterEqual(hard, 1, "the hrtimer never ran the function")
                self.assertGreaterEqual(soft, 1, "the timer never ran the function")
                st = state(d / "cases" / "irq-canary.state")
                self.assertEqual(st["mode"], "canary")
                self.assertEqual(int(st["arms"]), task)
                self.assertEqual(int(st["disarms"]), task)
                self.assertEqual(st["catches"], "0")
                self.assertEqual(st["canary_not_found"], "0")
                self.assertEqual(st["off_task_stack"], "0")
                self.assertGreaterEqual(int(st["not_in_task"]), 1)
                self.assertLessEqual(int(st["not_in_task"]), hard + soft)
                self.assertEqual(reports(text), [])

    def test_exit_path_writes_are_never_catches(self):
        """One clean call per word of a frame, watching that word: the
        return path (trampoline, rethook or kretprobe handler, the exit
        hook) overwrites the dead frame, and none of it is a catch."""
        for series, d in self.each():
            with self.subTest(series=series):
                lines = (d / "exitpath.results").read_text().splitlines()
                span = int(lines[0].split(": ")[1])
                self.assertGreaterEqual(span, 192 * 8)
                rows = [dict(re.split("[=:]", f, maxsplit=1) for f in l.split())
                        for l in lines[1:]]
                self.assertEqual([int(r["so"]) for r in rows],
                                 list(range(0, span + 1, 8)))
                for r in rows:
                    self.assertEqual(r["error"], "", r)
                    self.assertEqual(r["arms"], "1", r)
                    self.assertEqual(r["disarms"], "1", r)
                    self.assertEqual(r["catches"], "0", r)
                filtered = sum(int(r["trampoline_filtered"]) for r in rows)
                self.assertGreaterEqual(filtered, 8, "the sweep never met the exit path")
                self.assertEqual(reports((d / "exitpath.dmesg").read_text()), [])

    def test_every_case_ends_idle_with_no_slot_left(self):
        for series, d in self.each():
            cases = sorted(p.stem for p in (d / "cases").glob("*.status"))
            self.assertGreaterEqual(len(cases), len(CATCH_CASES) + len(CLEAN_CASES))
            self.assertEqual(sorted(p.stem for p in (d / "cases").glob("*.after")), cases)
            for after in sorted((d / "cases").glob("*.after")):
                with self.subTest(series=series, case=after.stem):
                    st = state(after)
                    self.assertEqual(st["state"], "idle")
                    self.assertEqual(st["slots_total"], "0")
                    self.assertEqual(st["pending_ipis"], "0")

    def test_module_loads_and_unloads(self):
        for series, d in self.each():
            with self.subTest(series=series):
                console = (d / "console.log").read_text(errors="replace")
                self.assertNotIn("kstackwatch: self-test failed", console)
                self.assertIn("kstackwatch: self-test passed", console)
                self.assertIn("kstackwatch: module unloaded", console)


# The runs of matrix.analyze_runs() (testdata/scenarios/
# kstackwatch-panic-scenario.sh): one kstackwatch panic per test-module
# scenario, by run name the scenario whose truth line its catch is judged
# against, what the run wrote to /proc/kstackwatch_test, and the writer
# the module README's table names; and a stack-protector panic without
# kstackwatch.
ANALYZE_RUNS = {f"kstackwatch-panic-{s}": (s, trigger, writer) for s, trigger, writer in (
    ("fire", "fire", "ksw_test_fire_writer"),
    ("canary", "canary", "ksw_test_canary_writer"),
    ("recursion", "recursion 3", "ksw_test_recursion_writer"),
    ("mthread", "mthread", "test_mthread_corrupting"),
    ("overflow", "overflow", "test_overflow_corrupting"),
    ("loop", "loop", "ksw_test_fire_writer"))}
STACK_PROTECTOR = "stack-protector"

# Every kstackwatch run of the matrix, and the splats each one expects by
# name (none so far).
RUNS = ("kstackwatch", "kstackwatch-panic", "kstackwatch-panic-qemu",
        "kstackwatch-panic-irqoff", "kstackwatch-panic-init", "kstackwatch-stress",
        "kstackwatch-stress-exitwindow", "kstackwatch-bench",
        "kstackwatch-bench-4cpu", "kstackwatch-lockdown", "kstackwatch-lockdown-boot",
        *ANALYZE_RUNS, STACK_PROTECTOR)
EXPECTED_SPLATS = {}


class Splats(unittest.TestCase):
    def test_no_run_splats(self):
        """No WARNING, BUG, Oops, general protection, double fault or int3
        splat on any kstackwatch run's console or in the dmesg it saved."""
        for series in SERIES:
            for run in RUNS:
                d = fixture(series, run)
                logs = [d / "console.log", *sorted(d.rglob("*.dmesg"))]
                for path in logs:
                    with self.subTest(series=series, run=run, log=path.name):
                        bad = [l for l in splats(path.read_text(errors="replace"))
                               if not any(e in l for e in EXPECTED_SPLATS.get(run, ()))]
                        self.assertEqual(bad, [])


class BadConfigs(unittest.TestCase):
    def test_bad_configs_are_refused_with_their_errno(self):
        planned = re.findall(r"^ksw_bad (\S+) ", SCENARIO_SCRIPT.read_text(), re.M)
        self.assertGreaterEqual(len(planned), 30)
        for series in SERIES:
            d = fixture(series, "kstackwatch")
            results = sorted((d / "bad").glob("*.result"))
            self.assertEqual(sorted(r.stem for r in results), sorted(planned))
            for res in results:
                with self.subTest(series=series, case=res.stem):
                    fields = state(res)
                    want = os.strerror(getattr(errno, fields["expect"]))
                    self.assertEqual(fields["error"], want)
                    st = state(res.with_suffix(".state"))
                    lines = [l for l in res.with_suffix(".dmesg").read_text().splitlines()
                             if "kstackwatch:" in l]
                    if res.stem == "keep-active":
                        # a refused write leaves the active watch alone
                        self.assertEqual(st["state"], "watching")
                        self.assertNotIn("wl=3", st["config"])
                    else:
                        self.assertEqual(st["state"], "idle")
                        self.assertEqual(st["slots_total"], "0")
                    self.assertEqual(len(lines), 1, lines)

    def test_root_without_cap_sys_admin_is_refused(self):
        for series in SERIES:
            d = fixture(series, "kstackwatch")
            with self.subTest(series=series):
                for out in ("nocap.out", "nocap-write.out"):
                    text = (d / out).read_text()
                    self.assertIn("Operation not permitted", text, out)
                    self.assertIn("rc: 1", text, out)
                self.assertIn("config: none", (d / "nocap.state").read_text())
                lines = [l for l in (d / "nocap.dmesg").read_text().splitlines()
                         if "kstackwatch:" in l]
                self.assertEqual(len(lines), 2, lines)
                for l in lines:
                    self.assertIn("lacks CAP_SYS_ADMIN in the initial user namespace", l)

    def test_lockdown(self):
        """lockdown=integrity at boot: the kernel refuses the unsigned module.
        Raised at run time: integrity allows kprobes and kernel breakpoints
        (as for tracefs and perf), confidentiality makes the module refuse."""
        for series in SERIES:
            with self.subTest(series=series, boot="lockdown=integrity"):
                d = fixture(series, "kstackwatch-lockdown-boot")
                self.assertIn("[integrity]", (d / "lockdown.boot").read_text())
                out = (d / "insmod.out").read_text()
                self.assertNotIn("rc: 0", out)
                self.assertFalse((d / "proc-file").exists())
            with self.subTest(series=series, boot="none"):
                d = fixture(series, "kstackwatch-lockdown")
                self.assertIn("[none]", (d / "lockdown.boot").read_text())
                self.assertIn("[integrity]", (d / "integrity.level").read_text())
                self.assertEqual((d / "integrity.out").read_text().count("rc: 0"), 2)
                self.assertIn("[confidentiality]",
                              (d / "confidentiality.level").read_text())
                out = (d / "confidentiality.out").read_text()
                self.assertEqual(out.count("Operation not permitted"), 2, out)
                self.assertEqual(out.count("rc: 1"), 2, out)
                self.assertIn("kstackwatch: kernel lockdown forbids kprobes",
                              (d / "confidentiality.dmesg").read_text())

    def test_control_file_mode_and_single_opener(self):
        for series in SERIES:
            d = fixture(series, "kstackwatch")
            with self.subTest(series=series):
                self.assertTrue((d / "proc-mode").read_text().startswith("-rw-------"))
                self.assertIn("Device or resource busy",
                              (d / "second-open.err").read_text())


# struct ksw_catch_log / ksw_catch, version 1 (module/ksw_record.h)
MAGIC = b"KSWCATCH"
HEADER = struct.Struct("<8sIIIIQ")
CATCH_HEAD = struct.Struct("<QQII64sIIIIQQQQQQii16s16s128s")
REGS = ("r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs "
        "flags sp ss").split()


def catch_logs(path):
    """Every version-1 catch log found in the dump's bytes, with the first
    record decoded (it sits in the same page as the header)."""
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    out = []
    i = m.find(MAGIC)
    while i != -1:
        magic, ver, hsize, rsize, nr, total = HEADER.unpack_from(m, i)
        if ver == 1 and hsize == 32 and rsize == 488 and nr == 16 and total:
            v = CATCH_HEAD.unpack_from(m, i + hsize)
            keys = ("seq ts cpu flags func fo so wl depth addr sp old new vtask wtask "
                    "vpid wpid vcomm wcomm config").split()
            rec = dict(zip(keys, v))
            regs = struct.unpack_from("<21Q", m, i + hsize + CATCH_HEAD.size)
            rec["regs"] = dict(zip(REGS, regs))
            out.append((total, rec))
        i = m.find(MAGIC, i + 1)
    m.close()
    return out


KSW = HERE.parents[1] / "target" / "release" / "ksw"


def panic_log(d, run, dump):
    """The kernel log of a panic run: its console, or, where the panic
    comes from the #DB and the guest stops before the console catches up,
    the printk buffer in the dump (`ksw dmesg`, itself checked against
    consoles by test_fixtures.py)."""
    if run != "kstackwatch-panic-irqoff":
        return (d / "console.log").read_text(errors="replace")
    if not KSW.exists():
        raise AssertionError(f"{KSW} is missing: cargo build --release -p ksw")
    res = subprocess.run([KSW, "dmesg", d / dump], capture_output=True, text=True,
                         errors="replace")
    if res.returncode != 0:
        raise AssertionError(f"ksw dmesg {d / dump} exited {res.returncode}: {res.stderr}")
    return res.stdout


def cstr(b):
    return b.split(b"\0")[0].decode()


class PanicDump(unittest.TestCase):
    RUNS = (("kstackwatch-panic", "dump.elf"),          # ph=1, kdump
            ("kstackwatch-panic-qemu", "qemu.elf"),     # panic_on_catch=1, QEMU
            ("kstackwatch-panic-irqoff", "qemu.elf"),   # ph=1, writer's IRQs off
            *((run, "dump.elf") for run in ANALYZE_RUNS))  # ph=1, kdump

    def test_writer_with_irqs_off_panics_at_once(self):
        """The writer keeps IRQs off for 2 s after its write, then prints a
        line: the panic comes from the #DB, before that line, with the
        writer interrupted at its write (read from the dump: the guest
        stops at the panic before the console catches up)."""
        for series in SERIES:
            d = fixture(series, "kstackwatch-panic-irqoff")
            with self.subTest(series=series):
                console = (d / "console.log").read_text(errors="replace")
                log = panic_log(d, "kstackwatch-panic-irqoff", "qemu.elf")
                self.assertIn("run scenario=silent", log)
                for text in (console, log):
                    self.assertFalse("the writer still runs" in text,
                                     "the writer ran on for 2 s after its write")
                panic = log[log.index("Kernel panic - not syncing: kstackwatch"):]
                trace = panic[:panic.find("</#DB>")]
                self.assertIn("<#DB>", trace)
                self.assertRegex(trace, r"RIP: 0010:silent_corruption_unwitting\+")
                flags = int(re.search(r"EFLAGS: ([0-9a-f]+)", trace).group(1), 16)
                self.assertEqual(flags & 0x200, 0, "the writer's IRQs were on")

    def test_catch_record_in_the_dump_matches_the_console(self):
        for series in SERIES:
            for run, elf in self.RUNS:
                with self.subTest(series=series, run=run):
                    d = fixture(series, run)
                    man = json.loads((d / "manifest.json").read_text())
                    console = panic_log(d, run, elf)
                    (truth,) = truths(console)
                    (rep,) = reports(console)
                    self.assertEqual(rep["writer"], truth["writer"])
                    self.assertEqual(int(rep["addr"], 16), int(truth["local"], 16))
                    m = re.search(r"Kernel panic - not syncing: ([^\n]*)", console)
                    self.assertEqual(m.group(1) if m else None,
                                     "kstackwatch: stack corruption caught, writer "
                                     f"{truth['writer']} [kstackwatch_test]")
                    if run != "kstackwatch-panic-irqoff":
                        self.assertEqual(man["panic_message"], m.group(1))
                    self.assertIn(elf, man["dumps"])
                    if run.endswith("-qemu"):
                        self.assertIn("panic_on_catch: 1", (d / "state").read_text())
                    else:
                        self.assertIn("panic_hit: 1", (d / "state").read_text())
                    logs = catch_logs(d / elf)
                    self.assertTrue(logs, "no catch log in the dump")
                    for total, rec in logs:
                        self.assertEqual(total, 1)
                        self.assertEqual(rec["seq"], int(rep["seq"]))
                        self.assertEqual(cstr(rec["func"]), rep["func"])
                        self.assertEqual(cstr(rec["config"]), rep["config"])
                        self.assertEqual(rec["addr"], int(rep["addr"], 16))
                        self.assertEqual(rec["sp"], int(rep["sp"], 16))
                        self.assertEqual(rec["old"], int(rep["old"], 16))
                        self.assertEqual(rec["new"], int(rep["new"], 16))
                        self.assertEqual(rec["wl"], int(rep["len"]))
                        self.assertEqual(rec["depth"], int(rep["depth"]))
                        self.assertEqual(rec["cpu"], int(rep["cpu"]))
                        self.assertEqual(rec["flags"], int(rep["flags"], 16))
                        self.assertTrue(rec["flags"] & 0x4, "panic flag")
                        self.assertEqual(rec["wpid"], int(rep["wpid"]))
                        self.assertEqual(rec["vpid"], int(rep["vpid"]))
                        self.assertEqual(cstr(rec["wcomm"]), rep["wcomm"])
                        self.assertEqual(cstr(rec["vcomm"]), rep["vcomm"])
                        self.assertEqual(rec["regs"]["ip"], int(rep["ip"], 16))
                        # a callee of the victim (fire, canary, recursion,
                        # loop) writes from the victim's task, a thread from
                        # its own
                        self.assertEqual(rec["vtask"] == rec["wtask"],
                                         rep["vpid"] == rep["wpid"])


class AnalyzeRuns(unittest.TestCase):
    """A panic dump of every test-module scenario, for `ksw analyze`
    (matrix.analyze_runs(), testdata/scenarios/kstackwatch-panic-scenario.sh):
    each kstackwatch-panic-SCENARIO run arms the scenario's listed config
    with ph=1 and panics at the catch of the true writer; stack-protector
    runs `canary fatal` with kstackwatch loaded but never configured and
    panics in __stack_chk_fail, naming the function whose canary failed.
    Their catch records in the ELF dumps are checked by PanicDump."""

    PANIC = "Kernel panic - not syncing: "

    def dumps(self, d):
        """The kdump-zlib and ELF dumps are there, whole and of their
        format; returns the manifest."""
        man = json.loads((d / "manifest.json").read_text())
        for name, fmt, magic in (("dump.kdump-zlib", "kdump-compressed", b"KDUMP   "),
                                 ("dump.elf", "elf", b"\x7fELF")):
            self.assertIn(name, man["dumps"])
            self.assertEqual(man["dumps"][name]["format"], fmt)
            size = (d / name).stat().st_size
            self.assertEqual(size, man["dumps"][name]["size"], name)
            self.assertGreater(size, 1 << 20, name)
            with open(d / name, "rb") as f:
                self.assertEqual(f.read(len(magic)), magic, name)
        self.assertEqual(man["run"]["mode"], "kdump")
        return man

    def test_the_matrix_has_these_runs(self):
        for series in SERIES:
            with self.subTest(series=series):
                runs = {r.name: r for r in matrix.analyze_runs(series)}
                self.assertEqual(set(runs), {*ANALYZE_RUNS, STACK_PROTECTOR})
                for r in runs.values():
                    self.assertEqual((r.script, r.mode, r.project_modules),
                                     ("kstackwatch-panic-scenario", "kdump", True))
                std = {r.name for r in matrix.standard_runs(series)}
                self.assertLessEqual(set(runs), std)

    def test_each_scenario_panics_at_its_true_writer(self):
        for series in SERIES:
            for run, (scenario, trigger, writer) in ANALYZE_RUNS.items():
                with self.subTest(series=series, run=run):
                    d = fixture(series, run)
                    console = (d / "console.log").read_text(errors="replace")
                    self.assertEqual((d / "trigger").read_text().strip(), trigger)
                    (listed,) = [l.split(" ", 2)[2] for l in
                                 (d / "configs.txt").read_text().splitlines()
                                 if l.startswith(f"{scenario} kv ")]
                    config = (d / "config").read_text().strip()
                    self.assertEqual(config, f"{listed} ph=1")
                    st = state(d / "state")
                    self.assertEqual((st["state"], st["config"], st["panic_hit"]),
                                     ("watching", config, "1"))
                    self.assertIn(f"kstackwatch_test: run scenario={scenario}\n", console)
                    # the scenario's ground truth, and one catch: the true one
                    (truth,) = truths(console)
                    self.assertEqual(truth["scenario"], scenario)
                    self.assertEqual(truth["writer"], writer)
                    (rep,) = reports(console)
                    self.assertEqual(rep["writer"], truth["writer"])
                    self.assertEqual(rep["mod"], "kstackwatch_test")
                    self.assertEqual(rep["func"], truth["victim"])
                    self.assertEqual(int(rep["addr"], 16), int(truth["local"], 16))
                    self.assertEqual((rep["len"], rep["depth"]),
                                     (truth["len"], truth["depth"]))
                    self.assertEqual(rep["config"], config)
                    self.assertEqual(rep["new"], "0xabcdabcdabcdabcd")
                    self.assertTrue(int(rep["flags"], 16) & 0x4, "panic flag")
                    # the catch panics: after its report, before the victim's verdict
                    message = ("kstackwatch: stack corruption caught, writer "
                               f"{truth['writer']} [kstackwatch_test]")
                    self.assertIn(self.PANIC + message, console)
                    self.assertLess(console.index("KStackWatch End"),
                                    console.index(self.PANIC + message))
                    self.assertNotIn("result scenario=", console)
                    man = self.dumps(d)
                    self.assertEqual(man["panic_message"], message)

    def test_stack_protector_names_the_function_whose_canary_failed(self):
        for series in SERIES:
            with self.subTest(series=series):
                d = fixture(series, STACK_PROTECTOR)
                console = (d / "console.log").read_text(errors="replace")
                self.assertEqual((d / "trigger").read_text().strip(), "canary fatal")
                self.assertEqual((d / "config").read_text().strip(), "")
                st = state(d / "state")
                self.assertEqual((st["state"], st["config"], st["catch_log"]),
                                 ("idle", "none", "0"))
                (truth,) = truths(console)
                self.assertEqual((truth["scenario"], truth["victim"], truth["writer"]),
                                 ("canary", "test_canary_overflow",
                                  "ksw_test_canary_writer"))
                self.assertIn(f"result scenario=canary local={truth['local']} unhappy",
                              console)
                self.assertEqual(reports(console), [])
                self.assertNotIn("Caught stack corruption", console)
                m = re.search(re.escape(self.PANIC) + r"(stack-protector: Kernel stack is "
                              r"corrupted in: (\w+)\+0x[0-9a-f]+/0x[0-9a-f]+ \[(\w+)\])\n",
                              console)
                self.assertTrue(m, "no stack-protector panic")
                self.assertEqual((m.group(2), m.group(3)), (truth["victim"], "kstackwatch_test"))
                # the panic's trace: __stack_chk_fail, called by the victim
                self.assertRegex(console[m.end():],
                                 r"\] +__stack_chk_fail\+0x[0-9a-f]+/0x[0-9a-f]+\n"
                                 rf"\[[^\]]*\] +{truth['victim']}\+0x")
                man = self.dumps(d)
                self.assertEqual(man["panic_message"], m.group(1))
                # kstackwatch caught nothing: no catch log counts a catch
                self.assertEqual(catch_logs(d / "dump.elf"), [])


SAMPLE = HERE.parent / "sample" / "kstackwatch-6.1"


class Sample(unittest.TestCase):
    """The committed sample (testdata/sample/kstackwatch-6.1): small, whole,
    and what truth.json says is what its console and dump say."""

    def test_sample_is_small_and_consistent(self):
        files = [p for p in SAMPLE.rglob("*") if p.is_file()]
        self.assertLessEqual(sum(p.stat().st_size for p in files), 20 * 1000 * 1000)
        truth = json.loads((SAMPLE / "truth.json").read_text())
        console = (SAMPLE / "console.log").read_text()
        (rep,) = reports(console)
        t = truth["test_module"]
        self.assertEqual(rep["writer"], t["writer"])
        self.assertEqual(int(rep["addr"], 16), int(t["local"], 16))
        self.assertEqual(rep["func"], t["victim"])
        self.assertIn(f"Kernel panic - not syncing: {truth['panic_message']}", console)
        with open(SAMPLE / "dump.kdump-zlib", "rb") as f:
            self.assertEqual(f.read(8), b"KDUMP   ")
        for ko in ("kstackwatch.ko", "kstackwatch_test.ko"):
            data = (SAMPLE / "modules" / ko).read_bytes()
            self.assertEqual(data[:4], b"\x7fELF")
            self.assertIn(b".debug_info", data)
        release = (SAMPLE / "ground-truth" / "release").read_text().strip()
        self.assertEqual(release, truth["release"])
        self.assertIn(f"Linux version {release} ", console)


class Stress(unittest.TestCase):
    """200 workers on 4 vCPUs, 50 reconfigurations, hotplug and 50
    unload/reload cycles while armed (testdata/scenarios/kstackwatch-stress.sh).
    Each phase is judged by its own dmesg and counters; the run boots once
    (no retry)."""

    WRITERS = {"test_mthread_victim": "test_mthread_corrupting",
               "silent_corruption_victim": "silent_corruption_unwitting"}

    def phase(self, d, name):
        """The phase's catch reports; every report must parse."""
        text = (d / f"phase-{name}.dmesg").read_text(errors="replace")
        got = reports(text)
        self.assertEqual(len(got), text.count("Caught stack corruption"),
                         f"{name}: a catch report did not parse")
        self.assertEqual(len(got), text.count("KStackWatch End"),
                         f"{name}: a catch report was cut")
        for r in got:
            self.assertEqual(r["writer"], self.WRITERS[r["func"]])
        return got

    def test_reconfigurations(self):
        for series in SERIES:
            d = fixture(series, "kstackwatch-stress")
            with self.subTest(series=series):
                self.assertFalse((d / "reconfig.err").exists())
                done = state(d / "reconfig.done")
                self.assertEqual(done["reconfigurations"], "50")
                self.assertGreaterEqual(int(done["worker batches"]), 1)
                got = self.phase(d, "reconfig")
                self.assertGreaterEqual(len(got), 1, "200 workers, no catch")
                for r in got:
                    self.assertEqual(r["func"], "test_mthread_victim")
                st = state(d / "after-reconfig.state")
                # the module's ring counts every catch since it was loaded:
                # no report lost to a log buffer overrun
                self.assertEqual(int(st["catch_log"]), len(got))
                self.assertEqual(st["arms"], st["disarms"])

    def test_hotplug(self):
        for series in SERIES:
            d = fixture(series, "kstackwatch-stress")
            with self.subTest(series=series):
                log = (d / "hotplug.log").read_text().split()
                self.assertEqual(log, ["0-3", "offline", "rc:", "0", "0-2",
                                       "online", "rc:", "0", "0-3"])
                got = self.phase(d, "hotplug")
                self.assertEqual([r["func"] for r in got],
                                 ["silent_corruption_victim"] * 2)
                st = state(d / "hotplug.state")
                self.assertEqual(st["catches"], "2", "a catch before and after cpu3 came back")
                self.assertEqual(st["arms"], st["disarms"])

    def test_reloads(self):
        for series in SERIES:
            d = fixture(series, "kstackwatch-stress")
            with self.subTest(series=series):
                self.assertFalse((d / "reload.err").exists(),
                                 (d / "reload.err").read_text()
                                 if (d / "reload.err").exists() else "")
                self.assertEqual(state(d / "reload.done")["reloads"], "50")
                cycles = counter_lines(d / "reload.counters")
                self.assertEqual(len(cycles), 50)
                # the module of cycle 0 has seen the earlier phases too
                before = (int(state(d / "after-reconfig.state")["catch_log"])
                          + int(state(d / "hotplug.state")["catches"]))
                counts = []
                for f in cycles:
                    # a fresh module per cycle: its ring holds this cycle only
                    self.assertEqual(f["catch_log"], f["catches"] + before, f)
                    before = 0
                    counts.append(f["catches"])
                got = self.phase(d, "reload")
                self.assertEqual(len(got), sum(counts))
                # 10 of each cycle's 40 calls are corrupted
                self.assertGreaterEqual(sum(c > 0 for c in counts), 40, counts)
                self.assertEqual((d / "phase-reload.dmesg").read_text()
                                 .count("self-test passed"), 50)

    def test_exit_window(self):
        """The same script with the watch on the top of the victim's frame,
        which every return's exit path writes before the exit hook disarms
        (-exitwindow): those writes are filtered, not reported, and no
        reconfiguration or reload leaves a returned frame watched. Before
        the quiesce order of ksw_main.c, a reconfiguration's park IPI was
        taken right below such a frame, still watched on its own CPU, and
        under QEMU TCG the guest hung in every boot (see the README)."""
        for series in SERIES:
            d = fixture(series, "kstackwatch-stress-exitwindow")
            with self.subTest(series=series):
                self.assertFalse((d / "reconfig.err").exists())
                self.assertEqual(state(d / "reconfig.done")["reconfigurations"], "50")
                st = state(d / "after-reconfig.state")
                # each config restarts the counters: reconfig.counters has
                # every replaced config's, the state the last one's
                configs = counter_lines(d / "reconfig.counters")
                self.assertEqual(len(configs), 50)
                configs.append({k: int(v) for k, v in st.items() if v.isdigit()})
                window = sum(c["trampoline_filtered"] for c in configs)
                self.assertGreater(window, 0, "no return wrote the watched word")
                # the corrupting thread writes buf[2], which is not watched
                self.assertEqual(sum(c["catches"] for c in configs), 0)
                self.assertEqual(st["catch_log"], "0")
                self.assertEqual(st["arms"], st["disarms"])
                self.assertEqual(self.phase(d, "reconfig"), [])
                self.assertFalse((d / "reload.err").exists())
                self.assertEqual(state(d / "reload.done")["reloads"], "50")
                cycles = counter_lines(d / "reload.counters")
                self.assertEqual(len(cycles), 50)
                # 40 calls a cycle, every armed one's return writes the word
                self.assertGreaterEqual(sum(c["trampoline_filtered"] > 0 for c in cycles), 45,
                                        cycles)
                self.assertEqual(sum(c["catches"] for c in cycles), 0)
                self.assertEqual(self.phase(d, "reload"), [])

    def test_no_slot_leaked(self):
        for series in SERIES:
            d = fixture(series, "kstackwatch-stress")
            with self.subTest(series=series):
                before = (d / "slots-before").read_text().strip()
                self.assertRegex(before, r"^slots_total: [1-4]$")
                self.assertEqual((d / "slots-after").read_text().strip(), before)
                self.assertIn("module unloaded",
                              (d / "phase-unload.dmesg").read_text())


def bench(d):
    """Per-call wall time of each bench phase, and the handler costs."""
    out = {}
    for phase in ("none", "probes", "armed"):
        res = (d / f"bench-{phase}.result").read_text()
        m = re.search(r"bench calls=(\d+) ns=(\d+) ns_per_call=(\d+)", res)
        out[phase] = {"calls": int(m.group(1)), "ns": int(m.group(2)),
                      "state": state(d / f"bench-{phase}.state")}
    return out


def per_call(st, what):
    calls = int(st[f"{what}_calls"])
    return int(st[f"{what}_ns"]) / calls if calls else 0.0


class Bench(unittest.TestCase):
    """The probes' cost, reported, not judged: an armed watch against the same
    probes without arming. Upstream reports about 83x ((10892 + 12541) /
    (159 + 124) ns), handler time on hardware. Under QEMU TCG an IPI is an
    emulated APIC write and the vCPUs share two host cores, so neither ratio
    here says how the module compares on hardware: they show that arming
    costs what an IPI costs in the emulator, and they move with host load.
    What is checked is the bookkeeping: every call armed and disarmed."""

    def test_armed_overhead_ratio(self):
        for series in SERIES:
            for run, cpus in (("kstackwatch-bench", 2), ("kstackwatch-bench-4cpu", 4)):
                d = fixture(series, run)
                with self.subTest(series=series, cpus=cpus):
                    b = bench(d)
                    calls = b["armed"]["calls"]
                    armed, probes = b["armed"]["state"], b["probes"]["state"]
                    self.assertEqual(int(armed["arms"]), calls)
                    self.assertEqual(int(armed["disarms"]), calls)
                    self.assertEqual(armed["catches"], "0")
                    self.assertEqual(probes["arms"], "0")
                    self.assertEqual(int(probes["noarm_calls"]), calls)
                    handler = ((per_call(armed, "arm") + per_call(armed, "disarm"))
                               / (per_call(probes, "noarm") + per_call(probes, "nodisarm")))
                    wall = b["armed"]["ns"] / b["probes"]["ns"]
                    base = b["probes"]["ns"] / b["none"]["ns"]
                    print(f"\n{series} {cpus} vCPUs: arm {per_call(armed, 'arm'):.0f} ns + "
                          f"disarm {per_call(armed, 'disarm'):.0f} ns vs "
                          f"{per_call(probes, 'noarm'):.0f} + "
                          f"{per_call(probes, 'nodisarm'):.0f} ns without arming: "
                          f"handler ratio {handler:.1f}x, per-call wall ratio "
                          f"{wall:.1f}x (probes vs none {base:.1f}x)", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
