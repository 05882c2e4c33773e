"""The pipeline's fixtures, checked against the guest's own ground truth.

For every kernel series and every run of the standard matrix: the
manifest, the console log and the ground truth agree; every dump has the
magic and structure of its format and is complete; and drgn, used only as
an oracle, opens every dump and reports the release and panic message the
console log shows. A missing fixture is a failure: run
`python3 testdata/pipeline all` first (the test command does).
"""

import json
import mmap
import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "pipeline"))

import dumpfmt  # noqa: E402
import matrix  # noqa: E402
from common import CACHE, splats  # noqa: E402

FIXTURES = Path(os.environ.get("KSW_FIXTURES", CACHE / "fixtures"))
DRGN = Path(os.environ.get("KSW_DRGN_PYTHON", CACHE / "drgn-venv" / "bin" / "python"))
SERIES = os.environ.get("KSW_SERIES", "6.1 6.12").split()
# What each scenario's panic says, as the scenario itself provokes it.
EXPECTED_PANIC = {"sysrq": "sysrq triggered crash",
                  # live-kcore ends in a sysrq crash once its live reads are done
                  "live-kcore": "sysrq triggered crash",
                  "kstackwatch-panic": "kstackwatch: stack corruption caught, "
                                       "writer silent_corruption_unwitting [kstackwatch_test]"}
# The writer each kstackwatch-panic-SCENARIO run (matrix.analyze_runs) is
# caught at, as the test module's README table names it.
ANALYZE_WRITERS = {"fire": "ksw_test_fire_writer", "canary": "ksw_test_canary_writer",
                   "recursion": "ksw_test_recursion_writer",
                   "mthread": "test_mthread_corrupting",
                   "overflow": "test_overflow_corrupting", "loop": "ksw_test_fire_writer"}
# A run whose panic is not its script's (EXPECTED_PANIC): its panic
# message, by run name (a string, or a pattern the whole message matches).
EXPECTED_RUN_PANIC = {"kstackwatch-panic-init": "kstackwatch: stack corruption caught, "
                                                "writer ksw_test_init_writer [kstackwatch_test_init]",
                      # __stack_chk_fail names the function whose canary failed
                      "stack-protector": re.compile(
                          r"stack-protector: Kernel stack is corrupted in: "
                          r"test_canary_overflow\+0x[0-9a-f]+/0x[0-9a-f]+ \[kstackwatch_test\]")}
EXPECTED_RUN_PANIC.update({f"kstackwatch-panic-{s}": "kstackwatch: stack corruption caught, "
                           f"writer {w} [kstackwatch_test]"
                           for s, w in ANALYZE_WRITERS.items()})
# Runs whose panic comes from NMI-like context (kstackwatch's #DB, the
# writer's IRQs off): printk defers the console output, and QEMU pauses the
# guest at the panic notifier before the console is flushed, so the panic
# is only in the dump (kdump too: the capture kernel starts before the
# console is flushed). The manifest, which reads the console, has none.
PANIC_OFF_CONSOLE = {"kstackwatch-panic-irqoff", "kstackwatch-panic-init"}


def expected_panic(run, man):
    """The panic message a run's dumps hold."""
    if run.name in PANIC_OFF_CONSOLE:
        return EXPECTED_RUN_PANIC.get(run.name, EXPECTED_PANIC[run.script])
    return man["panic_message"]
# Splats a run expects, by run name: a line of its console (or dmesg) that
# common.splats() reports fails the run unless it contains one of these
# strings. None is expected today: a sysrq crash prints "Kernel panic - not
# syncing: sysrq triggered crash", which is not a splat, and nothing else
# in these runs may warn or oops.
EXPECTED_SPLATS = {}


def fixture(series, run):
    d = FIXTURES / series / run.name
    if not (d / "manifest.json").exists():
        raise AssertionError(f"fixture {d} is missing: run "
                             f"`python3 testdata/pipeline run {run.name} --kernel {series}`")
    return d, json.loads((d / "manifest.json").read_text())


