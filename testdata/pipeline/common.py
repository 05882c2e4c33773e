"""Shared plumbing of the fixture pipeline: paths, logging, subprocesses."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KSW_CACHE", Path.home() / ".cache" / "ksw"))

_T0 = time.monotonic()

# What a kernel prints when something went wrong in it: any such line in a
# guest's console or dmesg fails the run's test unless the scenario expects
# it by name.
SPLAT = re.compile(r"WARNING:|BUG:|Oops|general protection|double fault|int3:")


def splats(text):
    """The lines of `text` that report a kernel splat."""
    return [line for line in text.splitlines() if SPLAT.search(line)]


class StepError(Exception):
    """A pipeline step failed; the message names the step and what to look at."""


def log(msg):
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def run(cmd, step, cwd=None, env=None, check=True):
    """Run a command for `step` and return its output (stdout and stderr).

    On failure raise StepError naming the step, with the output's tail.
    """
    res = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace",
    )
    if check and res.returncode != 0:
        tail = "\n".join(res.stdout.splitlines()[-20:])
        raise StepError(f"step '{step}': {cmd[0]} exited {res.returncode}\n{tail}")
    return res.stdout


def need_tools(tools, packages, step="host tools"):
    """Install Debian packages when any of `tools` is missing from PATH."""
    missing = [t for t in tools if shutil.which(t) is None
               and not Path(t).exists()]
    if not missing:
        return
    log(f"{step}: installing {' '.join(packages)} (missing {' '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], step, env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        step, env=env)


def host_packages():
    """Everything the pipeline needs on the host, as Debian packages."""
    need_tools(
        ["qemu-system-x86_64", "/bin/busybox", "kexec", "makedumpfile", "cpio",
         "debugfs", "mke2fs", "xz", "zstd", "gcc", "make", "bc", "flex", "bison",
         "gdb", "objdump", "pahole", "capsh"],
        ["qemu-system-x86", "busybox-static", "kexec-tools", "makedumpfile",
         "cpio", "e2fsprogs", "xz-utils", "zstd", "gcc", "make", "bc", "flex",
         "bison", "libelf-dev", "dwarves", "python3-venv", "gdb", "binutils",
         "libcap2-bin"],
    )
    # the DKMS test (testdata/tests/test_dkms.py): dkms and the headers of
    # Debian's current cloud kernel, without the generic kernel's
    need_tools(["dkms", "/usr/share/doc/linux-headers-cloud-amd64"],
               ["dkms", "linux-headers-cloud-amd64"], step="DKMS test")
    # the debuginfod tests (crates/cli/tests/debuginfod.rs) start a real
    # server on loopback
    need_tools(["debuginfod", "curl", "readelf"], ["debuginfod", "curl", "binutils"],
               step="debuginfod test")
