"""A CycloneDX 1.6 SBOM (JSON) of what a checked tree, image or wheel needs
at run time, with the load graph (docs/sbom.md).

Two steps: :func:`tree_graph` / :func:`wheel_graph` gather the facts of a
result into a :class:`Graph` (plain values: :class:`Node` components and
``dependsOn`` edges, no library needed), and :func:`render` turns a graph
into the JSON text with ``cyclonedx-python-lib`` and ``packageurl-python``,
imported only then (start-up stays as it was for every other output).

Components (``bom-ref`` in brackets):

* each apk package of the run-time set and what it pulls in through
  ``D:`` [its purl, ``pkg:apk/alpine/NAME@VERSION?arch=ARCH&distro=alpine-X.Y.Z``
  as syft writes it, ``upstream=ORIGIN`` when the origin differs];
* each pip distribution that owns scanned files [``pkg:pypi/name@version``];
* each scanned ELF file, each library a load opens (vendored or a package's)
  and each Python file with ``--dlopen`` findings, as ``file`` components
  with their SHA-256 and their in-root path in ``evidence.occurrences``
  [``file:PATH``; a wheel's ``file:WHEEL!PATH``];
* the musl the verdicts were checked against [``rundeps:musl``].

Edges: file -> each library its ``DT_NEEDED`` names load (in-tree or a
package's file), library -> the package that provides it (file -> package
when the library's path is not known: a package only in an index),
package -> what its ``D:`` names, distribution -> its files, Python file ->
what its run-time loads resolve to, the subject (``metadata.component``) ->
the scanned files, distributions and the musl.

Deterministic: components and edges are sorted; the timestamp is
``SOURCE_DATE_EPOCH`` when set, else the input's own time (see
:func:`input_time`), else none; the serial number is a UUID (version 5)
of the document's SHA-256 with a zero serial number in its place.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Set, Tuple

if TYPE_CHECKING:
    from ..apk.model import Package

__all__ = ["Node", "Graph", "tree_graph", "wheel_graph", "render", "tree_sbom", "wheel_sbom", "input_time",
           "distro_of", "PROPERTY_PREFIX"]

PROPERTY_PREFIX = "rundeps:"
MUSL_REF = "rundeps:musl"
SUBJECT_REF = "rundeps:subject"
_CHUNK = 1 << 20
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"
SERIAL_NAMESPACE_URL = "https://rundeps/sbom"
"""The name whose UUID (version 5 of the URL namespace) is the namespace of serial numbers."""


@dataclass(frozen=True)
class Node:
    """One component: ``kind`` ``apk``, ``pypi``, ``file``, ``musl`` or
    ``subject`` (``subject_type``: ``container``, ``operating-system``,
    ``library``); ``purl`` (type, namespace, name, version, qualifiers);
    ``properties`` (name, value) pairs, names under ``rundeps:``."""

    ref: str
    kind: str
    name: str
    version: str = ""
    purl: Optional[Tuple[str, Optional[str], str, str, Tuple[Tuple[str, str], ...]]] = None
    sha256: Optional[str] = None
    location: Optional[str] = None
    license: str = ""
    description: str = ""
    properties: Tuple[Tuple[str, str], ...] = ()
    subject_type: str = ""


@dataclass
class Graph:
    """Components by ``bom-ref``, ``edges`` (ref -> refs it depends on),
    the subject's ref, the timestamp (or None) and document properties."""

    nodes: Dict[str, Node] = field(default_factory=dict)
    edges: Dict[str, Set[str]] = field(default_factory=dict)
    subject: Optional[str] = None
    timestamp: Optional[datetime] = None
    properties: List[Tuple[str, str]] = field(default_factory=list)

    def add(self, node: Node) -> str:
        """Add ``node`` unless a component with its ref is there; its ref."""
        self.nodes.setdefault(node.ref, node)
        self.edges.setdefault(node.ref, set())
        return node.ref

    def link(self, src: str, dst: str) -> None:
        if src != dst:
            self.edges.setdefault(src, set()).add(dst)

    def subject_ref(self) -> str:
        """The subject's ref; a graph gets its subject before anything links to it."""
        if self.subject is None:
            raise ValueError("the graph has no subject yet")
        return self.subject


