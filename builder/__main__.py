"""``python -m builder``: the ``weightzoo`` command (:mod:`weightzoo.__main__`), every tool a subcommand."""

from weightzoo.__main__ import COMMANDS, console, main, usage

__all__ = ["COMMANDS", "console", "main", "usage"]

if __name__ == "__main__":
    console()
