"""The ``rundeps`` command line (a thin layer over :mod:`rundeps.api`).

The group is here; each subcommand lives in :mod:`rundeps.commands` and is
imported only when it runs (or when ``--help`` lists them), the lazy loading
click's documentation describes: building every command's options costs
about 1.5 ms, which a repeat ``rundeps scan`` (well under 100 ms) notices.
"""

from __future__ import annotations

import importlib
import io
import os
import stat as _stat
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
    "schema": "rundeps.commands.schema:schema",
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


def run(argv: Optional[List[str]] = None, capture: Optional[list] = None) -> int:
    """Run the command line with ``argv`` and return its exit code.

    Never ends the process: click's ``SystemExit`` is caught and turned
    into the code; every problem, click's usage errors included, is one
    ``rundeps: error:`` line. A reader that leaves early (``| head``) ends
    the output quietly and the code stays the command's own; an output
    that cannot be written otherwise is one line on stderr and code 2.

    With ``capture`` (a list: the console script's run record, see
    :mod:`rundeps.replay`), every write that reaches descriptor 1 or 2 is
    also appended to it as ``(fd, bytes)``, in order.
    """
    if not _stdout_usable():
        click.echo("rundeps: error: cannot write the output: standard output is closed", err=True)
        return 2
    restore = _quiet_on_closed_pipe() if capture is None else _captured(capture)
    try:
        code = _invoke(argv)
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except OSError as exc:
            click.echo(f"rundeps: error: cannot continue: {exc.strerror or exc}", err=True)
            code = 2
    finally:
        restore()
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except OSError:
        pass
    return code


def _invoke(argv: Optional[List[str]]) -> int:
    """The group run without click's standalone handling: its exceptions
    become one line on stderr and an exit code here."""
    from .errors import RundepsError

    try:
        rv = cli.main(args=argv, prog_name="rundeps", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except SystemExit as exc:
        code = exc.code
    except _NO_ARGS_IS_HELP as exc:  # ``rundeps``, ``rundeps index``: the help, as click shows it
        click.echo(exc.format_message(), err=True)
        return 2
    except click.UsageError as exc:
        click.echo(usage_line(exc), err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"rundeps: error: {_one_line(exc.format_message())}", err=True)
        return 2
    except click.Abort:
        click.echo("rundeps: interrupted", err=True)
        return 130
    except RundepsError as exc:  # raised by an option's check, before the command runs
        click.echo(f"rundeps: error: {exc}", err=True)
        return exc.exit_code
    if code is None:
        return 0
    if not isinstance(code, int):
        click.echo(code, err=True)
        return 1
    return code


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
"""A group run without a command (click 8.2 and later raise it; earlier ones print the help themselves)."""


def usage_line(exc: click.UsageError) -> str:
    """A click usage error as one line: ``rundeps: error: MESSAGE (see 'rundeps scan --help')``."""
    where = exc.ctx.command_path if exc.ctx is not None else "rundeps"
    return f"rundeps: error: {_one_line(exc.format_message())} (see '{where} --help')"


def _one_line(message: str) -> str:
    """click's message in the project's style: one line, a lower-case
    start (``No such option`` -> ``no such option``), no final period."""
    text = " ".join(message.split())
    if text[:1].isupper() and text[1:2].islower():
        text = text[0].lower() + text[1:]
    return text[:-1] if text.endswith(".") else text


class _PipeSafeRaw(io.RawIOBase):
    """Descriptor 1 written directly; once the reader has left (EPIPE), the
    rest of the output is dropped instead of raising: the command still
    finishes and its exit code is still its verdict."""

    def __init__(self, fd: int, capture: Optional[list] = None):
        super().__init__()
        self.fd = fd
        self.gone = False
        self.capture = capture
        self.tty = capture is not None and os.isatty(fd)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return self.tty

    def write(self, data) -> int:
        n = len(data)
        if not self.gone:
            try:
                n = os.write(self.fd, data)
            except BrokenPipeError:
                self.gone = True
            except OSError:
                # as a file's own stream does: the error once, the failed bytes dropped
                if self.capture is None:
                    raise
                self.gone = True
                raise
        if self.capture is not None:
            self.capture.append((self.fd, bytes(data[:n])))
        return n


def _quiet_on_closed_pipe():
    """When standard output is a pipe, write it through :class:`_PipeSafeRaw`
    (``rundeps scan | head -1`` ends with no ``Broken pipe`` message); returns
    the function that flushes it and puts the old ``sys.stdout`` back."""
    old = sys.stdout
    try:
        fd = old.fileno()
        is_pipe = _stat.S_ISFIFO(os.fstat(fd).st_mode) or _stat.S_ISSOCK(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):
        is_pipe = False
    if not is_pipe:
        return lambda: None
    old.flush()
    safe = io.TextIOWrapper(io.BufferedWriter(_PipeSafeRaw(fd)), encoding=old.encoding, errors=old.errors,
                            line_buffering=old.line_buffering)
    sys.stdout = safe

    def restore() -> None:
        try:
            safe.flush()
        finally:
            sys.stdout = old

    return restore


def _captured(capture: list):
    """Standard output and error written through :class:`_PipeSafeRaw`
    with ``capture``; returns the function that flushes them and puts the
    old streams back. The stderr stream keeps the original as
    ``uncaptured`` (a terminal's progress counter is not output). When a
    stream is not a real file, nothing is captured and the run is not
    recorded."""
    from .replay import forbid

    old_out, old_err = sys.stdout, sys.stderr
    try:
        out_fd, err_fd = old_out.fileno(), old_err.fileno()
    except (AttributeError, OSError, ValueError):
        forbid("standard output or error is not a file")
        return _quiet_on_closed_pipe()
    old_out.flush()
    old_err.flush()
    new = []
    for old, fd in ((old_out, out_fd), (old_err, err_fd)):
        stream = io.TextIOWrapper(io.BufferedWriter(_PipeSafeRaw(fd, capture)), encoding=old.encoding,
                                  errors=old.errors, line_buffering=bool(old.line_buffering),
                                  write_through=getattr(old, "write_through", False))
        new.append(stream)
    new[1].uncaptured = old_err  # type: ignore[attr-defined]
    sys.stdout, sys.stderr = new

    def restore() -> None:
        try:
            for stream in new:
                try:
                    stream.flush()
                except OSError:
                    pass
        finally:
            sys.stdout, sys.stderr = old_out, old_err

    return restore


def main(argv: Optional[List[str]] = None) -> None:
    """The command line as a library call: runs ``argv`` and raises
    ``SystemExit`` with the exit code (catch it to carry on). The calling
    process is never ended any other way: only the console script
    (:mod:`rundeps.__main__`) leaves with ``os._exit``."""
    raise SystemExit(run(argv))


if __name__ == "__main__":  # pragma: no cover
    main()
