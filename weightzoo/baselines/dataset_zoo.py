"""A ``datasets.DatasetDict`` (loaded with the ``weightzoo`` builder) as the zoo :func:`load_samples` reads.

:func:`~weightzoo.baselines.samples.load_samples` reads four members of :class:`~weightzoo.zoo.Zoo`: ``url``,
``index`` (a pyarrow table, one row per network), ``architecture(network_id)`` and ``read_arrays(network_id)``.
A ``DatasetDict`` has no shards to map, so :class:`DatasetZoo` holds the dataset's rows and vectors in memory and
offers exactly those four; nothing else of :class:`~weightzoo.zoo.Zoo` (filtering, verification, models).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from weightzoo.architecture import Architecture
from weightzoo.errors import ConfigError
from weightzoo.format.layout import NUM_SNAPSHOTS, SPLITS, STATUSES
from weightzoo.hparams import ARCHITECTURE_FIELDS, CATEGORICAL


class DatasetZoo:
    """The reading API of :class:`~weightzoo.zoo.Zoo` that :func:`~weightzoo.baselines.load_samples` uses, over a
    ``datasets.DatasetDict`` loaded with the ``weightzoo`` builder (``view="flat"``, either granularity).

    The splits are the dict's ``train`` and ``test``; ``ClassLabel`` codes are decoded to the vocabularies of
    :mod:`weightzoo.hparams`; snapshots the dataset does not hold read as NaN (select only loaded snapshots).
    Everything is materialised in memory: meant for the small zoos a dataset is handy for.

    Example:
        >>> ds = datasets.load_dataset("weightzoo", data_dir="runs/mnist24", snapshots="11..20")  # doctest: +SKIP
        >>> fit(DatasetZoo(ds), "dataset", "stats")  # doctest: +SKIP

    (Skipped: it needs a zoo written to disk and the ``datasets`` cache; ``tests/test_baselines.py`` runs it.)
    """

    def __init__(self, dataset_dict: Any, url: str = "datasets.DatasetDict"):
        missing = set(SPLITS) - set(getattr(dataset_dict, "keys", lambda: ())())
        if missing:
            raise ConfigError(f"a weightzoo DatasetDict with 'train' and 'test' splits is needed; missing {missing}")
        self.url = url
        rows: dict[int, dict[str, Any]] = {}
        flat: dict[int, dict[int, np.ndarray]] = {}
        for split in SPLITS:
            ds = dataset_dict[split]
            if "weights" not in ds.column_names:
                raise ConfigError("the dataset has no 'weights' column: load it with view='flat'")
            for r in ds.with_format("numpy"):
                nid = int(r["network_id"])
                row = rows.setdefault(
                    nid, {"network_id": nid, "split": split, "test_accuracy": [np.nan] * NUM_SNAPSHOTS}
                )
                for name, vocab in (*CATEGORICAL.items(), ("status", STATUSES)):
                    if name in r:
                        row[name] = vocab[int(r[name])]
                for name in ("learning_rate", "final_test_accuracy", "weightn_conv"):
                    row[name] = r[name].item()
                snaps, weights, accs = (np.atleast_1d(r["snapshot"]), r["weights"], np.atleast_1d(r["test_accuracy"]))
                weights = np.stack(list(weights)) if weights.dtype == object else np.atleast_2d(weights)
                for s, w, a in zip(snaps.tolist(), weights, accs.tolist(), strict=True):
                    flat.setdefault(nid, {})[int(s)] = np.asarray(w, dtype=np.float32)
                    row["test_accuracy"][int(s) - 1] = a
        self._rows, self._flat = rows, flat
        self._arch = {n: Architecture(**{k: r[k] for k in ARCHITECTURE_FIELDS}) for n, r in rows.items()}

    @property
    def index(self) -> pa.Table:
        """The networks' rows (``network_id``, ``split``, hyper-parameters, ``status``, ``test_accuracy`` per
        snapshot, ...), ascending by id, as :attr:`Zoo.index <weightzoo.zoo.Zoo>` holds them."""
        return pa.Table.from_pylist([self._rows[n] for n in sorted(self._rows)])

    def architecture(self, network_id: int) -> Any:
        """The :class:`~weightzoo.architecture.Architecture` of one network."""
        return self._arch[network_id]

    def iter_arrays(
        self, snapshots: Sequence[int] | None = None, *, check: bool | None = None
    ) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray]]]:
        """Every network as ``(row, {name: [len(snapshots), *shape]})``, by id, as :meth:`Zoo.iter_arrays
        <weightzoo.zoo.Zoo.iter_arrays>` yields them. A dataset holds no checksums: ``check=True`` is refused."""
        if check:
            raise ConfigError("a datasets.DatasetDict holds no checksums to check; verify the zoo it came from")
        idx = np.asarray(list(snapshots) if snapshots is not None else range(1, NUM_SNAPSHOTS + 1)) - 1
        for nid in sorted(self._rows):
            yield self._rows[nid], {k: v[idx] for k, v in self.read_arrays(nid).items()}

    def read_arrays(self, network_id: int) -> dict[str, np.ndarray]:
        """name -> [20, *shape] float32 (NaN where the dataset holds no snapshot)."""
        arch, snaps = self._arch[network_id], self._flat[network_id]
        full = np.full((NUM_SNAPSHOTS, arch.num_params), np.nan, dtype=np.float32)
        for s, w in snaps.items():
            full[s - 1] = w
        return {p.name: full[:, p.offset : p.offset + p.size].reshape(NUM_SNAPSHOTS, *p.shape) for p in arch.params}
