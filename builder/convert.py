"""``weightzoo convert [--format F] SOURCE --out ZOO``: a released zoo into a weightzoo zoo, one converter per
format. ``--format`` picks it (default ``nws``); every other option is the converter's own (``weightzoo convert
--format smallcnnzoo --help``).

========================= ============================================= ===================================
format                    source                                        converter
========================= ============================================= ===================================
``nws`` (default)         the authors' released NWS zoo                 :mod:`builder.convert_nws`
``smallcnnzoo``           one data set folder of the Small CNN Zoo      :mod:`builder.convert_smallcnnzoo`
``modelzoos``             one Model Zoos experiment folder (Ray Tune)   :mod:`builder.convert_modelzoos`
========================= ============================================= ===================================

Example:
    >>> main(["--format", "no-such-format", "x"])
    2
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from weightzoo.cli import run_main
from weightzoo.errors import did_you_mean

#: Format -> the converter's module (with ``main(argv) -> int``).
FORMATS: dict[str, str] = {
    "nws": "builder.convert_nws",
    "smallcnnzoo": "builder.convert_smallcnnzoo",
    "modelzoos": "builder.convert_modelzoos",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter ``--format`` names (default ``nws``) with the other arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    fmt = "nws"
    for k, arg in enumerate(args):
        if arg == "--format" and k + 1 < len(args):
            fmt = args[k + 1]
            del args[k : k + 2]
            break
        if arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
            del args[k]
            break
    if fmt not in FORMATS:
        print(f"error: --format {fmt!r}{did_you_mean(fmt, tuple(FORMATS))}; expected one of: {', '.join(FORMATS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    helping = fmt == "nws" and any(a in ("-h", "--help") for a in args) and "--format" not in " ".join(argv or [])
    try:
        return importlib.import_module(FORMATS[fmt]).main(args)
    finally:
        if helping:  # after nws's own help: the other formats
            print(f"\n--format {{{','.join(FORMATS)}}} picks the converter (default nws, above); "
                  "'weightzoo convert --format F --help' shows another's options")  # fmt: skip


if __name__ == "__main__":
    run_main(main)
