#!/usr/bin/env python3
"""Benchmark reading, verifying and caching a real Alpine index.

    python scripts/bench_index.py [--runs N] [--index PATH] [--keys DIR]

Defaults to ``../shared/alpine/index/3.20-main-x86_64/APKINDEX.tar.gz`` and
``../shared/alpine/keys`` (relative to the project).  Prints medians of:

* cold ``read_index`` (verify + parse) and its parts;
* cold ``open_index`` of a URL (local HTTP server) into an empty cache;
* warm ``open_index`` of that URL from the cache, in-process, plus a warm
  resolution of every ``so:`` provide of the index through a Universe;
* a whole warm run in a fresh interpreter (start-up, imports, open the
  cache, open the index, resolve 200 sonames), the figure that matters for
  the CLI's start-up budget.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from rundeps.apk import fetch  # noqa: E402
from rundeps.apk import index as apkindex  # noqa: E402
from rundeps.apk.model import Universe  # noqa: E402

SHARED = PROJECT.parent / "shared" / "alpine"


def median_ms(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times), max(times)


def report(label, stats):
    med, lo, hi = stats
    print(f"{label:58s} median {med:8.1f} ms   (min {lo:.1f}, max {hi:.1f})")


_WARM = r"""
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from rundeps.apk import fetch
from rundeps.apk import index as apkindex
from rundeps.apk.model import Universe
keys = apkindex.load_keys([sys.argv[2]])
cache = fetch.IndexCache.open(sys.argv[3])
index = fetch.open_index(sys.argv[4], keys, fetch.FetchOptions(cache=cache))
u = Universe([index.repository])
names = sorted(k for k in index.repository.provides if k.startswith("so:"))[:200]
found = sum(1 for n in names if u.provider(n) is not None)
assert found == len(names) == 200, found
print((time.perf_counter() - t0) * 1000)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--index", default=str(SHARED / "index" / "3.20-main-x86_64" / "APKINDEX.tar.gz"))
    ap.add_argument("--keys", default=str(SHARED / "keys"))
    args = ap.parse_args()
    if not os.path.isfile(args.index) or not os.path.isdir(args.keys):
        print(f"missing {args.index} or {args.keys}", file=sys.stderr)
        return 2
    data = Path(args.index).read_bytes()
    keys = apkindex.load_keys([args.keys])
    runs = args.runs
    print(f"index: {args.index} ({len(data)} bytes), {len(keys)} keys, {runs} runs, Python {sys.version.split()[0]}")

    index = apkindex.read_index(data, keys, name="bench")
    print(f"  {index.package_count} packages, {index.so_provide_count} so: provides, signer {index.signer}")

    report("cold read_index (verify + parse)", median_ms(lambda: apkindex.read_index(data, keys, name="b"), runs))
    report("  of which: verify only (allow_untrusted parse skipped)", median_ms(lambda: _verify_only(data, keys), runs))

    blob = index.to_bytes()
    print(f"  cached parsed form: {len(blob)} bytes")
    report("IndexFile.from_bytes (cached parse -> lazy repository)", median_ms(lambda: apkindex.IndexFile.from_bytes(blob, "b"), runs))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "srv" / "v3.20" / "main" / "x86_64"
        folder.mkdir(parents=True)
        (folder / "APKINDEX.tar.gz").write_bytes(data)
        handler = functools.partial(_QuietHandler, directory=str(Path(tmp) / "srv"))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/v3.20/main/x86_64/APKINDEX.tar.gz"
        try:
            counter = [0]

            def cold_fetch():
                counter[0] += 1
                c = fetch.IndexCache.open(Path(tmp) / f"cold{counter[0]}")
                fetch.open_index(url, keys, fetch.FetchOptions(cache=c))
                c.close()

            report("cold open_index(URL) into an empty cache (download+all)", median_ms(cold_fetch, runs))

            cache_dir = Path(tmp) / "warm"
            c = fetch.IndexCache.open(cache_dir)
            fetch.open_index(url, keys, fetch.FetchOptions(cache=c))
            c.close()

            def warm_open():
                c = fetch.IndexCache.open(cache_dir)
                idx = fetch.open_index(url, keys, fetch.FetchOptions(cache=c))
                c.close()
                return idx

            report("warm IndexCache.open + open_index(URL), in-process", median_ms(warm_open, runs))

            def warm_resolve():
                idx = warm_open()
                u = Universe([idx.repository])
                for name in idx.repository.provides:
                    if name.startswith("so:"):
                        u.provider(name)

            report("warm open + resolve all so: provides (1604 names)", median_ms(warm_resolve, runs))

            def revalidate():
                c = fetch.IndexCache.open(cache_dir)
                fetch.open_index(url, keys, fetch.FetchOptions(cache=c, refresh=True))
                c.close()

            report("revalidation after the TTL (conditional request, 304)", median_ms(revalidate, runs))

            wall = []
            inner = []
            for _ in range(runs):
                t = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-c", _WARM, str(PROJECT), args.keys, str(cache_dir), url],
                    capture_output=True, text=True, check=True,
                )
                wall.append((time.perf_counter() - t) * 1000)
                inner.append(float(out.stdout.strip()))
            report("fresh process, warm: whole run wall (python start incl.)", (statistics.median(wall), min(wall), max(wall)))
            report("  of which after interpreter start (imports, cache, 200 sonames)", (statistics.median(inner), min(inner), max(inner)))
            t = time.perf_counter()
            for _ in range(runs):
                subprocess.run([sys.executable, "-c", "pass"], check=True)
            print(f"{'  bare python start-up for comparison':58s} median ~{(time.perf_counter() - t) * 1000 / runs:6.1f} ms")
            cli_scan_300(index, url, args.keys, runs)
        finally:
            server.shutdown()
    return 0


