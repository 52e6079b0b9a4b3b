"""``python -m dispatcher.cli``, like ``dispatcher``."""

from dispatcher.cli import main

main()
