"""The ``weightzoo`` command: every tool of the package as a subcommand (``python -m weightzoo`` and ``python -m
builder`` are the same). Each subcommand's module is imported only when it runs (the reader never imports the
builder's modules otherwise).

=========== ======================================= ===============================
subcommand  what                                    the same as
=========== ======================================= ===============================
generate    train a zoo                             ``python -m builder.generate``
reproduce   re-train networks, compare their bytes  ``python -m builder.reproduce``
merge       merge parts made on several machines    ``python -m builder.merge``
push        upload a zoo to the Hugging Face Hub     ``python -m builder.push``
convert     convert a released zoo (3 formats)      ``python -m builder.convert``
baselines   fit meta-classifiers on a zoo           ``python -m weightzoo.baselines``
benchmark   predict accuracy, models over seeds     ``python -m weightzoo.baselines.benchmark``
=========== ======================================= ===============================

Example:
    >>> main(["no-such-command"])
    2
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from weightzoo.cli import invoked_as, run_main
from weightzoo.errors import did_you_mean

#: Subcommand -> (module with ``main(argv) -> int``, one line of help).
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("builder.generate", "train a zoo into safetensors shards, a parquet index, a manifest and a card"),
    "reproduce": ("builder.reproduce", "re-train networks of a zoo and compare their bytes with the stored ones"),
    "merge": ("builder.merge", "merge zoo parts made on several machines into the zoo a single run writes"),
    "push": ("builder.push", "verify a zoo and upload it to a Hugging Face Hub dataset repository"),
    "convert": (
        "builder.convert",
        "convert a released zoo (--format nws, smallcnnzoo or modelzoos) into a weightzoo zoo",
    ),
    "baselines": ("weightzoo.baselines.__main__", "fit meta-classifiers that predict hyper-parameters from weights"),
    "benchmark": ("weightzoo.baselines.benchmark", "the accuracy-prediction benchmark: models compared over seeds"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "usage: weightzoo <command> [options]   (weightzoo <command> --help for its options)\n\ncommands:\n" + (
        "\n".join(lines)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``weightzoo <command> ...``; returns the subcommand's exit code (2 for an unknown command)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        hint = did_you_mean(name, tuple(COMMANDS))
        print(f"{usage()}\n\nerror: unknown command {name!r}{hint}; expected one of: {', '.join(COMMANDS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    with invoked_as(f"weightzoo {name}"):  # the program name in the subcommand's usage and errors
        return module.main(rest)


def console() -> None:
    """The ``weightzoo`` console script: :func:`main` with the package's clean exit (:func:`weightzoo.cli.run_main`)."""
    run_main(main)


if __name__ == "__main__":
    console()