def cli_scan_300(index, url, keys_dir, runs):
    """The issue's figure: the whole ``rundeps scan`` command on a tree that
    needs 300 sonames from the index, warm (index cache filled), in fresh
    processes.  The tree: 30 small ELF files written by ``craft_elf``, each
    needing 10 of the index's sonames."""
    sys.path.insert(0, str(PROJECT / "scripts"))
    from fuzz_elf import craft_elf

    sonames = sorted(index.repository.so_provides())[:300]
    repo_url = url.rsplit("/", 2)[0]  # .../v3.20/main
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        for i in range(30):
            (tree / f"ext{i:02d}.so").write_bytes(craft_elf(needed=sonames[i * 10:(i + 1) * 10]))
        cmd = [sys.executable, "-m", "rundeps", "scan", "--repo", repo_url, "--arch", "x86_64",
               "--keys-dir", keys_dir, "--cache-dir", str(Path(tmp) / "cache"), "--allow-unresolved",
               "-q", str(tree)]
        env = dict(os.environ, PYTHONPATH=str(PROJECT))
        t = time.perf_counter()
        cold = subprocess.run(cmd, capture_output=True, text=True, env=env)
        cold_ms = (time.perf_counter() - t) * 1000
        if cold.returncode != 0:
            raise SystemExit(f"rundeps scan failed: {cold.stderr}")
        wall = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            wall.append((time.perf_counter() - t) * 1000)
        print(f"rundeps scan --repo (300 sonames): cold {cold_ms:.0f} ms (download, verify, parse); "
              f"{len(cold.stdout.split())} packages in the minimal set")
        report("rundeps scan --repo (300 sonames), warm, whole command", (statistics.median(wall), min(wall), max(wall)))


def _verify_only(data, keys):
    import zlib

    import rsa

    d = zlib.decompressobj(31)
    d.decompress(data)
    signed = d.unused_data
    # the signature member's content starts after one 512-byte tar header
    first = zlib.decompress(data[: len(data) - len(signed)], 31)
    size = int(first[124:136].strip(b"\0 "), 8)
    name = first[:100].split(b"\0")[0].decode()[len(".SIGN.RSA."):]
    rsa.verify(signed, first[512 : 512 + size], rsa.PublicKey.load_pkcs1_openssl_pem(keys[name]))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    sys.exit(main())
