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
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pipeline"))

from common import CACHE  # noqa: E402

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
                    "silent-reconfig": "silent"})
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
BAD_SPLAT = re.compile(r"WARNING:|BUG:|Oops|general protection fault|"
                       r"Call Trace:(?![^\n]*\n[^\n]*ksw_watch_handler)")


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

    def test_every_case_ends_idle_with_no_slot_left(self):
        for series, d in self.each():
            for after in sorted((d / "cases").glob("*.after")):
                with self.subTest(series=series, case=after.stem):
                    st = state(after)
                    self.assertEqual(st["state"], "idle")
                    self.assertEqual(st["slots_total"], "0")
                    self.assertEqual(st["pending_ipis"], "0")

    def test_no_warning_or_oops(self):
        for series, d in self.each():
            with self.subTest(series=series):
                console = (d / "console.log").read_text(errors="replace")
                for bad in ("WARNING:", "BUG:", "Oops", "general protection fault",
                            "kstackwatch: self-test failed"):
                    self.assertNotIn(bad, console)
                self.assertIn("kstackwatch: self-test passed", console)
                self.assertIn("kstackwatch: module unloaded", console)


class BadConfigs(unittest.TestCase):
    def test_bad_configs_are_refused_with_their_errno(self):
        for series in SERIES:
            d = fixture(series, "kstackwatch")
            results = sorted((d / "bad").glob("*.result"))
            self.assertGreaterEqual(len(results), 20)
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


def cstr(b):
    return b.split(b"\0")[0].decode()


class PanicDump(unittest.TestCase):
    RUNS = (("kstackwatch-panic", "dump.elf"),          # ph=1, kdump
            ("kstackwatch-panic-qemu", "qemu.elf"))     # panic_on_catch=1, QEMU

    def test_catch_record_in_the_dump_matches_the_console(self):
        for series in SERIES:
            for run, elf in self.RUNS:
                d = fixture(series, run)
                man = json.loads((d / "manifest.json").read_text())
                console = (d / "console.log").read_text(errors="replace")
                with self.subTest(series=series, run=run):
                    (truth,) = truths(console)
                    (rep,) = reports(console)
                    self.assertEqual(rep["writer"], truth["writer"])
                    self.assertEqual(int(rep["addr"], 16), int(truth["local"], 16))
                    self.assertEqual(man["panic_message"],
                                     "kstackwatch: stack corruption caught, writer "
                                     f"{truth['writer']} [kstackwatch_test]")
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
                        self.assertNotEqual(rec["vtask"], rec["wtask"])


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
    unload/reload cycles while armed (testdata/scenarios/kstackwatch-stress.sh)."""

    def test_no_splat_and_no_leaked_slot(self):
        for series in SERIES:
            d = fixture(series, "kstackwatch-stress")
            with self.subTest(series=series):
                console = (d / "console.log").read_text(errors="replace")
                dmesg = (d / "stress.dmesg").read_text(errors="replace")
                self.assertIn("KSW-SCENARIO-DONE", console)
                for bad in ("WARNING:", "BUG:", "Oops", "general protection fault",
                            "still waiting for", "self-test failed"):
                    self.assertNotIn(bad, console + dmesg)
                self.assertEqual((d / "reconfig.done").read_text().strip(),
                                 "reconfigurations: 50")
                self.assertEqual((d / "reload.done").read_text().strip(), "reloads: 50")
                self.assertFalse((d / "reconfig.err").exists(),
                                 (d / "reconfig.err").read_text()
                                 if (d / "reconfig.err").exists() else "")
                self.assertFalse((d / "reload.err").exists(),
                                 (d / "reload.err").read_text()
                                 if (d / "reload.err").exists() else "")
                before = (d / "slots-before").read_text().strip()
                self.assertRegex(before, r"^slots_total: [1-4]$")
                self.assertEqual((d / "slots-after").read_text().strip(), before)
                self.assertEqual(dmesg.count("self-test passed"), 51)
                self.assertGreaterEqual(int((d / "catches").read_text()), 1)
                writers = {"test_mthread_victim": "test_mthread_corrupting",
                           "silent_corruption_victim": "silent_corruption_unwitting"}
                for r in reports(dmesg):
                    self.assertEqual(r["writer"], writers[r["func"]])
                st = state(d / "hotplug.state")
                self.assertEqual(st["catches"], "2", "a catch before and after cpu3 came back")


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
    """Overhead of an armed watch against the same probes without arming.
    Upstream reports about 83x ((10892 + 12541) / (159 + 124) ns, handler
    time on hardware). Under QEMU TCG an IPI is an emulated APIC write and
    the vCPUs share two host cores, so the handler ratio mostly measures
    the emulator at 4 vCPUs; the test holds the per-call wall-time ratio
    (armed calls against probed-only calls) below upstream's figure and
    prints both."""

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
                    self.assertGreater(handler, 1.0)
                    self.assertLess(wall, 83.0, "no better than upstream")


if __name__ == "__main__":
    unittest.main()
