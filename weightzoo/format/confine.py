"""Confinement: a zoo is untrusted input, and every path it names stays inside its folder.

A zoo from the Hub or any URL was written by a stranger. Every path that comes from its manifest, its index or
its card goes through :func:`check_relpath` (a relative POSIX path of allowed characters, no ``..``, no absolute
part, no drive letter), and every file of it is opened through :func:`member` (locally: the path, resolved with
``realpath``, lies inside the zoo's root and is a regular file, never a device, a FIFO or a folder; anywhere: the
size agrees with what the manifest states). Reads are bounded: :func:`read_member` reads at most the stated size
(or a fixed cap for files the manifest does not size), so ``/dev/zero`` or a 100 GB "index" cannot make a reader
read forever. Every reader of the package (``open_zoo``, ``Zoo.verify``, the shard reader, the ``datasets``
builder) and ``push`` call these functions; nothing else opens a file a zoo names.

Example:
    >>> check_relpath("shards/train-00000.safetensors", "manifest.json")
    'shards/train-00000.safetensors'
    >>> try:
    ...     check_relpath("../etc/passwd", "manifest.json")
    ... except UnsafePathError as e:
    ...     print(str(e).split(";")[0])
    manifest.json names '../etc/passwd', which leaves the zoo's folder (a '..' part)
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from weightzoo.errors import ShardError, UnsafePathError, ZooFormatError, ZooNotFoundError

__all__ = ["MAX_METADATA_BYTES", "check_relpath", "is_local", "member", "read_member"]

#: Files a zoo holds without a size in its manifest (``manifest.json`` itself, ``provenance.json``) are read up to
#: this many bytes; a longer one is refused, naming it.
MAX_METADATA_BYTES = 64 * 2**20
#: One part of a path: letters, digits, ``_``, ``-`` and ``.`` (not ``.`` or ``..`` alone), at most 255 characters.
_PART = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_EXAMPLE = "'shards/train-00000.safetensors'"


def check_relpath(rel: object, source: str) -> str:
    """``rel`` if it is a safe path inside a zoo, else :class:`UnsafePathError` naming ``source`` and the path.

    Safe: a string, relative, POSIX separators, each part made of letters, digits, ``_``, ``-`` and ``.``, no part
    ``.`` or ``..``, at most 1,024 characters (this also rules out drive letters, backslashes, URL schemes, query
    strings and glob characters).
    """
    if not isinstance(rel, str) or not rel:
        raise UnsafePathError(f"{source} names {rel!r} as a file; expected a relative path such as {_EXAMPLE}")
    reason = None
    if rel.startswith("/"):
        reason = "an absolute path"
    elif len(rel) > 1024:
        reason = f"{len(rel)} characters, more than 1024"
    else:
        for part in rel.split("/"):
            if part in ("", ".", ".."):
                reason = "a '..' part" if part == ".." else "an empty or '.' part"
                break
            if not _PART.fullmatch(part):
                reason = "characters other than letters, digits, '_', '-' and '.'"
                break
    if reason is not None:
        leaves = "leaves the zoo's folder" if reason in ("an absolute path", "a '..' part") else "is not allowed"
        raise UnsafePathError(
            f"{source} names {rel!r}, which {leaves} ({reason}); expected a relative path inside the zoo such as "
            f"{_EXAMPLE}"
        )
    return rel


def is_local(fs: Any) -> bool:
    """Whether an fsspec filesystem is the local disk (where links, devices and FIFOs exist)."""
    protocol = fs.protocol
    return "file" in ((protocol,) if isinstance(protocol, str) else tuple(protocol))


_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}


def member(fs: Any, root: str, rel: str, *, source: str, expected_bytes: int | None = None) -> str:
    """The full path of the zoo file ``rel`` once it is known to be safe to open; raises otherwise.

    - :class:`UnsafePathError`: ``rel`` is not a safe relative path, or (local zoos) it resolves outside the zoo's
      root (a symbolic link leaving the folder) or is not a regular file (a device, FIFO, socket or folder);
    - :class:`ZooNotFoundError`: the file is missing;
    - :class:`ShardError`: its size differs from ``expected_bytes`` (what the manifest states).

    No file is opened here (a FIFO would block): local files are checked with ``stat``, remote ones with
    ``fs.info``. ``source`` is what named the path (the manifest, an index row), for the messages.
    """
    check_relpath(rel, source)
    path = f"{root.rstrip('/')}/{rel}"
    if is_local(fs):
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise UnsafePathError(
                f"{path} (named by {source}) resolves to {real}, outside the zoo's folder {real_root}: a symbolic "
                "link leaving the zoo; a zoo's files must lie inside it"
            )
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise ZooNotFoundError(f"{path}: listed by {source} but missing") from None
        except NotADirectoryError:
            raise ZooFormatError(f"{path}: a part of this path is a file, not a folder (named by {source})") from None
        kind = _KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is not None or not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(
                f"{path} (named by {source}) is {kind or 'not a regular file'}; a zoo's files are regular files"
            )
        size = st.st_size
    else:
        try:
            info = fs.info(path)
        except FileNotFoundError:
            raise ZooNotFoundError(f"{path}: listed by {source} but missing") from None
        if info.get("type", "file") != "file":
            raise UnsafePathError(f"{path} (named by {source}) is a {info.get('type')}, not a file")
        size = info.get("size")
    if expected_bytes is not None and size is not None and int(size) != expected_bytes:
        raise ShardError(
            f"{path}: {size} bytes, but {source} states {expected_bytes}; the file is "
            f"{'truncated' if int(size) < expected_bytes else 'longer than written'}: restore or re-download it"
        )
    return path


def read_member(
    fs: Any, root: str, rel: str, *, source: str, expected_bytes: int | None = None, max_bytes: int = MAX_METADATA_BYTES
) -> bytes:
    """The whole of the zoo file ``rel``, checked by :func:`member` and read boundedly: at most ``expected_bytes``
    (when the manifest states a size; a different length is a :class:`ShardError`) or ``max_bytes`` (a longer
    file is a :class:`ZooFormatError` naming it)."""
    path = member(fs, root, rel, source=source, expected_bytes=expected_bytes)
    limit = expected_bytes if expected_bytes is not None else max_bytes
    with fs.open(path, "rb") as f:
        data = f.read(limit + 1)
    if expected_bytes is not None and len(data) != expected_bytes:
        raise ShardError(f"{path}: read {min(len(data), limit + 1)} bytes, but {source} states {expected_bytes}")
    if len(data) > limit:
        raise ZooFormatError(f"{path}: longer than {limit} bytes; not a file weightzoo wrote (refused unread)")
    return data
