"""Merge the parts of a zoo made on several machines into one zoo: ``python -m builder.merge PART ... --out ZOO``.

Parts are runs of one seed and one set of options over disjoint ``--start-id`` ranges (``--start-id 0
--num-networks 1000`` on one machine, ``--start-id 1000 --num-networks 1000`` on the next). The merge checks that
they agree (format, generation version, seed, every option but the id range), verifies every file of every part,
and writes the networks in id order with the parts' shard size: when the parts cover one contiguous id range, the
merged zoo is byte-identical to the zoo a single run over that range writes (its provenance.json aside, which
lists the parts).

    python -m builder.merge runs/part-a runs/part-b --out runs/zoo
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from builder.card import render_card
from weightzoo.cli import ArgumentParser, add_progress_flags, command, prog, progress_of, run_main
from weightzoo.errors import ConfigError
from weightzoo.format.index import NetworkRecord
from weightzoo.format.manifest import Manifest
from weightzoo.format.writer import ZooWriter
from weightzoo.progress import bar
from weightzoo.zoo import Zoo, open_zoo

#: Generation options that differ between the parts of one zoo.
_RANGE_KEYS = ("start_id", "num_networks")


def merge(parts: Sequence[str], out: str, *, overwrite: bool = False, progress: bool | None = None) -> Manifest:
    """Merge zoo parts (paths or URLs) into a new zoo at ``out``; return its manifest.

    Example:
        >>> merge(["runs/part-a", "runs/part-b"], "runs/zoo")  # doctest: +SKIP
    """
    if len(parts) < 2:
        raise ConfigError(f"merge needs at least two parts, got {len(parts)}")
    zoos = [open_zoo(p) for p in parts]
    _check_agreement(zoos, parts)
    owner: dict[int, str] = {}
    for zoo, name in zip(zoos, parts, strict=True):
        for nid in zoo.ids:
            if nid in owner:
                raise ConfigError(f"network {nid} is in both {owner[nid]} and {name}; parts must not overlap")
            owner[nid] = name
    for zoo in zoos:
        zoo.verify(progress=progress)
    ids = sorted(owner)
    first = zoos[0].manifest
    generation = {**first.generation, "start_id": ids[0], "num_networks": len(ids)}
    contiguous = ids == list(range(ids[0], ids[0] + len(ids)))
    by_id = {nid: zoo for zoo in zoos for nid in zoo.ids}
    seconds = {nid: zoo.provenance.get("train_seconds", {}).get(str(nid), 0.0) for nid, zoo in by_id.items()}
    provenance = {"merged_from": [str(p) for p in parts], "contiguous_ids": contiguous}
    with ZooWriter(
        out,
        name=first.name,
        zoo_seed=first.zoo_seed,
        generation=generation,
        max_shard_bytes=first.record.max_shard_bytes,
        dtype=first.dtype,
        overwrite=overwrite,
        generator=first.generator,
        card=render_card,
        provenance=provenance,
    ) as writer:
        for nid in bar(ids, progress=progress, desc="merging", unit="net"):
            zoo = by_id[nid]
            arrays = {k: v.copy() for k, v in zoo.read_arrays(nid).items()}
            writer.add(NetworkRecord.from_row(zoo.row(nid), seconds[nid]), arrays)
    assert writer.manifest is not None
    if not contiguous:
        print(f"note: the parts leave gaps in the ids {ids[0]}..{ids[-1]}; the zoo holds {len(ids)} networks")
    return writer.manifest


def _check_agreement(zoos: list[Zoo], parts: Sequence[str]) -> None:
    for zoo, name in zip(zoos, parts, strict=True):
        if zoo.manifest.declared:
            raise ConfigError(f"{name} is a converted {zoo.manifest.declared_architecture.family} zoo; merge joins the "
                              "parts of a generated zoo (convert a released zoo whole instead)")  # fmt: skip
    ref = zoos[0].manifest
    for zoo, name in zip(zoos[1:], parts[1:], strict=True):
        m = zoo.manifest
        if (m.format_version, m.generation_version, m.zoo_seed) != (ref.format_version, ref.generation_version,
                                                                     ref.zoo_seed):  # fmt: skip
            raise ConfigError(
                f"{name}: format {m.format_version}, generation version {m.generation_version}, seed {m.zoo_seed}; "
                f"{parts[0]}: format {ref.format_version}, generation version {ref.generation_version}, seed "
                f"{ref.zoo_seed}; parts of one zoo must agree"
            )
        a = {k: v for k, v in ref.generation.items() if k not in _RANGE_KEYS}
        b = {k: v for k, v in m.generation.items() if k not in _RANGE_KEYS}
        if a != b:
            diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            raise ConfigError(f"{name} was generated with other options than {parts[0]}: {', '.join(diff)} differ")


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog("builder.merge"), description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("parts", nargs="+", help="zoo parts (folders or fsspec URLs)")
    p.add_argument("--out", required=True, help="folder or URL of the merged zoo")
    p.add_argument("--overwrite", action="store_true", help="replace a zoo already at --out")
    add_progress_flags(p)
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    manifest = merge(args.parts, args.out, overwrite=args.overwrite, progress=progress_of(args))
    print(f"{manifest.num_networks} networks from {len(args.parts)} parts -> {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
