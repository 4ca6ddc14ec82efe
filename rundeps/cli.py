"""The ``rundeps`` command line (a thin layer over :mod:`rundeps.api`).

The group is here; each subcommand lives in :mod:`rundeps.commands` and is
imported only when it runs (or when ``--help`` lists them), the lazy loading
click's documentation describes: building every command's options costs
about 1.5 ms, which a repeat ``rundeps scan`` (well under 100 ms) notices.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import List, Optional

import click

from . import __version__
from .commands.common import CONTEXT, EXIT_CODES
from .zipapp import version_text

COMMANDS = {
    "scan": "rundeps.commands.scan:scan",
    "why": "rundeps.commands.why:why",
    "wheel": "rundeps.commands.wheel:wheel",
    "index": "rundeps.commands.index:index",
}
"""Subcommand name -> ``module:attribute``, in the order ``--help`` lists them."""


class LazyGroup(click.Group):
    """A group whose subcommands are imported when first asked for."""

    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return list(self.lazy_commands) + sorted(n for n in self.commands if n not in self.lazy_commands)

    def get_command(self, ctx, cmd_name):
        target = self.lazy_commands.get(cmd_name)
        if target is not None and cmd_name not in self.commands:
            module, attr = target.split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings=CONTEXT, epilog=EXIT_CODES)
@click.version_option(version_text(__version__), prog_name="rundeps")
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


def _stdout_usable() -> bool:
    """False when standard output is closed (``rundeps scan >&-``): Python
    then has no ``sys.stdout``, and the first file rundeps opens (a cache)
    would take descriptor 1 and receive the output."""
    if sys.stdout is None:
        return False
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return True  # not a real file (a test's capture): nothing to check
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def run(argv: Optional[List[str]] = None) -> int:
    """Run the command line with ``argv`` and return its exit code.

    Never ends the process: click's ``SystemExit`` is caught and turned
    into the code; the output is flushed (an output that cannot be written
    is one line on stderr and code 2).
    """
    if not _stdout_usable():
        click.echo("rundeps: error: cannot write the output: standard output is closed", err=True)
        return 2
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
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as exc:
        click.echo(f"rundeps: error: cannot continue: {exc.strerror or exc}", err=True)
        code = 2
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except OSError:
        pass
    return code


def main(argv: Optional[List[str]] = None) -> None:
    """The command line as a library call: runs ``argv`` and raises
    ``SystemExit`` with the exit code (catch it to carry on). The calling
    process is never ended any other way: only the console script
    (:mod:`rundeps.__main__`) leaves with ``os._exit``."""
    raise SystemExit(run(argv))


if __name__ == "__main__":  # pragma: no cover
    main()