def mapped(path):
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)


def kcore_vmcoreinfo(d):
    head = (d / "ground-truth" / "kcore.head").read_bytes()
    notes = dumpfmt.parse_elf(head, head_only=True).note("VMCOREINFO")
    if not notes:
        raise AssertionError(f"{d}: no VMCOREINFO note in the head of /proc/kcore")
    return notes[0]


class Matrix(unittest.TestCase):
    def runs(self):
        for series in SERIES:
            for run in matrix.standard_runs(series):
                yield series, run

    def test_console_and_ground_truth_agree(self):
        for series, run in self.runs():
            with self.subTest(series=series, run=run.name):
                d, man = fixture(series, run)
                console = (d / "console.log").read_text(errors="replace")
                release = (d / "ground-truth" / "release").read_text().strip()
                self.assertEqual(release, man["release"])
                self.assertIn(f"Linux version {release} ", console)
                self.assertTrue(release.startswith(series + "."), release)
                ncpus = int((d / "ground-truth" / "ncpus").read_text())
                self.assertEqual(ncpus, run.cpus)
                kallsyms = (d / "ground-truth" / "kallsyms").read_text()
                self.assertRegex(kallsyms, r"(?m)^ffffffff[0-9a-f]{8} T _stext$")
                if run.mode == "none":
                    self.assertIsNone(man["panic_message"])
                    self.assertIn("KSW-SCENARIO-DONE", console)
                    continue
                if run.name in PANIC_OFF_CONSOLE:
                    self.assertIsNone(man["panic_message"])
                    self.assertNotIn("Kernel panic - not syncing", console)
                else:
                    want = EXPECTED_RUN_PANIC.get(run.name) or EXPECTED_PANIC[run.script]
                    if isinstance(want, re.Pattern):
                        self.assertIsNotNone(want.fullmatch(man["panic_message"] or ""),
                                             man["panic_message"])
                    else:
                        self.assertEqual(man["panic_message"], want)
                    self.assertIn(f"Kernel panic - not syncing: {man['panic_message']}",
                                  console)
                if run.mode == "kdump":
                    self.assertIn("KSW-CAPTURE-DONE", console)
                # 5-level paging is what -cpu max gives, unless switched off.
                vmci = dumpfmt.vmcoreinfo_dict(kcore_vmcoreinfo(d))
                self.assertEqual(vmci["OSRELEASE"], release)
                self.assertEqual(vmci.get("NUMBER(pgtable_l5_enabled)"),
                                 "1" if run.paging == 5 else "0")

    def test_every_expected_dump_is_there(self):
        for series, run in self.runs():
            with self.subTest(series=series, run=run.name):
                d, man = fixture(series, run)
                names = set(man["dumps"])
                if run.mode == "kdump":
                    want = {"dump.kdump-zlib", "dump.kdump-lzo", "dump.flat", "dump.elf"}
                    if run.raw_vmcore:
                        want.add("vmcore.raw")
                elif run.mode == "qemu":
                    want = {"qemu.elf", "qemu.kdump-zlib.flat"}
                else:
                    want = set()
                self.assertEqual(names & want, want)
                for name, meta in man["dumps"].items():
                    self.assertEqual((d / name).stat().st_size, meta["size"])

    def test_dump_structure(self):
        for series, run in self.runs():
            d, man = fixture(series, run)
            release = man["release"]
            ncpus = run.cpus
            for name, meta in man["dumps"].items():
                with self.subTest(series=series, run=run.name, dump=name):
                    data = mapped(d / name)
                    if meta["format"] == "elf":
                        self.check_elf(data, run, release, ncpus, meta)
                    elif meta["format"] == "kdump-compressed":
                        self.check_kdump(data, run, release, meta)
                    elif meta["format"] == "flattened":
                        whole, records = dumpfmt.unflatten(data)
                        self.assertGreater(records, 2)
                        self.check_kdump(whole, run, release, meta)
                    else:
                        self.fail(f"unknown format {meta['format']}")

    def check_elf(self, data, run, release, ncpus, meta):
        core = dumpfmt.parse_elf(data)
        self.assertEqual((core.e_type, core.machine), (4, 62))  # ET_CORE, x86_64
        self.assertTrue(core.loads)
        end = max(off + filesz for off, _v, _p, filesz, _m in core.loads)
        if meta["producer"].startswith("qemu"):
            self.assertLessEqual(end, len(data))  # QEMU leaves a few bytes after
        else:
            self.assertEqual(end, len(data), "file size differs from its last segment's end")
        mem = sum(m for *_x, m in core.loads)
        self.assertGreater(mem, 256 << 20)
        self.assertLessEqual(mem, 600 << 20)
        self.assertEqual(len(core.note("CORE", 1)), ncpus)  # one NT_PRSTATUS each
        vmci = core.note("VMCOREINFO")
        if meta["producer"].startswith("qemu") and not meta["vmcoreinfo_device"]:
            self.assertEqual(vmci, [])
        else:
            self.assertEqual(len(vmci), 1)
            self.assertEqual(dumpfmt.vmcoreinfo_dict(vmci[0])["OSRELEASE"], release)
        if meta.get("raw"):
            # /proc/vmcore as is: nothing filtered, every segment complete.
            self.assertTrue(all(f == m for *_x, f, m in core.loads))
        elif meta["producer"].startswith("makedumpfile"):
            # -d 31 filtered pages away: some segment is shorter in the file.
            self.assertTrue(any(f < m for *_x, f, m in core.loads))

    def check_kdump(self, data, run, release, meta):
        k = dumpfmt.parse_kdump(data)
        if meta["producer"].startswith("makedumpfile"):
            self.assertEqual(k.release, release)
        else:
            self.assertEqual(k.release, "")  # QEMU fills in only the machine
        self.assertIn(k.header_version, range(1, 7))
        self.assertTrue(k.status & dumpfmt.DUMP_FLAGS[meta["compression"]])
        self.assertIn(meta["compression"], k.compressed)
        self.assertGreater(k.pages, 1000)
        self.assertLessEqual(k.data_end, len(data))
        if meta["producer"].startswith("makedumpfile"):
            self.assertEqual(k.dump_level, 31)
            self.assertEqual(dumpfmt.vmcoreinfo_dict(k.vmcoreinfo)["OSRELEASE"], release)
        elif meta["vmcoreinfo_device"]:
            self.assertEqual(dumpfmt.vmcoreinfo_dict(k.vmcoreinfo)["OSRELEASE"], release)
        else:
            self.assertEqual(k.vmcoreinfo, b"")


