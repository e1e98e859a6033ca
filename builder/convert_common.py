"""What the converters of the field's other zoos share (:mod:`builder.convert_smallcnnzoo`,
:mod:`builder.convert_modelzoos`): every problem of a source reported together, the zoo's own columns typed, the
conversion written through :class:`~weightzoo.format.writer.ZooWriter`, the dataset card, the command line.

Example:
    >>> column_type([0.1, 0.5]), column_type(["relu", "tanh"]), column_type([1, 2]), column_type([True])
    ('float64', 'string', 'int64', 'bool')
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

import weightzoo
from cards import TEMPLATE_DIR
from weightzoo.cli import ArgumentParser, add_progress_flags, command, prog, progress_of
from weightzoo.errors import MissingExtraError, ReleaseError
from weightzoo.format.index import ConvertedRecord
from weightzoo.format.layout import DEFAULT_SHARD_BYTES
from weightzoo.format.manifest import Manifest
from weightzoo.format.writer import ZooWriter
from weightzoo.options import option_type
from weightzoo.progress import bar

CARD_TEMPLATE = "converted_card.md.j2"
HOMEPAGE = "https://github.com/weightzoo/weightzoo"
#: Problems shown in an error message (all of them are in ``ReleaseError.problems`` and printed by the CLI).
SHOWN_PROBLEMS = 50


def raise_problems(source: str, problems: Sequence[str], what: str) -> None:
    """Raise one :class:`~weightzoo.errors.ReleaseError` listing every problem found in ``source`` (nothing has
    been written yet); do nothing when there are none."""
    if not problems:
        return
    shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
    more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    raise ReleaseError(f"{source}: {len(problems)} problem(s) in the {what}, nothing written:\n  {shown}{more}",
                       list(problems))  # fmt: skip


def column_type(values: Iterable[Any]) -> str:
    """The index type of a column of a converted zoo (:data:`~weightzoo.format.index.COLUMN_TYPES`) holding
    ``values``: bool, int64, float64 (any float, or ints mixed with floats) or string (anything else)."""
    values = [v for v in values if v is not None]
    if values and all(isinstance(v, (bool, np.bool_)) for v in values):
        return "bool"
    if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        return "int64"
    if values and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                      for v in values):  # fmt: skip
        return "float64"
    return "string"


def typed(value: Any, kind: str) -> Any:
    """``value`` as a Python value of column type ``kind`` (None stays None)."""
    if value is None:
        return None
    return {"bool": bool, "int64": int, "float64": float, "string": str}[kind](value)


def write_converted(
    out: str | os.PathLike,
    *,
    name: str,
    source: Mapping[str, Any],
    architecture: Mapping[str, Any],
    columns: Mapping[str, str],
    num_snapshots: int,
    networks: Sequence[Any],
    load: Callable[[Any], tuple[ConvertedRecord, dict[str, np.ndarray]]],
    converter: str,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write a converted zoo: ``load(network)`` gives each network's record and tensors (``[num_snapshots,
    *shape]``, stored order); the manifest declares ``architecture``, ``columns`` and ``num_snapshots`` and
    records ``source`` (kind, paper, citation, licence, checksums of the source files, what was kept)."""
    writer = ZooWriter(
        out,
        name=name,
        zoo_seed=-1,  # not drawn from a weightzoo seed
        generation={"source": dict(source), "evaluation": "released"},
        max_shard_bytes=max_shard_bytes,
        overwrite=overwrite,
        generator=f"weightzoo {weightzoo.__version__} ({converter})",
        card=render_converted_card,
        resume=resume,
        provenance={
            "out": os.fspath(out),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(),
            **(provenance or {}),
        },
        num_snapshots=num_snapshots,
        architecture=architecture,
        columns=columns,
    )
    return convert_networks(writer, out, networks, load, f"converting {source['kind']}", progress)


