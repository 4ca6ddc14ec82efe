"""What the subcommands share: options, the stderr reporter, error handling,
the progress counter, and printing a scan's result."""

from __future__ import annotations

import functools
import os
import posixpath
import sys
from typing import Callable, List, Optional

import click

from ..errors import EXIT_ERROR, EXIT_OK, EXIT_UNRESOLVED, RundepsError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EXIT_CODES = f"""\b
Exit codes:
  {EXIT_OK}  every needed soname resolved
  {EXIT_UNRESOLVED}  some did not (stdout still lists what did; stderr names each)
  {EXIT_ERROR}  bad usage, or a root, database, index or cache that cannot be used
"""


class Reporter:
    """One line on stderr for every problem; each distinct line once."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._seen = set()

    def _say(self, line: str) -> None:
        if line in self._seen:
            return
        self._seen.add(line)
        click.echo(line, err=True)

    def warning(self, msg: str) -> None:
        if not self.quiet:
            self._say(f"rundeps: warning: {msg}")

    def file_error(self, path: str, reason: str) -> None:
        if not self.quiet:
            self._say(f"rundeps: {path}: {reason}")

    def error(self, msg: str) -> None:
        self._say(f"rundeps: error: {msg}")


def handle_errors(fn: Callable) -> Callable:
    """Turn :class:`RundepsError` into one line and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RundepsError as exc:
            Reporter().error(str(exc))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("rundeps: interrupted", err=True)
            sys.exit(130)
        except OSError as exc:  # e.g. stdout on a full disk
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            Reporter().error(f"cannot continue:{where} {exc.strerror or exc}")
            sys.exit(EXIT_ERROR)

    return wrapper