class LiveKcore(unittest.TestCase):
    """The live scenario ran a host binary inside the guest on /proc/kcore."""

    def test_binary_ran_in_guest(self):
        for series in SERIES:
            run = next(r for r in matrix.standard_runs(series) if r.name == "live-kcore")
            with self.subTest(series=series):
                d, _ = fixture(series, run)
                for cmd in ("info", "dmesg"):
                    rc = int((d / f"ksw-{cmd}.rc").read_text())
                    err = (d / f"ksw-{cmd}.err").read_text()
                    # 0 only: 126/127 would be a binary the guest cannot run,
                    # 1 an error reading /proc/kcore, 2 a usage error.
                    self.assertEqual(rc, 0, f"ksw {cmd} on /proc/kcore exited {rc}: {err}")
                    self.assertNotIn("error while loading shared libraries", err)
                    out = (d / f"ksw-{cmd}.txt").read_text(errors="replace")
                    self.assertTrue(out.strip(), f"ksw {cmd} printed nothing")
                head = (d / "ground-truth" / "kcore.head").read_bytes()
                core = dumpfmt.parse_elf(head, head_only=True)
                self.assertEqual(core.e_type, 4)
                self.assertTrue(core.note("CORE", 1))


class Splats(unittest.TestCase):
    """No kernel splat in the runs that only crash on purpose or read /proc/kcore."""

    def test_scan_sees_splats_and_not_the_sysrq_panic(self):
        text = ("[    1.0] sysrq: Trigger a crash\n"
                "[    1.1] Kernel panic - not syncing: sysrq triggered crash\n"
                "[    1.2] PCI: Using host bridge windows from ACPI; if necessary, "
                "use \"pci=nocrs\" and report a bug\n"
                "[    1.3] WARNING: CPU: 0 PID: 1 at mm/slub.c:1 f+0x1/0x2\n"
                "[    1.4] BUG: unable to handle page fault for address: 0\n"
                "[    1.5] Oops: 0000 [#1] PREEMPT SMP NOPTI\n"
                "[    1.6] general protection fault, probably for non-canonical address\n")
        self.assertEqual([line[:9] for line in splats(text)],
                         ["[    1.3]", "[    1.4]", "[    1.5]", "[    1.6]"])

    def test_no_splat_in_the_non_kstackwatch_runs(self):
        for series in SERIES:
            # the kstackwatch and analyze runs: test_kstackwatch.py's Splats
            kstackwatch = {r.name for r in matrix.kstackwatch_runs(series)
                           + matrix.analyze_runs(series)}
            runs = [r for r in matrix.standard_runs(series) if r.name not in kstackwatch]
            self.assertEqual({r.script for r in runs}, {"sysrq", "live-kcore"})
            for run in runs:
                d, _ = fixture(series, run)
                # The console (first kernel and, for kdump, the capture
                # kernel), and the guest's own dmesg where the run kept it.
                logs = [d / "console.log"]
                if run.script == "live-kcore":
                    logs.append(d / "dmesg.txt")
                expected = EXPECTED_SPLATS.get(run.name, ())
                for path in logs:
                    with self.subTest(series=series, run=run.name, log=path.name):
                        self.assertTrue(path.exists(), f"{path} is missing")
                        text = path.read_text(errors="replace")
                        self.assertIn("Linux version", text)
                        found = [line for line in splats(text)
                                 if not any(e in line for e in expected)]
                        self.assertEqual(found, [], f"splat in {path}")


