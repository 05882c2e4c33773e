"""Debian kernel packages: pick a version, download it, unpack what we use.

A kernel is named by its series ("6.1", "6.12"). Each series has a pinned
ABI; when the archive no longer serves every package of the pin, the newest
ABI of the same series that has them all is used instead, and the choice is
recorded in the kernel's `kernel.json`.
"""

import json
import re
import shutil
from pathlib import Path

from common import CACHE, StepError, log, run

# The pinned ABI of each series, as in the package names.
PINS = {"6.1": "6.1.0-54", "6.12": "6.12.117+deb12"}
FLAVOUR = "cloud-amd64"


def _apt_dirs():
    """A private apt state that adds <codename>-backports to the system's
    sources without touching /etc/apt: the 6.12 series is served there."""
    root = CACHE / "apt"
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    codename = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            codename = line.split("=", 1)[1].strip('"')
    lines = []
    system = Path("/etc/apt/sources.list")
    if system.exists():
        lines.append(system.read_text())
    # Reuse the URI that serves the release itself for its backports suite.
    uris = set()
    for src in [system, *Path("/etc/apt/sources.list.d").glob("*")]:
        if not src.is_file():
            continue
        text = src.read_text(errors="replace")
        for m in re.finditer(r"^URIs:\s*(\S+)\s*\nSuites:\s*([^\n]*)", text, re.M):
            if codename in m.group(2).split():
                uris.add(m.group(1))
        for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s", text, re.M):
            if m.group(2) == codename:
                uris.add(m.group(1))
    for uri in sorted(uris):
        lines.append(f"deb {uri} {codename}-backports main\n")
    (root / "sources.list").write_text("".join(lines))
    return [
        "-o", f"Dir::Etc::sourcelist={root / 'sources.list'}",
        "-o", "Dir::Etc::sourceparts=/etc/apt/sources.list.d",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache::archives={root / 'archives'}",
        "-o", "APT::Get::List-Cleanup=0",
    ]


def _packages(abi, series):
    rel = f"{abi}-{FLAVOUR}"
    common = f"linux-headers-{abi}-common"
    return {
        "image": f"linux-image-{rel}",
        "headers": f"linux-headers-{rel}",
        "common": common,
        "kbuild": [f"linux-kbuild-{abi}", f"linux-kbuild-{series}"],
        "dbg": f"linux-image-{rel}-dbg",
    }


def _choose(series, names, opts):
    """The pinned ABI if the archive has all its packages, else the newest."""
    def complete(abi):
        p = _packages(abi, series)
        want = [p["image"], p["headers"], p["common"], p["dbg"]]
        return all(n in names for n in want) and any(k in names for k in p["kbuild"])

    pin = PINS[series]
    if complete(pin):
        return pin
    pat = re.compile(rf"^linux-image-({re.escape(series)}[.\d+-]*(?:\+deb\d+)?)-{FLAVOUR}$")
    abis = [m.group(1) for n in names if (m := pat.match(n))]
    abis = [a for a in abis if complete(a)]
    if not abis:
        raise StepError(f"step 'kernel {series}': no complete package set for "
                        f"series {series} in the archive (pin {pin})")
    key = lambda a: [int(x) for x in re.findall(r"\d+", a)]
    best = max(abis, key=key)
    log(f"kernel {series}: pin {pin} is not served; falling back to {best}")
    return best


def fetch(series):
    """Download and unpack a kernel series; return its directory.

    The directory holds `root/` (image, headers, kbuild and the debug
    vmlinux unpacked in place) and `kernel.json`, written last.
    """
    if series not in PINS:
        raise StepError(f"unknown kernel series {series!r}; known: {', '.join(PINS)}")
    base = CACHE / "kernels" / series
    manifest = base / "kernel.json"
    if manifest.exists():
        return base
    step = f"kernel {series}"
    opts = _apt_dirs()
    log(f"{step}: refreshing package lists")
    run(["apt-get", *opts, "update", "-qq"], step)
    names = set(run(["apt-cache", *opts, "pkgnames", "linux-"], step).split())
    abi = _choose(series, names, opts)
    pkgs = _packages(abi, series)
    kbuild = next(k for k in pkgs["kbuild"] if k in names)
    debs = base / "debs"
    shutil.rmtree(base, ignore_errors=True)
    debs.mkdir(parents=True)
    wanted = [pkgs["image"], pkgs["headers"], pkgs["common"], kbuild, pkgs["dbg"]]
    log(f"{step}: downloading {' '.join(wanted)}")
    run(["apt-get", *opts, "download", *wanted], step, cwd=debs)
    root = base / "root"
    root.mkdir()
    for deb in sorted(debs.glob("*.deb")):
        members = ["./usr/lib/debug/boot/"] if "-dbg_" in deb.name else []
        log(f"{step}: unpacking {deb.name}")
        run(["bash", "-o", "pipefail", "-c",
             'd=$1 r=$2; shift 2; dpkg-deb --fsys-tarfile "$d" | tar -x -C "$r" "$@"',
             "unpack", deb, root, *members], step)
        deb.unlink()  # the unpacked tree is the cache; the .deb is not kept
    release = f"{abi}-{FLAVOUR}"
    _relocate_headers(root, release, step)
    versions = {}
    for line in run(["apt-cache", *opts, "show", "--no-all-versions", pkgs["image"]],
                    step).splitlines():
        if line.startswith("Version:"):
            versions["image"] = line.split()[1]
    info = {"series": series, "abi": abi, "release": release,
            "pinned": PINS[series], "packages": wanted, **versions}
    manifest.write_text(json.dumps(info, indent=2) + "\n")
    log(f"{step}: ready, release {release}")
    return base


def _relocate_headers(root, release, step):
    """Debian's flavour headers include the common tree by absolute path;
    point that at the unpacked copy so modules build without installing."""
    makefile = root / "usr" / "src" / f"linux-headers-{release}" / "Makefile"
    text = makefile.read_text()
    fixed = text.replace("/usr/src/", f"{root}/usr/src/")
    if fixed == text and "/usr/src/" not in text:
        raise StepError(f"step '{step}': unexpected headers Makefile: {text[:200]}")
    makefile.write_text(fixed)


class Kernel:
    """Paths into an unpacked kernel series."""

    def __init__(self, series):
        self.dir = fetch(series)
        self.info = json.loads((self.dir / "kernel.json").read_text())
        self.series = series
        self.release = self.info["release"]
        root = self.dir / "root"
        self.root = root
        self.vmlinuz = root / "boot" / f"vmlinuz-{self.release}"
        self.config = root / "boot" / f"config-{self.release}"
        self.system_map = root / "boot" / f"System.map-{self.release}"
        self.modules = root / "lib" / "modules" / self.release
        self.build = root / "usr" / "src" / f"linux-headers-{self.release}"
        self.vmlinux = root / "usr" / "lib" / "debug" / "boot" / f"vmlinux-{self.release}"

    def config_enabled(self, option):
        text = self.config.read_text()
        return re.search(rf"^{option}=[ym]$", text, re.M) is not None
