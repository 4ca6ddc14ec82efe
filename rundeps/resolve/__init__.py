"""Resolve needed sonames the way musl's loader would, then to apk packages.

For every ``DT_NEEDED`` entry of every ELF object, in this order:

1. names musl's loader treats as itself (``libc.so``, ``ld-musl-*``, the
   ``libc.``/``libm.``/``libpthread.``/``libdl.``/``librt.``/``libutil.``/
   ``libxnet.`` families) are provided by ``musl``;
2. the loader's search, rule by rule as :mod:`rundeps.resolve.search` states it
   (already loaded names, ``LD_LIBRARY_PATH``, the run paths of the
   ``needed_by`` chain, the ``PT_INTERP``-located path file or musl's default
   ``/lib:/usr/local/lib:/usr/lib``); :meth:`Resolver.load_order` gives one
   program's loads in musl's order.
   A library found there that an installed package owns resolves to that
   package; one that nobody owns is *in-tree* and its own needs are resolved
   in turn.  Without an installed database nothing can be owned, so the
   system folders are searched only after the indexes;
3. the package providing ``so:<soname>`` (installed database, then indexes);
4. otherwise the soname is unresolved.

Objects that are linked against glibc (``PT_INTERP`` ``ld-linux*`` or a
``libc.so.6`` need) are reported as glibc-linked and resolved like any other,
as musl's loader does: ``libc.so.6``, ``libm.so.6``, ``libpthread.so.0`` ...
are names musl serves itself (its ``reserved`` prefixes), every other name
(``libstdc++.so.6``, ``libresolv.so.2``, ``ld-linux-x86-64.so.2``) is looked
up in the search path and the packages. They are first counted as files that
will not load (:attr:`Resolution.will_not_load`, the conservative gate);
binding their symbols (:mod:`rundeps.bind`) then decides, and one that binds
completely is only a warning.  The exception is a glibc-linked
*program* whose ``PT_INTERP`` loader is present in the root (a glibc
installed beside musl, as the ``glibc`` packages that install into
``/usr/glibc-compat`` do): it runs under that loader, so its needs (and the
needs of what it loads) are resolved in that glibc's own search path -- the
folders of ``<prefix>/etc/ld.so.conf`` and the loader's own folder -- and it
is not counted as failing (:attr:`Resolution.runs_under_glibc`).  gcompat's
loader (a file the ``gcompat`` package owns) is not glibc's: it runs musl's.

The module works on a small filesystem interface (:class:`TreeFS` for a
root folder) so that wheels, read from their zip, and saved images
(:class:`ImageFS`), read from their layers, resolve the same way.
"""

from .fs import ImageFS, Tree, TreeFS, WheelFS
from .resolver import (MAIN_PROGRAMS, GlibcLoader, Resolver, SearchSettings, is_glibc_linked, is_glibc_loader,
                       is_musl_builtin, majority_arch)
from .result import GLIBC_REASON, Edge, EdgeKind, Resolution, Search, Via, judge
from .search import parse_ld_so_conf

__all__ = ["Edge", "EdgeKind", "Via", "Search", "SearchSettings", "judge", "Resolution", "Resolver", "Tree", "TreeFS", "WheelFS", "ImageFS", "GlibcLoader", "MAIN_PROGRAMS",
           "GLIBC_REASON", "is_glibc_linked", "is_glibc_loader", "is_musl_builtin", "majority_arch",
           "parse_ld_so_conf"]