class DrgnOracle(unittest.TestCase):
    """drgn from PyPI opens every dump and tells the same story."""

    def test_drgn_reads_release_and_panic(self):
        if not DRGN.exists():
            self.fail(f"{DRGN} is missing: the test command sets up drgn's virtualenv")
        for series, run in Matrix.runs(self):
            d, man = fixture(series, run)
            for name, meta in man["dumps"].items():
                with self.subTest(series=series, run=run.name, dump=name):
                    cmd = [DRGN, HERE / "drgn_oracle.py", d / name, man["vmlinux"]]
                    if meta["producer"].startswith("qemu"):
                        # libkdumpfile refuses QEMU's flattened files, and a
                        # dump without -device vmcoreinfo needs the note the
                        # guest's /proc/kcore had.
                        if meta["format"] == "flattened":
                            cmd.append("--custom")
                        if not meta["vmcoreinfo_device"]:
                            vf = d / "vmcoreinfo.override"
                            vf.write_bytes(kcore_vmcoreinfo(d))
                            cmd += ["--vmcoreinfo", vf]
                    res = subprocess.run([str(c) for c in cmd], capture_output=True,
                                         text=True, timeout=600)
                    self.assertEqual(res.returncode, 0, res.stderr[-2000:])
                    out = json.loads(res.stdout)
                    self.assertEqual(out["release"], man["release"])
                    self.assertEqual(out["panic"], expected_panic(run, man))


if __name__ == "__main__":
    unittest.main()
