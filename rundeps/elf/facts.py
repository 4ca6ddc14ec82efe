"""The :class:`SymbolFacts` of one ELF object -- what it exports and what
it must bind, in musl's terms (see :mod:`rundeps.elf.symbols` for exactly
what each field means) -- and their compact cache form
(:func:`pack_facts` / :func:`unpack_facts`).

Both symbol readers build these: the fast one (:mod:`rundeps.elf.symbols`)
and the independent pyelftools one (:mod:`rundeps.elf.pyelftools`), which
imports nothing else of the fast readers.
"""

from __future__ import annotations

from itertools import compress
from operator import truth

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, FrozenSet, Tuple

    RelocFacts = Tuple[FrozenSet[str], FrozenSet[str], FrozenSet[str], FrozenSet[str], FrozenSet[int], bool,
                       FrozenSet[str]]
    """(plt_only, copy, unreferenced, tpoff, bad_relocs, relr, own_unfound):
    what the relocations say beyond ``undefined``; see :func:`reloc_facts`."""

__all__ = [
    "EMPTY",
    "MAX_BAD_RELOCS",
    "NO_RELOC_FACTS",
    "SymbolFacts",
    "facts_from_tuple",
    "pack_facts",
    "reloc_facts",
    "unpack_facts",
]

#: At most this many different unsupported relocation types in one object
#: (more is a broken file: ElfError).
MAX_BAD_RELOCS = 4096


NO_RELOC_FACTS: RelocFacts = (frozenset(), frozenset(), frozenset(), frozenset(), frozenset(), False, frozenset())


def reloc_facts(plt_only: FrozenSet[str] = frozenset(), copy: FrozenSet[str] = frozenset(),
                unreferenced: FrozenSet[str] = frozenset(), tpoff: FrozenSet[str] = frozenset(),
                bad_relocs: FrozenSet[int] = frozenset(), relr: bool = False,
                own_unfound: FrozenSet[str] = frozenset()) -> RelocFacts:
    """The ``relocs`` argument of :class:`SymbolFacts` (its fields, see there)."""
    return (plt_only, copy, unreferenced, tpoff, bad_relocs, relr, own_unfound)


