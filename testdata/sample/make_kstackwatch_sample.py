"""Copy the committed kstackwatch sample out of a pipeline fixture.

    python3 testdata/pipeline run kstackwatch-panic --kernel 6.1
    python3 testdata/sample/make_kstackwatch_sample.py [FIXTURE_DIR]

Keeps the kdump-compressed (zlib) dump of the silent-corruption catch,
the .ko files the guest loaded (with DWARF), the test module's source
as built, the first kernel's console
log, the guest's ground truth (kallsyms xz-compressed) and truth.json:
what the test module and the catch report said. At most 20 MB in all.
"""

import json
import lzma
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("KSW_CACHE", Path.home() / ".cache" / "ksw"))
DEST = HERE / "kstackwatch-6.1"
LIMIT = 20 * 1000 * 1000

TRUTH = re.compile(r"truth scenario=(\S+) victim=(\S+) local=(0x[0-9a-f]+) "
                   r"len=(\d+) depth=(\d+) writer=(\S+)")
FIELDS = {
    "config": r"kstackwatch: config: ([^\n]*)",
    "writer": r"kstackwatch: writer: (\S+) \[\w+\] ip=(0x[0-9a-f]+) comm=(\S+) pid=(\d+) cpu=(\d+)",
    "watch": r"kstackwatch: watch: addr=(0x[0-9a-f]+) len=(\d+) old=(0x[0-9a-f]+) new=(0x[0-9a-f]+)",
    "victim": r"kstackwatch: victim: func=(\S+) depth=(\d+) comm=(\S+) pid=(\d+) armed_sp=(0x[0-9a-f]+)",
    "record": r"kstackwatch: record: seq=(\d+) flags=(0x[0-9a-f]+)",
    "panic": r"Kernel panic - not syncing: ([^\r\n]*)",
}


def first_kernel(console):
    """The console up to the end of the panic's printk lines (what follows
    is the capture kernel and makedumpfile's progress output)."""
    lines = console.splitlines(keepends=True)
    at = next(i for i, l in enumerate(lines) if "Kernel panic - not syncing" in l)
    end = next((i for i in range(at, len(lines)) if not lines[i].startswith("[")),
               len(lines))
    return "".join(lines[:end])


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else CACHE / "fixtures" / "6.1" / "kstackwatch-panic"
    console = first_kernel((src / "console.log").read_text(errors="replace"))
    truth = dict(zip(("scenario", "victim", "local", "len", "depth", "writer"),
                     TRUTH.search(console).groups()))
    report = {k: re.search(v, console).groups() for k, v in FIELDS.items()}
    shutil.rmtree(DEST, ignore_errors=True)
    (DEST / "modules").mkdir(parents=True)
    (DEST / "ground-truth").mkdir()
    shutil.copy(src / "dump.kdump-zlib", DEST / "dump.kdump-zlib")
    for ko in sorted((src / "modules").glob("*.ko")):
        shutil.copy(ko, DEST / "modules" / ko.name)
    # the source the report quotes (writer and victim are both in the
    # test module), as built, for --source-dir once the repository's own
    # has moved on (the fixture's input hash covers it, so it is the
    # checkout's at the time the fixture was made)
    (DEST / "source").mkdir()
    shutil.copy(HERE.parent.parent / "crates" / "kstackwatch-mod" / "module" / "ksw_test.c",
                DEST / "source" / "ksw_test.c")
    for f in ("release", "uname", "vmcoreinfo", "modules", "cmdline", "ncpus"):
        shutil.copy(src / "ground-truth" / f, DEST / "ground-truth" / f)
    (DEST / "ground-truth" / "kallsyms.xz").write_bytes(
        lzma.compress((src / "ground-truth" / "kallsyms").read_bytes()))
    (DEST / "console.log").write_text(console)
    man = json.loads((src / "manifest.json").read_text())
    (DEST / "truth.json").write_text(json.dumps({
        "release": man["release"], "panic_message": man["panic_message"],
        "test_module": truth, "report": report, "config": (src / "config").read_text().strip(),
    }, indent=2) + "\n")
    total = sum(p.stat().st_size for p in DEST.rglob("*") if p.is_file())
    print(f"{DEST}: {total / 1e6:.1f} MB")
    if total > LIMIT:
        sys.exit(f"sample is {total} bytes, over the {LIMIT} limit")


if __name__ == "__main__":
    main()
