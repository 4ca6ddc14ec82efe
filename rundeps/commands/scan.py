"""``rundeps scan``: the packages a tree needs."""

from __future__ import annotations

import sys

import click

from .common import (
    CONTEXT, EXIT_CODES, Output, Progress, Reporter, binding_options, check_options, diagnostics, finish,
    handle_errors, image_options, jobs_option, make_sources, ordered_options, output_options, parse_target,
    python_tree_option, sbom_option, source_options,
)


@ordered_options
@click.command(context_settings=CONTEXT, epilog=EXIT_CODES,
               short_help="Print the apk packages the ELF files under PATH need.")
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip files whose path matches GLOB (repeatable), e.g. '*/tests/*'.")
@click.option("--no-default-excludes", "no_default_excludes", is_flag=True,
              help="Also scan what the official python:alpine images leave out on purpose: files named "
                   "'*tkinter*' (lib-dynload/_tkinter needs tcl and tk, which those images do not install). "
                   "Left out by default, with a note on stderr.")
@click.option("--progress/--no-progress", default=True,
              help="Count scanned files on stderr while it is a terminal.")
@click.option("--library-path", metavar="PATHS",
              help="The LD_LIBRARY_PATH the programs run with (':'-separated in-root folders): "
                   "searched first, as musl does, except for setuid/setgid programs.")
@source_options
@image_options
@output_options
@binding_options
@python_tree_option
@jobs_option
@sbom_option
@handle_errors
def scan(paths, exclude, no_default_excludes, progress, **kw):
    """Print the packages the ELF files under PATH need (default: /usr/local).

    PATHs are folders or files as seen inside the root. Libraries that the
    tree carries itself (a wheel's vendored <pkg>.libs/, /usr/local/lib) need
    no package; every other soname is resolved to the installed package that
    provides it, or to one from the repository indexes you name. Packages that
    another listed package pulls in anyway are dropped (--all keeps them).

    Every undefined symbol is then bound as musl's loader binds it (Python
    extension modules in their interpreter's RTLD_LOCAL scope); a file that
    would not load -- a library or symbol missing, a glibc-only loader --
    is named on stderr and makes the exit code 1 (--no-symbols skips this).

    \b
    Examples:
      rundeps scan                              # /usr/local of this system
      rundeps scan --format apk /usr/local      # an apk add line
      rundeps scan --root ./rootfs --format json /usr/local
      rundeps scan --alpine 3.20 --arch x86_64 ./site-packages
      rundeps scan --image image.tar                # a 'docker save' file, nothing extracted
      rundeps scan --format tree --by distribution    # which pip distribution needs what

    On a terminal, one line on stderr says what the set adds to the image
    (installed sizes, I:) and what deleting the virtual build package
    (.build-deps, --build-deps NAME) frees.
    """
    from ..api import check

    output = Output.from_options(kw)  # refuses what cannot work, before any work
    reporter = Reporter(output.quiet)
    target = parse_target(kw)
    options = check_options(kw, output, exclude=tuple(exclude), explicit_root=target.explicit_root,
                            default_excludes=not no_default_excludes, library_path=kw["library_path"])
    request = target.request([target.inroot(p) for p in (paths or ("/usr/local",))], make_sources(kw), options)
    bar = Progress(progress, "Scanning")
    try:
        res = check(request, diagnostics(reporter, bar))
    finally:
        bar.close()
    sys.exit(finish(res, reporter, output, request))
