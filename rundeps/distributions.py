"""Which installed Python distribution owns each scanned file, and what it needs.

pip records what it installs: ``NAME-VERSION.dist-info/RECORD`` lists every
file, relative to the folder that holds the dist-info (``../../../bin/tool``
for a file outside it, or an absolute path); setuptools' legacy installs leave
``NAME.egg-info/installed-files.txt`` (relative to the egg-info folder
itself); an egg installed as a folder (``NAME-VER-pyX.Y.egg/`` with
``EGG-INFO/``) owns everything under it; a wheel owns all its members.

Rules (see the tests):

* metadata folders are looked for beside every ancestor folder of the scanned
  files (site-packages, ``pip install --target`` folders, ...) and, for a
  file in a prefix's ``bin``, ``sbin``, ``lib``, ``lib64`` or ``libexec``, in
  that prefix's ``lib/python*/{site,dist}-packages`` (for RECORD entries such
  as ``../../../bin/tool``);
* everything stays inside the root: ``..`` in a RECORD entry stops at the
  root, absolute entries are in-root paths, folders are resolved with the walk's
  in-root symlink rules, and metadata files are read through the root
  (bounded), never through host paths;
* name and version come from the distribution's metadata, read by
  :mod:`importlib.metadata` through a :class:`Distribution` subclass that reads
  inside the root (the folder name is the fallback); names are compared
  canonicalised with :func:`packaging.utils.canonicalize_name`;
* RECORD is CSV read with :mod:`csv` exactly as ``Distribution.files`` does,
  from ``read_text('RECORD')``: on Python 3.12+ ``files`` stats every entry
  through host paths (following host symlinks, one stat per entry), which the
  root rule forbids and large trees cannot afford;
* an entry for a file that is gone matches nothing and is not an error;
* a file two distributions claim (a leftover dist-info of an upgrade, two
  distributions shipping one module): the claims whose RECORD hash matches the
  file on disk win (all of them when several match); when none matches, or
  no claim has a hash, the file belongs to every claimant;
* distributions that own none of the files looked at (pure-Python ones) are
  left out of the output; two shown under one name are keyed ``NAME VERSION``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import posixpath
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .rootfs import root_files

if TYPE_CHECKING:  # pragma: no cover
    from .apk.model import Package

__all__ = ["Distribution", "DistributionMap", "find_distributions", "map_distributions", "wheel_distributions",
           "needs_of"]

MAX_METADATA_FILE = 32 << 20
"""Largest metadata file read (a RECORD of a huge distribution is a few MB)."""
NO_DISTRIBUTION = "(no distribution)"


def _in_root_distribution(root, folder: str):
    """An :class:`importlib.metadata.Distribution` whose files are read inside
    ``root`` (the root protocol, :func:`rundeps.rootfs.root_files`: symlinks
    resolved in the root, regular files only, bounded).
    (Made on first use: importing :mod:`importlib.metadata` costs ~40 ms.)"""
    global _InRootDistribution
    if _InRootDistribution is None:
        from importlib import metadata

        class InRootDistribution(metadata.Distribution):
            def __init__(self, root, folder: str):
                self._files = root_files(root)
                self._folder = folder  # in-root real path of the metadata folder

            def read_text(self, filename):
                filename = str(filename)
                if not filename or "/" in filename or filename == "..":
                    return None  # only the folder's own files (3.9 also asks for '')
                try:  # OSError when absent or not a regular file
                    data = self._files.read(posixpath.join(self._folder, filename), 0, MAX_METADATA_FILE + 1)
                except OSError:
                    return None
                if len(data) > MAX_METADATA_FILE:
                    return None
                return data.decode("utf-8", "replace")

            def locate_file(self, path):
                import pathlib

                return pathlib.PurePosixPath(posixpath.dirname(self._folder)) / str(path)

        _InRootDistribution = InRootDistribution
    return _InRootDistribution(root, folder)


_InRootDistribution: Optional[Callable[..., Any]] = None
"""The class :func:`_in_root_distribution` makes on first use."""


class Distribution:
    """One installed distribution.

    ``kind``: ``dist-info``, ``egg-info``, ``egg`` or ``wheel``; ``metadata``:
    the in-root path of its metadata folder (the wheel's path for a wheel);
    ``base``: the folder its file list is relative to (site-packages);
    ``files``: the scanned ELF files it owns (in-root paths, sorted)."""

    def __init__(self, name: str, version: str, kind: str, metadata: str, base: str):
        self.name = name
        self.version = version
        self.kind = kind
        self.metadata = metadata
        self.base = base
        self.files: List[str] = []
        self._key: Optional[str] = None

    @property
    def key(self) -> str:
        """The canonical name (PEP 503), for comparing names."""
        if self._key is None:
            self._key = _canonical(self.name)
        return self._key

    def label(self) -> str:
        return f"{self.name} {self.version}".strip()

    def relative(self, path: str) -> str:
        """``path`` relative to the distribution's folder when inside it."""
        base = self.base.rstrip("/")
        if base and path.startswith(base + "/"):
            return path[len(base) + 1:]
        return path

    def __repr__(self) -> str:
        return f"Distribution({self.label()} at {self.metadata})"


class _Claim:
    __slots__ = ("dist", "hash")

    def __init__(self, dist: Distribution, hash_: Optional[Tuple[str, str]]):
        self.dist = dist
        self.hash = hash_


class DistributionMap:
    """The distributions found and which files each owns.

    ``owners``: in-root path -> the distributions that own it (after the
    hash rule), for every path asked about; ``unowned``: the scanned files no
    distribution owns."""

    def __init__(self, distributions: List[Distribution], owners: Dict[str, List[Distribution]],
                 unowned: List[str]):
        self.distributions = distributions
        self.owners = owners
        self.unowned = unowned

    def owners_of(self, path: str) -> List[Distribution]:
        return self.owners.get(path, [])

    def by_name(self, name: str) -> List[Distribution]:
        key = _canonical(name)
        return [d for d in self.distributions if d.key == key]


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def _listdir(files, folder: str) -> List[str]:
    """The names in the real in-root folder ``folder`` of ``files`` (the root protocol)."""
    try:
        return files.listdir(folder)
    except (OSError, ValueError):
        return []


def _dir_or_link(files, path: str) -> bool:
    """Whether the entry ``path`` (its folder real) is a folder or a symlink (not followed)."""
    return files.resolve(path) != path or files.is_dir(path)


def _real_dir(files, path: str) -> Optional[str]:
    """The in-root real path of the folder ``path`` leads to, or None."""
    real = files.resolve(path)
    return real if real is not None and files.is_dir(real) else None


def _ancestors(path: str) -> Iterable[str]:
    d = posixpath.dirname(path)
    while True:
        yield d
        if d == "/":
            return
        d = posixpath.dirname(d)


def _name_version_from_folder(base: str, suffix: str) -> Tuple[str, str]:
    stem = base[: -len(suffix)]
    parts = stem.split("-")
    name = parts[0]
    version = parts[1] if len(parts) > 1 else ""
    return name, version


def _load(root, folder: str, kind: str) -> Optional[Tuple[Distribution, Optional[str]]]:
    """The distribution of a metadata folder, and the text of its file list."""
    base = posixpath.basename(folder)
    parent = posixpath.dirname(folder)
    if kind == "egg":
        meta_folder = posixpath.join(folder, "EGG-INFO")
        name, version = _name_version_from_folder(base, ".egg")
    else:
        meta_folder = folder
        name, version = _name_version_from_folder(base, "." + kind)
    dist_md = _in_root_distribution(root, meta_folder)
    try:
        md = dist_md.metadata
        md_name = md.get("Name") if md is not None else None
        md_version = md.get("Version") if md is not None else None
    except Exception:  # damaged metadata: fall back to the folder name
        md_name = md_version = None
    if md_name:
        name = str(md_name).strip()
    if md_version:
        version = str(md_version).strip()
    if not name:
        return None
    if kind == "dist-info":
        dist = Distribution(name, version, kind, folder, parent)
        return dist, dist_md.read_text("RECORD")
    if kind == "egg-info":
        # installed-files.txt is relative to the egg-info folder itself
        dist = Distribution(name, version, kind, folder, parent)
        return dist, dist_md.read_text("installed-files.txt")
    dist = Distribution(name, version, kind, folder, folder)
    return dist, None


_PREFIX_FOLDERS = frozenset({"bin", "sbin", "lib", "lib64", "libexec"})
"""Folders of an install prefix whose files a RECORD names with ``../``."""
_SUFFIXES = ((".dist-info", "dist-info"), (".egg-info", "egg-info"), (".egg", "egg"))


def find_distributions(root, paths: Iterable[str]) -> List[Tuple[Distribution, Optional[str]]]:
    """Every distribution whose metadata sits beside an ancestor of ``paths``
    (or in ``lib/python*/site-packages`` below one), with its file list text.
    ``root``: a host folder or a root through the root protocol."""
    root = root_files(root)
    folders: Dict[str, None] = {}
    prefixes: Dict[str, None] = {}
    for p in paths:
        d = posixpath.dirname(p)
        if posixpath.basename(d) in _PREFIX_FOLDERS:
            prefixes[posixpath.dirname(d)] = None  # /usr/local for /usr/local/bin/tool
        for a in _ancestors(p):
            if a in folders:
                break
            folders[a] = None
    candidates: Dict[str, None] = dict(folders)
    for a in prefixes:
        for lib in ("lib", "lib64"):
            libdir = _real_dir(root, posixpath.join(a, lib))
            if libdir is None:
                continue
            for name in _listdir(root, libdir):
                if name.startswith("python") and _dir_or_link(root, posixpath.join(libdir, name)):
                    for sp in ("site-packages", "dist-packages"):
                        real = _real_dir(root, posixpath.join(libdir, name, sp))
                        if real is not None:
                            candidates.setdefault(real, None)
    found: Dict[str, Tuple[Distribution, Optional[str]]] = {}
    for folder in candidates:
        for name in _listdir(root, folder):
            for suffix, kind in _SUFFIXES:
                if name.endswith(suffix) and len(name) > len(suffix):
                    if not _dir_or_link(root, posixpath.join(folder, name)):
                        break
                    real = _real_dir(root, posixpath.join(folder, name))
                    if real is None or real in found:
                        break
                    got = _load(root, real, kind)
                    if got is not None:
                        found[real] = got
                    break
    return [found[k] for k in sorted(found)]


def _record_entries(text: str) -> Iterable[Tuple[str, Optional[Tuple[str, str]]]]:
    """(path, (algorithm, digest) or None) for each RECORD row, as
    ``importlib.metadata.Distribution.files`` reads them."""
    try:
        for row in csv.reader(text.splitlines()):
            if not row or not row[0]:
                continue
            h = None
            if len(row) > 1 and "=" in row[1]:
                algo, _, value = row[1].partition("=")
                h = (algo, value)
            yield row[0], h
    except csv.Error:
        return


class _FolderResolver:
    """In-root real folders, memoised (RECORD paths share few folders)."""

    def __init__(self, root):
        self.files = root_files(root)
        self._memo: Dict[str, Optional[str]] = {}

    def real(self, path: str) -> Optional[str]:
        """The in-root real path of ``path`` (its folder resolved; the last
        component kept as it is)."""
        folder, name = posixpath.split(path)
        try:
            real = self._memo[folder]
        except KeyError:
            real = self._memo[folder] = _real_dir(self.files, folder)
        if real is None or not name:
            return None
        return posixpath.join(real, name)


def _inroot_entry(base: str, entry: str) -> str:
    """A file list entry as a normalised in-root path (``..`` stops at the root)."""
    entry = entry.replace("\\", "/")
    p = entry if entry.startswith("/") else posixpath.join(base, entry)
    p = posixpath.normpath("/" + p.lstrip("/"))
    return p


_HASH_CHUNK = 32 << 20
"""Bytes of a file read at a time to hash it (each read of a file inside a
compressed image layer passes over the layer again: few, large reads)."""


def _file_hash(root, path: str, algo: str) -> Optional[str]:
    try:
        h = hashlib.new(algo)
    except (ValueError, TypeError):
        return None
    files = root_files(root)
    real = files.resolve(path)
    if real is None or not files.is_file(real):
        return None
    offset = 0
    try:
        while True:
            chunk = files.read(real, offset, _HASH_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            offset += len(chunk)
    except OSError:
        return None
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii")


def map_distributions(root, files: Sequence[str], objects: Iterable[str] = (),
                      extra_paths: Iterable[str] = ()) -> DistributionMap:
    """Map ``files`` (in-root real paths of the scanned files of ``root``: a
    host folder or a root through the root protocol, read through it), ``objects``
    (other ELF objects they load, e.g. vendored libraries outside the scanned
    paths) and ``extra_paths`` (e.g. Python files with run-time loads) to the
    distributions that own them. A distribution's ``files`` are the ELF
    files (scanned or loaded) it owns; ``unowned`` are scanned files only."""
    files = list(files)
    elf_paths: Set[str] = set(files) | set(objects)
    wanted: Set[str] = elf_paths | set(extra_paths)
    wanted_names = {p.rpartition("/")[2] for p in wanted}
    root = root_files(root)
    loaded = find_distributions(root, wanted)
    claims: Dict[str, List[_Claim]] = {}
    folders = _FolderResolver(root)
    eggs: List[Distribution] = []
    for dist, listing in loaded:
        if dist.kind == "egg":
            eggs.append(dist)
            continue
        if not listing:
            continue
        folder = dist.base if dist.kind == "dist-info" else dist.metadata
        for entry, h in _record_entries(listing) if dist.kind == "dist-info" else (
                (line.strip(), None) for line in listing.splitlines() if line.strip()):
            if entry.replace("\\", "/").rpartition("/")[2] not in wanted_names:
                continue  # cannot be a file asked about (most entries: .py files)
            lexical = _inroot_entry(folder, entry)
            path = lexical if lexical in wanted else folders.real(lexical)
            if path is None or path not in wanted:
                continue
            lst = claims.setdefault(path, [])
            if not any(c.dist is dist for c in lst):
                lst.append(_Claim(dist, h))
    for dist in eggs:
        prefix = dist.metadata.rstrip("/") + "/"
        for path in wanted:
            if path.startswith(prefix):
                lst = claims.setdefault(path, [])
                if not any(c.dist is dist for c in lst):
                    lst.append(_Claim(dist, None))
    owners: Dict[str, List[Distribution]] = {}
    for path, lst in claims.items():
        if len(lst) > 1:
            lst = _decide(root, path, lst)
        owners[path] = [c.dist for c in lst]
    dists = [d for d, _ in loaded]
    for path in sorted(elf_paths):
        for d in owners.get(path, ()):
            d.files.append(path)
    unowned = sorted(p for p in set(files) if p not in owners)
    dists.sort(key=lambda d: (d.key, d.version, d.metadata))
    return DistributionMap(dists, owners, unowned)


def _decide(root, path: str, claims: List[_Claim]) -> List[_Claim]:
    """Of several claims on one file, the ones whose recorded hash matches it."""
    hashed = [(c, c.hash) for c in claims if c.hash is not None]
    if not hashed:
        return claims
    digests: Dict[str, Optional[str]] = {}
    matching = []
    for c, (algo, value) in hashed:
        if algo not in digests:
            digests[algo] = _file_hash(root, path, algo)
        if digests[algo] is not None and digests[algo] == value:
            matching.append(c)
    return matching or claims


def wheel_distributions(ws, files: Sequence[str]) -> DistributionMap:
    """A wheel's map: the wheel is one distribution owning all its files."""
    name = ws.name or posixpath.basename(ws.path)
    dist = Distribution(name, ws.version or "", "wheel", ws.path, "/")
    dist.files = sorted(files)
    return DistributionMap([dist], {p: [dist] for p in files}, [])


# -- what each distribution needs -----------------------------------------------


def needs_of(res, files: Iterable[str], dlopen_paths: Iterable[str] = ()) -> Dict["Package", List[Tuple[str, List[str]]]]:
    """The packages the objects ``files`` need, following in-tree libraries:
    package -> [(soname, chain)] where chain is the object path that needs
    the soname, preceded by the objects that loaded it from ``files``."""
    by_path: Dict[str, list] = {}
    for e in res.edges:
        by_path.setdefault(e.path, []).append(e)
    out: Dict["Package", List[Tuple[str, List[str]]]] = {}
    chains: Dict[str, List[str]] = {}
    queue: List[str] = []
    for f in sorted(set(files)):
        if f not in chains:
            chains[f] = [f]
            queue.append(f)
    for path in queue:
        for e in by_path.get(path, ()):
            if e.package is not None:
                lst = out.setdefault(e.package, [])
                item = (e.soname, chains[path])
                if item not in lst:
                    lst.append(item)
            elif e.kind == "in_tree" and e.library and e.library not in chains:
                chains[e.library] = chains[path] + [e.library]
                queue.append(e.library)
    dl = set(dlopen_paths)
    for f in res.dlopen:
        if f.path in dl and f.name in res.extra:
            lst = out.setdefault(res.extra[f.name], [])
            item = (f"{f.name} (loaded at run time)", [f.path])
            if item not in lst:
                lst.append(item)
    return out


def summarise(res, dmap: DistributionMap) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Any]]:
    """The JSON of ``distributions`` and of ``no_distribution``."""
    universe = res.universe
    dl_owner: Dict[str, List[Distribution]] = {}
    for f in res.dlopen:
        for d in dmap.owners_of(f.path):
            dl_owner.setdefault(f.path, []).append(d)

    def entry(files: List[str], dl_paths: List[str]) -> Dict[str, object]:
        needs = needs_of(res, files, dl_paths)
        pkgs = set(needs)
        minimal = universe.minimal(pkgs) if universe is not None else sorted(pkgs, key=lambda p: p.name)
        return {
            "packages": [p.name for p in minimal],
            "all_packages": sorted(p.name for p in pkgs),
            "files": sorted(files),
        }

    out: Dict[str, Dict[str, object]] = {}
    shown = []
    for d in dmap.distributions:
        dl_paths = [p for p, ds in dl_owner.items() if d in ds]
        if d.files or dl_paths:  # else it owns none of the files looked at (a pure-Python distribution)
            shown.append((d, dl_paths))
    seen_names: Dict[str, int] = {}
    for d, _ in shown:
        seen_names[d.name] = seen_names.get(d.name, 0) + 1
    for d, dl_paths in shown:
        key = d.name if seen_names[d.name] == 1 else f"{d.name} {d.version}"
        if key in out:
            key = f"{key} ({d.metadata})"
        item: Dict[str, object] = {"version": d.version, "kind": d.kind, "metadata": d.metadata}
        item.update(entry(d.files, dl_paths))
        out[key] = item
    owned_dl = set(dl_owner)
    unowned_dl = [f.path for f in res.dlopen if f.path not in owned_dl]
    return out, entry(dmap.unowned, unowned_dl)