class SymbolFacts:
    """The symbol facts of one ELF object (see the module documentation for
    exactly what each field means).  Treat it as immutable; it compares by
    value, and :meth:`astuple` / :func:`facts_from_tuple` give a form that
    :mod:`marshal` and :mod:`pickle` keep.

    * ``undefined``: {name: True if weak} -- what relocations need bound;
    * ``defined``: frozenset of names musl's lookup finds in this object;
    * ``hidden``: definitions musl skips because their version is hidden;
    * ``ifunc``: ``STT_GNU_IFUNC`` definitions (musl cannot bind them);
    * ``undef_valued``: undefined entries with a value (canonical PLT
      addresses), found by non-PLT lookups only;
    * ``plt_only``: undefined names referenced only by ``JUMP_SLOT`` relocs;
    * ``copy``: names referenced by ``COPY`` relocations;
    * ``unreferenced``: undefined dynsym names no relocation references;
    * ``nsyms``: the number of dynamic symbols (from the hash table);
    * ``tpoff``: names referenced by initial-exec TLS relocations (musl's
      ``REL_TPOFF`` / ``REL_TPOFF_NEG``), ``""`` for the object's own TLS
      (symbol index 0 or an ``STB_LOCAL`` symbol);
    * ``bad_relocs``: frozenset of the relocation type numbers musl's
      ``do_relocs`` does not support on this machine (the load fails);
    * ``relr``: the object has ``DT_RELR`` relative relocations, which musl
      applies from 1.2.4 on (an older musl ignores the tag: the object's
      pointers are never relocated).
    * ``own_unfound``: names relocations reference through a (not
      ``STB_LOCAL``) symbol this object defines, which musl's lookup does not
      find in it (an ``STT_GNU_IFUNC`` definition, a hidden version): like
      strong undefined names, they must be found in another object in scope.
    """

    __slots__ = ("undefined", "defined", "hidden", "ifunc", "undef_valued", "plt_only", "copy", "unreferenced",
                 "nsyms", "tpoff", "bad_relocs", "relr", "own_unfound", "_packed")
    FIELDS = __slots__[:-1]

    undefined: Dict[str, bool]
    defined: FrozenSet[str]
    hidden: FrozenSet[str]
    ifunc: FrozenSet[str]
    undef_valued: FrozenSet[str]
    plt_only: FrozenSet[str]
    copy: FrozenSet[str]
    unreferenced: FrozenSet[str]
    nsyms: int
    tpoff: FrozenSet[str]
    bad_relocs: FrozenSet[int]
    relr: bool
    own_unfound: FrozenSet[str]
    _packed: tuple

    def __init__(self, undefined: Dict[str, bool], defined: FrozenSet[str], hidden: FrozenSet[str] = frozenset(),
                 ifunc: FrozenSet[str] = frozenset(), undef_valued: FrozenSet[str] = frozenset(), nsyms: int = 0,
                 relocs: RelocFacts = NO_RELOC_FACTS):
        """The symbol-table fields one by one; what the relocations tell
        apart from ``undefined`` as one :func:`reloc_facts` value."""
        self.undefined = undefined
        self.defined = defined
        self.hidden = hidden
        self.ifunc = ifunc
        self.undef_valued = undef_valued
        self.nsyms = nsyms
        (self.plt_only, self.copy, self.unreferenced, self.tpoff, self.bad_relocs, self.relr,
         self.own_unfound) = relocs

    @classmethod
    def from_fields(cls, t: tuple) -> "SymbolFacts":
        """Facts with the fields of :meth:`astuple` (the caller checks them)."""
        obj = cls.__new__(cls)
        (obj.undefined, obj.defined, obj.hidden, obj.ifunc, obj.undef_valued, obj.plt_only, obj.copy,
         obj.unreferenced, obj.nsyms, obj.tpoff, obj.bad_relocs, obj.relr, obj.own_unfound) = t
        return obj

    @classmethod
    def from_packed(cls, packed: tuple) -> "SymbolFacts":
        """Facts that stay in :func:`pack_facts` form until a field is first
        read (a warm run whose binder needs none of them decodes none);
        ``packed`` is checked here, so decoding it later cannot fail.
        ValueError if it is not such a tuple."""
        _check_packed(packed)
        obj = cls.__new__(cls)
        obj._packed = packed
        return obj

    def __getattr__(self, name):  # only called for a field not decoded yet
        if name in SymbolFacts.FIELDS:
            try:
                packed = object.__getattribute__(self, "_packed")
            except AttributeError:
                raise AttributeError(name) from None
            f = _decode_packed(packed)
            for n in SymbolFacts.FIELDS:
                object.__setattr__(self, n, getattr(f, n))
            return object.__getattribute__(self, name)
        raise AttributeError(name)

    def astuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __reduce__(self):
        return (facts_from_tuple, (self.astuple(),))

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.astuple() == other.astuple()

    def __hash__(self) -> int:  # pragma: no cover - rarely needed
        return hash((frozenset(self.undefined.items()),) + self.astuple()[1:])

    @property
    def strong_undefined(self) -> FrozenSet[str]:
        """The undefined names that must be bound (not weak)."""
        return frozenset(n for n, weak in self.undefined.items() if not weak)

    @property
    def must_bind(self) -> FrozenSet[str]:
        """Every name musl's lookup must find in another object in scope:
        the strong undefined names and :attr:`own_unfound`."""
        und = self.undefined
        # a set made from a dict reuses its hashes; the weak names are few
        todo = frozenset(und).difference(compress(und, und.values()))
        own = self.own_unfound
        return todo.union(own) if own else todo

    def __repr__(self) -> str:
        return (f"SymbolFacts(nsyms={self.nsyms}, undefined={len(self.undefined)}, defined={len(self.defined)}, "
                f"hidden={len(self.hidden)}, ifunc={len(self.ifunc)}, copy={sorted(self.copy)!r}, "
                f"tpoff={sorted(self.tpoff)!r}, bad_relocs={sorted(self.bad_relocs)!r}, relr={self.relr!r}, "
                f"own_unfound={sorted(self.own_unfound)!r})")


