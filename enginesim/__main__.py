"""``python -m enginesim`` runs one simulated engine (the same as ``tollgate engine-sim``)."""

from .run import main

if __name__ == "__main__":
    main()
