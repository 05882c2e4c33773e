"""The kernel module stays `checkpatch.pl --strict` clean.

Every .c and .h of crates/kstackwatch-mod/module is checked with the
kernel's own checkpatch.pl (Debian's linux-source-6.1, fetched into
$KSW_CACHE/checkpatch by `python3 testdata/pipeline checkpatch`). Any
ERROR or WARNING fails; a CHECK must be justified in a comment or in
crates/kstackwatch-mod/README.md, and is printed.
"""

import re
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pipeline"))

from common import CACHE, REPO  # noqa: E402

MODULE = REPO / "crates" / "kstackwatch-mod" / "module"
CHECKPATCH = CACHE / "checkpatch" / "scripts" / "checkpatch.pl"
TOTAL = re.compile(r"^total: (\d+) errors, (\d+) warnings, (\d+) checks", re.M)
FINDING = re.compile(r"^(ERROR|WARNING|CHECK): .*\n(?:#\d+: FILE: .*\n)?", re.M)


def sources():
    return sorted(p for p in MODULE.iterdir() if p.suffix in (".c", ".h"))


class Checkpatch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not CHECKPATCH.exists():
            raise AssertionError(f"{CHECKPATCH} is missing: run "
                                 "`python3 testdata/pipeline checkpatch`")
        if shutil.which("perl") is None:
            raise AssertionError("perl is missing")

    def test_sources_found(self):
        names = {p.name for p in sources()}
        self.assertIn("ksw_main.c", names)
        self.assertIn("ksw_record.h", names)

    def test_strict_clean(self):
        for src in sources():
            with self.subTest(file=src.name):
                res = subprocess.run(
                    ["perl", CHECKPATCH, "--strict", "--no-tree", "-f", src.name],
                    cwd=MODULE, stdin=subprocess.DEVNULL, capture_output=True,
                    text=True, errors="replace")
                out = res.stdout + res.stderr
                m = TOTAL.search(out)
                self.assertIsNotNone(m, f"checkpatch printed no total for "
                                        f"{src.name}:\n{out[-2000:]}")
                errors, warnings, checks = map(int, m.groups())
                findings = "".join(x.group(0) for x in FINDING.finditer(out))
                self.assertEqual((errors, warnings), (0, 0),
                                 f"{src.name}:\n{findings}")
                if checks:
                    print(f"\n{src.name}: {checks} CHECK(s), each must be "
                          f"justified:\n{findings}", file=sys.stderr)

if __name__ == "__main__":
    unittest.main()