# -- text ----------------------------------------------------------------------

MAX_SHOWN = 3


def _show(d: Optional[Distribution], path: str) -> str:
    return d.relative(path) if d is not None else path


def _describe(d: Optional[Distribution], items: List[Tuple[str, List[str]]]) -> str:
    parts = [" -> ".join([_show(d, c) for c in chain] + [soname]) for soname, chain in items[:MAX_SHOWN]]
    more = len(items) - MAX_SHOWN
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _groups(res) -> List[Tuple[Optional[Distribution], List[str], List[str]]]:
    """(distribution or None for the unowned files, its ELF files, its Python files with run-time loads)."""
    dmap: DistributionMap = res.distributions
    dl_paths = [f.path for f in res.dlopen]
    out: List[Tuple[Optional[Distribution], List[str], List[str]]] = []
    for d in dmap.distributions:
        dls = [p for p in dl_paths if d in dmap.owners_of(p)]
        if d.files or dls:
            out.append((d, d.files, dls))
    out.append((None, dmap.unowned, [p for p in dl_paths if not dmap.owners_of(p)]))
    return out


def why_lines(res, pkg) -> List[str]:
    """``libpq is needed by psycopg2 2.9.9 (psycopg2/_psycopg.so -> libpq.so.5)``,
    one line a distribution that needs ``pkg``, then one for the files no
    distribution owns. Empty when the distributions were not mapped."""
    if res.distributions is None:
        return []
    lines = []
    for d, files, dls in _groups(res):
        items = needs_of(res, files, dls).get(pkg)
        if not items:
            continue
        who = d.label() if d is not None else "files no distribution owns"
        lines.append(f"{pkg.name} is needed by {who} ({_describe(d, items)})")
    return lines


