"""Ask drgn (from PyPI, in its own virtualenv) what a dump says: the kernel
release and the panic message from the printk ring buffer.

Run with the venv's python:  drgn_oracle.py DUMP VMLINUX [--vmcoreinfo F]
Prints one JSON object. drgn opens ELF and makedumpfile dumps itself; for
QEMU's flattened kdump files (which its libkdumpfile refuses) and for dumps
without VMCOREINFO, this script hands drgn the physical pages and the
VMCOREINFO through drgn's custom-kernel interface.
"""

import argparse
import json
import mmap
import sys
from pathlib import Path

import drgn
from drgn.helpers.linux.printk import get_printk_records

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dumpfmt  # noqa: E402


def custom_program(data, vmcoreinfo):
    prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                      drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    if data[:4] == b"\x7fELF":
        core = dumpfmt.parse_elf(data)
        for off, _v, paddr, filesz, _m in core.loads:
            prog.add_memory_segment(
                paddr, filesz,
                lambda a, n, o, p, base=off: data[base + o:base + o + n],
                physical=True)
        vmci = vmcoreinfo or (core.note("VMCOREINFO") or [None])[0]
    else:
        if data[:16] == dumpfmt.FLAT_SIGNATURE:
            data, _ = dumpfmt.unflatten(data)
        pages = dumpfmt.KdumpPages(data)
        prog.add_memory_segment(0, pages.max_pfn * dumpfmt.PAGE,
                                lambda a, n, o, p: pages.read(a, n), physical=True)
        vmci = vmcoreinfo or pages.header.vmcoreinfo or None
    if not vmci:
        raise SystemExit("no VMCOREINFO in the dump and none given")
    prog.set_linux_kernel_custom(vmci, False)
    return prog


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("vmlinux")
    ap.add_argument("--vmcoreinfo", help="file with the VMCOREINFO text")
    ap.add_argument("--custom", action="store_true",
                    help="hand drgn physical pages instead of the file")
    a = ap.parse_args()
    vmci = Path(a.vmcoreinfo).read_bytes() if a.vmcoreinfo else None
    if a.custom or vmci:
        with open(a.dump, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        prog = custom_program(data, vmci)
    else:
        prog = drgn.Program()
        prog.set_core_dump(a.dump)
    prog.load_debug_info([a.vmlinux])
    release = prog["init_uts_ns"].name.release.string_().decode()
    panics = [r.text.decode(errors="replace") for r in get_printk_records(prog)
              if r.text.startswith(b"Kernel panic - not syncing: ")]
    print(json.dumps({"release": release,
                      "panic": panics[-1].split(": ", 1)[1] if panics else None}))


if __name__ == "__main__":
    main()
