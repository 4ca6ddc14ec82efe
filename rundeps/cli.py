"""The ``rundeps`` command line (a thin layer over :mod:`rundeps.api`)."""

from __future__ import annotations

import functools
import os
import posixpath
import sys
from typing import Callable, List, Optional

import click

from . import __version__
from .errors import EXIT_ERROR, EXIT_OK, EXIT_UNRESOLVED, RundepsError

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
        click.option("-q", "--quiet", is_flag=True, help="Print only errors on stderr."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def make_sources(kw):
    from .api import Sources

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


@click.group(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="rundeps")
def cli():
    """Find the apk packages an Alpine image needs at run time.

    rundeps reads the ELF files of a tree (or a wheel), resolves every needed
    soname the way musl's loader would -- libraries the tree or wheel carries
    first -- and maps the rest to the apk packages that provide them.

    \b
    In a Dockerfile, after pip install, instead of the scanelf pipeline:
      runDeps="$(rundeps scan)" \\
        && apk add --no-cache --virtual .rundeps $runDeps \\
        && apk del .build-deps
    """


class _Progress:
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
    from .report import render

    click.echo(render(res, kw["fmt"], kw["all_packages"], kw["virtual"]), nl=False)
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
    from .dlopen import scan_tree_sources

    for f in res.apply_dlopen(scan_tree_sources(paths, root), add=True):
        reporter.warning(f"{f.path}:{f.line}: {f.call}({f.name!r}) loads a library no package provides")


@cli.command(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip files whose path matches GLOB (repeatable), e.g. '*tkinter*'.")
@click.option("--progress/--no-progress", default=True,
              help="Count scanned files on stderr while it is a terminal.")
@source_options
@output_options
@handle_errors
def scan(paths, exclude, progress, **kw):
    """Print the packages the ELF files under PATH need (default: /usr/local).

    PATHs are folders or files as seen inside the root. Libraries that the
    tree carries itself (a wheel's vendored <pkg>.libs/, /usr/local/lib) need
    no package; every other soname is resolved to the installed package that
    provides it, or to one from the repository indexes you name. Packages that
    another listed package pulls in anyway are dropped (--all keeps them).

    \b
    Examples:
      rundeps scan                              # /usr/local of this system
      rundeps scan --format apk /usr/local      # an apk add line
      rundeps scan --root ./rootfs --format json /usr/local
      rundeps scan --alpine 3.20 --arch x86_64 ./site-packages
    """
    from .api import check_tree

    reporter = Reporter(kw["quiet"])
    root, explicit_root = _root(kw["root"])
    paths = [_inroot(p, root, explicit_root) for p in (paths or ("/usr/local",))]
    bar = _Progress(progress, "Scanning")
    try:
        res = check_tree(
            paths, root=root, sources=make_sources(kw), exclude=exclude, arch=kw["arch"],
            explicit_root=explicit_root, on_error=reporter.file_error, on_warning=reporter.warning,
            progress=bar,
        )
    finally:
        bar.close()
    add_dlopen(res, paths, root, reporter, kw["use_dlopen"])
    sys.exit(finish(res, reporter, kw))


@cli.command(context_settings=CONTEXT)
@click.argument("name")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files whose path matches GLOB (repeatable).")
@click.option("--dlopen", "use_dlopen", is_flag=True,
              help="Also count libraries the tree's Python code loads at run time (ctypes, cffi).")
@source_options
@handle_errors
def why(name, paths, exclude, use_dlopen, **kw):
    """Explain why NAME (a package or a soname) is needed by the files under PATH.

    Prints the chain file -> soname -> package; for a package left out of
    the minimal set, the chosen package that pulls it in through D:.
    Takes the same PATHs and source options as scan.

    \b
    Examples:
      rundeps why libssl3
      rundeps why libz.so.1 --root ./rootfs /usr/local

    Exits 0 when NAME is needed, 1 when nothing under PATH needs it, 2 on errors.
    """
    from .api import check_tree
    from .report import explain

    reporter = Reporter(quiet=True)
    root, explicit_root = _root(kw["root"])
    paths = [_inroot(p, root, explicit_root) for p in (paths or ("/usr/local",))]
    res = check_tree(
        paths, root=root, sources=make_sources(kw), exclude=exclude, arch=kw["arch"],
        explicit_root=explicit_root, on_error=reporter.file_error, on_warning=reporter.warning,
    )
    add_dlopen(res, paths, root, reporter, use_dlopen)
    lines = explain(res, name)
    if lines is None:
        Reporter().error(f"nothing under {', '.join(paths)} needs {name}")
        sys.exit(EXIT_UNRESOLVED)
    click.echo("\n".join(lines))
    sys.exit(EXIT_OK)


@cli.command(context_settings=CONTEXT)
@click.argument("wheels", nargs=-1, required=True, metavar="FILE.whl|DIR...")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a verdict a wheel, then details; json: a list of objects, one a wheel.")
@click.option("--dlopen", "use_dlopen", is_flag=True,
              help="Add packages for libraries the wheel's Python code loads at run time.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors on stderr.")
@source_options
@handle_errors
def wheel(wheels, fmt, use_dlopen, quiet, **kw):
    """Check which system libraries wheels need on Alpine, without installing them.

    Reads the ELF members straight from each zip (a folder: every *.whl in
    it). The wheel's own files count as in-tree (auditwheel's <pkg>.libs/);
    the rest resolves against the installed database or the indexes you name,
    exactly as scan does. A musllinux wheel whose only externals are musl's
    own needs nothing beyond the base image; a manylinux (glibc) wheel is
    reported as glibc-linked; an arch other than the target (--arch, the
    root's, else this machine's) is reported.

    \b
    Examples:
      rundeps wheel dist/
      rundeps wheel --alpine 3.20 --arch aarch64 numpy-2.1.0-cp312-cp312-musllinux_1_2_aarch64.whl

    Exits 0 when every wheel is usable as it is, 1 when one needs a glibc
    build, another arch or a library nothing provides, 2 on errors (a wheel
    that cannot be read is reported and the others are still checked).
    """
    import json

    from .api import check_wheel, load_universe, target_arch
    from .errors import SourceError
    from .report import to_json_dict
    from .wheel import WheelError, iter_wheels

    reporter = Reporter(quiet)
    root, explicit_root = _root(kw["root"])
    sources = make_sources(kw)
    paths: List[str] = []
    for w in wheels:
        paths.extend(iter_wheels(w))
    target = target_arch(kw["arch"], root, explicit_root)
    universe = None
    try:
        universe = load_universe(root, sources, target, reporter.warning, explicit_root=explicit_root)
    except SourceError:
        if sources.names_index() or sources.db:
            raise
    code = EXIT_OK
    results = []
    for path in paths:
        try:
            check = check_wheel(
                path, root=root, sources=sources, arch=kw["arch"], explicit_root=explicit_root,
                on_warning=reporter.warning,
                on_problem=lambda member, reason, p=path: reporter.file_error(f"{p}:{member}", reason),
                universe=universe,
            )
        except WheelError as exc:
            reporter.error(str(exc))
            code = EXIT_ERROR
            continue
        res = check.resolution
        if res is not None:
            res.apply_dlopen(check.wheel.dlopen(), add=use_dlopen)
        if not check.ok and code == EXIT_OK:
            code = EXIT_UNRESOLVED
        results.append(check)
        if fmt == "text":
            _print_wheel(check)
        if check.no_sources and res is not None and set(res.unresolved) - set(check.base_image):
            reporter.warning("no installed database or index to map the rest to packages: "
                             "name one with --alpine VERSION, --index or --db")
    if fmt == "json":
        out = []
        for check in results:
            ws = check.wheel
            item = {
                "wheel": ws.path, "name": ws.name, "version": ws.version,
                "tags": sorted("-".join(t) for t in ws.tags), "libc": ws.libc, "arch": ws.arch,
                "target_arch": check.target_arch, "ok": check.ok, "verdict": check.verdict,
                "base_image": check.base_image,
                "problems": [{"member": m, "reason": r} for m, r in ws.problems],
            }
            if check.resolution is not None:
                item.update(to_json_dict(check.resolution))
            out.append(item)
        click.echo(json.dumps(out, indent=2))
    sys.exit(code)


def _print_wheel(check) -> None:
    ws = check.wheel
    name = os.path.basename(ws.path)
    click.echo(f"{name}: {ws.libc}, {ws.arch or 'any arch'}: {check.verdict}")
    res = check.resolution
    if res is None:
        return
    for soname, lib in res.in_tree.items():
        click.echo(f"  vendored  {soname} -> {lib}")
    for soname, pkg in res.providers.items():
        click.echo(f"  package   {soname} -> {pkg.name}")
    for soname in sorted({s for v in res.glibc_linked.values() for s in v}):
        click.echo(f"  glibc     {soname}")
    for soname, files in res.unresolved.items():
        if soname in check.base_image:
            click.echo(f"  base      {soname} -> {check.base_image[soname]} (in every Alpine image)")
        else:
            click.echo(f"  missing   {soname} (needed by {files[0]})")
    for f in res.dlopen:
        pkg = res.extra.get(f.name)
        click.echo(f"  dlopen    {f.name} ({f.path}:{f.line}, {f.call})" + (f" -> {pkg.name}" if pkg else ""))


@cli.group(context_settings=CONTEXT)
def index():
    """Inspect, refresh or drop the cached repository indexes.

    The indexes are the ones the source options name (--index, --repo,
    --alpine, or the root's etc/apk/repositories); show without any lists
    every cached index.
    """


def _index_locations(kw, allow_all: bool):
    from .api import index_locations, target_arch

    root, explicit_root = _root(kw["root"])
    sources = make_sources(kw)
    arch = target_arch(kw["arch"], root, explicit_root)
    if sources.names_index():
        return index_locations(sources, root, arch), root, arch, sources
    if explicit_root:
        return index_locations(sources, root, arch, from_root=True), root, arch, sources
    if allow_all:
        return [], root, arch, sources
    from .errors import UsageError

    raise UsageError("name the indexes: --index, --repo, --alpine or --root")


def _print_infos(infos, fmt: str) -> None:
    import json
    from dataclasses import asdict

    from .fetch import format_age

    if fmt == "json":
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    for i in infos:
        click.echo(i.location)
        if not i.cached:
            click.echo("  not cached")
        if not i.sha256:
            continue
        algo = {"sha1": "RSA/SHA-1", "sha256": "RSA/SHA-256"}.get(i.algo or "", i.algo or "?")
        trust = "verified" if i.verified else "NOT verified"
        click.echo(f"  description  {i.description or '-'}")
        click.echo(f"  arch         {i.arch or '-'}")
        click.echo(f"  packages     {i.package_count}")
        click.echo(f"  so: provides {i.so_provide_count}")
        click.echo(f"  signer       {i.signer or '-'} ({algo}, {trust})")
        if i.cached:
            click.echo(f"  checked      {format_age(i.age)}")


@index.command("show", context_settings=CONTEXT)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@source_options
@handle_errors
def index_show(fmt, **kw):
    """Describe cached indexes: release, arch, packages, so: provides, signer, age.

    Reads only the cache; never touches the network.
    """
    from .api import index_cache
    from .fetch import index_info

    locations, _root_dir, _arch, sources = _index_locations(kw, allow_all=True)
    cache = index_cache(sources, Reporter().warning)
    try:
        _print_infos(index_info(locations, cache), fmt)
    finally:
        if cache is not None:
            cache.close()


@index.command("update", context_settings=CONTEXT)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@source_options
@handle_errors
def index_update(fmt, **kw):
    """Fetch the named indexes now (a conditional request when cached) and verify them."""
    from .api import index_cache, trusted_keys
    from .fetch import update_indexes

    reporter = Reporter()
    locations, root, arch, sources = _index_locations(kw, allow_all=False)
    cache = index_cache(sources, reporter.warning)
    try:
        infos = update_indexes(
            locations, trusted_keys(root, arch, sources), cache=cache,
            allow_untrusted=sources.allow_untrusted, on_warning=reporter.warning,
        )
    finally:
        if cache is not None:
            cache.close()
    _print_infos(infos, fmt)


@index.command("clear", context_settings=CONTEXT)
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="RUNDEPS_CACHE_DIR",
              help="Cache folder (default: $RUNDEPS_CACHE_DIR, $XDG_CACHE_HOME/rundeps, ~/.cache/rundeps).")
@handle_errors
def index_clear(cache_dir):
    """Drop every cached index."""
    from .cachedir import default_cache_dir
    from .fetch import clear_cache

    directory = default_cache_dir(cache_dir)
    removed = clear_cache(directory)
    click.echo(f"cleared {os.path.join(directory, 'index')}" if removed else f"nothing cached in {directory}")


def _root(root: Optional[str]):
    if root is None:
        return "/", False
    if not os.path.isdir(root):
        from .errors import UsageError

        raise UsageError(f"root {root} does not exist or is not a folder")
    return os.path.abspath(root), True


def _inroot(path: str, root: str, explicit_root: bool) -> str:
    """A PATH argument as an in-root absolute path."""
    if explicit_root:
        return posixpath.normpath("/" + path.lstrip("/"))
    return os.path.abspath(path)


def main(argv: Optional[List[str]] = None) -> None:
    """The console script and ``python -m rundeps``.

    Once the command is done and its output flushed, the process leaves with
    ``os._exit``: tearing down the interpreter (freeing every object of a
    large scan) costs about 10 ms, a tenth of a repeat run. Nothing is lost:
    caches are written and closed inside the command.
    """
    try:
        cli.main(args=argv, prog_name="rundeps")
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        click.echo(code, err=True)
        code = 1
    try:
        sys.stdout.flush()
    except OSError as exc:
        click.echo(f"rundeps: error: cannot continue: {exc.strerror or exc}", err=True)
        code = 2
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