# -- facts -----------------------------------------------------------------------


def distro_of(release: Optional[str]) -> Optional[str]:
    """The purl ``distro`` qualifier of an Alpine release (``3.20.3`` ->
    ``alpine-3.20.3``, ``v3.20`` -> ``alpine-3.20``, ``edge``), None when unknown."""
    if not release:
        return None
    release = release.strip()
    if release.startswith("v") and release[1:2].isdigit():
        release = release[1:]
    if not re.fullmatch(r"[0-9A-Za-z._-]+", release):
        return None
    return f"alpine-{release}"


_INDEX_RELEASE = re.compile(r"/(v\d+\.\d+|edge)/[^/]+/[^/]+/APKINDEX\.tar\.gz$")


def _package_distro(pkg, root_distro: Optional[str], alpine: Optional[str]) -> Optional[str]:
    """The root's release, else the one the index's URL names, else ``--alpine``."""
    if root_distro:
        return root_distro
    m = _INDEX_RELEASE.search(pkg.source or "")
    if m:
        return distro_of(m.group(1))
    return distro_of(alpine)


def _read_release(files) -> Optional[str]:
    """The first line of the root's ``etc/alpine-release``, or None."""
    try:
        data = files.read("/etc/alpine-release", 0, 256)
    except OSError:
        return None
    line = data.decode("utf-8", "replace").strip().splitlines()
    return line[0].strip() if line else None


def apk_node(pkg: "Package", arch: Optional[str], distro: Optional[str], role: str) -> Node:
    """The component of apk package ``pkg`` (``role``: ``minimal``,
    ``needed`` or ``dependency``, see docs/sbom.md)."""
    quals: Dict[str, str] = {}
    pkg_arch = pkg.arch or arch
    if pkg_arch:
        quals["arch"] = pkg_arch
    if distro:
        quals["distro"] = distro
    if pkg.origin and pkg.origin != pkg.name:
        quals["upstream"] = pkg.origin
    purl = ("apk", "alpine", pkg.name, pkg.version, tuple(sorted(quals.items())))
    props = [("rundeps:apk:set", role), ("rundeps:apk:source", pkg.source or "builtin")]
    if pkg.origin:
        props.append(("rundeps:apk:origin", pkg.origin))
    if pkg.installed_size:
        props.append(("rundeps:apk:installed-size", str(pkg.installed_size)))
    return Node(ref=purl_ref(purl), kind="apk", name=pkg.name, version=pkg.version, purl=purl,
                license=getattr(pkg, "license", "") or "", description=pkg.description, properties=tuple(props))


def purl_ref(purl) -> str:
    """A purl as text (qualifiers sorted), without the library: the bom-ref."""
    from urllib.parse import quote

    kind, ns, name, version, quals = purl
    text = f"pkg:{kind}/" + (f"{quote(ns, safe='')}/" if ns else "") + quote(name, safe="")
    if version:
        text += "@" + quote(version, safe="")
    if quals:
        text += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in quals)
    return text


def pypi_node(dist) -> Node:
    """The component of a pip distribution (:class:`rundeps.distributions.Distribution`)."""
    name = re.sub(r"[-_.]+", "-", dist.name).lower()
    purl = ("pypi", None, name, dist.version or "", ())
    props = [("rundeps:python:kind", dist.kind)]
    if dist.metadata:
        props.append(("rundeps:python:metadata", dist.metadata))
    return Node(ref=purl_ref(purl), kind="pypi", name=dist.name, version=dist.version or "", purl=purl,
                properties=tuple(props))


