"""``rundeps why``: the chain that makes a package or soname needed."""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_OK, EXIT_UNRESOLVED
from .common import CONTEXT, Reporter, add_dlopen, handle_errors, inroot, make_sources, parse_root, source_options


@click.command(context_settings=CONTEXT)
@click.argument("name")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files whose path matches GLOB (repeatable).")
@click.option("--no-default-excludes", "no_default_excludes", is_flag=True,
              help="Also look at files named '*tkinter*', which scan leaves out by default.")
@click.option("--dlopen", "use_dlopen", is_flag=True,
              help="Also count libraries the tree's Python code loads at run time (ctypes, cffi).")
@click.option("--conditional-loads", is_flag=True,
              help="With --dlopen, also count the loads of submodules their package's own import does not reach.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: the chains, a line each; json: one object (name, kind, needed, and the chains).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors on stderr.")
@click.option("--library-path", metavar="PATHS",
              help="The LD_LIBRARY_PATH the programs run with (':'-separated in-root folders): "
                   "searched first, as musl does, except for setuid/setgid programs.")
@source_options
@handle_errors
def why(name, paths, exclude, no_default_excludes, use_dlopen, conditional_loads, fmt, quiet, **kw):
    """Explain why NAME (a package or a soname) is needed by the files under PATH.

    Names the pip distributions whose files need it first (dist-info RECORD,
    egg-info), then prints the chain file -> soname -> package; for a package left out of
    the minimal set, the chosen package that pulls it in through D:.
    Takes the same PATHs and source options as scan.

    \b
    Examples:
      rundeps why libssl3
      rundeps why libz.so.1 --root ./rootfs /usr/local

    Exits 0 when NAME is needed, 1 when nothing under PATH needs it, 2 on errors.
    """
    from ..api import add_distributions, check_tree
    from ..report import explain, explain_json

    reporter = Reporter(quiet)
    root, explicit_root = parse_root(kw["root"])
    paths = [inroot(p, root, explicit_root) for p in (paths or ("/usr/local",))]
    res = check_tree(
        paths, root=root, sources=make_sources(kw), exclude=exclude, arch=kw["arch"],
        explicit_root=explicit_root, on_error=reporter.file_error, on_warning=reporter.warning,
        library_path=kw["library_path"], default_excludes=not no_default_excludes,
    )
    add_dlopen(res, paths, root, reporter, use_dlopen, conditional_loads)
    add_distributions(res, root)  # the distributions come first
    lines = explain(res, name)
    if fmt == "json":
        import json

        click.echo(json.dumps(explain_json(res, name), indent=2))
    if lines is None:
        Reporter().error(f"nothing under {', '.join(paths)} needs {name}")
        sys.exit(EXIT_UNRESOLVED)
    if fmt == "text":
        click.echo("\n".join(lines))
    sys.exit(EXIT_OK)
