"""Initramfs images for the guest: busybox, host binaries with their
libraries, kernel modules with their dependencies, and an init script."""

import gzip
import lzma
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from common import StepError, run


class Initramfs:
    """A staging tree that becomes a gzip'd newc cpio archive."""

    def __init__(self, root):
        self.root = Path(root)
        shutil.rmtree(self.root, ignore_errors=True)
        for d in ["bin", "sbin", "dev", "proc", "sys", "mnt", "tmp", "etc",
                  "var/tmp", "ksw/modules", "ksw/bin", "ksw/kmod"]:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.add_file("/bin/busybox", "bin/busybox", mode=0o755)
        self.modules = []  # load order of kernel modules, as guest paths

    def add_file(self, src, dest, mode=None):
        dst = self.root / dest.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, mode if mode is not None else stat.S_IMODE(os.stat(src).st_mode))
        return dst

    def add_text(self, dest, text, mode=0o644):
        dst = self.root / dest.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text)
        os.chmod(dst, mode)

    def add_binary(self, src, dest=None):
        """Copy a dynamic host binary and every library `ldd` names,
        at the same paths, so that it runs in the guest unchanged."""
        src = Path(src)
        self.add_file(src, dest or f"/bin/{src.name}", mode=0o755)
        out = run(["ldd", src], f"initramfs: ldd {src.name}", check=False)
        if "not a dynamic executable" in out:
            return
        for line in out.splitlines():
            m = re.search(r"(/\S+) \(0x", line)
            if not m:
                continue
            lib = Path(m.group(1))
            self.add_file(lib.resolve(), str(lib), mode=0o755)

    def add_kernel_modules(self, moddir, names):
        """Add `names` and their dependencies from an unpacked
        /lib/modules/REL tree, decompressed, in load order. Names that are
        built into this kernel are skipped."""
        moddir = Path(moddir)
        # modules.dep is made by the package's postinst, which never ran
        # here; read each module's own "depends=" from .modinfo instead.
        paths = {_modname(p): p for p in (moddir / "kernel").rglob("*.ko*")}
        builtin = {_modname(p) for p in
                   (moddir / "modules.builtin").read_text().split()}
        deps = {}

        def depends(name):
            if name not in deps:
                m = re.search(rb"\0depends=([^\0]*)\0", _decompressed(paths[name]))
                deps[name] = [d for d in (m.group(1).decode().split(",") if m else [])
                              if d]
            return deps[name]

        order = []

        def visit(name):
            if name in builtin or name in order:
                return
            if name not in paths:
                raise StepError(f"initramfs: module {name} is neither in "
                                f"{moddir} nor built in")
            for dep in depends(name):
                visit(_modname(dep))
            order.append(name)

        for n in names:
            visit(n.replace("-", "_"))
        for name in order:
            src = paths[name]
            dest = self.root / "ksw" / "kmod" / f"{name}.ko"
            dest.write_bytes(_decompressed(src))
            self.modules.append(f"/ksw/kmod/{name}.ko")

    def pack(self, out):
        """Write the archive; the kernel accepts gzip on every config here."""
        files = subprocess.run(
            ["find", ".", "-mindepth", "1"], cwd=self.root, check=True,
            capture_output=True, text=True).stdout
        cpio = subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc", "--owner=0:0"], cwd=self.root,
            input=files.encode(), capture_output=True)
        if cpio.returncode != 0:
            raise StepError(f"initramfs: cpio failed: {cpio.stderr.decode()[-500:]}")
        Path(out).write_bytes(gzip.compress(cpio.stdout, compresslevel=1))
        return Path(out)


def _modname(path):
    base = Path(path).name
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def _decompressed(path):
    data = Path(path).read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc"], input=data, check=True,
                              capture_output=True).stdout
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    return data
