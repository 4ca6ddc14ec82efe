"""The musl the reserved names bind to: its exports (the root's own
``ld-musl``, else an export list rundeps ships, :mod:`.exports`), whether it
falls back to ``get_lfs64``, whether its loader applies ``DT_RELR`` (a fact
of the build, :mod:`.builds`), and how the output names it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, FrozenSet, Optional, Tuple, Union

from ..platform import MUSL_LD_ARCH
from .builds import Capability, file_digest, relr_support


class MuslModel:
    """The musl the reserved names bind to: its exports, whether an LFS64
    name it does not export binds through ``get_lfs64``, whether its loader
    applies ``DT_RELR`` relocations, and a description for the output
    ("musl 1.2.5 (export list shipped for Alpine 3.20)").

    ``identity`` names these exports for cached verdicts (see :func:`bind`):
    equal identities mean equal exports. ``relr``: a
    :class:`~rundeps.bind.builds.Capability`, or a function that gives one
    when it is first asked for (it may read the loader file)."""

    def __init__(self, exports: FrozenSet[str], description: str, version: Optional[str] = None,
                 lfs64: Optional[bool] = None, identity: Optional[tuple] = None,
                 relr: Union[Capability, Callable[[], Capability], None] = None,
                 uncertain: Tuple[FrozenSet[str], str] = (frozenset(), "")):
        self.exports = exports
        self.uncertain, self.uncertain_why = uncertain
        """``uncertain``: names this musl may or may not export (a shipped
        list older than the musl asked for; ``uncertain_why`` says so):
        never "missing"."""
        self.description = description
        self.version = version
        if lfs64 is None:
            # The LFS64 names (stat64, ...) bind directly where musl exports
            # them; the loader remaps them (get_lfs64) only in the musl that
            # stopped exporting them, which brought get_lfs64 in the same change.
            lfs64 = "stat64" not in exports
        self.lfs64 = lfs64
        self.identity = identity if identity is not None else ("list", description, version)
        self._relr = relr if relr is not None else relr_support(version, name=self.version_name)

    @property
    def relr(self) -> Capability:
        """Whether this musl's loader applies ``DT_RELR`` relocations
        (``applies`` None: it cannot be told)."""
        got = self._relr
        if not isinstance(got, Capability):
            got = self._relr = got()
        return got

    @property
    def version_name(self) -> str:
        return f"musl {self.version}" if self.version else self.description

    def __repr__(self) -> str:
        return f"MuslModel({self.description}, {len(self.exports)} exports)"


class _LazyMusl(MuslModel):
    """A root's own ``ld-musl``: its symbol table is read (or its cached
    facts loaded) only when its exports, or what they say, are first used;
    ``make()`` gives the real model."""

    def __init__(self, make: Callable[[], Optional[MuslModel]], identity: tuple):
        self._make = make
        self.identity = identity

    def __getattr__(self, name):
        if name in ("exports", "description", "version", "lfs64", "_relr", "uncertain", "uncertain_why"):
            model = self._make()
            exports = model.exports if model is not None else frozenset()
            desc = model.description if model is not None else "no musl export list"
            MuslModel.__init__(self, exports, desc, model.version if model is not None else None,
                               model.lfs64 if model is not None else False, self.identity,
                               model._relr if model is not None else None,
                               (model.uncertain, model.uncertain_why) if model is not None else (frozenset(), ""))
            return object.__getattribute__(self, name)
        raise AttributeError(name)


@dataclass(frozen=True)
class MuslChoice:
    """Which musl to bind against: ``musl_version`` (``--musl``), the
    release ``alpine`` (``--alpine``), and whether the root is the target
    (``target_root``: ``--root``, or it has an apk database)."""

    musl_version: Optional[str] = None
    alpine: Optional[str] = None
    target_root: bool = True


def musl_model(fs, arch: Optional[str], symbols: Callable[[str], Any], universe=None,
               choice: MuslChoice = MuslChoice(),
               symbols_key: Optional[Callable[[str], Optional[tuple]]] = None) -> Optional[MuslModel]:
    """The musl to bind the reserved names to, as ``choice`` says.

    ``--musl VERSION`` first (a shipped export list); else, when the root is
    the target (``target_root``: ``--root`` was given or the root has an apk
    database), the root's real ``lib/ld-musl-<arch>.so.1`` (its exports read
    like any other file's; the owning package's version when the database
    knows it); else the shipped list closest to the version of the target's
    ``musl`` package (from the database or indexes in ``universe``), else
    the one for ``--alpine X.Y``, else the newest shipped list for the arch
    -- never the musl of the host a tree is checked on. None when none is
    available. With ``symbols_key`` (see :class:`rundeps.bind.BindSettings`)
    the root's musl is read only when first used.
    """
    musl_version, alpine, target_root = choice.musl_version, choice.alpine, choice.target_root
    if musl_version is None and fs is not None and target_root:
        ld_arch = MUSL_LD_ARCH.get(arch or "")
        if ld_arch:
            load_path = f"/lib/ld-musl-{ld_arch}.so.1"
            real = fs.lookup(load_path)
            key = symbols_key(real) if real and symbols_key is not None else None
            if real and key is not None and fs.elf(real) is not None:
                # read when first used: a run whose verdicts are all cached needs none of it
                def make() -> Optional[MuslModel]:
                    return _root_musl(fs, real, load_path, symbols, universe) or shipped_musl(
                        arch, musl_version=musl_version, alpine=alpine)

                return _LazyMusl(make, ("root", real) + tuple(key))
            model = _root_musl(fs, real, load_path, symbols, universe) if real else None
            if model is not None:
                return model
    if musl_version is None and universe is not None:
        pkg = universe.package("musl")
        if pkg is not None and pkg.version:
            return shipped_musl(arch, musl_version=pkg.version.split("-")[0],
                                why=f"the target's musl package, {pkg.version}", release=pkg.version)
    return shipped_musl(arch, musl_version=musl_version, alpine=alpine)


def _root_musl(fs, real: str, load_path: str, symbols: Callable[[str], Any], universe) -> Optional[MuslModel]:
    """The model of a root's own ``ld-musl`` (None if it defines nothing):
    whether it applies ``DT_RELR`` is told by its package's version, else
    by the file's digest (read only when first asked)."""
    facts = symbols(real)
    if facts is None or not facts.defined:
        return None
    version = None
    owner = universe.owner(load_path) if universe is not None else None
    if owner is None and universe is not None:
        owner = universe.owner(real)
    if owner is not None and owner.name == "musl":
        version = owner.version
    desc = f"musl {version} (the root's {load_path})" if version else f"the root's {load_path}"
    name = f"musl {version}" if version else f"the root's {load_path}"

    def relr() -> Capability:
        files = getattr(fs, "files", None)
        digest = (lambda: file_digest(lambda limit: files.read(real, 0, limit))) if files is not None else None
        return relr_support(version, digest, name=name)

    return MuslModel(frozenset(facts.defined), desc, version, identity=("root", real), relr=relr)


