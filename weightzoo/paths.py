"""Where things live, defined once: default locations, the environment variables that move them, and whether a
location is a local path or a URL.

- ``WEIGHTZOO_HOME`` (default ``~/.cache/weightzoo/zoos``): zoos written without ``--out``, ``<preset>`` below it;
- ``WEIGHTZOO_CACHE`` (default ``~/.cache/weightzoo/images``): the builder's image cache;
- ``WEIGHTZOO_AUTOREGISTER`` (default ``1``): ``0`` turns off the start-up hook, so that ``load_dataset("weightzoo")``
  then needs ``import weightzoo``.

:data:`ENVIRONMENT` holds the same table; ``tests/test_readme.py`` checks the table in docs/generating.md
against it.

Example:
    >>> default_zoo_dir("nws_fixed") == os.path.join(zoo_home(), "nws_fixed")
    True
    >>> is_url("hf://datasets/org/nws-fixed"), is_url("zoo/demo")
    (True, False)
    >>> resolve_location("memory://zoo/")
    'memory://zoo'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_ZOO",
    "ENVIRONMENT",
    "default_cache_dir",
    "default_zoo_dir",
    "is_url",
    "resolve_location",
    "zoo_home",
    "zoos_at_home",
]

#: The zoo ``python -m builder.generate`` writes and readers open when given no name: the offline demo.
DEFAULT_ZOO = "demo"
#: Environment variables of this package: name -> (default, what it sets); the table in docs/generating.md.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "WEIGHTZOO_HOME": ("~/.cache/weightzoo/zoos", "zoos written without --out (<preset> below it) and read by name"),
    "WEIGHTZOO_CACHE": ("~/.cache/weightzoo/images", "the builder's image cache (each data set once, 32x32x3 uint8)"),
    "WEIGHTZOO_AUTOREGISTER": (
        "1",
        "0 turns off the start-up hook that lets load_dataset('weightzoo') work unimported",
    ),
}


def _from_env(variable: str) -> str:
    return os.path.expanduser(os.environ.get(variable) or ENVIRONMENT[variable][0])


def zoo_home() -> str:
    """The folder holding zoos by name: ``$WEIGHTZOO_HOME``, or ``~/.cache/weightzoo/zoos``."""
    return _from_env("WEIGHTZOO_HOME")


def default_zoo_dir(name: str = DEFAULT_ZOO) -> str:
    """Where ``python -m builder.generate`` writes zoo ``name`` by default and where readers look for it:
    ``$WEIGHTZOO_HOME/<name>``.

    Example:
        >>> default_zoo_dir("demo").endswith("demo")
        True
    """
    return os.path.join(zoo_home(), name)


def default_cache_dir() -> Path:
    """The image cache folder: ``$WEIGHTZOO_CACHE``, or ``~/.cache/weightzoo/images``.

    Example:
        >>> default_cache_dir().name
        'images'
    """
    return Path(_from_env("WEIGHTZOO_CACHE"))


def is_url(location: str | os.PathLike) -> bool:
    """Whether a zoo location is an fsspec URL (``hf://``, ``s3://``, ``memory://``, ``file://``) rather than a
    local path."""
    return "://" in os.fspath(location)


def resolve_location(location: str | os.PathLike) -> str:
    """A zoo location in canonical form: URLs without a trailing slash, local paths absolute and user-expanded
    (so that the same zoo always has the same name, e.g. in a ``datasets`` cache key)."""
    where = os.fspath(location)
    if is_url(where):
        return where.rstrip("/")
    return os.path.abspath(os.path.expanduser(where))


def zoos_at_home() -> list[str]:
    """Names of the finished zoos under :func:`zoo_home` (folders holding a manifest)."""
    from weightzoo.format.layout import MANIFEST_NAME

    home = zoo_home()
    if not os.path.isdir(home):
        return []
    return sorted(d for d in os.listdir(home) if os.path.isfile(os.path.join(home, d, MANIFEST_NAME)))
