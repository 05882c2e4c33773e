"""ksw fixture pipeline: real Debian kernels, real crashes, real dumps.

    python3 testdata/pipeline all [--kernel 6.1 ...]   the whole matrix
    python3 testdata/pipeline run NAME --kernel 6.1    one run of the matrix
    python3 testdata/pipeline kernel 6.1               fetch a kernel only
    python3 testdata/pipeline deps                     host packages only
    python3 testdata/pipeline oracle                   drgn's virtualenv only
    python3 testdata/pipeline checkpatch               the kernel's checkpatch.pl only

Everything lands under $KSW_CACHE (default ~/.cache/ksw): kernels/, and
fixtures/SERIES/RUN/ with console.log, ground-truth/, dumps and
manifest.json. A failure names its step and keeps the console log under
work/SERIES/RUN/.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kernels  # noqa: E402
import matrix  # noqa: E402
import scenarios  # noqa: E402
from common import CACHE, REPO, StepError, host_packages, log, run  # noqa: E402

# drgn is an oracle for the tests only; pinned so that its answers are stable.
DRGN = "drgn==0.3.0"


def oracle_venv():
    venv = CACHE / "drgn-venv"
    python = venv / "bin" / "python"
    stamp = venv / "installed"
    if not stamp.exists() or stamp.read_text() != DRGN:
        log(f"oracle: installing {DRGN} into {venv}")
        run([sys.executable, "-m", "venv", "--clear", venv], "oracle venv")
        run([python, "-m", "pip", "install", "-q", DRGN], "oracle venv")
        stamp.write_text(DRGN)
    return python


# checkpatch.pl for test_checkpatch.py, from Debian's kernel source package
# (kbuild packages do not ship it). Only these files are kept; never committed.
CHECKPATCH_PKG = "linux-source-6.1"
CHECKPATCH_FILES = ["scripts/spelling.txt", "scripts/const_structs.checkpatch",
                    "scripts/checkpatch.pl"]  # checkpatch.pl last: the stamp


def checkpatch():
    d = CACHE / "checkpatch"
    script = d / "scripts" / "checkpatch.pl"
    if all((d / f).exists() for f in CHECKPATCH_FILES):
        return script
    step = "checkpatch"
    work = d / "download"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"{step}: downloading {CHECKPATCH_PKG}")
    run(["apt-get", "download", CHECKPATCH_PKG], step, cwd=work, check=False)
    if not list(work.glob("*.deb")):  # stale package lists
        run(["apt-get", "update", "-qq"], step)
        run(["apt-get", "download", CHECKPATCH_PKG], step, cwd=work)
    deb = sorted(work.glob("*.deb"))[-1]
    tarball = f"./usr/src/{CHECKPATCH_PKG}.tar.xz"
    run(["bash", "-o", "pipefail", "-c",
         'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "$3"',
         "unpack", deb, work, tarball], step)
    top = CHECKPATCH_PKG
    run(["tar", "-xJf", work / tarball, "-C", work,
         *[f"{top}/{f}" for f in CHECKPATCH_FILES]], step)
    (d / "scripts").mkdir(exist_ok=True)
    for f in CHECKPATCH_FILES:
        (work / top / f).replace(d / f)
    (d / "version").write_text(deb.name + "\n")
    shutil.rmtree(work)
    log(f"{step}: ready, {script} from {deb.name}")
    return script


def _build_binaries(runs):
    if any(r.binaries for r in runs):
        log("building ksw (release) for the live scenario")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "ksw"],
                       cwd=REPO, check=True)


def make_fixture(series, r, force):
    """scenarios.execute, with one more boot when the kernel died in its
    own boot, before the guest's init started the scenario: nothing of the
    project's had run (no module loaded, no ksw), so the failure is TCG's
    (its stale int3 of early text patching, an `Oops: int3` at 2 s seen on
    6.12 with no module linked in; crates/kstackwatch-mod/README.md, "TCG
    failures"). A failure once the scenario started is never retried. The
    first boot's console is kept under CACHE/boot-failures/."""
    try:
        return scenarios.execute(series, r, force=force)
    except StepError as e:
        console = CACHE / "work" / series / r.name / "console.log"
        text = console.read_text(errors="replace") if console.exists() else ""
        if not text or "ksw-guest: scenario" in text:
            raise
        kept = CACHE / "boot-failures" / series / f"{r.name}.console.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(console, kept)
        log(f"{series}/{r.name}: the kernel failed before the scenario started "
            f"({str(e).splitlines()[0]}); booting once more, the console is kept "
            f"as {kept}")
        return scenarios.execute(series, r, force=True)


def main():
    ap = argparse.ArgumentParser(prog="pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("all", help="run the whole fixture matrix")
    a.add_argument("--kernel", action="append", choices=sorted(kernels.PINS))
    a.add_argument("--force", action="store_true", help="ignore cached fixtures")
    r = sub.add_parser("run", help="run one entry of the matrix")
    r.add_argument("name")
    r.add_argument("--kernel", default="6.1", choices=sorted(kernels.PINS))
    r.add_argument("--force", action="store_true")
    sr = sub.add_parser("stress-rate", help="boot every stress variant N times "
                        "and count the failures (measurement, not a test)")
    sr.add_argument("--kernel", default="6.12", choices=sorted(kernels.PINS))
    sr.add_argument("--boots", type=int, default=30)
    sr.add_argument("--variant", action="append", choices=matrix.STRESS_VARIANTS,
                    help="boot only these (default: all)")
    k = sub.add_parser("kernel", help="fetch and unpack a kernel series")
    k.add_argument("series", choices=sorted(kernels.PINS))
    sub.add_parser("deps", help="install the host packages the pipeline uses")
    sub.add_parser("oracle", help="set up drgn (PyPI) in its own virtualenv")
    sub.add_parser("checkpatch", help="fetch the kernel's checkpatch.pl (Debian)")
    args = ap.parse_args()

    try:
        host_packages()
        if args.cmd == "deps":
            return 0
        if args.cmd == "oracle":
            print(oracle_venv())
            return 0
        if args.cmd == "checkpatch":
            print(checkpatch())
            return 0
        if args.cmd == "kernel":
            print(kernels.fetch(args.series))
            return 0
        if args.cmd == "stress-rate":
            summary = matrix.stress_rate(args.kernel, args.boots,
                                            args.variant or matrix.STRESS_VARIANTS)
            print(json.dumps(summary, indent=1))
            return 0
        if args.cmd == "run":
            runs = [x for x in matrix.standard_runs(args.kernel)
                    if x.name == args.name]
            if not runs:
                names = ", ".join(x.name for x in matrix.standard_runs(args.kernel))
                raise StepError(f"unknown run {args.name!r}; known: {names}")
            _build_binaries(runs)
            print(make_fixture(args.kernel, runs[0], args.force))
            return 0
        for series in args.kernel or sorted(kernels.PINS):
            runs = matrix.standard_runs(series)
            _build_binaries(runs)
            for x in runs:
                make_fixture(series, x, args.force)
        return 0
    except StepError as e:
        log(f"FAILED: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
