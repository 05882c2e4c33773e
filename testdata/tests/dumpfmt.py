"""Independent structure checks of the dump files the pipeline makes.

These are deliberately small re-readings of the formats (ELF core,
makedumpfile's kdump-compressed and flattened layouts), written apart from
the Rust readers so that the fixtures are checked by something that does
not share their bugs. Layouts follow makedumpfile's diskdump_mod.h and the
ELF specification.
"""

import struct
import zlib
from dataclasses import dataclass, field

PAGE = 4096


class FormatError(Exception):
    """The file is not what its name says, or it is cut short."""


# ---------------------------------------------------------------- ELF core

@dataclass
class ElfCore:
    e_type: int
    machine: int
    loads: list = field(default_factory=list)   # (offset, vaddr, paddr, filesz, memsz)
    notes: list = field(default_factory=list)   # (name, type, desc)
    size: int = 0

    def note(self, name, ntype=None):
        return [d for n, t, d in self.notes if n == name and (ntype is None or t == ntype)]


def parse_elf(data, head_only=False):
    """Parse an ELF core. With `head_only`, `data` is just the start of the
    file (as kept of /proc/kcore): segments past it are not checked."""
    if data[:4] != b"\x7fELF":
        raise FormatError("no ELF magic")
    if data[4] != 2 or data[5] != 1:
        raise FormatError("not a little-endian ELF64 file")
    (e_type, machine, _ver, _entry, phoff, _shoff, _flags, _ehsize, phentsize,
     phnum) = struct.unpack_from("<HHIQQQIHHH", data, 16)
    core = ElfCore(e_type, machine, size=len(data))
    if phoff + phnum * phentsize > len(data):
        raise FormatError("program headers run past the end of the file")
    for i in range(phnum):
        (p_type, _fl, off, vaddr, paddr, filesz, memsz, _al) = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if off + filesz > len(data) and not (head_only and p_type == 1):
            raise FormatError(f"segment {i} ends at {off + filesz:#x}, past the "
                              f"end of the file ({len(data):#x}): truncated")
        if p_type == 1:
            core.loads.append((off, vaddr, paddr, filesz, memsz))
        elif p_type == 4:
            core.notes += list(_notes(data[off:off + filesz]))
    return core


def _notes(buf):
    pos = 0
    while pos + 12 <= len(buf):
        namesz, descsz, ntype = struct.unpack_from("<III", buf, pos)
        pos += 12
        name = buf[pos:pos + namesz].rstrip(b"\0").decode(errors="replace")
        pos += (namesz + 3) & ~3
        desc = buf[pos:pos + descsz]
        if len(desc) != descsz:
            raise FormatError("note runs past its segment")
        pos += (descsz + 3) & ~3
        yield name, ntype, bytes(desc)


def vmcoreinfo_dict(text):
    out = {}
    for line in text.decode(errors="replace").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


# ---------------------------------------------------- kdump-compressed

DUMP_FLAGS = {"zlib": 0x1, "lzo": 0x2, "snappy": 0x4, "zstd": 0x20}


@dataclass
class KdumpCompressed:
    header_version: int
    release: str
    status: int
    block_size: int
    nr_cpus: int
    phys_base: int
    dump_level: int
    max_mapnr: int
    vmcoreinfo: bytes
    pages: int
    compressed: dict
    data_end: int