def why_json(res, pkg, name=lambda s: s) -> List[Dict[str, object]]:
    """``why --format json``: each group that needs ``pkg``: ``name`` and
    ``version`` (None for the files no distribution owns) and ``needs``, a
    list of {"soname", "chain"} (the file of the group first, in-root paths
    through ``name``)."""
    out: List[Dict[str, object]] = []
    if res.distributions is None:
        return out
    for d, files, dls in _groups(res):
        items = needs_of(res, files, dls).get(pkg)
        if items:
            out.append({
                "name": d.name if d is not None else None,
                "version": d.version if d is not None else None,
                "needs": [{"soname": name(s), "chain": [name(c) for c in chain]} for s, chain in items],
            })
    return out


def tree_lines(res) -> List[str]:
    """The tree grouped by distribution: distribution -> package -> soname -> files."""
    lines: List[str] = []
    universe = res.universe
    for d, files, dls in _groups(res):
        if d is None:
            if not files and not dls:
                continue
            lines.append(f"{NO_DISTRIBUTION}: files no pip distribution owns (the interpreter, /usr/local/lib, ...)")
        else:
            lines.append(f"{d.label()}  ({d.metadata})")
        needs = needs_of(res, files, dls)
        pkgs = sorted(needs, key=lambda p: p.name)
        minimal = set(universe.minimal(pkgs)) if universe is not None else set(pkgs)
        if not pkgs:
            lines.append("  (needs no package)")
        for p in pkgs:
            note = ""
            if p not in minimal and universe is not None:
                pullers = sorted(q.name for q in universe.pulled_in_by(p, minimal))
                note = f"  (pulled in by {', '.join(pullers)})" if pullers else "  (not in the minimal set)"
            lines.append(f"  {p.name}{note}")
            by_soname: Dict[str, List[List[str]]] = {}
            for soname, chain in needs[p]:
                by_soname.setdefault(soname, []).append(chain)
            for soname in sorted(by_soname):
                lines.append(f"    {soname}")
                for chain in sorted(by_soname[soname]):
                    lines.append("      " + " -> ".join(_show(d, c) for c in chain))
    return lines
