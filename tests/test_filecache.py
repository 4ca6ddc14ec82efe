"""rundeps.inputs.filecache with rundeps.inputs.walk.scan: warm runs, invalidation, failures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from elfbuild import build_lib, requires_gcc  # noqa: E402

from rundeps.inputs import walk  # noqa: E402
from rundeps.diagnostics import Diagnostics
from rundeps.inputs.filecache import (  # noqa: E402
    SUBDIR, Entries, FileCache, decode_entries, encode_entries, folder_signature, signature_keys)
from rundeps.elf import ElfInfo  # noqa: E402
from rundeps.inputs.walk import scan  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
pytestmark = requires_gcc


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "tree"
    build_lib(root / "a", "liba.so", soname="liba.so", needed_libs=("libold.so.1",))
    build_lib(root / "a", "libb.so", soname="libb.so", needed_libs=("libnew.so.1",))
    build_lib(root / "a", "libc.so", soname="libc.so", needed_libs=("libold.so.1",))
    (root / "a" / "notes.txt").write_text("not an ELF file\n")
    (root / "b").mkdir()
    (root / "b" / "libbroken.so").write_bytes((root / "a" / "liba.so").read_bytes()[:90])
    return root


@pytest.fixture()
def cache_dir(tmp_path):
    return tmp_path / "cache"


class Opens:
    """Counts regular-file opens (not folders) made by the walk."""

    def __init__(self, monkeypatch):
        self.names = []
        real = os.open

        def counting(path, flags, mode=0o777, *, dir_fd=None):
            if not flags & getattr(os, "O_DIRECTORY", 0):
                self.names.append(os.path.basename(os.fsdecode(path)))
            return real(path, flags, mode, dir_fd=dir_fd)

        monkeypatch.setattr(walk.os, "open", counting)


def run(tree, cache, errors=None):
    errs = [] if errors is None else errors
    res = scan([str(tree)], cache=cache, diag=Diagnostics(file_error=lambda p, r: errs.append((p, r))))
    return {os.path.basename(i.path): i.info.needed for i in res.items}, errs, res


def test_warm_run_opens_nothing_and_answers_the_same(tree, cache_dir, monkeypatch):
    cache = FileCache.open(str(cache_dir))
    first, errs1, res1 = run(tree, cache)
    assert first == {"liba.so": ("libold.so.1",), "libb.so": ("libnew.so.1",), "libc.so": ("libold.so.1",)}
    assert errs1 == [(str(tree / "b/libbroken.so"), "truncated program header table")]
    opens = Opens(monkeypatch)
    second, errs2, res2 = run(tree, FileCache.open(str(cache_dir)))
    monkeypatch.undo()
    assert opens.names == []  # neither ELF nor other files were opened
    assert second == first
    assert errs2 == errs1  # the broken file is reported again, from the cache
    assert res2.files_seen == res1.files_seen == 5
    assert [i.info for i in res2.items] == [i.info for i in res1.items]


def test_same_size_and_mtime_uses_cache_changed_mtime_invalidates(tree, cache_dir):
    cache = FileCache.open(str(cache_dir))
    run(tree, cache)
    a, b = tree / "a/liba.so", tree / "a/libb.so"
    st = a.stat()
    # Give liba.so the content of libb.so (same size: only the needed name
    # "libold" / "libnew" differs), in place (same inode), with its old mtime.
    data = b.read_bytes()
    assert len(data) == st.st_size
    with open(a, "r+b") as f:
        f.write(data)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    got, _, _ = run(tree, FileCache.open(str(cache_dir)))
    assert got["liba.so"] == ("libold.so.1",)  # the cached answer: the file was not read
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    got, _, _ = run(tree, FileCache.open(str(cache_dir)))
    assert got["liba.so"] == ("libnew.so.1",)
    got, _, _ = run(tree, None)  # no cache: the truth
    assert got["liba.so"] == ("libnew.so.1",)


def test_new_and_deleted_files(tree, cache_dir):
    run(tree, FileCache.open(str(cache_dir)))
    (tree / "a/libc.so").unlink()
    build_lib(tree / "a", "libd.so", needed_libs=("libd-dep.so",))
    got, _, _ = run(tree, FileCache.open(str(cache_dir)))
    assert sorted(got) == ["liba.so", "libb.so", "libd.so"]
    entries = FileCache.open(str(cache_dir)).load("/", str(tree))
    assert sorted(os.path.basename(p) for p in entries.files()) == [
        "liba.so", "libb.so", "libbroken.so", "libd.so", "notes.txt"]


def test_unchanged_run_does_not_write(tree, cache_dir):
    run(tree, FileCache.open(str(cache_dir)))
    files = list((cache_dir / SUBDIR).iterdir())
    assert len(files) == 1
    before = files[0].stat().st_mtime_ns
    os.utime(files[0], ns=(before - 10 ** 9, before - 10 ** 9))
    run(tree, FileCache.open(str(cache_dir)))
    assert files[0].stat().st_mtime_ns == before - 10 ** 9


def test_corrupt_entry_is_dropped(tree, cache_dir):
    run(tree, FileCache.open(str(cache_dir)))
    (f,) = (cache_dir / SUBDIR).iterdir()
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    warnings = []
    got, _, _ = run(tree, FileCache.open(str(cache_dir), Diagnostics(warning=warnings.append)))
    assert got["liba.so"] == ("libold.so.1",)
    assert len(warnings) == 1 and "corrupt" in warnings[0]
    # Rewritten: the next run is warm and quiet.
    warnings.clear()
    run(tree, FileCache.open(str(cache_dir), Diagnostics(warning=warnings.append)))
    assert warnings == []
    f.write_bytes(b"garbage")
    got, _, _ = run(tree, FileCache.open(str(cache_dir), Diagnostics(warning=warnings.append)))
    assert got["libb.so"] == ("libnew.so.1",) and "corrupt" in warnings[0]


def test_checksum_valid_entry_with_wrong_types_is_dropped(tree, cache_dir):
    """A cache file with a good checksum whose ELF record has the wrong types
    (not something rundeps wrote) is dropped, not handed to the resolver."""
    cache = FileCache.open(str(cache_dir))
    run(tree, cache)
    (f,) = (cache_dir / SUBDIR).iterdir()
    key = f.read_bytes()[13:13 + int.from_bytes(f.read_bytes()[9:13], "little")]
    entries = decode_entries(f.read_bytes(), key)
    folder = next(d for d in entries.values if d.endswith("/a"))
    record = list(entries.values[folder]["liba.so"].astuple())
    record[6] = ("libold.so.1", 5)  # DT_NEEDED with a number in it
    entries.values[folder]["liba.so"] = tuple(record)
    f.write_bytes(encode_entries(entries, key))
    warnings = []
    got, _, _ = run(tree, FileCache.open(str(cache_dir), Diagnostics(warning=warnings.append)))
    assert got["liba.so"] == ("libold.so.1",)
    assert len(warnings) == 1 and "corrupt" in warnings[0] and "bad ELF record" in warnings[0]


def test_unwritable_cache_folder(tree, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    warnings = []
    assert FileCache.open(str(blocker / "cache"), Diagnostics(warning=warnings.append)) is None
    assert len(warnings) == 1 and "file cache disabled" in warnings[0]
    got, _, _ = run(tree, None)
    assert got["liba.so"] == ("libold.so.1",)


def test_cache_folder_becomes_unwritable(tree, cache_dir):
    warnings = []
    cache = FileCache.open(str(cache_dir), Diagnostics(warning=warnings.append))
    sub = cache_dir / SUBDIR
    sub.rmdir()
    sub.write_text("now a file")  # writes below it fail, even for root
    got, _, _ = run(tree, cache)
    assert got["liba.so"] == ("libold.so.1",)
    assert len(warnings) == 1 and "file cache disabled" in warnings[0]


def test_two_processes_writing_at_once(tree, cache_dir):
    code = ("import sys; from rundeps.inputs.walk import scan; from rundeps.inputs.filecache import FileCache;"
            "from rundeps.diagnostics import Diagnostics;"
            "c = FileCache.open(sys.argv[2], Diagnostics(warning=lambda m: print('warning', m, file=sys.stderr)));"
            "r = scan([sys.argv[1]], cache=c); print(len(r.items))")
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    for round_ in range(3):
        # Each round changes a file so that both processes write.
        build_lib(tree / "a", f"libround{round_}.so")
        procs = [subprocess.Popen([sys.executable, "-c", code, str(tree), str(cache_dir)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        assert all(err == "" for _out, err in outs), outs
        assert {out.strip() for out, _ in outs} == {str(4 + round_)}
    entries = FileCache.open(str(cache_dir)).load("/", str(tree))
    assert len(entries.files()) == 8
    assert [f.name for f in (cache_dir / SUBDIR).iterdir() if ".tmp." in f.name] == []


def test_roundtrip_odd_names():
    info = ElfInfo((64, True, 62, "x86_64"), "ET_DYN", None, (("libx.so",), "liby\udcff.so", ("/a",), ()))
    sig = folder_signature(["\udcffname", "y"], [1, 2, 3, 4, 5, 6, 7, 8])
    e = Entries({"/x": sig, "/z": folder_signature(["z"], [9, 9, 9, 9])},
                {"/x": {"\udcffname": info}, "/z": {"z": "truncated"}})
    back = decode_entries(encode_entries(e, b"key"), b"key")
    assert back.dirs == e.dirs and back.values == e.values
    assert back.files() == {"/x/\udcffname": (1, 2, 3, 4), "/x/y": (5, 6, 7, 8), "/z/z": (9, 9, 9, 9)}


def test_signatures_keep_numbers_beyond_64_bits_and_before_1970():
    """overlayfs (xino) sets high inode bits; a file may predate 1970."""
    stats = [2 ** 64 - 1, 2 ** 63 + 7, 10, -5 * 10 ** 9, 3, 4, 5, 2 ** 70]
    sig = folder_signature(["a", "b"], stats)
    assert signature_keys(sig) == {"a": (2 ** 64 - 1, 2 ** 63 + 7, 10, -5 * 10 ** 9), "b": (3, 4, 5, 2 ** 70)}
    assert folder_signature(["a", "b"], list(stats)) == sig
    assert folder_signature(["a", "b"], stats[:3] + [-5 * 10 ** 9 + 1] + stats[4:]) != sig
    # Not a signature rundeps wrote: no keys (every file is read), never a crash.
    for bad in (("a", b"Axx"), ("a", b"M\x00garbage"), ("a", b"?"), ("a\0b", b"A" + bytes(32))):
        assert signature_keys(bad) == {}


def test_file_older_than_1970_is_cached(tree, cache_dir, monkeypatch):
    os.utime(tree / "a/liba.so", ns=(0, -86400 * 10 ** 9))
    first, _, _ = run(tree, FileCache.open(str(cache_dir)))
    opens = Opens(monkeypatch)
    second, _, _ = run(tree, FileCache.open(str(cache_dir)))
    monkeypatch.undo()
    assert opens.names == [] and second == first


def test_only_the_changed_file_of_a_folder_is_read(tree, cache_dir, monkeypatch):
    run(tree, FileCache.open(str(cache_dir)))
    (tree / "a/notes.txt").write_text("changed, still not ELF\n")
    (tree / "a/new.txt").write_text("new\n")
    opens = Opens(monkeypatch)
    got, _, _ = run(tree, FileCache.open(str(cache_dir)))
    monkeypatch.undo()
    assert sorted(n for n in opens.names if ".tmp." not in n) == ["new.txt", "notes.txt"]  # not the cache's own
    assert got == {"liba.so": ("libold.so.1",), "libb.so": ("libnew.so.1",), "libc.so": ("libold.so.1",)}
    # ... and the folder's new signature is warm again.
    opens = Opens(monkeypatch)
    run(tree, FileCache.open(str(cache_dir)))
    monkeypatch.undo()
    assert opens.names == []


def test_emptied_folder_is_forgotten(tree, cache_dir):
    run(tree, FileCache.open(str(cache_dir)))
    (tree / "b/libbroken.so").unlink()
    got, errs, _ = run(tree, FileCache.open(str(cache_dir)))
    assert errs == []
    entries = FileCache.open(str(cache_dir)).load("/", str(tree))
    assert sorted(os.path.basename(p) for p in entries.files()) == ["liba.so", "libb.so", "libc.so", "notes.txt"]
    assert str(tree / "b") not in entries.dirs


def test_cache_lives_in_its_own_subfolder(tree, cache_dir):
    cache_dir.mkdir()
    (cache_dir / "cache.db").write_text("someone else's index cache")
    run(tree, FileCache.open(str(cache_dir)))
    assert sorted(p.name for p in cache_dir.iterdir()) == ["cache.db", SUBDIR]
    assert (cache_dir / "cache.db").read_text() == "someone else's index cache"