def _is_str_set(v) -> bool:
    return v.__class__ is frozenset and all(x.__class__ is str for x in v)


def _is_type_set(v) -> bool:
    """A frozenset of relocation type numbers (plain ints, 0 to 2**32-1)."""
    return (v.__class__ is frozenset and len(v) <= MAX_BAD_RELOCS
            and all(x.__class__ is int and 0 <= x <= 0xFFFFFFFF for x in v))


def facts_from_tuple(t) -> SymbolFacts:
    """A :class:`SymbolFacts` from :meth:`SymbolFacts.astuple`; ValueError
    unless every field has its type (a cache file must not inject garbage)."""
    if t.__class__ is not tuple or len(t) != 13:
        raise ValueError("bad symbol record")
    undefined, nsyms = t[0], t[8]
    if not (undefined.__class__ is dict and nsyms.__class__ is int and all(_is_str_set(x) for x in t[1:8])
            and _is_str_set(t[9]) and _is_type_set(t[10]) and t[11].__class__ is bool and _is_str_set(t[12])
            and all(k.__class__ is str and v.__class__ is bool for k, v in undefined.items())):
        raise ValueError("bad symbol record")
    return SymbolFacts.from_fields(t)


EMPTY = SymbolFacts({}, frozenset())


def pack_facts(f: SymbolFacts) -> tuple:
    """A compact, :mod:`marshal`-able form for the file cache: every name
    set as one NUL-joined string (one object instead of thousands, so
    loading a warm cache is a split per set), the weak flags as bytes;
    ``tpoff`` (small, and it may hold ``""``) as a sorted tuple of names,
    ``bad_relocs`` as a sorted tuple of ints; ``own_unfound`` last, NUL-joined."""
    try:
        return object.__getattribute__(f, "_packed")  # still packed: as it came
    except AttributeError:
        pass
    und = list(f.undefined)
    return ("\0".join(und), bytes(map(int, f.undefined.values())),
            "\0".join(f.defined), "\0".join(f.hidden), "\0".join(f.ifunc), "\0".join(f.undef_valued),
            "\0".join(f.plt_only), "\0".join(f.copy), "\0".join(f.unreferenced), f.nsyms,
            tuple(sorted(f.tpoff)), tuple(sorted(f.bad_relocs)), f.relr, "\0".join(f.own_unfound))


def _names(blob) -> FrozenSet[str]:
    if blob.__class__ is not str:
        raise ValueError("bad symbol record")
    return frozenset(blob.split("\0")) if blob else frozenset()


def _check_packed(t) -> None:
    if not (t.__class__ is tuple and len(t) == 14 and t[1].__class__ is bytes and t[9].__class__ is int
            and t[12].__class__ is bool and t[13].__class__ is str
            and all(x.__class__ is str for x in t[0:1] + t[2:9])
            and t[10].__class__ is tuple and all(x.__class__ is str for x in t[10])
            and t[11].__class__ is tuple and len(t[11]) <= MAX_BAD_RELOCS
            and all(x.__class__ is int and 0 <= x <= 0xFFFFFFFF for x in t[11])):
        raise ValueError("bad symbol record")
    if (t[0].count("\0") + 1 if t[0] else 0) != len(t[1]):
        raise ValueError("bad symbol record")


def _decode_packed(t) -> SymbolFacts:
    und = t[0].split("\0") if t[0] else []
    return SymbolFacts.from_fields((dict(zip(und, map(truth, t[1]))), *map(_names, t[2:9]), t[9], frozenset(t[10]),
                                    frozenset(t[11]), t[12], _names(t[13])))


def unpack_facts(t) -> SymbolFacts:
    """The inverse of :func:`pack_facts` (decoded when first used, see
    :meth:`SymbolFacts.from_packed`); ValueError on anything else."""
    return SymbolFacts.from_packed(t)
