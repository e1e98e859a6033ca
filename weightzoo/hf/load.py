"""``weightzoo.load_dataset``: a zoo as a ``datasets`` dataset through public ``datasets`` calls only.

``datasets.load_dataset("weightzoo", ...)`` finds the builder by name through the hooks of
:mod:`weightzoo.hf.registration`, which touch ``datasets`` internals that any release may change. This function
builds the same builder class (:class:`weightzoo.hf.builder.WeightZoo`) directly and drives it with the public
``DatasetBuilder`` API (``download_and_prepare``, ``as_dataset``, ``as_streaming_dataset``): the same rows, the
same cache, nothing private. It is the robust path; the string form stays for convenience.

Example:
    >>> import weightzoo
    >>> ds = weightzoo.load_dataset(zoo_path, snapshots=20)  # doctest: +SKIP
    >>> sorted(ds), ds["train"].num_rows  # doctest: +SKIP
    (['test', 'train'], 5)
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["load_dataset"]


def load_dataset(
    path_or_url: str | os.PathLike | None = None,
    name: str | None = None,
    *,
    split: str | None = None,
    streaming: bool = False,
    cache_dir: str | os.PathLike | None = None,
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> Any:
    """The zoo at ``path_or_url`` (a folder, an fsspec URL, ``hf://datasets/<org>/<name>``; None: the zoo of
    configuration ``name``, by default the demo zoo, in ``$WEIGHTZOO_HOME``) as a ``datasets.DatasetDict`` (or the
    ``split``'s ``Dataset``; ``streaming=True``: iterable ones, nothing prepared on disk).

    ``options`` are the builder's (:class:`~weightzoo.hf.builder.WeightZooConfig`): ``snapshots``, ``granularity``,
    ``view``, ``verify``. Errors are the package's (:class:`~weightzoo.errors.WeightZooError`), as with
    ``open_zoo``.

    Example:
        >>> ds = load_dataset(zoo_path, snapshots="19..20", granularity="snapshot")  # doctest: +SKIP
        >>> row = ds["train"].with_format("torch")[0]  # doctest: +SKIP
        >>> row["weights"].shape  # doctest: +SKIP
        torch.Size([92868])
    """
    from weightzoo.hf.builder import WeightZoo
    from weightzoo.hf.registration import BUILDER_NAME, module_hash

    builder = WeightZoo(
        cache_dir=None if cache_dir is None else str(cache_dir),
        dataset_name=BUILDER_NAME,
        config_name=name,
        hash=module_hash(),
        data_dir=None if path_or_url is None else os.fspath(path_or_url),
        storage_options=storage_options,
        **options,
    )
    if streaming:
        return builder.as_streaming_dataset(split=split)
    builder.download_and_prepare()
    return builder.as_dataset(split=split)
