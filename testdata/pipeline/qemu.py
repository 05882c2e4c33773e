"""QEMU under TCG: boot a guest, watch its serial console, and talk QMP
to save QEMU's own dumps (dump-guest-memory) after a pvpanic pause, or the
vCPUs' registers and local APICs when a guest hangs."""

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

from common import StepError, log


class Guest:
    """One QEMU process with its console going to a file."""

    def __init__(self, workdir, kernel, initrd, append, disk, cpus=2, mem="512M",
                 paging=5, qemu_dump=None, qmp=False):
        self.workdir = Path(workdir)
        self.console = self.workdir / "console.log"
        self.qmp_path = self.workdir / "qmp.sock"
        cpu = "max" if paging == 5 else "max,-la57"
        self.cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", cpu,
            "-smp", str(cpus), "-m", mem, "-no-reboot",
            "-display", "none", "-monitor", "none",
            "-serial", f"file:{self.console}",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
            "-drive", f"file={disk},format=raw,if=virtio",
        ]
        self.cpus = cpus
        self.qmp = qmp or qemu_dump is not None
        if self.qmp:
            self.cmd += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if qemu_dump is not None:
            # pvpanic tells QEMU about the panic; QEMU pauses the guest so
            # that dump-guest-memory sees the crash as it happened.
            self.cmd += ["-device", "pvpanic-pci", "-action", "panic=pause"]
            if qemu_dump.get("vmcoreinfo"):
                self.cmd += ["-device", "vmcoreinfo"]
        self.proc = None

    def start(self):
        self.console.unlink(missing_ok=True)
        self.qmp_path.unlink(missing_ok=True)
        (self.workdir / "qemu.cmd").write_text(" ".join(self.cmd) + "\n")
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL,
            stdout=open(self.workdir / "qemu.out", "w"), stderr=subprocess.STDOUT)

    def console_text(self):
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_exit(self, timeout, step, stall=None):
        """Wait for the guest to power off; with `stall`, give up as soon as
        its console has been silent that many seconds (a hung guest)."""
        deadline = time.monotonic() + timeout
        size, since = -1, time.monotonic()
        while self.proc.poll() is None:
            now = time.monotonic()
            if now > deadline:
                self.kill()
                raise StepError(f"step '{step}': guest did not finish within "
                                f"{timeout}s; console log: {self.console}")
            if stall:
                grown = self.console.stat().st_size if self.console.exists() else 0
                if grown != size:
                    size, since = grown, now
                elif now - since > stall:
                    if self.qmp:
                        self.save_hang_state(self.workdir / "hang-state.txt")
                    self.kill()
                    raise StepError(f"step '{step}': guest console silent for "
                                    f"{stall}s (hung); console log: {self.console}")
            time.sleep(1)

    def wait_for(self, marker, timeout, step):
        """Wait until `marker` shows up on the console."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.console_text():
                return
            if self.proc.poll() is not None:
                raise StepError(f"step '{step}': QEMU exited before '{marker}'; "
                                f"console log: {self.console}")
            time.sleep(0.2)
        self.kill()
        raise StepError(f"step '{step}': no '{marker}' within {timeout}s; "
                        f"console log: {self.console}")

    def save_hang_state(self, path):
        """Pause the guest and write to `path` every vCPU's registers (DR0-DR7
        too) and local APIC (ISR, IRR), and the memory around each kernel
        RSP and debug register address; best effort, never raises."""
        out = []
        try:
            qmp = Qmp(self.qmp_path, timeout=5)
            qmp.sock.settimeout(60)
            qmp.command("stop")

            def hmp(line):
                text = qmp.command("human-monitor-command", **{"command-line": line})
                out.append(f"### {line}\n{text}")
                return text

            regs = hmp("info registers -a")
            for n in range(self.cpus):
                hmp(f"info lapic {n}")  # the argument is an APIC ID
            # kernel addresses read the same through any vCPU's page tables
            addrs = re.findall(r"\b(?:RSP|DR[0-3])=(ff[0-9a-f]{14})", regs)
            for addr in dict.fromkeys(addrs):
                hmp(f"x /12gx 0x{int(addr, 16) - 48:x}")
        except (OSError, ValueError, StepError) as e:
            out.append(f"### failed: {e}\n")
        path.write_text("\n".join(out))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Qmp:
    """A minimal QMP client: commands and events over a unix socket."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise StepError(f"QMP socket {path} never came up")
                time.sleep(0.1)
        self.buf = b""
        self.events = []
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise StepError("QMP connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def command(self, name, **args):
        self.sock.sendall(json.dumps({"execute": name, "arguments": args}).encode()
                          + b"\n")
        while True:
            msg = self._read()
            if "event" in msg:
                self.events.append(msg)
            elif "error" in msg:
                raise StepError(f"QMP {name}: {msg['error'].get('desc')}")
            elif "return" in msg:
                return msg["return"]

    def wait_event(self, name, timeout):
        self.sock.settimeout(timeout)
        try:
            while not any(e["event"] == name for e in self.events):
                msg = self._read()
                if "event" in msg:
                    self.events.append(msg)
        except socket.timeout:
            raise StepError(f"QMP: no {name} event within {timeout}s")
        finally:
            self.sock.settimeout(None)


def qemu_dumps(guest, outdir, formats, step, timeout=240):
    """After the guest panics and pauses, save `formats` with
    dump-guest-memory (non-paging; the reader walks page tables itself)."""
    qmp = Qmp(guest.qmp_path)
    qmp.wait_event("GUEST_PANICKED", timeout)
    status = qmp.command("query-status")
    if status.get("running"):
        qmp.command("stop")
    caps = {f for f in qmp.command("query-dump-guest-memory-capability")["formats"]}
    made = []
    for fmt, name in formats:
        if fmt not in caps:
            log(f"{step}: this QEMU cannot write {fmt}; skipped")
            continue
        target = Path(outdir) / name
        qmp.command("dump-guest-memory", paging=False, protocol=f"file:{target}",
                    format=fmt, detach=False)
        made.append((fmt, name))
    guest.kill()
    return made, sorted(caps)
