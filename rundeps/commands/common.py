"""What the subcommands share: options, the stderr reporter, error handling,
the progress counter, and printing a scan's result."""

from __future__ import annotations

import dataclasses
import functools
import os
import posixpath
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Set, TextIO, Tuple, Union

import click

from ..errors import EXIT_ERROR, EXIT_OK, EXIT_UNRESOLVED, RundepsError

if TYPE_CHECKING:
    from ..api import ImageRequest, TreeRequest

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EXIT_CODES = f"""\b
Exit codes:
  {EXIT_OK}  every soname the loads need resolved, and every file loaded on its own (program,
     module, library opened by path or by name) would load under musl -- or cannot be
     checked here (a note says which)
  {EXIT_UNRESOLVED}  some did not resolve, or a file's load fails (a library or symbol missing, a
     relocation musl refuses, a glibc-only loader, or any of these in a library it loads;
     --allow-glibc accepts glibc-linked files), or with --require-elf a PATH holds no ELF
     file; stdout still lists what resolved, stderr names each
  {EXIT_ERROR}  bad usage, or a root, image, database, index or cache that cannot be used
"""


class Reporter:
    """One line on stderr for every problem; each distinct line once."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._seen: Set[str] = set()

    def _say(self, line: str) -> None:
        if line in self._seen:
            return
        self._seen.add(line)
        click.echo(line, err=True)

    def warning(self, msg: str) -> None:
        if not self.quiet:
            self._say(f"rundeps: warning: {msg}")

    def note(self, msg: str) -> None:
        """Something the user should know that is not a problem."""
        if not self.quiet:
            self._say(f"rundeps: note: {msg}")

    def file_error(self, path: str, reason: str) -> None:
        if not self.quiet:
            self._say(f"rundeps: {path}: {reason}")

    def hint(self, msg: str) -> None:
        if not self.quiet:
            self._say(f"rundeps: hint: {msg}")

    def error(self, msg: str) -> None:
        self._say(f"rundeps: error: {msg}")

    def say(self, problem) -> None:
        """A :class:`rundeps.report.problems.Problem` at its level."""
        if problem.level == "plain":
            if not self.quiet:
                click.echo(problem.text, err=True)
            return
        say = {"error": self.error, "warning": self.warning, "note": self.note, "hint": self.hint}[problem.level]
        say(problem.text)


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


def check_virtual(ctx, param, value):
    """``--virtual``: a name apk accepts for a virtual package (not empty, no
    blanks or shell-sensitive characters, not an option)."""
    import re

    if not value or not re.fullmatch(r"[A-Za-z0-9._+][A-Za-z0-9._+-]*", value):
        raise click.BadParameter(
            f"{value!r} is not a package name apk accepts (letters, digits, '.', '_', '+', '-'; "
            "not empty, not starting with '-')")
    return value


def check_arch(ctx, param, value):
    """``--arch``: one of the arch names rundeps knows (Alpine's)."""
    if value is None:
        return None
    from ..platform import KNOWN_ARCHES

    if value not in KNOWN_ARCHES:
        raise click.BadParameter(f"unknown arch {value!r} (rundeps knows {', '.join(KNOWN_ARCHES)})")
    return value


def not_special(what: str):
    """An option callback refusing a FIFO, device or socket where ``what``
    (a file, a folder) is read, before anything opens it (one line, exit 2)."""

    def callback(ctx, param, value):
        from ..errors import refuse_special

        for v in value if isinstance(value, tuple) else (value,):
            if v is not None:
                refuse_special(v, what, option=param.opts[0])
        return value

    return callback


SOURCE_OPTIONS = ("root", "db", "index", "repo", "alpine", "mirror", "arch", "keys-dir", "allow-untrusted",
                  "offline", "refresh", "cache-dir", "no-cache")
"""The source options, in the order ``--help`` lists them."""


ROOT_USES = {
    "paths": "PATHs are read inside it, its lib/apk/db/installed is the database and its etc/ld-musl-ARCH.path "
             "the library search path",
    "wheel": "its lib/apk/db/installed is the database and its musl (and gcompat) the ones symbols bind against",
    "index": "its etc/apk/repositories names the indexes, etc/apk/keys holds the trusted keys and etc/apk/arch "
             "gives the arch",
}
"""What ``--root`` gives each kind of command: one that reads PATHs, ``wheel``, ``index``."""

ARCH_DEFAULTS = {
    "paths": "the scanned files' arch, then ROOT/etc/apk/arch, then this machine's",
    "wheel": "ROOT/etc/apk/arch, then this machine's",
    "index": "ROOT/etc/apk/arch, then this machine's",
}
"""Where the arch comes from without ``--arch``, by kind of command."""

ROOT_HELP = "Treat DIR as the root of an Alpine filesystem (an extracted image, a chroot)"
ARCH_HELP = "The target arch (x86_64, aarch64, ...)"
FORMAT_HELP = "How to print the result"
"""The first words of ``--root``, ``--arch`` and ``--format`` help, the same in every command."""


def _source_option(name: str, scope: str = "paths"):
    return {
        "root": lambda: click.option(
            "--root", type=click.Path(file_okay=False), default=None, envvar="RUNDEPS_ROOT", metavar="DIR",
            callback=not_special("folder"),
            help=f"{ROOT_HELP}: {ROOT_USES[scope]}. Default: $RUNDEPS_ROOT, else /."),
        "db": lambda: click.option(
            "--db", "db", type=click.Path(dir_okay=False), default=None, callback=not_special("file"),
            help="An installed database to use instead of ROOT/lib/apk/db/installed."),
        "index": lambda: click.option(
            "--index", "indexes", multiple=True, metavar="FILE|URL", callback=not_special("file"),
            help="An APKINDEX.tar.gz file or URL (repeatable), used after the installed database."),
        "repo": lambda: click.option(
            "--repo", "repos", multiple=True, metavar="URL",
            help="A repository (repeatable); its index is URL/ARCH/APKINDEX.tar.gz."),
        "alpine": lambda: click.option(
            "--alpine", metavar="VERSION",
            help="Use the official main and community indexes of an Alpine release (3.20, v3.20, edge)."),
        "mirror": lambda: click.option("--mirror", metavar="URL", help="The mirror --alpine uses."),
        "arch": lambda: click.option(
            "--arch", metavar="ARCH", callback=check_arch,
            help=f"{ARCH_HELP}. Default: {ARCH_DEFAULTS[scope]}."),
        "keys-dir": lambda: click.option(
            "--keys-dir", "keys_dirs", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
            callback=not_special("folder"),
            help="A folder of trusted apk public keys (repeatable), instead of ROOT/etc/apk/keys "
                 "(when neither gives a key: the Alpine keys shipped with rundeps)."),
        "allow-untrusted": lambda: click.option(
            "--allow-untrusted", is_flag=True,
            help="Use an index whose signature does not verify (with a warning)."),
        "offline": lambda: click.option(
            "--offline", is_flag=True,
            help="Use only cached indexes (rundeps' cache, the root's apk cache); never touch the network."),
        "refresh": lambda: click.option(
            "--refresh", is_flag=True,
            help="Revalidate cached indexes now, whatever their age (the root's apk cache is not used)."),
        "cache-dir": lambda: click.option(
            "--cache-dir", type=click.Path(file_okay=False), envvar="RUNDEPS_CACHE_DIR", metavar="DIR",
            callback=not_special("folder"),
            help="Cache folder (default: $RUNDEPS_CACHE_DIR, $XDG_CACHE_HOME/rundeps, ~/.cache/rundeps)."),
        "no-cache": lambda: click.option("--no-cache", is_flag=True, help="Neither read nor write any cache."),
    }[name]()


def source_options(fn: Optional[Callable] = None, *, only: Optional[Tuple[str, ...]] = None, scope: str = "paths"):
    """Options that say where packages come from (database, indexes, cache).

    ``@source_options`` adds them all; ``@source_options(only=(...))`` only
    the named ones (``index`` subcommands list only the options they use);
    ``scope`` (``paths``, ``wheel``, ``index``) words ``--root`` and
    ``--arch`` for the kind of command."""

    def decorate(f: Callable) -> Callable:
        names = [n for n in SOURCE_OPTIONS if only is None or n in only]
        for name in reversed(names):
            f = _source_option(name, scope)(f)
        return f

    return decorate(fn) if fn is not None else decorate


def image_options(fn: Callable) -> Callable:
    """``--image`` and ``--platform``: check a saved image instead of a root folder."""
    opts = [
        click.option("--image", type=click.Path(exists=True), default=None, metavar="PATH",
                     help="Check a saved image instead of a root folder, reading it in memory (nothing is "
                          "extracted): a 'docker save' archive, an OCI image layout (a folder or a tar of one) "
                          "or a 'docker export' tar. Its layers are applied as the OCI spec says; its apk "
                          "database, repositories, keys, ld-musl and config Env (LD_LIBRARY_PATH) are used "
                          "as --root would; PATHs are inside the image. A note says whether the program its "
                          "Entrypoint/Cmd runs loads."),
        click.option("--platform", metavar="OS/ARCH[/VARIANT]", default=None,
                     help="With --image: the image to check in a multi-platform index "
                          "(linux/amd64, linux/arm64/v8, ...)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


OPTION_ORDER = (
    # what is read
    "exclude", "no_default_excludes",
    # the target
    "root", "image", "platform", "db", "indexes", "repos", "alpine", "mirror", "arch", "musl_version",
    "keys_dirs", "allow_untrusted",
    # the checks
    "symbols", "library_path", "python_tree", "use_dlopen", "conditional_loads", "gcompat_file",
    "allow_unresolved", "allow_glibc", "require_elf",
    # the output
    "fmt", "sbom_file", "all_packages", "virtual", "by", "build_deps", "quiet", "progress",
    # cache and speed
    "offline", "refresh", "cache_dir", "no_cache", "jobs",
)
"""Every command lists its options in this order (by parameter name):
inputs, target, checks, output, cache and speed."""


def ordered_options(cmd: click.Command) -> click.Command:
    """``cmd`` with its options sorted by :data:`OPTION_ORDER` (arguments
    first, an option not listed there last), so ``--help`` lists the
    shared options in one order in every command."""
    def key(param):
        if isinstance(param, click.Argument):
            return -1
        return OPTION_ORDER.index(param.name) if param.name in OPTION_ORDER else len(OPTION_ORDER)

    cmd.params.sort(key=key)
    return cmd


@dataclass(frozen=True)
class Target:
    """What ``--root``/``--image``/``--platform`` name: the root (``/``, or
    a folder given with ``--root``: ``explicit_root``) or a saved image."""

    root: str = "/"
    explicit_root: bool = False
    image: Optional[str] = None
    platform: Optional[str] = None

    def inroot(self, path: str) -> str:
        """A PATH argument as an in-root absolute path."""
        return inroot(path, self.root, self.explicit_root)

    def request(self, paths: Sequence[str], sources, options) -> Union["TreeRequest", "ImageRequest"]:
        """The request that checks the in-root ``paths`` of this target."""
        from ..api import ImageRequest, TreeRequest

        if self.image is not None:
            return ImageRequest(self.image, tuple(paths), sources, options, self.platform)
        return TreeRequest(tuple(paths), self.root, sources, options)


def parse_target(kw) -> Target:
    """The :class:`Target` of ``--root`` / ``--image``; both is a :class:`UsageError`."""
    from ..errors import UsageError

    image = kw.get("image")
    if image is not None:
        if kw.get("root") is not None:
            raise UsageError("--root and --image name two targets: give one")
        return Target("/", True, image, kw.get("platform"))
    if kw.get("platform") is not None:
        raise UsageError("--platform chooses among the images of --image: give --image too")
    root, explicit_root = parse_root(kw.get("root"))
    return Target(root, explicit_root)


@dataclass(frozen=True)
class Output:
    """How a command prints its result and what its exit code lets through,
    from its output options."""

    fmt: str = "names"
    all_packages: bool = False
    virtual: str = ".rundeps"
    by: str = "package"
    allow_unresolved: bool = False
    allow_glibc: bool = False
    require_elf: bool = False
    quiet: bool = False
    sbom_file: Optional[str] = None
    build_deps: Optional[str] = None

    @classmethod
    def from_options(cls, kw) -> "Output":
        """The output the options ask for; combinations that cannot work are
        refused here, before any scanning."""
        out = cls(**{f.name: kw[f.name] for f in dataclasses.fields(cls) if kw.get(f.name) is not None})
        if out.by == "distribution" and out.fmt != "tree":
            from ..errors import UsageError

            raise UsageError("--by distribution groups --format tree; use it with --format tree")
        return out

    @property
    def size_line(self) -> bool:
        """The line on stderr that says what the set adds to the image: only on a terminal."""
        return not self.quiet and sys.stderr.isatty()


def output_options(fn: Callable) -> Callable:
    opts = [
        click.option("--format", "fmt", type=click.Choice(["names", "apk", "so", "json", "tree", "cyclonedx"]),
                     default="names", show_default=True,
                     help=f"{FORMAT_HELP}. names: a package a line (for $(rundeps scan)); apk: an apk add "
                          "command; so: so: names for apk add; json: one JSON object with everything; "
                          "tree: package -> soname -> files; cyclonedx: a CycloneDX SBOM."),
        click.option("--all", "all_packages", is_flag=True,
                     help="List every package needed, not only the minimal set."),
        click.option("--virtual", default=".rundeps", show_default=True, callback=check_virtual,
                     help="The virtual package name --format apk uses."),
        click.option("--allow-unresolved", is_flag=True, help="Exit 0 even when some sonames do not resolve."),
        click.option("--require-elf", is_flag=True,
                     help="Exit 1 when a PATH holds no ELF file (by default a warning: a tree of Python "
                          "code alone needs no package)."),
        click.option("--allow-glibc", is_flag=True,
                     help="Exit 0 even when some files are linked against glibc (they are still reported)."),
        click.option("--dlopen", "use_dlopen", is_flag=True,
                     help="Also read the tree's Python files for libraries loaded at run time "
                          "(ctypes, cffi): report them and add the packages that provide them."),
        click.option("--conditional-loads", is_flag=True,
                     help="With --dlopen, also add the loads of submodules their package's own import "
                          "does not reach (otherwise reported as 'when PKG.MOD is imported')."),
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


def binding_options(fn: Callable) -> Callable:
    """Options for binding symbols as musl does."""
    opts = [
        click.option("--symbols/--no-symbols", "symbols", default=None,
                     help="Bind every undefined symbol as musl's loader does and fail on files that "
                          "would not load (missing symbol, missing library, glibc-only loader): on by "
                          "default. --no-symbols checks only that every needed library is found, "
                          "in a fraction of the time on a first run."),
        click.option("--musl", "musl_version", metavar="VERSION",
                     help="Check symbols against this musl's shipped export list (1.2.5, 1.2.3, ...) "
                          "instead of the root's own musl (default: the root's lib/ld-musl-ARCH.so.1, "
                          "else the list for --alpine, else the newest list)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def python_tree_option(fn: Callable) -> Callable:
    """``--python-tree/--no-python-tree``: which scanned folders are Python import roots."""
    return click.option(
        "--python-tree/--no-python-tree", "python_tree", default=None,
        help="Treat every PATH as a Python import root, whose shared objects load into a Python process "
             "where the interpreter's Py* names bind (default: a folder is one when its path has site-packages "
             "or lib/pythonX.Y, or it holds *.dist-info/*.egg-info folders or extension modules such as "
             "NAME.cpython-312-x86_64-linux-musl.so; --no-python-tree: by its path only). Use it for a folder "
             "Python imports from that shows neither (only libraries opened with ctypes), and --no-python-tree "
             "for one holding such files that Python does not import from.")(fn)


def jobs_option(fn: Callable) -> Callable:
    """``--jobs``: how many processes read symbol tables."""
    return click.option("--jobs", "-j", type=click.IntRange(min=1), default=2, show_default=True, metavar="N",
                        help="Processes reading symbol tables on a run that has many to read: 2 shares them "
                             "with one forked child on a machine with two or more cores; 1 reads them all "
                             "in this process. The result is the same.")(fn)


def check_options(kw, output: Output, **fields):
    """The :class:`rundeps.api.CheckOptions` the common options of ``kw``
    ask for (``fields``: the command's own), the detail stages included
    only when the ``output`` needs them: distributions (JSON, the tree by
    distribution, an SBOM), installed sizes (JSON, ``--build-deps``, the
    size line on a terminal)."""
    from ..api import CheckOptions

    fmt, by = output.fmt, output.by
    chosen = dict(
        arch=kw["arch"], symbols=kw["symbols"] is not False, musl_version=kw["musl_version"], jobs=kw["jobs"],
        runtime_loads=bool(kw.get("use_dlopen")), conditional_loads=bool(kw.get("conditional_loads")),
        distributions=fmt in ("json", "cyclonedx") or by == "distribution" or bool(output.sbom_file),
        installed_size=fmt == "json" or bool(output.build_deps) or output.size_line,
        build_deps=output.build_deps, python_tree=kw.get("python_tree"))
    chosen.update(fields)
    return CheckOptions(**chosen)


def diagnostics(reporter: "Reporter", progress=None):
    """The :class:`rundeps.api.Diagnostics` that prints through ``reporter``."""
    from ..api import Diagnostics

    return Diagnostics(warning=reporter.warning, note=reporter.note, file_error=reporter.file_error,
                       progress=progress)


def make_sources(kw):
    from ..api import Sources
    from ..cachedir import default_cache_dir
    from ..replay import forbid, use_cache

    use_cache(None if kw.get("no_cache") else default_cache_dir(kw.get("cache_dir")))
    if kw.get("repos") or kw.get("alpine"):
        forbid("remote indexes")  # whether a cached index is fresh depends on the time
    return Sources(
        db=kw.get("db"),
        indexes=kw.get("indexes", ()),
        repos=kw.get("repos", ()),
        alpine=kw.get("alpine"),
        mirror=kw.get("mirror"),
        keys_dirs=kw.get("keys_dirs", ()),
        allow_untrusted=kw.get("allow_untrusted", False),
        offline=kw.get("offline", False),
        refresh=kw.get("refresh", False),
        cache_dir=kw.get("cache_dir"),
        use_cache=not kw.get("no_cache", False),
    )


class Progress:
    """A file counter on stderr, only when stderr is a terminal; erased when done."""

    def __init__(self, enabled: bool, label: str, stream=None):
        # (a run being recorded writes its stderr through a capture that keeps
        # the real stream as ``uncaptured``: the counter is not output)
        self.stream: TextIO = stream or getattr(sys.stderr, "uncaptured", None) or sys.stderr
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


def finish(res, reporter: Reporter, output: Output, request) -> int:
    """Print the result and what goes to stderr; return the exit code (both
    derived by :mod:`rundeps.report` from the result's values)."""
    from ..report.problems import exit_code, problems
    from ..report.text import render

    sbom = sbom_text(output, lambda: _tree_sbom(res, request))
    click.echo(sbom if sbom is not None else render(res, output.fmt, output.all_packages, output.virtual,
                                                    by=output.by), nl=False)
    for problem in problems(res, output.allow_unresolved, output.allow_glibc, size_line=output.size_line,
                            require_elf=output.require_elf):
        reporter.say(problem)
    return exit_code(res, output.allow_unresolved, output.allow_glibc, output.require_elf)


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


def sbom_option(fn: Callable) -> Callable:
    """``--sbom FILE``: the CycloneDX SBOM beside the normal output (:mod:`rundeps.report.cyclonedx`)."""
    return click.option("--sbom", "sbom_file", type=click.Path(dir_okay=False), metavar="FILE", default=None,
                        help="Also write a CycloneDX 1.6 SBOM (JSON) of what is needed at run time, with the "
                             "load graph, to FILE; stdout keeps the --format output.")(fn)


def sbom_text(output: Output, build: Callable[[], str]) -> Optional[str]:
    """With ``--format cyclonedx`` or ``--sbom FILE``: build the SBOM, write
    it to FILE (whole or not at all) and return it for stdout with
    ``--format cyclonedx`` (else None)."""
    if output.fmt != "cyclonedx" and not output.sbom_file:
        return None
    from ..replay import forbid

    forbid("an SBOM")  # its file would not be written again, its time and serial number may change
    text = build()
    if output.sbom_file:
        tmp = f"{output.sbom_file}.part"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, output.sbom_file)
    return text if output.fmt == "cyclonedx" else None


def _tree_sbom(res, request) -> str:
    from ..api import ImageRequest
    from ..report.cyclonedx import tree_sbom

    if isinstance(request, ImageRequest):
        return tree_sbom(res, "/", request.image, request.platform, request.sources.alpine)
    return tree_sbom(res, os.path.abspath(request.root), None, None, request.sources.alpine)


def wheels_sbom(checks, alpine: Optional[str]) -> str:
    """The SBOM of ``wheel``'s checks."""
    from ..report.cyclonedx import wheel_sbom

    return wheel_sbom(checks, alpine)
