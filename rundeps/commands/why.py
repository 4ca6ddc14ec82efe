"""``rundeps why``: the chain that makes a package or soname needed."""

from __future__ import annotations

import os
import sys

import click

from ..errors import EXIT_ERROR, EXIT_OK, EXIT_UNRESOLVED
from .common import (
    CONTEXT, FORMAT_HELP, Output, Reporter, binding_options, check_options, diagnostics, handle_errors, image_options,
    jobs_option, make_sources, ordered_options, parse_target, python_tree_option, source_options,
)


@ordered_options
@click.command(context_settings=CONTEXT,
               short_help="Explain why a package or soname is needed, or whether a file loads.")
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
              help=f"{FORMAT_HELP}. text: the chains, a line each; json: one JSON object (name, kind, needed, "
                   "and the chains).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors on stderr.")
@click.option("--library-path", metavar="PATHS",
              help="The LD_LIBRARY_PATH the programs run with (':'-separated in-root folders): "
                   "searched first, as musl does, except for setuid/setgid programs.")
@source_options
@image_options
@binding_options
@python_tree_option
@jobs_option
@handle_errors
def why(name, paths, fmt, **kw):
    """Explain why NAME (a package or a soname) is needed by the files under PATH,
    or (NAME a file's in-root path) whether that file loads under musl and why.

    Names the pip distributions whose files need it first (dist-info RECORD,
    egg-info), then prints the chain file -> soname -> package; for a package left out of
    the minimal set, the chosen package that pulls it in through D:. For a
    file: its verdict, its needs, the scope it binds in, the symbols nothing
    defines and a hint naming a library that does.
    Takes the same PATHs and source options as scan.

    \b
    Examples:
      rundeps why libssl3
      rundeps why libz.so.1 --root ./rootfs /usr/local
      rundeps why /usr/local/lib/python3.12/site-packages/x/_x.so --root ./rootfs
      rundeps why libssl3 --image image.tar

    Exits 0 when NAME is needed (a file: when it loads), 1 when nothing under
    PATH needs it (a file: when it will not load), 2 on errors (a file NAME
    that is not an ELF file under PATH included).
    """
    from ..api import check
    from ..report.json import explain_file_json, explain_json
    from ..report.text import explain, explain_file

    reporter = Reporter(kw["quiet"])
    target = parse_target(kw)
    file_name = name.startswith("/") or (not target.explicit_root and os.sep in name)
    if file_name:
        name = target.inroot(name)
    paths = [target.inroot(p) for p in (paths or ((name,) if file_name else ("/usr/local",)))]
    options = check_options(kw, Output(quiet=kw["quiet"]), exclude=tuple(kw["exclude"]),
                            explicit_root=target.explicit_root, default_excludes=not kw["no_default_excludes"],
                            library_path=kw["library_path"], distributions=not file_name, installed_size=False)
    res = check(target.request(paths, make_sources(kw), options), diagnostics(reporter))
    if file_name:
        lines = explain_file(res, name)
        if lines is None:  # the question names no ELF file: a usage problem
            kind = res.no_elf.get(name)
            Reporter().error(f"{name} is not a regular file: not read" if kind == "other" else
                             f"{name} is not an ELF file" if kind else
                             f"{name} is not an ELF file under {', '.join(paths)}")
            sys.exit(EXIT_ERROR)
        if fmt == "json":
            import json

            click.echo(json.dumps(explain_file_json(res, name), indent=2))
        else:
            click.echo("\n".join(lines))
        sys.exit(EXIT_UNRESOLVED if name in res.will_not_load else EXIT_OK)
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
