"""``python -m enginesim`` runs one simulated engine (the same as ``tollgate engine-sim``)."""

from gateway.cli import main

if __name__ == "__main__":
    main(["engine-sim", *__import__("sys").argv[1:]])
