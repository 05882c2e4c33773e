"""drgn's view of the crashed thread's frame variables, for the `ksw bt -v`
oracle test (bt_drgn.rs).

Run with the drgn venv's python:  bt_locals_oracle.py DUMP VMLINUX
Prints one JSON array, one entry per frame of the crashed thread that is
not an inline frame:

  {"pc", "locals": {name: hex bytes of the value, or null when drgn says
   it is absent (optimised out) or cannot read it}}

Only the physical frame's own scope is listed (drgn's inline frames hold
the inlined callees' variables).
"""

import json
import sys

import drgn


def main():
    dump, vmlinux = sys.argv[1:3]
    prog = drgn.Program()
    prog.set_core_dump(dump)
    prog.load_debug_info([vmlinux])
    out = []
    for frame in prog.crashed_thread().stack_trace():
        if frame.is_inline:
            continue
        values = {}
        for name in frame.locals():
            try:
                obj = frame[name]
                values[name] = None if obj.absent_ else obj.to_bytes_().hex()
            except (drgn.FaultError, drgn.ObjectAbsentError, LookupError, ValueError):
                values[name] = None
        out.append({"pc": frame.pc, "locals": values})
    json.dump(out, sys.stdout)


main()
