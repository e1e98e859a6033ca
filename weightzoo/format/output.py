"""The output folder of a writer: what it holds, whether it may be replaced, and removing only what weightzoo wrote.

Every writer (``generate``, ``merge``, ``convert``, through :class:`~weightzoo.format.writer.ZooWriter`) prepares
its output here, and every file the writers delete is deleted here. The rule: **decide everything before deleting
anything.** :func:`inspect_output` walks the whole folder first without following symbolic links and sorts each
entry into what this package wrote and what it did not:

- ours, by name: ``manifest.json``, ``index.parquet``, ``README.md``, ``provenance.json``, shard files
  ``shards/<split>-NNNNN.safetensors``, the progress record ``.progress/{generation,<shard>}.{json,parquet}``, and
  ``.partial`` files of those names;
- ours, by record: in a finished zoo, ``README.md``, ``index.parquet`` and the shards must be files its manifest
  lists; without a manifest, only an interrupted run's ``.progress/`` vouches for the zoo's files by name;
- never ours: a symbolic link, a hard link (a file with more than one name: writing its ``.partial`` or replacing it
  could change someone's file), a device, FIFO or socket, a folder other than ``shards/`` and ``.progress/``, a
  folder on another file system (a mount point), anything else.

:func:`prepare_output` then refuses, in one line naming the first foreign path, or deletes file by file (the
manifest first, so the folder never looks like a finished zoo meanwhile; each file checked to be the one inspected
just before it goes), removes the folders it emptied with ``rmdir`` and never calls ``rmtree``.

Example:
    >>> import tempfile
    >>> state = inspect_output(fsspec.filesystem("file"), tempfile.mkdtemp())
    >>> state.kind, state.foreign
    ('empty', ())
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec

from weightzoo.errors import OutputPathError, WeightZooError
from weightzoo.format.confine import is_local, read_member
from weightzoo.format.layout import (
    CARD_NAME,
    INDEX_NAME,
    MANIFEST_NAME,
    PARTIAL_SUFFIX,
    PROGRESS_DIR,
    PROVENANCE_NAME,
    SHARD_DIR,
    SHARD_SUFFIX,
    SPLITS,
)
from weightzoo.format.manifest import Manifest

__all__ = ["OutputState", "inspect_output", "prepare_output", "remove_created", "remove_files", "remove_progress"]

#: The probe file :func:`prepare_output` writes and removes to check that the folder is writable.
WRITE_TEST = ".write-test"
_OWN_FOLDERS = frozenset({SHARD_DIR, PROGRESS_DIR})
_TOP = frozenset({MANIFEST_NAME, INDEX_NAME, CARD_NAME, PROVENANCE_NAME})
_SPLIT = "|".join(map(re.escape, SPLITS))
_SHARD = re.compile(rf"(?:{_SPLIT})-\d{{5}}{re.escape(SHARD_SUFFIX)}(?:{re.escape(PARTIAL_SUFFIX)})?")
_RECORD = re.compile(rf"(?:generation\.json|(?:{_SPLIT})-\d{{5}}\.(?:json|parquet))(?:{re.escape(PARTIAL_SUFFIX)})?")


@dataclass(frozen=True)
class OutputState:
    """What an output folder holds, decided before anything is deleted.

    ``kind``: ``missing`` (nothing there), ``file`` (a file, not a folder), ``empty``, ``zoo`` (a finished zoo: a
    manifest), ``interrupted`` (a ``.progress/`` record, no manifest), ``leftovers`` (only empty folders and probes
    of this package). ``ours``: relative paths of the files this package wrote, the manifest first; ``folders``:
    its folders, deepest first; ``foreign``: each path that is not this package's, with why.
    """

    kind: str
    ours: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    #: (device, inode) of every file in ``ours`` (local folders): a file replaced since is not deleted.
    identity: Mapping[str, tuple[int, int]] | None = None
    #: The topmost folder :func:`prepare_output` created (``out`` or a missing parent), for a run that fails
    #: before writing anything to remove again (:func:`remove_created`); None when the folder existed.
    created: str | None = None


@dataclass(frozen=True)
class _Entry:
    rel: str
    kind: str  # "file", "dir" or why it is not ours ("a symbolic link", ...)
    identity: tuple[int, int] | None = None


def _walk_local(root: str) -> list[_Entry]:
    """Every entry below ``root``, links not followed, folders on another device not entered."""
    root_dev = os.lstat(root).st_dev
    out: list[_Entry] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as entries:
            for e in sorted(entries, key=lambda e: e.name):
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                st = e.stat(follow_symlinks=False)
                mode = st.st_mode
                if stat.S_ISLNK(mode):
                    out.append(_Entry(rel, "a symbolic link"))
                elif stat.S_ISDIR(mode):
                    if st.st_dev != root_dev:
                        out.append(_Entry(rel, "a mount point (another file system)"))
                    else:
                        out.append(_Entry(rel, "dir"))
                        if rel in _OWN_FOLDERS:  # a foreign folder is reported once, not entry by entry
                            stack.append(rel)
                elif stat.S_ISREG(mode):
                    if st.st_nlink > 1:
                        out.append(_Entry(rel, f"a file with {st.st_nlink} hard links (weightzoo writes none)"))
                    else:
                        out.append(_Entry(rel, "file", (st.st_dev, st.st_ino)))
                else:
                    out.append(_Entry(rel, "a device, FIFO or socket"))
    return out


def _walk_remote(fs: Any, root: str) -> list[_Entry]:
    out: list[_Entry] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for info in sorted(fs.ls(folder, detail=True), key=lambda i: i["name"]):
            name = info["name"].rstrip("/")
            rel = name[len(root) :].lstrip("/")
            if not rel or rel == folder[len(root) :].lstrip("/"):
                continue  # some file systems list the folder itself
            if info.get("type") == "directory":
                out.append(_Entry(rel, "dir"))
                if rel in _OWN_FOLDERS:
                    stack.append(name)
            elif info.get("type") == "file":
                out.append(_Entry(rel, "file"))
            else:
                out.append(_Entry(rel, f"a {info.get('type')!r} entry"))
    return out


def _read_manifest(fs: Any, root: str) -> Manifest | None:
    """The folder's manifest, or None when it cannot be read as one (bounded: :func:`confine.read_member`)."""
    try:
        return Manifest.from_json(read_member(fs, root, MANIFEST_NAME, source=root), source=f"{root}/{MANIFEST_NAME}")
    except (OSError, WeightZooError, ValueError):
        return None


