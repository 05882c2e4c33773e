"""Runs: a scenario script booted on a kernel in one configuration, and the
fixture directory it leaves behind. Which runs exist is matrix.py's
business; this file only says how one is made, so it is an input of every
fixture and the matrix is not (adding a run rebuilds only that run).

A run boots the Debian kernel under QEMU TCG, sources
testdata/scenarios/SCRIPT.sh in the guest, and keeps what came out: the
console log, the guest's ground truth, the files the script wrote to $OUT
and the dumps. Each fixture ends with manifest.json, written last, which
also records a hash of every input so that a warm cache is reused only
while nothing that made it has changed.
"""

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field, asdict
from pathlib import Path

import kernels
from common import CACHE, REPO, StepError, log, run
from initramfs import Initramfs
from qemu import Guest, qemu_dumps

GUEST = Path(__file__).resolve().parent / "guest"
SCENARIOS = REPO / "testdata" / "scenarios"
MODULE_SRC = REPO / "crates" / "kstackwatch-mod" / "module"

# Kernel modules the guest needs from the image package: the output disk,
# fw_cfg (so QEMU's -device vmcoreinfo learns where VMCOREINFO is) and
# pvpanic (so QEMU learns of the panic). Built-in ones are skipped.
GUEST_MODULES = ["virtio_pci", "virtio_blk", "qemu_fw_cfg", "pvpanic_pci"]
CAPTURE_MODULES = ["virtio_pci", "virtio_blk"]

# What makedumpfile writes in the capture kernel (see guest/capture-init.sh).
KDUMP_FILES = {
    "dump.kdump-zlib": {"format": "kdump-compressed", "compression": "zlib"},
    "dump.kdump-lzo": {"format": "kdump-compressed", "compression": "lzo"},
    "dump.flat": {"format": "flattened", "compression": "zlib"},
    "dump.elf": {"format": "elf", "compression": "none"},
    "vmcore.raw": {"format": "elf", "compression": "none", "raw": True},
}
# What QEMU's dump-guest-memory may write: (QMP format, file name).
QEMU_FORMATS = [("elf", "qemu.elf"), ("kdump-zlib", "qemu.kdump-zlib.flat"),
                ("kdump-lzo", "qemu.kdump-lzo.flat"),
                ("kdump-snappy", "qemu.kdump-snappy.flat")]
QEMU_FILE_FORMAT = {"elf": ("elf", "none"), "kdump-zlib": ("flattened", "zlib"),
                    "kdump-lzo": ("flattened", "lzo"),
                    "kdump-snappy": ("flattened", "snappy")}


@dataclass
class Run:
    """One configuration of a scenario."""
    name: str
    script: str
    mode: str = "kdump"           # kdump | qemu | none
    paging: int = 5
    cpus: int = 2
    mem: str = "512M"
    vmcoreinfo: bool = True       # qemu mode: -device vmcoreinfo
    raw_vmcore: bool = False      # kdump mode: also copy /proc/vmcore as is
    project_modules: bool = False  # build and ship crates/kstackwatch-mod/module
    binaries: list = field(default_factory=list)  # host paths to ship in /ksw/bin
    timeout: int = 300
    append: str = ""              # more kernel command line


def _hash_inputs(kernel, r, extra_files):
    h = hashlib.sha256()
    h.update(json.dumps(asdict(r), sort_keys=True).encode())
    h.update(json.dumps(kernel.info, sort_keys=True).encode())
    # What shapes a fixture: how runs are built and booted, and the guest's
    # own scripts (not host set-up or the command line).
    here = Path(__file__).resolve().parent
    files = [here / f for f in ("scenarios.py", "initramfs.py", "qemu.py")]
    files += sorted(GUEST.glob("*")) + [SCENARIOS / f"{r.script}.sh"]
    files += sorted(SCENARIOS.glob("*-lib.sh"))
    files += list(extra_files)
    for f in files:
        h.update(str(f.name).encode())
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def build_project_modules(kernel, build):
    """Build crates/kstackwatch-mod/module against the kernel's headers in
    a scratch copy of the sources at `build`; return the .ko paths."""
    if not (MODULE_SRC / "Kbuild").exists() and not (MODULE_SRC / "Makefile").exists():
        raise StepError(f"step 'modules': no Kbuild in {MODULE_SRC}")
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(MODULE_SRC, build, ignore=shutil.ignore_patterns(
        "*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers", "modules.order"))
    log(f"modules: building for {kernel.release}")
    run(["make", "-C", kernel.build, f"M={build}", "modules"],
        f"modules {kernel.series}")
    kos = sorted(build.glob("*.ko"))
    if not kos:
        raise StepError(f"step 'modules {kernel.series}': make produced no .ko")
    return kos