def parse_kdump(data, decompress_zlib=True):
    if data[:8] != b"KDUMP   ":
        raise FormatError("no KDUMP signature")
    header_version, = struct.unpack_from("<i", data, 8)
    release = data[12 + 2 * 65:12 + 3 * 65].split(b"\0")[0].decode()
    (status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr32, _ram, _dev,
     _written, _cur, nr_cpus) = struct.unpack_from("<IiiIIIIIIi", data, 424)
    if block_size != PAGE:
        raise FormatError(f"block size {block_size}, expected {PAGE}")
    sub = block_size
    (phys_base, dump_level, _split, _s, _e, off_vmci, size_vmci) = struct.unpack_from(
        "<QiiQQqQ", data, sub)
    max_mapnr = max_mapnr32
    if header_version >= 6:
        max_mapnr, = struct.unpack_from("<Q", data, sub + 96)
    if off_vmci + size_vmci > len(data):
        raise FormatError("VMCOREINFO runs past the end of the file: truncated")
    vmci = data[off_vmci:off_vmci + size_vmci]
    bitmap_off = (1 + sub_hdr_size) * block_size
    half = bitmap_blocks * block_size // 2
    if bitmap_off + 2 * half > len(data):
        raise FormatError("bitmaps run past the end of the file: truncated")
    bitmap2 = data[bitmap_off + half:bitmap_off + 2 * half]
    pages = sum(bin(b).count("1") for b in bitmap2)
    desc_off = bitmap_off + 2 * half
    if desc_off + pages * 24 > len(data):
        raise FormatError("page descriptors run past the end of the file: truncated")
    counts = {}
    end = desc_off + pages * 24
    for i in range(pages):
        off, size, flags, _pf = struct.unpack_from("<qIIQ", data, desc_off + 24 * i)
        if off + size > len(data) or off <= 0:
            raise FormatError(f"page descriptor {i} points at {off:#x}+{size}, "
                              f"outside the file ({len(data):#x}): truncated or corrupt")
        kind = next((k for k, f in DUMP_FLAGS.items() if flags & f), "raw")
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "raw" and size != PAGE:
            raise FormatError(f"uncompressed page {i} has size {size}")
        if kind == "zlib" and decompress_zlib:
            if len(zlib.decompress(data[off:off + size])) != PAGE:
                raise FormatError(f"zlib page {i} does not inflate to a page")
        end = max(end, off + size)
    return KdumpCompressed(header_version, release, status, block_size, nr_cpus,
                           phys_base, dump_level, max_mapnr, vmci, pages, counts, end)


# ---------------------------------------------------------- flattened

FLAT_SIGNATURE = b"makedumpfile\0\0\0\0"


def unflatten(data):
    """Rebuild the kdump-compressed file a flattened stream describes."""
    if data[:16] != FLAT_SIGNATURE:
        raise FormatError("no flattened-format signature")
    ftype, version = struct.unpack_from(">qq", data, 16)
    if (ftype, version) != (1, 1):
        raise FormatError(f"flattened header type {ftype} version {version}")
    pos, records, out = PAGE, 0, bytearray()
    while True:
        if pos + 16 > len(data):
            raise FormatError("flattened stream ends without its end record: truncated")
        off, size = struct.unpack_from(">qq", data, pos)
        pos += 16
        if off == -1:
            break
        if size < 0 or pos + size > len(data):
            raise FormatError(f"record {records} runs past the end: truncated")
        if len(out) < off + size:
            out.extend(bytes(off + size - len(out)))
        out[off:off + size] = data[pos:pos + size]
        pos += size
        records += 1
    if pos != len(data):
        raise FormatError(f"{len(data) - pos} bytes after the end record")
    return bytes(out), records


class KdumpPages:
    """Page-frame reads from a (zlib or uncompressed) kdump-compressed file:
    enough to hand physical memory to an oracle that cannot open the file
    itself. Excluded pages read as zeros here; that is the oracle's view of
    a filtered dump, not ksw's."""

    def __init__(self, data):
        self.data = data
        hdr = parse_kdump(data, decompress_zlib=False)
        self.header = hdr
        _, _, sub_hdr_size, bitmap_blocks = struct.unpack_from("<IiiI", data, 424)
        bitmap_off = (1 + sub_hdr_size) * PAGE
        half = bitmap_blocks * PAGE // 2
        self.bitmap2 = data[bitmap_off + half:bitmap_off + 2 * half]
        self.desc_off = bitmap_off + 2 * half
        self.rank = [0]
        for i in range(0, len(self.bitmap2), 512):
            self.rank.append(self.rank[-1] + sum(
                bin(b).count("1") for b in self.bitmap2[i:i + 512]))
        self.max_pfn = hdr.max_mapnr

    def page(self, pfn):
        byte, bit = divmod(pfn, 8)
        if byte >= len(self.bitmap2) or not (self.bitmap2[byte] >> bit) & 1:
            return bytes(PAGE)
        chunk = byte // 512
        idx = self.rank[chunk] + sum(bin(b).count("1")
                                     for b in self.bitmap2[chunk * 512:byte])
        idx += bin(self.bitmap2[byte] & ((1 << bit) - 1)).count("1")
        off, size, flags, _ = struct.unpack_from("<qIIQ", self.data,
                                                 self.desc_off + 24 * idx)
        raw = self.data[off:off + size]
        if flags & DUMP_FLAGS["zlib"]:
            return zlib.decompress(raw)
        if flags:
            raise FormatError(f"page {pfn}: compression flags {flags:#x} not supported here")
        return bytes(raw)

    def read(self, paddr, count):
        out = bytearray()
        while count:
            pfn, off = divmod(paddr, PAGE)
            n = min(count, PAGE - off)
            out += self.page(pfn)[off:off + n]
            paddr += n
            count -= n
        return bytes(out)
