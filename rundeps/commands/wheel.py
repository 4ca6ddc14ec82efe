"""``rundeps wheel``: what wheels need on Alpine, read from their zips."""

from __future__ import annotations

import sys
from typing import List

import click

from ..errors import EXIT_ERROR, EXIT_OK, EXIT_UNRESOLVED
from .common import (
    CONTEXT, FORMAT_HELP, Output, Reporter, binding_options, handle_errors, make_sources, not_special, ordered_options,
    parse_root, sbom_option, sbom_text, source_options, wheels_sbom,
)


@ordered_options
@click.command(context_settings=CONTEXT, short_help="Check what wheels need on Alpine, without installing them.")
@click.argument("wheels", nargs=-1, required=True, metavar="FILE.whl|DIR...")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "cyclonedx"]), default="text", show_default=True,
              help=f"{FORMAT_HELP}. text: a verdict a wheel, then details; json: a JSON list of objects, "
                   "one a wheel; cyclonedx: one CycloneDX SBOM of them all.")
@click.option("--dlopen/--no-dlopen", "use_dlopen", default=True, show_default=True,
              help="Add the packages of the libraries the wheel's Python code loads at run time "
                   "(ctypes, cffi); --no-dlopen only reports them.")
@click.option("--conditional-loads", is_flag=True,
              help="Also add the run-time loads of submodules the package's own import does not "
                   "reach (reported as 'when PKG.MOD is imported' otherwise).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors on stderr.")
@click.option("--gcompat", "gcompat_file", type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              callback=not_special("file"),
              help="Say whether glibc-linked members would load with gcompat, from FILE, a real "
                   "libgcompat.so.0 (rundeps ships no gcompat export list; with --root, the root's "
                   "installed gcompat is used without this option).")
@source_options(scope="wheel")
@binding_options
@sbom_option
@handle_errors
def wheel(wheels, fmt, use_dlopen, conditional_loads, quiet, gcompat_file, **kw):
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

    from ..api import CheckOptions, Diagnostics, WheelRequest, check, load_universe, target_arch
    from ..errors import SourceError
    from ..report.json import wheel_json
    from ..report.text import wheel_lines
    from ..inputs.wheel import WheelError, iter_wheels

    reporter = Reporter(quiet)
    root, explicit_root = parse_root(kw["root"])
    sources = make_sources(kw)
    paths: List[str] = []
    for w in wheels:
        paths.extend(iter_wheels(w))
    target = target_arch(kw["arch"], root, explicit_root)
    options = CheckOptions(arch=kw["arch"], explicit_root=explicit_root, symbols=kw["symbols"] is not False,
                           musl_version=kw["musl_version"], add_runtime_loads=use_dlopen,
                           conditional_loads=conditional_loads, gcompat_file=gcompat_file)
    universe = None
    try:
        universe = load_universe(root, sources, target, Diagnostics(warning=reporter.warning),
                                 explicit_root=explicit_root)
    except SourceError:
        if sources.names_index() or sources.db:
            raise
    code = EXIT_OK
    results = []
    for path in paths:
        try:
            diag = Diagnostics(warning=reporter.warning,
                               file_error=lambda member, reason, p=path: reporter.file_error(f"{p}:{member}", reason))
            done = check(WheelRequest(path, root, sources, options, universe), diag)
        except WheelError as exc:
            reporter.error(str(exc))
            code = EXIT_ERROR
            continue
        res = done.resolution
        done.release_inputs()  # many wheels stay in bounded memory
        if not done.ok and code == EXIT_OK:
            code = EXIT_UNRESOLVED
        results.append(done)
        if fmt == "text":
            click.echo("\n".join(wheel_lines(done)))
        if done.no_sources and res is not None and (set(res.unresolved) - set(done.base_image)
                                                    or done.unresolved_loads):
            reporter.warning("no installed database or index to map the rest to packages: "
                             "name one with --alpine VERSION, --index or --db")
    if fmt == "json":
        click.echo(json.dumps([wheel_json(check) for check in results], indent=2))
    output = Output(fmt=fmt, sbom_file=kw.get("sbom_file"))
    sbom = sbom_text(output, lambda: wheels_sbom(results, kw.get("alpine"))) if results else None
    if sbom is not None:
        click.echo(sbom, nl=False)
    sys.exit(code)
