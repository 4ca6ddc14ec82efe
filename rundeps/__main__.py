"""``python -m rundeps`` and the ``rundeps`` console script."""

import gc


def main() -> None:
    """Run the command line in this (short-lived) process.

    The cyclic garbage collector is turned off first, before click and the
    commands are imported: a run makes tens of thousands of objects that never
    form reference cycles (reference counting frees them), so automatic
    collections would only re-scan every live object, about 4 ms of a 90 ms
    repeat scan.  The process leaves with ``os._exit`` (:func:`rundeps.cli.main`).
    """
    gc.disable()
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