def inspect_output(fs: Any, root: str) -> OutputState:
    """Walk ``root`` (not following links) and sort what it holds; delete nothing.

    Example:
        >>> import fsspec
        >>> inspect_output(fsspec.filesystem("memory"), "/nothing-here").kind
        'missing'
    """
    local = is_local(fs)
    if local:
        try:
            st = os.lstat(root)
        except FileNotFoundError:
            return OutputState("missing")
        if not stat.S_ISDIR(st.st_mode):
            return OutputState("file")
        entries = _walk_local(root)
    else:
        if not fs.exists(root):
            return OutputState("missing")
        if not fs.isdir(root):
            return OutputState("file")
        entries = _walk_remote(fs, root)
    if not entries:
        return OutputState("empty")
    names = {e.rel: e for e in entries}
    manifest_entry = names.get(MANIFEST_NAME)
    has_progress = names.get(PROGRESS_DIR, _Entry("", "")).kind == "dir"
    manifest = None
    foreign: list[str] = []
    if manifest_entry is not None and manifest_entry.kind == "file":
        manifest = _read_manifest(fs, root)
        if manifest is None:
            foreign.append(f"{MANIFEST_NAME} (not a weightzoo manifest this release can read)")
    listed = {f.path for f in manifest.files} if manifest is not None else set()
    kind = "zoo" if manifest is not None else "interrupted" if has_progress else "leftovers"
    ours: list[str] = []
    folders: list[str] = []
    for e in entries:
        if e.kind not in ("file", "dir"):
            foreign.append(f"{e.rel} ({e.kind})")
            continue
        parent, _, name = e.rel.rpartition("/")
        if e.kind == "dir":
            if e.rel in (SHARD_DIR, PROGRESS_DIR):
                folders.append(e.rel)
            else:
                foreign.append(f"{e.rel}/ (a folder weightzoo does not write)")
            continue
        if _is_ours(parent, name, kind, listed):  # manifest.json always is (an unreadable one is foreign above)
            ours.append(e.rel)
        else:
            foreign.append(e.rel + _why_not(parent, name, kind))
    ours.sort(key=lambda rel: (rel != MANIFEST_NAME, rel))  # the manifest first
    folders.sort(key=lambda rel: (-rel.count("/"), rel != PROGRESS_DIR, rel))
    identity = {e.rel: e.identity for e in entries if e.identity is not None and e.rel in ours}
    return OutputState(kind, tuple(ours), tuple(folders), tuple(foreign), identity if local else None)


