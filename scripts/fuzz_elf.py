#!/usr/bin/env python3
"""Fuzz rundeps' ELF reader for a while and report executions, crashes and hangs.

The invariant: :func:`rundeps.elf.read_elf` (and ``parse_fd``, the path the
tree walk uses) returns an ``ElfInfo`` or None, or raises ``ElfError`` --
never another exception -- and returns quickly whatever the bytes are.

Seeds: gcc-built ELF files (``scripts/make_demo_root.py``'s ``Builder``: an
executable with ``PT_INTERP``, shared libraries with SONAME, NEEDED, RUNPATH
and RPATH) and hand-made ones from :func:`craft_elf` covering 32/64-bit,
little/big-endian and several machines.

Engines:

* ``atheris`` (coverage-guided libFuzzer, ``pip install atheris``), used when
  it imports;
* ``random``: a structure-aware mutation loop (field overwrites at the
  offsets that matter, truncation, byte flips, splices), always available.

Usage::

    python scripts/fuzz_elf.py --seconds 600                # atheris if present
    python scripts/fuzz_elf.py --seconds 60 --engine random
    python scripts/fuzz_elf.py --seconds 600 --out /tmp/fuzz  # crash inputs and stats here

Every input that raises something other than ``ElfError`` is saved under
``--out/crashes`` and counted (the run goes on); every call slower than
``--slow`` seconds (default 1) is saved under ``--out/slow`` and counted as a
hang.  ``--out/stats.json`` is rewritten every few seconds and at the end;
the last line printed is a one-line summary.  Exit status: 0 when no crash
or hang was found, 1 otherwise.

:func:`craft_elf` is also used by ``tests/test_hostile_elf.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29

EM = {"x86": 3, "armv7": 40, "ppc64": 21, "s390x": 22, "x86_64": 62, "aarch64": 183, "riscv64": 243}


class Layout(dict):
    """Offsets of the interesting fields of a crafted file (for mutators and tests)."""


def craft_elf(
    elfclass: int = 64,
    little: bool = True,
    machine: int = 62,
    etype: int = 3,
    needed: Sequence[str] = ("libc.musl-x86_64.so.1",),
    soname: Optional[str] = None,
    runpath: Optional[str] = None,
    rpath: Optional[str] = None,
    interp: Optional[str] = None,
    vaddr: int = 0x10000,
    layout: Optional[Layout] = None,
) -> bytes:
    """A minimal, well-formed ELF file: ELF header, program headers (PT_LOAD
    over the whole file, PT_INTERP when ``interp``, PT_DYNAMIC), the interp
    string, the dynamic string table and the dynamic section.  ``layout``
    (a dict) is filled with the offsets of the parts."""
    e = "<" if little else ">"
    is64 = elfclass == 64
    ehsize = 64 if is64 else 52
    phentsize = 56 if is64 else 32
    dynsize = 16 if is64 else 8
    phnum = 3 if interp is not None else 2
    phoff = ehsize
    pos = phoff + phnum * phentsize
    interp_off = pos
    interp_raw = (interp.encode() + b"\0") if interp is not None else b""
    pos += len(interp_raw)
    strtab = bytearray(b"\0")

    def add(s: str) -> int:
        o = len(strtab)
        strtab.extend(s.encode("utf-8", "surrogateescape") + b"\0")
        return o

    entries = [(DT_NEEDED, add(n)) for n in needed]
    if soname is not None:
        entries.append((DT_SONAME, add(soname)))
    if rpath is not None:
        entries.append((DT_RPATH, add(rpath)))
    if runpath is not None:
        entries.append((DT_RUNPATH, add(runpath)))
    str_off = pos
    pos += len(strtab)
    pos += (-pos) % 8
    dyn_off = pos
    entries += [(DT_STRTAB, vaddr + str_off), (DT_STRSZ, len(strtab)), (DT_NULL, 0)]
    dyn_len = len(entries) * dynsize
    total = dyn_off + dyn_len

    out = bytearray(total)
    out[0:4] = b"\x7fELF"
    out[4] = 2 if is64 else 1
    out[5] = 1 if little else 2
    out[6] = 1
    if is64:
        struct.pack_into(e + "HHIQQQIHHHHHH", out, 16, etype, machine, 1, 0, phoff, 0, 0, ehsize,
                         phentsize, phnum, 64, 0, 0)
        ph = struct.Struct(e + "IIQQQQQQ")

        def phdr(i, p_type, off, size, flags=4):
            ph.pack_into(out, phoff + i * phentsize, p_type, flags, off, vaddr + off, vaddr + off, size, size, 8)
    else:
        struct.pack_into(e + "HHIIIIIHHHHHH", out, 16, etype, machine, 1, 0, phoff, 0, 0, ehsize,
                         phentsize, phnum, 40, 0, 0)
        ph = struct.Struct(e + "IIIIIIII")

        def phdr(i, p_type, off, size, flags=4):
            ph.pack_into(out, phoff + i * phentsize, p_type, off, vaddr + off, vaddr + off, size, size, flags, 4)

    i = 0
    phdr(i, PT_LOAD, 0, total, 5)
    i += 1
    if interp is not None:
        phdr(i, PT_INTERP, interp_off, len(interp_raw))
        out[interp_off:interp_off + len(interp_raw)] = interp_raw
        i += 1
    phdr(i, PT_DYNAMIC, dyn_off, dyn_len, 6)
    out[str_off:str_off + len(strtab)] = strtab
    dyn = struct.Struct(e + ("qQ" if is64 else "iI"))
    for j, (tag, val) in enumerate(entries):
        dyn.pack_into(out, dyn_off + j * dynsize, tag, val)
    if layout is not None:
        layout.update(
            elfclass=elfclass, little=little, e=e, ehsize=ehsize, phoff=phoff, phentsize=phentsize,
            phnum=phnum, dyn_off=dyn_off, dynsize=dynsize, dyn_entries=len(entries), str_off=str_off,
            str_len=len(strtab), interp_off=interp_off, vaddr=vaddr, total=total,
            dynamic_ph=phnum - 1, load_ph=0,
        )
    return bytes(out)


def crafted_seeds() -> List[bytes]:
    """Hand-made files for every class, byte order and a few machines."""
    seeds = []
    for elfclass, little, machine in ((64, True, 62), (64, True, 183), (64, False, 22), (64, False, 21),
                                      (32, True, 3), (32, True, 40), (32, False, 8), (64, True, 0x1234)):
        seeds.append(craft_elf(elfclass, little, machine, needed=("libz.so.1", "libc.musl-x86_64.so.1"),
                               soname="libx.so.1", runpath="$ORIGIN:/usr/lib", interp="/lib/ld-musl.so.1"))
        seeds.append(craft_elf(elfclass, little, machine, needed=(), rpath="/opt/lib"))
    return seeds


def gcc_seeds(work: Path) -> List[bytes]:
    """gcc-built files (empty list without gcc)."""
    if shutil.which("gcc") is None:
        return []
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_demo_root", HERE / "make_demo_root.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    b = demo.Builder(work / "build")
    libc = demo.musl_soname(demo.host_arch())
    paths = [
        b.executable(work / "exe", needed=["libpython3.12.so.1.0", libc]),
        b.shared(work / "lib1.so", soname="libone.so.1", needed=["libz.so.1", libc], runpath="$ORIGIN/../x.libs"),
        b.shared(work / "lib2.so", needed=["libjpeg.so.8"], rpath="/usr/local/lib"),
        b.shared(work / "lib3.so"),
    ]
    return [p.read_bytes() for p in paths]


# -- the target ----------------------------------------------------------------------


def check_one(data: bytes) -> None:
    """Run both entry points on ``data``; raise on a broken invariant."""
    from rundeps.elf import ElfError, ElfInfo, parse_fd, read_elf, HEAD_SIZE

    try:
        got = read_elf(io.BytesIO(data))
    except ElfError:
        got = None
    if got is not None and not isinstance(got, ElfInfo):
        raise AssertionError(f"read_elf returned {type(got).__name__}")
    # The walk's path: os.pread on a descriptor (a memfd: no disk I/O).
    if data[:4] == b"\x7fELF":
        fd = _memfd()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        try:
            got = parse_fd(fd, data[:HEAD_SIZE])
        except ElfError:
            got = None
        if got is not None and not isinstance(got, ElfInfo):
            raise AssertionError(f"parse_fd returned {type(got).__name__}")


_FD: List[int] = []


def _memfd() -> int:
    if not _FD:
        if hasattr(os, "memfd_create"):
            _FD.append(os.memfd_create("fuzz_elf"))
        else:  # pragma: no cover - not Linux
            fd, path = tempfile.mkstemp()
            os.unlink(path)
            _FD.append(fd)
    return _FD[0]


# -- mutators (random engine) --------------------------------------------------------------


INTERESTING = [0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF]


def _fields(data: bytes):
    """(offset, size) of the fields a parser trusts, read from the header."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return []
    is64 = data[4] == 2
    e = "<" if data[5] != 2 else ">"
    out = [(4, 1), (5, 1), (16, 2), (18, 2)]
    try:
        if is64:
            hdr = struct.unpack_from(e + "HHIQQQIHHHHHH", data, 16)
            out += [(32, 8), (40, 8), (54, 2), (56, 2), (58, 2), (60, 2)]
            phoff, phentsize, phnum = hdr[4], hdr[8], hdr[9]
            for i in range(min(phnum, 32)):
                base = phoff + i * phentsize
                if base + 56 > len(data):
                    break
                out += [(base, 4), (base + 8, 8), (base + 16, 8), (base + 32, 8)]
                if struct.unpack_from(e + "I", data, base)[0] == PT_DYNAMIC:
                    doff, dsz = struct.unpack_from(e + "Q", data, base + 8)[0], struct.unpack_from(e + "Q", data, base + 32)[0]
                    for j in range(min(dsz // 16, 64)):
                        if doff + j * 16 + 16 > len(data):
                            break
                        out += [(doff + j * 16, 8), (doff + j * 16 + 8, 8)]
        else:
            hdr = struct.unpack_from(e + "HHIIIIIHHHHHH", data, 16)
            out += [(28, 4), (32, 4), (42, 2), (44, 2), (46, 2), (48, 2)]
            phoff, phentsize, phnum = hdr[4], hdr[8], hdr[9]
            for i in range(min(phnum, 32)):
                base = phoff + i * phentsize
                if base + 32 > len(data):
                    break
                out += [(base, 4), (base + 4, 4), (base + 8, 4), (base + 16, 4)]
                if struct.unpack_from(e + "I", data, base)[0] == PT_DYNAMIC:
                    doff, dsz = struct.unpack_from(e + "I", data, base + 4)[0], struct.unpack_from(e + "I", data, base + 16)[0]
                    for j in range(min(dsz // 8, 64)):
                        if doff + j * 8 + 8 > len(data):
                            break
                        out += [(doff + j * 8, 4), (doff + j * 8 + 4, 4)]
    except struct.error:
        pass
    return out


def mutate(data: bytes, rng: random.Random, seeds: Sequence[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        fields = _fields(bytes(b))
        if r < 0.45 and fields:
            off, size = rng.choice(fields)
            e = "<" if len(b) > 5 and b[5] != 2 else ">"
            fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
            v = rng.choice(INTERESTING) if rng.random() < 0.6 else rng.getrandbits(size * 8)
            if rng.random() < 0.3 and off + size <= len(b):
                cur = struct.unpack_from(e + fmt, b, off)[0]
                v = cur + rng.choice((-1, 1, -8, 8, 16, 4096, len(b)))
            v &= (1 << (size * 8)) - 1
            if off + size <= len(b):
                struct.pack_into(e + fmt, b, off, v)
        elif r < 0.6 and len(b) > 1:
            del b[rng.randrange(1, len(b)):]  # truncate
        elif r < 0.75 and b:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif r < 0.82 and b:
            i = rng.randrange(len(b))
            n = rng.randint(1, 64)
            b[i:i + n] = b"\0" * n if rng.random() < 0.5 else b"\xff" * n
        elif r < 0.9:
            other = rng.choice(seeds)
            i = rng.randrange(len(b) + 1)
            j = rng.randrange(len(other) + 1)
            b = b[:i] + other[j:j + rng.randint(1, 512)]
        elif r < 0.95 and b:
            # remove every NUL from a region (strings without terminator)
            i = rng.randrange(len(b))
            n = rng.randint(1, 256)
            b[i:i + n] = bytes(x or 0x41 for x in b[i:i + n])
        else:
            b[4:6] = bytes([rng.choice((1, 2, 0, 3)), rng.choice((1, 2, 0, 3))])
    if len(b) >= 4 and rng.random() < 0.95:
        b[0:4] = b"\x7fELF"
    return bytes(b)


# -- the run ------------------------------------------------------------------------


class Stats:
    def __init__(self, out: Path, engine: str, seconds: float, slow: float):
        self.out = out
        self.engine = engine
        self.seconds = seconds
        self.slow = slow
        self.execs = 0
        self.crashes = 0
        self.hangs = 0
        self.max_time = 0.0
        self.kinds: Dict[str, int] = {}
        self.started = time.monotonic()
        self.last_write = 0.0
        (out / "crashes").mkdir(parents=True, exist_ok=True)
        (out / "slow").mkdir(parents=True, exist_ok=True)

    def record(self, data: bytes) -> None:
        t0 = time.perf_counter()
        try:
            check_one(data)
        except Exception as exc:  # a broken invariant: keep the input, go on
            self.crashes += 1
            kind = f"{type(exc).__name__}: {str(exc)[:80]}"
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if self.kinds[kind] <= 3:
                name = self.out / "crashes" / f"crash-{self.crashes}"
                name.write_bytes(data)
                name.with_suffix(".txt").write_text(traceback.format_exc())
        dt = time.perf_counter() - t0
        self.execs += 1
        if dt > self.max_time:
            self.max_time = dt
        if dt > self.slow:
            self.hangs += 1
            (self.out / "slow" / f"slow-{self.hangs}").write_bytes(data)
        now = time.monotonic()
        if now - self.last_write > 5:
            self.write()

    def summary(self) -> dict:
        elapsed = time.monotonic() - self.started
        return {
            "engine": self.engine, "seconds": round(elapsed, 1), "executions": self.execs,
            "exec_per_s": round(self.execs / elapsed) if elapsed else 0, "crashes": self.crashes,
            "hangs": self.hangs, "slowest_call_ms": round(self.max_time * 1000, 3), "crash_kinds": self.kinds,
        }

    def write(self) -> None:
        self.last_write = time.monotonic()
        (self.out / "stats.json").write_text(json.dumps(self.summary(), indent=2) + "\n")

    def line(self) -> str:
        s = self.summary()
        return (f"fuzz_elf: engine={s['engine']} seconds={s['seconds']} executions={s['executions']} "
                f"crashes={s['crashes']} hangs={s['hangs']} slowest={s['slowest_call_ms']} ms")


def run_random(seeds: List[bytes], seconds: float, stats: Stats, seed: int) -> None:
    rng = random.Random(seed)
    corpus = list(seeds)
    deadline = time.monotonic() + seconds
    for s in seeds:
        stats.record(s)
    while time.monotonic() < deadline:
        for _ in range(200):
            data = mutate(rng.choice(corpus), rng, seeds)
            stats.record(data)
            if rng.random() < 0.01 and len(corpus) < 5000:
                corpus.append(data)


def run_atheris(seeds: List[bytes], seconds: float, stats: Stats, corpus_dir: Path) -> None:
    import atheris

    with atheris.instrument_imports():
        import rundeps.elf.reader  # noqa: F401  (with dynamic, header, types: the fast reader)

    corpus_dir.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds):
        (corpus_dir / f"seed-{i}").write_bytes(s)
    deadline = time.monotonic() + seconds

    def target(data: bytes) -> None:
        stats.record(data)
        if time.monotonic() >= deadline:
            stats.write()
            print(stats.line(), flush=True)
            os._exit(0 if not (stats.crashes or stats.hangs) else 1)

    # -timeout: libFuzzer aborts (a real hang) if one call takes that long.
    args = [sys.argv[0], str(corpus_dir), "-timeout=20", "-rss_limit_mb=2048", "-max_len=65536",
            "-print_final_stats=1", f"-max_total_time={int(seconds) + 30}"]
    atheris.Setup(args, target)
    atheris.Fuzz()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    ap.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    ap.add_argument("--out", type=Path, default=None, help="where crashes, slow inputs and stats go")
    ap.add_argument("--slow", type=float, default=1.0, help="a call slower than this many seconds is a hang")
    ap.add_argument("--seed", type=int, default=0, help="random engine seed")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(PROJECT))
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "random"
    out = args.out or Path(tempfile.mkdtemp(prefix="fuzz_elf-"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        seeds = gcc_seeds(Path(tmp)) + crafted_seeds()
    print(f"fuzz_elf: {len(seeds)} seeds, engine {engine}, {args.seconds:.0f} s, output in {out}", flush=True)
    stats = Stats(out, engine, args.seconds, args.slow)
    if engine == "atheris":
        run_atheris(seeds, args.seconds, stats, out / "corpus")
    else:
        run_random(seeds, args.seconds, stats, args.seed)
    stats.write()
    print(stats.line(), flush=True)
    return 0 if not (stats.crashes or stats.hangs) else 1


if __name__ == "__main__":
    sys.exit(main())
