"""``python -m rundeps``."""

from .cli import main

main()