def _is_ours(parent: str, name: str, kind: str, listed: set[str]) -> bool:
    bare = name.removesuffix(PARTIAL_SUFFIX)
    partial = bare != name
    if parent == "":
        if name == WRITE_TEST:
            return True
        if name == PROVENANCE_NAME or (partial and bare in _TOP):
            return kind != "leftovers" or partial
        if name in _TOP:
            return kind == "interrupted" or name == MANIFEST_NAME or name in listed
        return False
    if parent == SHARD_DIR and _SHARD.fullmatch(name):
        return kind == "interrupted" or partial or f"{SHARD_DIR}/{name}" in listed
    return bool(parent == PROGRESS_DIR and _RECORD.fullmatch(name))


def _why_not(parent: str, name: str, kind: str) -> str:
    zoo_name = (parent == "" and name in _TOP | {PROVENANCE_NAME}) or (parent == SHARD_DIR and _SHARD.fullmatch(name))
    if kind == "zoo" and zoo_name:
        return f" (not listed in the zoo's {MANIFEST_NAME})"
    if kind == "leftovers" and zoo_name:
        return f" (named like a zoo file, but no {MANIFEST_NAME} or {PROGRESS_DIR}/ record vouches for it)"
    return ""


def remove_files(fs: Any, root: str, state: OutputState) -> None:
    """Delete the files ``state.ours``, one by one, then remove the folders ``state.folders`` they emptied (``rmdir``).

    A local file whose (device, inode) changed since the inspection, or that became a link, is left alone and
    reported (:class:`OutputPathError`).
    """
    moved: list[str] = []
    for rel in state.ours:
        path = f"{root}/{rel}"
        if state.identity is not None:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != state.identity.get(rel):
                moved.append(rel)
                continue
            os.unlink(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(path)
    for rel in state.folders:
        _rmdir_if_empty(fs, f"{root}/{rel}")
    if moved:
        raise OutputPathError(f"{root}: {', '.join(moved)} changed while being replaced; left as it is")


def _rmdir_if_empty(fs: Any, path: str) -> None:
    if is_local(fs):
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(path)  # only an empty folder: never rmtree
        return
    with contextlib.suppress(FileNotFoundError, OSError):
        if not fs.ls(path, detail=False):
            fs.rmdir(path)


def _refusal(url: str, state: OutputState) -> str:
    first = state.foreign[0]
    more = f" (and {len(state.foreign) - 1} more)" if len(state.foreign) > 1 else ""
    return (
        f"output folder {url!r} holds {first}{more}, which weightzoo did not write; nothing was deleted: move it "
        "away, or choose an empty or new folder (--overwrite replaces only a zoo or an interrupted run written by "
        "weightzoo)"
    )


def prepare_output(
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    resume: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[Any, str, OutputState]:
    """Check that ``out`` can receive a zoo (a new one, a replacement with ``overwrite``, or the rest of an
    interrupted one with ``resume``) and create it; return (filesystem, root path, the state found).

    Raises :class:`OutputPathError`, before deleting anything, when the location is a file, holds anything this
    package did not write (naming the first such path), holds a zoo or a run and neither ``overwrite`` nor
    ``resume`` was given, or is not writable. A local ``out`` is resolved first (``realpath``: the folder the user
    named, even through a link); nothing inside it is followed.
    """
    url = os.fspath(out)
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/") or "/"
    if is_local(fs):
        root = os.path.realpath(root)
    if resume and overwrite:
        raise OutputPathError(f"output folder {url!r}: --resume keeps what is there, --overwrite deletes it; pick one")
    try:
        state = inspect_output(fs, root)
    except PermissionError as e:
        raise OutputPathError(f"output folder {url!r} cannot be read: {e}") from None
    except NotADirectoryError:
        raise OutputPathError(f"output {url!r}: a part of this path is a file, not a folder") from None
    mode = "resume" if resume else "overwrite" if overwrite else "new"
    match state.kind, mode:
        case "file", _:
            raise OutputPathError(f"output {url!r} is a file; expected a folder for the zoo")
        case _ if state.foreign:
            raise OutputPathError(_refusal(url, state))
        case kind, _ if kind not in ("missing", "empty") and is_local(fs) and os.path.ismount(root):
            raise OutputPathError(f"output folder {url!r} is a mount point; weightzoo does not empty mount points")
        case "zoo", "resume":
            leftover = PROGRESS_DIR in state.folders
            if leftover:  # the run was stopped after writing its manifest, before removing its progress record
                remove_files(fs, root, _only(state, PROGRESS_DIR))
            raise OutputPathError(
                f"output folder {url!r} holds a finished zoo: nothing to resume"
                + (f" (its leftover {PROGRESS_DIR}/ record was removed)" if leftover else "")
            )
        case "interrupted", "resume":
            pass  # the writer keeps what the record vouches for and deletes the rest
        case _, "resume":
            raise OutputPathError(
                f"output folder {url!r} has no {PROGRESS_DIR}/ record of an interrupted run to resume; "
                "start it without --resume"
            )
        case "zoo", "new":
            raise OutputPathError(f"output folder {url!r} already holds a finished zoo; pass --overwrite to replace it")
        case "interrupted", "new":
            raise OutputPathError(
                f"output folder {url!r} already holds an interrupted run; pass --resume to continue it, or "
                "--overwrite to start again"
            )
        case "zoo", "overwrite":
            # a marker first: if this deletion is cut short, what is left is an interrupted run (by its record)
            fs.makedirs(f"{root}/{PROGRESS_DIR}", exist_ok=True)
            folders = tuple(dict.fromkeys((*state.folders, PROGRESS_DIR)))
            remove_files(fs, root, dataclasses.replace(state, folders=folders))
        case ("interrupted", "overwrite") | ("leftovers", _):
            remove_files(fs, root, state)
        case "missing", _:
            created = root
            while True:
                parent = created.rsplit("/", 1)[0] or "/"
                if parent == created or fs.exists(parent):
                    break
                created = parent
            state = dataclasses.replace(state, created=created)
        case "empty", _:
            pass
    try:  # missing parent folders are created (mkdir -p), so `--out runs/zoo` works in a fresh clone
        fs.makedirs(f"{root}/{SHARD_DIR}", exist_ok=True)
        probe = f"{root}/{WRITE_TEST}"
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm_file(probe)
    except OSError as e:
        raise OutputPathError(f"output folder {url!r} is not writable: {e}") from None
    return fs, root, state


def remove_created(fs: Any, root: str, state: OutputState) -> None:
    """Remove the empty folders a run that wrote nothing leaves: ``shards/``, then the folders
    :func:`prepare_output` created for ``root`` (``state.created`` down to ``root``), each only if empty. Never
    deletes a file."""
    _rmdir_if_empty(fs, f"{root}/{SHARD_DIR}")
    if state.created is None:
        return
    path = root
    while True:
        _rmdir_if_empty(fs, path)
        if path == state.created or "/" not in path.strip("/"):
            break
        path = path.rsplit("/", 1)[0]


def remove_progress(fs: Any, root: str) -> None:
    """Remove the progress record ``.progress/`` of a run (its files, then the folder), inspected afresh: only the
    record's own files go, and a ``.progress`` that became a link is left alone."""
    remove_files(fs, root, _only(inspect_output(fs, root), PROGRESS_DIR))


def _only(state: OutputState, folder: str) -> OutputState:
    """The part of ``state`` inside ``folder``."""
    inside = tuple(rel for rel in state.ours if rel.startswith(folder + "/"))
    return OutputState(state.kind, inside, (folder,), (), state.identity)