def _verdict_properties(res, path: str) -> List[Tuple[str, str]]:
    """``rundeps:verdict`` and its details for a file the check judged:
    ``will-not-load`` (kind, chain, reason, names), ``cannot-check``
    (what is not at hand), ``undecided`` (why), else ``loads``."""
    b = res.binding
    fault = res.faults.get(path)
    if fault is not None:
        props = [("rundeps:verdict", "will-not-load"), ("rundeps:fault:kind", fault.kind),
                 ("rundeps:fault:chain", " -> ".join(fault.chain)), ("rundeps:fault:reason", fault.reason)]
        if fault.names:
            props.append(("rundeps:fault:names", " ".join(fault.names)))
        return props
    if b is not None and path in b.unchecked:
        return [("rundeps:verdict", "cannot-check"), ("rundeps:unchecked", " ".join(b.unchecked[path]))]
    if b is not None and path in b.undecided:
        return [("rundeps:verdict", "undecided"), ("rundeps:undecided", b.undecided[path])]
    if path in res.units and b is not None:
        return [("rundeps:verdict", "loads")]
    return []


def host_digests(root: str):
    """``read_all`` for a host folder: files opened through in-root symlink resolution."""
    from ..rootfs import join_host, norm_root, resolve_in_root

    top = norm_root(root)

    def read_all(paths: Sequence[str]) -> Dict[str, str]:
        out = {}
        for p in paths:
            real = resolve_in_root(top, p)
            if real is None:
                continue
            host = join_host(top, real)
            h = hashlib.sha256()
            try:
                with open(host, "rb") as f:
                    for chunk in iter(lambda: f.read(_CHUNK), b""):
                        h.update(chunk)
            except OSError:
                continue
            out[p] = h.hexdigest()
        return out

    return read_all


def image_digests(tree):
    """``read_all`` for an open :class:`rundeps.inputs.image.ImageTree`: each layer read once."""

    def read_all(paths: Sequence[str]) -> Dict[str, str]:
        real: Dict[str, List[str]] = {}
        for p in paths:
            r = tree.resolve(p)
            e = tree.entries.get(r) if r is not None else None
            if e is not None and e.kind == "file":
                real.setdefault(r, []).append(p)
        out = {}
        for names, f, size in tree.stream_files(list(real)):
            h = hashlib.sha256()
            left = size
            while left > 0:
                chunk = f.read(min(left, _CHUNK))
                if not chunk:
                    break
                h.update(chunk)
                left -= len(chunk)
            for r in names:
                for p in real.get(r, ()):
                    out[p] = h.hexdigest()
        return out

    return read_all


def _file_node(path: str, sha: Optional[str], props: Iterable[Tuple[str, str]], ref: Optional[str] = None,
               location: Optional[str] = None) -> Node:
    return Node(ref=ref or f"file:{path}", kind="file", name=path, sha256=sha, location=location or path,
                properties=tuple(sorted(set(props))))


def _add_resolution(g: Graph, res, digest: Dict[str, str], ref_of, root_distro: Optional[str],
                    alpine: Optional[str]) -> List[str]:
    """Add what one resolution says to ``g``: packages, files, load edges,
    run-time loads, distributions (``ref_of(path)``: a file's bom-ref).
    Returns the refs the subject depends on: the distributions, and the
    scanned files and Python files no distribution owns."""
    pkg_ref = _add_packages(g, res, root_distro, alpine)
    props: Dict[str, Set[Tuple[str, str]]] = {}
    _file_facts(res, props)
    _load_edges(g, res, props, pkg_ref, ref_of)
    _runtime_load_edges(g, res, props, pkg_ref, ref_of)
    for path, extra in props.items():
        extra |= set(_verdict_properties(res, path))
        g.add(_file_node(path, digest.get(path), extra, ref=ref_of(path), location=_location_of(ref_of(path))))
    return _distribution_edges(g, res, props, ref_of)


def _add_packages(g: Graph, res, root_distro: Optional[str], alpine: Optional[str]) -> Dict["Package", str]:
    """The run-time set and its ``D:`` closure as components, with their
    ``D:`` edges; returns package -> ref."""
    minimal, needed, universe = set(res.packages), set(res.all_packages), res.universe
    closure: Set["Package"] = set(needed)
    if universe is not None:
        for p in needed:
            closure |= set(universe.closure(p))
    pkg_ref: Dict["Package", str] = {}
    for p in sorted(closure, key=lambda p: (p.name, p.version, p.source)):
        role = "minimal" if p in minimal else "needed" if p in needed else "dependency"
        pkg_ref[p] = g.add(apk_node(p, res.arch, _package_distro(p, root_distro, alpine), role))
    if universe is not None:
        for p in closure:
            for d in universe.dependencies(p):
                if d in pkg_ref:
                    g.link(pkg_ref[p], pkg_ref[d])
    return pkg_ref


