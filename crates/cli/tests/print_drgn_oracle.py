"""drgn's printout of kernel objects, for the `ksw print` oracle test
(print_drgn.rs).

Run with the drgn venv's python:  print_drgn_oracle.py DUMP VMLINUX
Reads one JSON object from stdin, {ksw expression: Python expression over
`prog` and drgn's `per_cpu`}, and prints one JSON object, {ksw expression:
drgn's text}. The text is str(object), except for a pointer, which drgn
prints dereferenced; that one is given as "(TYPE)0xVALUE", as ksw prints
a pointer. An expression drgn cannot evaluate gives "error: ...".
"""

import json
import sys

import drgn
from drgn.helpers.linux.percpu import per_cpu  # noqa: F401 (used by eval)


def main():
    dump, vmlinux = sys.argv[1:3]
    prog = drgn.Program()
    prog.set_core_dump(dump)
    prog.load_debug_info([vmlinux])
    out = {}
    for ksw_expr, py_expr in json.load(sys.stdin).items():
        try:
            obj = eval(py_expr, {"prog": prog, "per_cpu": per_cpu, "drgn": drgn})
            if obj.type_.kind == drgn.TypeKind.POINTER:
                out[ksw_expr] = "(%s)%#x" % (obj.type_, obj.value_())
            else:
                out[ksw_expr] = str(obj)
        except Exception as e:  # every failure is reported, not raised
            out[ksw_expr] = "error: %s" % e
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
