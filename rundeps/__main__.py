"""``python -m rundeps`` and the ``rundeps`` console script."""

import gc
import os


def main() -> None:
    """Run the command line in this (short-lived) process.

    The cyclic garbage collector is turned off first, before click and the
    commands are imported: a run makes tens of thousands of objects that never
    form reference cycles (reference counting frees them), so automatic
    collections would only re-scan every live object, about 4 ms of a 90 ms
    repeat scan.

    Once the command is done and its output flushed, the process leaves with
    ``os._exit``: tearing down the interpreter (freeing every object of a
    large scan) costs about 10 ms, a tenth of a repeat run. Nothing is lost:
    caches are written and closed inside the command. Only this console
    script does so; :func:`rundeps.cli.main` (the library entry) raises
    ``SystemExit`` instead.
    """
    gc.disable()
    code = _replayed_or_run()
    os._exit(code)


def _replayed_or_run() -> int:
    """The run's exit code: from its record when nothing it depends on
    changed (:mod:`rundeps.replay`, before click or any stage is imported),
    else from a full run, which leaves a record for the next one."""
    import sys

    from .replay import Recorder, replay

    argv = sys.argv[1:]
    code = replay(argv)
    if code is not None:
        return code
    recorder = Recorder.start(argv)
    from .cli import run

    if recorder is None:
        return run()
    code = run(capture=recorder.chunks)
    recorder.finish(code)
    return code


def zipapp_main() -> None:
    """The zip application's entry (``dist/rundeps.pyz``'s ``__main__.py``,
    see :mod:`rundeps.zipapp`): as :func:`main`, with the stand-in
    ``certifi`` installed first and what it extracted removed before the
    process leaves (``os._exit`` runs no ``atexit`` handler)."""
    gc.disable()
    from .zipapp import cleanup, install_certifi

    install_certifi()
    try:
        code = _replayed_or_run()
    finally:
        cleanup()
    os._exit(code)


if __name__ == "__main__":
    main()
