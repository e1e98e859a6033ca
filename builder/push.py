"""Publish a zoo as a Hugging Face Hub dataset repository, dataset card included.

    python -m builder.push ZOO --repo <org>/<name> [--private] [--revision BRANCH] [--dry-run]

``ZOO`` is a local zoo folder (default: ``$WEIGHTZOO_HOME/demo``, where ``python -m builder.generate`` writes).
The zoo is verified first (sha256 and size of every file against its manifest). The files the manifest lists,
and the card (``README.md``, rendered now if the zoo has none), are uploaded with ``huggingface_hub``'s
large-folder upload (``HfApi.upload_large_folder`` where the installed release has it; in ``huggingface_hub``
2.x ``HfApi.upload_folder``, which commits large folders in resumable batches); ``manifest.json`` goes up last, in
its own commit, so the repository never holds a manifest whose files are missing. Re-running resumes an
interrupted upload. Authentication: ``hf auth login`` or ``HF_TOKEN``.

Afterwards, with weightzoo installed::

    datasets.load_dataset("weightzoo", data_dir="hf://datasets/<org>/<name>")

and the index alone, with plain ``datasets`` (and in the Hub's dataset viewer), through the card's ``index`` config.

Example:
    python -m builder.push ~/.cache/weightzoo/zoos/nws_fixed --repo my-org/nws-fixed --private
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from weightzoo.cli import ArgumentParser, add_progress_flags, command, prog, progress_of, run_main
from weightzoo.errors import ConfigError, WeightZooError
from weightzoo.format.confine import member
from weightzoo.format.layout import CARD_NAME, MANIFEST_NAME
from weightzoo.paths import default_zoo_dir
from weightzoo.zoo import Zoo, open_zoo

REPO_TYPE = "dataset"


def _hf_api(token: str | None) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token)


def _card(zoo: Zoo) -> bytes | None:
    """The card to upload separately: ``None`` when the manifest lists one (verified and uploaded with the files).
    A ``README.md`` in the folder that the manifest does not list is not the zoo's: it is never uploaded."""
    if CARD_NAME in {f.path for f in zoo.manifest.files}:
        return None
    from builder.card import render_card

    return render_card(zoo.manifest, zoo.index).encode()


def upload_plan(zoo: Zoo) -> list[str]:
    """The zoo's files in upload order, relative to its root: data files, the card, and the manifest last.

    Only the files the manifest lists, each confined to the zoo's folder (a relative path without ``..`` that
    resolves inside it, a regular file: :func:`weightzoo.format.confine.member`): a manifest naming ``../x``,
    an absolute path or a link leaving the folder is refused (:class:`~weightzoo.errors.UnsafePathError`), so a
    pushed copy never publishes a file from elsewhere on this machine.
    """
    source = f"{zoo.root}/{MANIFEST_NAME}"
    files = [f.path for f in zoo.manifest.files if f.path != CARD_NAME]
    for rel in files:
        member(zoo.fs, zoo.root, rel, source=source)
    return [*sorted(files), CARD_NAME, MANIFEST_NAME]


def push(
    zoo: str | None,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
    progress: bool | None = None,
    license: str | None = None,
    weights_parquet: bool = True,
) -> str:
    """Verify a local zoo and upload it to the dataset repository ``repo_id``; return its ``hf://`` URL.

    ``api`` is an ``huggingface_hub.HfApi`` (by default a new one with ``token``); tests pass a stand-in.
    ``license``: the licence the uploader has, required for a converted release (its authors state none for their
    data; it goes into the commit message). Raises :class:`WeightZooError` (not a zoo, fails verification, bad
    repo id, a converted release without ``license``) before anything is uploaded. ``weights_parquet``: also
    upload the weights as parquet (:mod:`builder.hub_parquet`, the card's ``weights`` configuration, readable by
    stock ``datasets``), written first to a temporary folder (as much disk as the zoo's shards, at most).

    Example:
        >>> push("zoo/nws_fixed", "my-org/nws-fixed", private=True)  # doctest: +SKIP
        'hf://datasets/my-org/nws-fixed'
    """
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"--repo {repo_id!r}; expected <org or user>/<name>, e.g. my-org/nws-fixed")
    opened = open_zoo(zoo if zoo is not None else default_zoo_dir())
    _check_license(opened, license)
    protocols = (opened.fs.protocol,) if isinstance(opened.fs.protocol, str) else tuple(opened.fs.protocol)
    if "file" not in protocols:
        raise ConfigError(f"{opened.url}: push uploads a local zoo folder; copy the zoo to a local folder first")
    opened.verify(progress=progress)
    card = _card(opened)
    api = api if api is not None else _hf_api(token)
    message = commit_message or f"weightzoo zoo {opened.manifest.name} ({opened.manifest.num_networks} networks)"
    if license:
        message += f"; licence stated by the uploader: {license}"
    api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, repo_type=REPO_TYPE, branch=revision, exist_ok=True)
    data = [p for p in upload_plan(opened) if p != MANIFEST_NAME and (p != CARD_NAME or card is None)]
    if hasattr(api, "upload_large_folder"):  # huggingface_hub < 2: the dedicated resumable multi-commit upload
        api.upload_large_folder(
            repo_id=repo_id, folder_path=opened.root, repo_type=REPO_TYPE, revision=revision, allow_patterns=data
        )
    else:  # huggingface_hub >= 2: upload_folder is the large-folder upload (batched, resumable commits)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=opened.root,
            repo_type=REPO_TYPE,
            revision=revision,
            allow_patterns=data,
            commit_message=message,
        )
    if weights_parquet:
        _upload_weights_parquet(opened, api, repo_id, revision, message, progress)
    if card is not None:
        api.upload_file(
            path_or_fileobj=card, path_in_repo=CARD_NAME, repo_id=repo_id, repo_type=REPO_TYPE, revision=revision
        )
    api.upload_file(
        path_or_fileobj=f"{opened.root}/{MANIFEST_NAME}",
        path_in_repo=MANIFEST_NAME,
        repo_id=repo_id,
        repo_type=REPO_TYPE,
        revision=revision,
        commit_message=f"{message}: manifest",
    )
    return f"hf://datasets/{repo_id}" + (f"@{revision}" if revision else "")