def _source_files(d):
    # dkms.conf packages the module; it shapes no build of the pipeline's
    return sorted(p for p in Path(d).rglob("*") if p.is_file()
                  and not re.search(r"\.(o|ko|mod|mod\.c|cmd)$", p.name)
                  and p.name != "dkms.conf")


def execute(series, r, force=False):
    """Make the fixture of run `r` on kernel `series`; return its directory."""
    kernel = kernels.Kernel(series)
    step = f"{series}/{r.name}"
    extra = [Path(b) for b in r.binaries]
    for b in extra:
        if not b.exists():
            raise StepError(f"step '{step}': binary {b} is missing (build it first)")
    if r.project_modules:
        extra += _source_files(MODULE_SRC)
    digest = _hash_inputs(kernel, r, extra)
    final = CACHE / "fixtures" / series / r.name
    manifest = final / "manifest.json"
    if not force and manifest.exists():
        if json.loads(manifest.read_text()).get("inputs") == digest:
            log(f"{step}: cached")
            return final
    return boot(kernel, r, step, digest, final)


def boot(kernel, r, step, digest, final, work=None, stall=None):
    """Boot run `r` once in `work` (default: its own scratch directory) and
    move its results to `final`; `stall`: see Guest.wait_exit."""
    series = kernel.series
    t0 = time.monotonic()
    work = work or CACHE / "work" / series / r.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"{step}: building initramfs")

    conf = {"KSW_MODE": r.mode, "KSW_SCENARIO": r.name,
            "KSW_RAW_VMCORE": "1" if r.raw_vmcore else "0",
            "KSW_CAPTURE_APPEND": "console=ttyS0 irqpoll nr_cpus=1 reset_devices "
                                  "panic=-1 loglevel=4"}
    conf_text = "".join(f"{k}='{v}'\n" for k, v in conf.items())

    main = Initramfs(work / "root")
    main.add_file(GUEST / "init.sh", "/init", mode=0o755)
    main.add_file(SCENARIOS / f"{r.script}.sh", "/ksw/scenario.sh")
    for lib in sorted(SCENARIOS.glob("*-lib.sh")):
        main.add_file(lib, f"/ksw/{lib.name}")
    main.add_text("/ksw/run.conf", conf_text)
    main.add_kernel_modules(kernel.modules, GUEST_MODULES)
    main.add_text("/ksw/kmod/order", "\n".join(main.modules) + "\n")
    if r.mode == "kdump":
        cap = Initramfs(work / "capture-root")
        cap.add_file(GUEST / "capture-init.sh", "/init", mode=0o755)
        cap.add_text("/ksw/run.conf", conf_text)
        cap.add_binary("/usr/bin/makedumpfile", "/bin/makedumpfile")
        cap.add_kernel_modules(kernel.modules, CAPTURE_MODULES)
        cap.add_text("/ksw/kmod/order", "\n".join(cap.modules) + "\n")
        cap.pack(work / "capture.gz")
        main.add_binary(shutil.which("kexec") or "/sbin/kexec", "/bin/kexec")
        main.add_file(kernel.vmlinuz, "/ksw/capture/vmlinuz")
        main.add_file(work / "capture.gz", "/ksw/capture/initrd.gz")
    kos = build_project_modules(kernel, work / "kstackwatch-mod") if r.project_modules else []
    for ko in kos:
        main.add_file(ko, f"/ksw/modules/{ko.name}")
    for b in r.binaries:
        main.add_binary(b, f"/ksw/bin/{Path(b).name}")
    initrd = main.pack(work / "initrd.gz")

    disk = work / "disk.img"
    run(["truncate", "-s", "3G", disk], step)
    run(["mke2fs", "-q", "-t", "ext4", "-F", disk], step)

    append = f"console=ttyS0 loglevel=7 earlyprintk=serial {r.append}".rstrip()
    if r.mode == "kdump":
        append += " crashkernel=192M panic=-1"
    elif r.mode == "qemu":
        append += " panic=0"
    else:
        append += " panic=-1"
    qdump = {"vmcoreinfo": r.vmcoreinfo} if r.mode == "qemu" else None
    # a boot watched for hangs saves the vCPUs' state when it hangs
    guest = Guest(work, kernel.vmlinuz, initrd, append, disk, cpus=r.cpus,
                  mem=r.mem, paging=r.paging, qemu_dump=qdump,
                  qmp=stall is not None)
    log(f"{step}: booting ({r.mode}, {r.paging}-level paging, {r.cpus} vCPUs)")
    guest.start()
    dumps = {}
    try:
        if r.mode == "qemu":
            made, caps = qemu_dumps(guest, work, QEMU_FORMATS, step)
            for fmt, name in made:
                form, comp = QEMU_FILE_FORMAT[fmt]
                dumps[name] = {"format": form, "compression": comp,
                               "producer": "qemu dump-guest-memory",
                               "vmcoreinfo_device": r.vmcoreinfo}
        else:
            guest.wait_exit(r.timeout, step, stall)
    finally:
        guest.kill()
    console = guest.console_text()
    if "KSW-GUEST-FAILED" in console:
        raise StepError(f"step '{step}': the guest reported a failure: "
                        + console.split("KSW-GUEST-FAILED:")[1].splitlines()[0]
                        + f"; console log: {guest.console}")

    out = work / "out"
    log(f"{step}: extracting results from the disk")
    run(["debugfs", "-R", "rdump /out /dumps " + str(work), disk], step)
    if r.mode == "kdump":
        if "KSW-CAPTURE-DONE" not in console:
            raise StepError(f"step '{step}': the capture kernel did not finish; "
                            f"console log: {guest.console}")
        status = {}
        for line in (work / "dumps" / "status").read_text().splitlines():
            name, code = line.split()
            status[name] = int(code)
        for name, code in status.items():
            if code != 0:
                raise StepError(f"step '{step}': makedumpfile for {name} exited "
                                f"{code}; console log: {guest.console}")
            dumps[name] = dict(KDUMP_FILES[name], producer="makedumpfile -d 31"
                               if name != "vmcore.raw" else "cp /proc/vmcore")
            shutil.move(work / "dumps" / name, out / name)
    elif r.mode == "qemu":
        for name in dumps:
            shutil.move(work / name, out / name)
    elif "KSW-SCENARIO-DONE" not in console:
        raise StepError(f"step '{step}': the scenario did not finish; "
                        f"console log: {guest.console}")
    shutil.copy(guest.console, out / "console.log")
    if kos:
        # the very .ko files the guest loaded, with their DWARF
        (out / "modules").mkdir(exist_ok=True)
        for ko in kos:
            shutil.copy(ko, out / "modules" / ko.name)
    m = re.search(r"Kernel panic - not syncing: ([^\r\n]*)", console)
    for name in dumps:
        dumps[name]["size"] = (out / name).stat().st_size
    info = {
        "series": series, "release": kernel.release, "kernel": kernel.info,
        "vmlinux": str(kernel.vmlinux), "system_map": str(kernel.system_map),
        "run": asdict(r), "panic_message": m.group(1) if m else None,
        "dumps": dumps, "seconds": round(time.monotonic() - t0, 1),
        "inputs": digest,
    }
    (out / "manifest.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(out, final)
    shutil.rmtree(work, ignore_errors=True)
    sizes = ", ".join(f"{n} {d['size'] / 1e6:.1f} MB" for n, d in dumps.items())
    log(f"{step}: done in {info['seconds']}s{': ' + sizes if sizes else ''}")
    return final