def _file_facts(res, props: Dict[str, Set[Tuple[str, str]]]) -> None:
    """The files every component list starts from (scanned, loaded, judged)
    with what the result says of each."""
    for path in res.scanned:
        props.setdefault(path, set()).add(("rundeps:scanned", "true"))
    for path, info in res.objects.items():
        props.setdefault(path, set())
        if info is not None and getattr(info, "soname", None):
            props[path].add(("rundeps:soname", info.soname))
    for path, role in res.units.items():
        props.setdefault(path, set()).add(("rundeps:role", role))
    judged = list(res.faults) + (list(res.binding.unchecked) + list(res.binding.undecided)
                                 if res.binding is not None else [])
    for path in judged:
        props.setdefault(path, set())
    for path in res.glibc_linked:
        props.setdefault(path, set()).add(("rundeps:glibc-linked", "true"))


def _load_edges(g: Graph, res, props, pkg_ref: Dict["Package", str], ref_of) -> None:
    """file -> library -> package for each needed soname (file -> package
    when the library's path is not known); unresolved and glibc sonames
    become properties."""
    unresolved: Dict[str, Set[str]] = {}
    for e in res.edges:
        props.setdefault(e.path, set())
        src = ref_of(e.path)
        if e.kind == "unresolved":
            unresolved.setdefault(e.path, set()).add(e.soname)
        elif e.kind == "glibc":
            props[e.path].add(("rundeps:glibc-soname", e.soname))
        elif e.library:
            props.setdefault(e.library, set()).add(("rundeps:loaded-as", e.soname))
            if e.kind == "in_tree":  # carried by the tree itself, no package
                props[e.library].add(("rundeps:vendored", "true"))
            g.link(src, ref_of(e.library))
            if e.package is not None and e.package in pkg_ref:
                g.link(ref_of(e.library), pkg_ref[e.package])
        elif e.package is not None and e.package in pkg_ref:
            g.link(src, pkg_ref[e.package])
        elif e.kind == "musl":
            g.link(src, MUSL_REF)
    for path, sonames in unresolved.items():
        props[path].add(("rundeps:unresolved", " ".join(sorted(sonames))))


def _runtime_load_edges(g: Graph, res, props, pkg_ref: Dict["Package", str], ref_of) -> None:
    """``--dlopen``: the Python file -> the package or tree library its load resolves to."""
    tree_libs: Dict[str, str] = {}
    for path, info in res.objects.items():
        tree_libs.setdefault(posixpath.basename(path), path)
        if info is not None and getattr(info, "soname", None):
            tree_libs.setdefault(info.soname, path)
    for f in res.dlopen:
        props.setdefault(f.path, set()).add(("rundeps:dlopen", f"{f.name or '(dynamic)'} (line {f.line}, {f.call})"))
        when = res.dlopen_when.get(f.path)
        if when:
            props[f.path].add(("rundeps:dlopen:when", when))
        pkg = res.dlopen_packages.get(f.name)
        if pkg is not None and pkg in pkg_ref:
            g.link(ref_of(f.path), pkg_ref[pkg])
        elif f.name and posixpath.basename(f.name) in tree_libs:
            g.link(ref_of(f.path), ref_of(tree_libs[posixpath.basename(f.name)]))