def shipped_musl(arch: Optional[str], musl_version: Optional[str] = None,
                 alpine: Optional[str] = None, why: Optional[str] = None,
                 release: Optional[str] = None) -> Optional[MuslModel]:
    """A musl export list the project ships (:mod:`rundeps.bind.exports`):
    ``musl_version``, else the musl of Alpine ``alpine``, else the newest
    (``why``: where ``musl_version`` came from, for the description).
    Whether its loader applies ``DT_RELR`` is told by the target's package
    ``release`` (``1.2.3-r1``) when known, else by the version asked for
    (an upstream version before 1.2.4 cannot tell it), else by the list's."""
    from .exports import load, musl_for_alpine

    wanted = musl_version
    why = why or (f"--musl {musl_version}" if musl_version else None)
    if wanted is None and alpine:
        wanted = musl_for_alpine(alpine)
        why = f"Alpine {alpine}" if wanted else None
    lists = load(wanted, arch or "x86_64")
    if lists is None:
        return None
    desc = f"{lists.describe()}, the export list shipped with rundeps"
    if why:
        desc += f" (for {why})"
    if not lists.exact_version and wanted:
        desc += f": no list for {wanted}, the nearest older one"
    if not lists.exact_arch:
        desc += f": no list for {arch}"
    target = release or wanted or lists.version
    why_uncertain = ""
    if lists.uncertain:
        why_uncertain = (f"musl {wanted} may or may not export: rundeps ships the export lists of musl "
                         f"{lists.version} ({lists.arch}) and {lists.newer}, not of {wanted}")
    return MuslModel(lists.names, desc, lists.version,
                     relr=relr_support(target, name=f"musl {target}"),
                     uncertain=(lists.uncertain, why_uncertain))