def convert_networks(
    writer: ZooWriter,
    out: str | os.PathLike,
    networks: Sequence[Any],
    load: Callable[[Any], tuple[Any, dict[str, np.ndarray]]],
    desc: str,
    progress: bool | None,
    note: str = "",
) -> Manifest:
    """The loop every converter runs (this module's and :mod:`builder.convert_nws`): the networks a resumed
    writer does not hold yet (``network_id``), each ``load``ed into its record and tensors and added, a progress
    bar, the writer closed, a summary line (``note`` appended); on any failure before the first network, the
    writer's folder left as it was found (:meth:`~weightzoo.format.writer.ZooWriter.abandon`)."""
    for damaged in writer.damaged:
        print(f"resume: damaged progress record {damaged}", file=sys.stderr)
    todo = [n for n in networks if n.network_id not in writer.done]
    if writer.done:
        print(f"resuming {out}: {len(writer.done)} networks already converted, converting the other {len(todo)}")
    statuses: Counter[str] = Counter()
    try:
        with bar(total=len(todo), progress=progress, desc=desc, unit="net") as shown:
            for network in todo:
                record, tensors = load(network)
                writer.add(record, tensors)
                statuses[record.status] += 1
                shown.update()
    except BaseException:
        writer.abandon()  # nothing converted yet: leave no "interrupted run" behind
        raise
    manifest = writer.close()
    print(f"{sum(statuses.values())} networks converted ({dict(statuses)}); the zoo holds {manifest.num_networks} "
          f"({manifest.splits}) -> {out}{note}")  # fmt: skip
    return manifest


def render_converted_card(manifest: Manifest, index: pa.Table) -> str:
    """The dataset card of a converted zoo of another family (``cards/converted_card.md.j2``)."""
    try:
        import jinja2
    except ImportError:
        raise MissingExtraError("jinja2", "builder", "rendering the dataset card") from None
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), keep_trailing_newline=True, autoescape=False)
    cols = index.to_pydict()
    summaries = {}
    for name, kind in (manifest.columns or {}).items():
        values = [v for v in cols[name] if v is not None]
        counts = Counter(values)
        if kind == "string" and len(counts) > 12:
            summaries[name] = f"{len(counts)} distinct values"
        elif kind in ("int64", "float64") and len(counts) > 12:
            summaries[name] = f"{min(values):g} to {max(values):g}" if values else "-"
        else:
            summaries[name] = ", ".join(f"{k} ({v})" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))
    acc = np.asarray(cols["final_test_accuracy"], dtype=np.float64)
    finite = acc[np.isfinite(acc)]
    epochs = sorted({e for row in cols["snapshot_epochs"] for e in row if e >= 0})
    return env.get_template(CARD_TEMPLATE).render(
        manifest=manifest,
        source=manifest.generation["source"],
        architecture=manifest.declared_architecture,
        homepage=HOMEPAGE,
        summaries=summaries,
        accuracy=(
            f"mean {finite.mean():.4f}, median {np.median(finite):.4f}, max {finite.max():.4f}" if len(finite) else "-"
        ),
        epochs=", ".join(map(str, epochs)),
        size_category=_size_category(manifest.num_networks),
    )


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M"


def converter_parser(module: str, description: str, source_help: str) -> argparse.ArgumentParser:
    """The options every converter takes (source, ``--out``, shard size, resume, overwrite, progress)."""
    p = ArgumentParser(prog=prog(module), description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help=source_help)
    p.add_argument("--out", required=True, help="output folder or fsspec URL of the converted zoo")
    p.add_argument("--max-shard-mb", type=option_type("max_shard_mb"), default=DEFAULT_SHARD_BYTES / 2**20,
                   help="shard size cap in MiB")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue an interrupted conversion in --out")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the zoo in --out; never deletes files weightzoo did not write")  # fmt: skip
    add_progress_flags(p, "progress bar")
    return p


def common_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`write_converted` the shared options give."""
    return {"max_shard_bytes": max(1, int(args.max_shard_mb * 2**20)), "resume": args.resume,
            "overwrite": args.overwrite, "progress": progress_of(args)}  # fmt: skip


def report(run: Callable[[], Any]) -> int:
    """Run a conversion for a command line: every problem of the source on its own line, exit status 2."""
    try:
        run()
    except ReleaseError as e:  # every problem on its own line (the message shows the first 50)
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        if not e.problems:
            print("\n".join(str(e).splitlines()[1:]), file=sys.stderr)
        return 2
    return 0


__all__ = [
    "column_type",
    "command",
    "convert_networks",
    "converter_parser",
    "raise_problems",
    "render_converted_card",
    "write_converted",
]