def _distribution_edges(g: Graph, res, props, ref_of) -> List[str]:
    """Distribution -> its files; the refs the subject depends on."""
    tops: List[str] = []
    owned: Set[str] = set()
    dmap = res.distributions
    dlopen_paths = {f.path for f in res.dlopen}
    if dmap is not None:
        for d in dmap.distributions:
            files = [p for p in d.files if p in props]
            dl = sorted(p for p in dlopen_paths if d in dmap.owners_of(p))
            if not files and not dl:
                continue
            ref = g.add(pypi_node(d))
            tops.append(ref)
            for p in files + dl:
                g.link(ref, ref_of(p))
                owned.add(p)
    scanned = set(res.scanned)
    tops += [ref_of(p) for p in sorted(props) if p not in owned and (p in scanned or p in dlopen_paths)]
    return tops


def _location_of(ref: str) -> str:
    return ref[len("file:"):]


def _musl_node(res) -> Optional[Node]:
    b = res.binding
    if b is None or b.musl is None:
        return None
    musl = b.musl
    return Node(ref=MUSL_REF, kind="musl", name="musl", version=getattr(musl, "version", None) or "",
                description=b.musl_description or "",
                properties=(("rundeps:role", "the musl the verdicts were checked against"),))


def _finish(g: Graph, tops: Iterable[str], res_list) -> None:
    for res in res_list:
        node = _musl_node(res)
        if node is not None:
            g.add(node)
            g.link(g.subject_ref(), MUSL_REF)
            break
    for ref in tops:
        g.link(g.subject_ref(), ref)
    for src in list(g.edges):
        for dst in list(g.edges[src]):
            if dst not in g.nodes:  # e.g. musl edges when symbols were not bound
                g.edges[src].discard(dst)


@dataclass(frozen=True)
class _Subject:
    """What a tree's document describes: its ``name`` (the root folder or
    image path), ``subject_type`` (``operating-system`` or ``container``),
    its ``time`` (an image's ``created``), and ``host_root`` for a host
    folder, whose files' newest modification time is the time instead."""

    name: str
    subject_type: str
    time: Optional[datetime] = None
    host_root: Optional[str] = None


def tree_graph(res, root: str = "/", image=None, platform: Optional[str] = None,
               alpine: Optional[str] = None) -> Graph:
    """The graph of ``scan``'s result ``res``: of host folder ``root``, or
    of the saved image ``image`` (its path: reopened to hash the files)."""
    if image is not None:
        from ..inputs.image import open_image

        with open_image(image, platform) as tree:
            subject = _Subject(os.fspath(image), "container", time=_image_time(tree))
            return _tree_graph(res, tree, image_digests(tree), subject, alpine)
    from ..rootfs import root_files

    return _tree_graph(res, root_files(root), host_digests(root), _Subject(root, "operating-system", host_root=root),
                       alpine)


def _tree_graph(res, files, read_all, subject: _Subject, alpine: Optional[str]) -> Graph:
    g = Graph()
    release = _read_release(files)
    g.subject = g.add(Node(ref=SUBJECT_REF, kind="subject", name=subject.name, version=release or "",
                           subject_type=subject.subject_type,
                           properties=(("rundeps:arch", res.arch or ""),)))
    wanted = set(res.scanned) | set(res.objects) | {e.library for e in res.edges if e.library} | {
        f.path for f in res.dlopen}
    digest = read_all(sorted(wanted))
    tops = _add_resolution(g, res, digest, lambda p: f"file:{p}", distro_of(release), alpine)
    _finish(g, tops, [res])
    time = subject.time
    if subject.host_root is not None:
        time = _newest_mtime(subject.host_root,
                             sorted(wanted) + ["/lib/apk/db/installed", "/usr/lib/apk/db/installed"])
    g.timestamp = source_date_epoch() or time
    return g


