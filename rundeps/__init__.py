"""rundeps: the apk packages an Alpine image needs at run time for its ELF files."""

__version__ = "0.1.0"
