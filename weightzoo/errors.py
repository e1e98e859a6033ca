"""The exception hierarchy of weightzoo.

Every error a user can act on derives from :class:`WeightZooError`; its message names the file or value at
fault, what was expected, and, where there is one, what to do about it.

Example:
    >>> from weightzoo.errors import WeightZooError, ChecksumError
    >>> issubclass(ChecksumError, WeightZooError)
    True
"""

from __future__ import annotations


class WeightZooError(Exception):
    """Base class of every error raised on purpose by weightzoo and its builder."""


class ConfigError(WeightZooError, ValueError):
    """A configuration value (preset, option, command-line flag) is invalid."""


def did_you_mean(value: object, valid: list[str] | tuple[str, ...] | object) -> str:
    """``" (did you mean 'x'?)"`` for the closest valid name to a misspelt one, or ``""``.

    Example:
        >>> did_you_mean("initialisation", ["activation", "initialization"])
        " (did you mean 'initialization'?)"
    """
    import difflib

    names = [str(v) for v in valid] if isinstance(valid, (list, tuple)) else []
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close and close[0] != str(value) else ""


class UnknownNameError(ConfigError, KeyError):
    """A name (preset, dataset, hyper-parameter, split, config) is not one of the valid choices."""

    def __init__(self, kind: str, value: object, valid: list[str] | tuple[str, ...]):
        self.kind, self.value, self.valid = kind, value, tuple(valid)
        hint = did_you_mean(value, valid)
        super().__init__(f"unknown {kind} {value!r}{hint}; expected one of: {', '.join(map(str, valid))}")

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return self.args[0]


class TooFewClassesError(ConfigError):
    """A classification target has fewer than two classes in a zoo (every network trained on digits, say)."""


class DataSourceError(WeightZooError):
    """Image data could not be found or read (missing folder, bad file, no network)."""


class ZooNotFoundError(WeightZooError, FileNotFoundError):
    """A path or URL does not hold a zoo (no manifest) or a file the manifest lists is missing."""


class OutputPathError(WeightZooError, OSError):
    """The output location of a generation run cannot be created or written."""


class ZooFormatError(WeightZooError):
    """A zoo's files do not follow the on-disk format (bad manifest, header, index row or byte range)."""


class UnsafePathError(ZooFormatError):
    """A zoo names a path that leaves its folder (``..``, an absolute path, a symbolic link pointing outside) or a
    file that is not a regular file (a device, a FIFO, a folder): refused before anything is opened."""


class FormatVersionError(ZooFormatError):
    """A zoo was written in a format version this release of weightzoo cannot read."""


class ShardError(ZooFormatError):
    """A shard file is truncated or corrupted, or an index row points outside it."""


class ChecksumError(ShardError):
    """A file's sha256 does not match the one recorded in the manifest."""


class MissingExtraError(WeightZooError, ImportError):
    """An optional dependency is not installed; the message names the pip extra that provides it."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the optional package {package!r}; install it with: pip install 'weightzoo[{extra}]'"
        )


class ReleaseError(WeightZooError):
    """The authors' released NWS zoo (split CSVs and network folders) cannot be converted as it is: networks
    that cannot be found, missing or wrong-sized files, unknown codes. ``problems`` lists every one, each naming
    the network folder or the CSV row at fault."""

    def __init__(self, message: str, problems: list[str] | tuple[str, ...] = ()):
        self.problems = tuple(problems)
        super().__init__(message)