def wheel_graph(checks: Sequence, alpine: Optional[str] = None) -> Graph:
    """The graph of ``wheel``'s results (:class:`rundeps.api.WheelCheck`):
    each wheel a ``pypi`` component owning its members."""
    import zipfile

    g = Graph()
    names = [os.path.basename(c.wheel.path) for c in checks]
    g.subject = g.add(Node(ref=SUBJECT_REF, kind="subject", name=names[0] if len(names) == 1 else " ".join(names),
                           subject_type="library"))
    tops: List[str] = []
    times: List[datetime] = []
    for check in checks:
        ws, res = check.wheel, check.resolution
        if res is None:
            continue
        base = os.path.basename(ws.path)
        members = {item.path: item.member for item in ws.items}
        digest: Dict[str, str] = {}
        try:
            with zipfile.ZipFile(ws.path) as zf:
                infos = {i.filename: i for i in zf.infolist()}
                times.extend(datetime(*i.date_time, tzinfo=timezone.utc) for i in infos.values())
                wanted = set(res.objects) | {e.library for e in res.edges if e.library} | {f.path for f in res.dlopen}
                for p in sorted(wanted):
                    member = members.get(p) or p.lstrip("/")
                    if member in infos:
                        h = hashlib.sha256()
                        with zf.open(infos[member]) as f:
                            for chunk in iter(lambda: f.read(_CHUNK), b""):
                                h.update(chunk)
                        digest[p] = h.hexdigest()
        except (OSError, zipfile.BadZipFile):
            pass

        def ref_of(p: str, base=base) -> str:
            return f"file:{base}!{p}"

        tops += _add_resolution(g, res, digest, ref_of, None, alpine)
        for ref in list(g.nodes):
            node = g.nodes[ref]
            if node.kind == "file" and ref.startswith(f"file:{base}!"):
                member = members.get(node.name)
                loc = f"{base}!/{member}" if member else f"{base}!{node.name}"
                g.nodes[ref] = replace(node, location=loc)
        _finish(g, [], [res])
    _finish(g, tops, [])
    g.timestamp = source_date_epoch() or (max(times) if times else None)
    return g


# -- time --------------------------------------------------------------------------


def source_date_epoch() -> Optional[datetime]:
    """``SOURCE_DATE_EPOCH`` as a UTC time, or None when unset or not a number."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value.isdigit():
        return None
    return datetime.fromtimestamp(int(value), tz=timezone.utc)


def _newest_mtime(root: str, paths: Sequence[str]) -> Optional[datetime]:
    from ..rootfs import join_host, norm_root, resolve_in_root

    top = norm_root(root)
    newest = None
    for p in paths:
        real = resolve_in_root(top, p)
        if real is None:
            continue
        try:
            m = int(os.stat(join_host(top, real)).st_mtime)
        except OSError:
            continue
        newest = m if newest is None or m > newest else newest
    return datetime.fromtimestamp(newest, tz=timezone.utc) if newest is not None else None


def _image_time(tree) -> Optional[datetime]:
    """The image config's ``created``, to the second, or None."""
    created = (tree.config or {}).get("created") if isinstance(tree.config, dict) else None
    if not isinstance(created, str):
        return None
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", created)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(x) for x in m.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None


def input_time(g: Graph) -> Optional[datetime]:
    """The timestamp the document carries: ``SOURCE_DATE_EPOCH`` when set;
    else, for a root, the newest modification time of the files it
    describes and the apk database; for an image, its config's
    ``created``; for wheels, their newest member's time; else None."""
    return g.timestamp


# -- rendering ---------------------------------------------------------------------


_SPDX_IDS: Optional[Dict[str, str]] = None
_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def spdx_ids() -> Dict[str, str]:
    """The SPDX licence ids the library's schema knows (lower-case -> as
    written), read as a package resource (so from inside a zip too: the
    library's own ``cyclonedx.spdx`` opens it by file path)."""
    global _SPDX_IDS
    if _SPDX_IDS is None:
        import json
        from importlib.resources import files

        data = files("cyclonedx.schema._res").joinpath("spdx.SNAPSHOT.schema.json").read_text(encoding="utf-8")
        _SPDX_IDS = {i.lower(): i for i in json.loads(data).get("enum", [])}
    return _SPDX_IDS


