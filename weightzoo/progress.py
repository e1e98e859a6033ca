"""Progress bars, one rule everywhere: ``progress=None`` draws a bar only when standard error is a terminal (never
into a pipe or a log), ``True`` always, ``False`` never. Every long step of every tool goes through :func:`bar`.

Example:
    >>> with bar(total=3, desc="demo", progress=False) as b:
    ...     _ = b.update(3)
    >>> [x for x in bar(range(2), progress=False)]
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["bar"]


def bar(iterable: Iterable[Any] | None = None, *, progress: bool | None = None, **kwargs: Any) -> Any:
    """A ``tqdm`` bar over ``iterable`` (or a manual one with ``total=``), shown as ``progress`` says."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=None if progress is None else not progress, **kwargs)
