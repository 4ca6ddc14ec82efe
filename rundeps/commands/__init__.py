"""The ``rundeps`` subcommands, one module each, loaded only when run (see :mod:`rundeps.cli`)."""