def source_options(fn: Callable) -> Callable:
    """Options that say where packages come from (database, indexes, cache)."""
    opts = [
        click.option("--root", type=click.Path(file_okay=False), default=None,
                     help="Treat DIR as the root of an Alpine filesystem (an extracted image, a chroot): "
                          "PATHs are read inside it, its lib/apk/db/installed is the database and its "
                          "etc/ld-musl-ARCH.path the library search path. Default: /."),
        click.option("--db", "db", type=click.Path(dir_okay=False), default=None,
                     help="An installed database to use instead of ROOT/lib/apk/db/installed."),
        click.option("--index", "indexes", multiple=True, metavar="FILE|URL",
                     help="An APKINDEX.tar.gz file or URL (repeatable), used after the installed database."),
        click.option("--repo", "repos", multiple=True, metavar="URL",
                     help="A repository (repeatable); its index is URL/ARCH/APKINDEX.tar.gz."),
        click.option("--alpine", metavar="VERSION",
                     help="Use the official main and community indexes of an Alpine release (3.20, v3.20, edge)."),
        click.option("--mirror", metavar="URL", help="The mirror --alpine uses."),
        click.option("--arch", metavar="ARCH",
                     help="Resolve for ARCH (x86_64, aarch64, ...). Default: the scanned files' arch, "
                          "then ROOT/etc/apk/arch, then this machine's."),
        click.option("--keys-dir", "keys_dirs", multiple=True, type=click.Path(file_okay=False),
                     help="A folder of trusted apk public keys (repeatable), besides ROOT/etc/apk/keys."),
        click.option("--allow-untrusted", is_flag=True,
                     help="Use an index whose signature does not verify (with a warning)."),
        click.option("--offline", is_flag=True, help="Use only cached indexes; never touch the network."),
        click.option("--refresh", is_flag=True, help="Revalidate cached indexes now, whatever their age."),
        click.option("--cache-dir", type=click.Path(file_okay=False), envvar="RUNDEPS_CACHE_DIR",
                     help="Cache folder (default: $RUNDEPS_CACHE_DIR, $XDG_CACHE_HOME/rundeps, ~/.cache/rundeps)."),
        click.option("--no-cache", is_flag=True, help="Neither read nor write any cache."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def output_options(fn: Callable) -> Callable:
    opts = [
        click.option("--format", "fmt", type=click.Choice(["names", "apk", "so", "json", "tree"]),
                     default="names", show_default=True,
                     help="names: a package a line; apk: an apk add command; so: so: names for apk add; "
                          "json: everything; tree: package -> soname -> files."),
        click.option("--all", "all_packages", is_flag=True,
                     help="List every package needed, not only the minimal set."),
        click.option("--virtual", default=".rundeps", show_default=True,
                     help="The virtual package name --format apk uses."),
        click.option("--allow-unresolved", is_flag=True, help="Exit 0 even when some sonames do not resolve."),
        click.option("--dlopen", "use_dlopen", is_flag=True,
                     help="Also read the tree's Python files for libraries loaded at run time "
                          "(ctypes, cffi): report them and add the packages that provide them."),
        click.option("--by", type=click.Choice(["package", "distribution"]), default="package", show_default=True,
                     help="Group --format tree by apk package, or by the pip distribution that owns each file "
                          "(dist-info RECORD, egg-info; files no distribution owns form one group)."),
        click.option("--build-deps", "build_deps", metavar="NAME", default=None,
                     help="The root's virtual build package (default .build-deps): say what deleting it frees "
                          "and what the run-time set keeps (JSON installed_size, and the size line on a terminal)."),
        click.option("-q", "--quiet", is_flag=True, help="Print only errors on stderr."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def add_details(res, root: str, reporter: "Reporter", kw) -> None:
    """The stages only some outputs need: pip distributions (JSON, the tree by
    distribution) and installed sizes (JSON, the size line on a terminal)."""
    from ..api import add_distributions, add_installed_size

    if kw["by"] == "distribution" and kw["fmt"] != "tree":
        from ..errors import UsageError

        raise UsageError("--by distribution groups --format tree; use it with --format tree")
    if kw["fmt"] == "json" or kw["by"] == "distribution":
        add_distributions(res, root)
    if kw["fmt"] == "json" or kw["build_deps"] or _size_line_wanted(kw):
        add_installed_size(res, root, kw["build_deps"], reporter.warning)


def _size_line_wanted(kw) -> bool:
    return not kw["quiet"] and sys.stderr.isatty()


def make_sources(kw):
    from ..api import Sources

    return Sources(
        db=kw["db"],
        indexes=kw["indexes"],
        repos=kw["repos"],
        alpine=kw["alpine"],
        mirror=kw["mirror"],
        keys_dirs=kw["keys_dirs"],
        allow_untrusted=kw["allow_untrusted"],
        offline=kw["offline"],
        refresh=kw["refresh"],
        cache_dir=kw["cache_dir"],
        use_cache=not kw["no_cache"],
    )


class Progress:
    """A file counter on stderr, only when stderr is a terminal; erased when done."""

    def __init__(self, enabled: bool, label: str, stream=None):
        self.stream = stream or sys.stderr
        self.label = label
        self.active = enabled and self.stream.isatty()
        self.shown = False

    def __call__(self, n: int) -> None:
        if self.active:
            self.stream.write(f"\r{self.label}: {n} files")
            self.stream.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


def finish(res, reporter: Reporter, kw) -> int:
    """Print the result and return the exit code."""
    from ..report import render

    click.echo(render(res, kw["fmt"], kw["all_packages"], kw["virtual"], by=kw.get("by", "package")), nl=False)
    if getattr(res, "installed_size", None) is not None and _size_line_wanted(kw):
        click.echo(f"rundeps: {res.installed_size.summary()}", err=True)
    unresolved = res.unresolved
    say = reporter.warning if kw["allow_unresolved"] else reporter.error
    for soname, files in unresolved.items():
        more = f" and {len(files) - 1} more" if len(files) > 1 else ""
        say(f"{soname} not found (needed by {files[0]}{more})")
    for path, sonames in res.glibc_linked.items():
        reporter.warning(
            f"{path} is linked against glibc ({', '.join(sonames) or 'ld-linux'}); "
            "it needs a musl build (or gcompat) on Alpine"
        )
    if unresolved and not kw["allow_unresolved"]:
        return EXIT_UNRESOLVED
    return EXIT_OK


def add_dlopen(res, paths: List[str], root: str, reporter: Reporter, use: bool) -> None:
    """With ``--dlopen``: find run-time loaded libraries in the tree's Python
    files, report them and add their packages. (Off by default: reading every
    ``.py`` file of a large site-packages costs more than the ELF scan.)"""
    if not use:
        return
    from ..dlopen import scan_tree_sources

    for f in res.apply_dlopen(scan_tree_sources(paths, root), add=True):
        reporter.warning(f"{f.path}:{f.line}: {f.call}({f.name!r}) loads a library no package provides")


def parse_root(root: Optional[str]):
    if root is None:
        return "/", False
    if not os.path.isdir(root):
        from ..errors import UsageError

        raise UsageError(f"root {root} does not exist or is not a folder")
    return os.path.abspath(root), True


def inroot(path: str, root: str, explicit_root: bool) -> str:
    """A PATH argument as an in-root absolute path."""
    if explicit_root:
        return posixpath.normpath("/" + path.lstrip("/"))
    return os.path.abspath(path)
