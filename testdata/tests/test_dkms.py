"""kstackwatch.ko installed through DKMS, as a distribution user installs it.

crates/kstackwatch-mod/module/dkms.conf, driven through the whole cycle
on the host against Debian's real headers of its current cloud kernel
(linux-headers-cloud-amd64, installed by `python3 testdata/pipeline
deps`): `dkms add`, `build`, `install`, `modinfo` of the installed file,
`remove`. Needs root, as dkms does.
"""

import os
import re
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pipeline"))

from common import REPO  # noqa: E402

MODULE = REPO / "crates" / "kstackwatch-mod" / "module"


def conf(key):
    text = (MODULE / "dkms.conf").read_text()
    m = re.search(rf'^{re.escape(key)}="([^"]*)"', text, re.M)
    if not m:
        raise AssertionError(f"dkms.conf has no {key}")
    return m.group(1)


def run(*cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p


def cloud_release():
    """The newest cloud kernel release whose headers are installed."""
    found = sorted(p.parent.name for p in Path("/lib/modules").glob("*-cloud-amd64/build")
                   if p.exists())
    if not found:
        raise AssertionError("no /lib/modules/*-cloud-amd64/build: run "
                             "`python3 testdata/pipeline deps`")
    return found[-1]


class Dkms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("dkms") is None:
            raise AssertionError("dkms is missing: run `python3 testdata/pipeline deps`")
        if os.geteuid() != 0:
            raise AssertionError("the DKMS test needs root")
        cls.name, cls.version = conf("PACKAGE_NAME"), conf("PACKAGE_VERSION")
        cls.release = cloud_release()
        cls.pkg = f"{cls.name}/{cls.version}"
        cls.src = Path(f"/usr/src/{cls.name}-{cls.version}")

    def clean(self):
        run("dkms", "remove", self.pkg, "--all", check=False)
        shutil.rmtree(self.src, ignore_errors=True)

    def test_version_is_the_workspaces(self):
        cargo = (REPO / "Cargo.toml").read_text()
        m = re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', cargo, re.M | re.S)
        self.assertIsNotNone(m)
        self.assertEqual(self.version, m.group(1))

    def test_add_build_install_then_remove(self):
        self.clean()
        self.addCleanup(self.clean)
        # what `dkms add DIR` would take, without the build's leftovers
        shutil.copytree(MODULE, self.src, ignore=shutil.ignore_patterns(
            "*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers", "modules.order"))
        run("dkms", "add", self.pkg)
        run("dkms", "build", self.pkg, "-k", self.release)
        run("dkms", "install", self.pkg, "-k", self.release)
        status = run("dkms", "status", self.pkg).stdout
        self.assertRegex(status, rf"{re.escape(self.release)}.*installed")
        tree = Path("/lib/modules") / self.release
        installed = sorted(tree.rglob(f"{self.name}.ko*"))
        self.assertEqual([p.relative_to(tree).parts[:2] for p in installed],
                         [("updates", "dkms")], installed)
        info = {k: run("modinfo", "-F", k, str(installed[0])).stdout.strip()
                for k in ("name", "vermagic", "license")}
        self.assertEqual(info["name"], self.name)
        self.assertTrue(info["vermagic"].startswith(self.release + " "), info)
        self.assertEqual(info["license"], "GPL")
        # the same file modprobe would load for that kernel
        self.assertEqual(run("modinfo", "-k", self.release, "-n", self.name).stdout.strip(),
                         str(installed[0]))
        # the test modules are not installed
        self.assertEqual(sorted(tree.rglob("kstackwatch_test*")), [])
        run("dkms", "remove", self.pkg, "--all")
        self.assertEqual(sorted(tree.rglob(f"{self.name}.ko*")), [])
        self.assertNotIn("installed", run("dkms", "status", self.pkg).stdout)


if __name__ == "__main__":
    unittest.main()
