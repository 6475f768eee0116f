"""``python -m gateway …`` is the ``tollgate`` command."""

from .cli import main

main()