def license_of(text: str) -> Tuple[str, str]:
    """How an ``L:`` value is written: ``("id", ID)`` for one SPDX id,
    ``("expression", TEXT)`` for an SPDX expression (ids, ``LicenseRef-``,
    ``AND``/``OR``/``WITH``, parentheses), else ``("name", TEXT)``
    (``custom``, ``MIT BSD``)."""
    ids = spdx_ids()
    tokens = _TOKEN.findall(text)
    if len(tokens) == 1:
        known = ids.get(text.lower().rstrip("+")) if text.endswith("+") else ids.get(text.lower())
        return ("id", known) if known and not text.endswith("+") else ("name", text)
    expect_licence, after_with, depth = True, False, 0
    for tok in tokens:
        if tok == "(" and expect_licence:
            depth += 1
        elif tok == ")" and not expect_licence and depth > 0:
            depth -= 1
        elif tok in ("AND", "OR", "WITH") and not expect_licence:
            expect_licence, after_with = True, tok == "WITH"
        elif expect_licence and (after_with or tok.startswith("LicenseRef-") or tok.rstrip("+").lower() in ids):
            expect_licence, after_with = False, False
        else:
            return ("name", text)
    return ("expression", text) if not expect_licence and depth == 0 else ("name", text)


def _license(text: str):
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression

    kind, value = license_of(text)
    if kind == "expression":
        return LicenseExpression(value)
    if kind == "id":
        return DisjunctiveLicense(id=value)
    return DisjunctiveLicense(name=value)


def _component(node: Node):
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.component_evidence import ComponentEvidence, Occurrence
    from packageurl import PackageURL

    if node.kind == "subject":
        kind = {"container": ComponentType.CONTAINER, "operating-system": ComponentType.OPERATING_SYSTEM
                }.get(node.subject_type, ComponentType.LIBRARY)
    else:
        kind = {"apk": ComponentType.LIBRARY, "pypi": ComponentType.LIBRARY, "file": ComponentType.FILE,
                "musl": ComponentType.LIBRARY}[node.kind]
    purl = None
    if node.purl is not None:
        t, ns, name, version, quals = node.purl
        purl = PackageURL(type=t, namespace=ns, name=name, version=version or None, qualifiers=dict(quals) or None)
    return Component(
        name=node.name, type=kind, bom_ref=node.ref, version=node.version or None,
        description=node.description or None, purl=purl,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=node.sha256)] if node.sha256 else None,
        licenses=[_license(node.license)] if node.license else None,
        evidence=ComponentEvidence(occurrences=[Occurrence(location=node.location)]) if node.location else None,
        properties=[Property(name=k, value=v) for k, v in node.properties if v != ""] or None,
    )


def render(g: Graph) -> str:
    """The CycloneDX 1.6 JSON text of ``g`` (indented, ending in a newline)."""
    import uuid

    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model import Property
    from cyclonedx.output.json import JsonV1Dot6

    from .. import __version__

    comps = {ref: _component(node) for ref, node in g.nodes.items()}
    bom = Bom(serial_number=uuid.UUID(_ZERO_UUID))
    # typed datetime, but None is what leaves the timestamp out (unset, it would be now)
    bom.metadata.timestamp = g.timestamp  # type: ignore[assignment]
    bom.metadata.tools.components.add(Component(name="rundeps", version=__version__, type=ComponentType.APPLICATION))
    if g.subject is not None:
        bom.metadata.component = comps[g.subject]
    for name, value in g.properties:
        bom.metadata.properties.add(Property(name=name, value=value))
    for ref in sorted(comps):
        if ref != g.subject:
            bom.components.add(comps[ref])
    for ref in sorted(g.edges):
        bom.register_dependency(comps[ref], [comps[d] for d in sorted(g.edges[ref])])
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    serial = uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, SERIAL_NAMESPACE_URL), hashlib.sha256(text.encode()).hexdigest())
    return text.replace(f"urn:uuid:{_ZERO_UUID}", f"urn:uuid:{serial}", 1) + "\n"


def tree_sbom(res, root: str = "/", image=None, platform: Optional[str] = None, alpine: Optional[str] = None) -> str:
    """:func:`render` of :func:`tree_graph`."""
    return render(tree_graph(res, root, image, platform, alpine))


def wheel_sbom(checks: Sequence, alpine: Optional[str] = None) -> str:
    """:func:`render` of :func:`wheel_graph`."""
    return render(wheel_graph(checks, alpine))