def _upload_weights_parquet(zoo: Zoo, api: Any, repo_id: str, revision: str | None, message: str,
                            progress: bool | None) -> None:  # fmt: skip
    """Write the weights as parquet to a temporary folder and upload it as ``weights/``."""
    import tempfile

    from builder.croissant import CROISSANT_NAME, croissant_metadata
    from builder.hub_parquet import WEIGHTS_DIR, write_weights_parquet

    with tempfile.TemporaryDirectory(prefix="weightzoo-parquet-") as tmp:
        files = write_weights_parquet(zoo, tmp, progress=progress)
        parquet = [f for f in files if f.endswith(".parquet")]
        document = croissant_metadata(zoo, parquet, url=f"https://huggingface.co/datasets/{repo_id}")
        (Path(tmp) / CROISSANT_NAME).write_text(json.dumps(document, indent=1) + "\n")
        files.append(CROISSANT_NAME)
        if hasattr(api, "upload_large_folder"):
            api.upload_large_folder(repo_id=repo_id, folder_path=tmp, repo_type=REPO_TYPE, revision=revision,
                                    allow_patterns=files)  # fmt: skip
        else:
            api.upload_folder(repo_id=repo_id, folder_path=tmp, repo_type=REPO_TYPE, revision=revision,
                              allow_patterns=files, commit_message=f"{message}: {WEIGHTS_DIR}/ as parquet")  # fmt: skip


def _check_license(zoo: Zoo, license: str | None) -> None:
    """A converted release (the authors' weights) is published only with a licence the uploader states."""
    source = zoo.manifest.record.source or {}
    if zoo.manifest.record.license_stated == "other" and zoo.manifest.record.is_converted and not license:
        raise ConfigError(
            f"{zoo.url} is a converted {source['kind']!r} release: its authors state no licence for their weight "
            "data, so publishing it needs their permission; pass --license <id> to state the licence you have"
        )


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog("builder.push"),
        description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("zoo", nargs="?", help=f"local zoo folder (default: {default_zoo_dir()})")
    p.add_argument("--repo", required=True, help="dataset repository on the Hub: <org or user>/<name>")
    p.add_argument("--private", action="store_true", help="create the repository private (if it does not exist)")
    p.add_argument("--revision", help="branch to upload to (created from main if missing); default main")
    p.add_argument("--message", help="commit message")
    p.add_argument(
        "--license",
        help="the licence you publish under (required for a converted release, whose authors state none; recorded "
        "in the commit message)",
    )
    p.add_argument("--dry-run", action="store_true", help="verify the zoo and list what would be uploaded")
    p.add_argument(
        "--no-weights-parquet",
        action="store_true",
        help="do not upload the weights as parquet (the card's 'weights' config, readable without weightzoo)",
    )
    add_progress_flags(p, "progress bars (verification; the Hub's own bars too)")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.dry_run:
            zoo = open_zoo(args.zoo if args.zoo is not None else default_zoo_dir())
            _check_license(zoo, args.license)
            zoo.verify(progress=progress_of(args))
            for path in upload_plan(zoo):
                print(path)
            print(f"zoo verified; would upload {len(upload_plan(zoo))} files to hf://datasets/{args.repo}")
            return 0
        if args.quiet:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        url = push(
            args.zoo,
            args.repo,
            private=args.private,
            revision=args.revision,
            commit_message=args.message,
            progress=progress_of(args),
            license=args.license,
            weights_parquet=not args.no_weights_parquet,
        )
    except OSError as e:  # huggingface_hub's HTTP and token errors are OSErrors (ours: reported as errors, 2)
        if isinstance(e, WeightZooError):
            raise
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"uploaded; load it with datasets.load_dataset('weightzoo', data_dir={url!r})")
    return 0


if __name__ == "__main__":
    run_main(main)
