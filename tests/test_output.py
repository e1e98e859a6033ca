"""The output folder of the writers (weightzoo.format.output): ``--overwrite`` decides everything before deleting
anything and never deletes, follows or truncates what weightzoo did not write."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from builder.generate import main as generate_main
from tests.conftest import write_synthetic_zoo
from weightzoo.cli import exit_code
from weightzoo.errors import OutputPathError
from weightzoo.format import output
from weightzoo.format.output import inspect_output, prepare_output
from weightzoo.format.writer import ZooWriter


def _tree(path) -> dict[str, bytes | str]:
    """Every entry below ``path`` (links not followed): files by content, links by target, folders as 'dir'."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                out[rel] = "link -> " + os.readlink(full)
            elif os.path.isdir(full):
                out[rel] = "dir"
            elif os.path.isfile(full):
                out[rel] = Path(full).read_bytes()
            else:
                out[rel] = "special"  # a FIFO: never opened (it would block)
    return out


@pytest.fixture
def zoo(tmp_path):
    path = tmp_path / "zoo"
    write_synthetic_zoo(path, n=6, max_shard_bytes=2**20)
    (path / "README.md").write_text("card")  # the synthetic zoo has no card: make the card case explicit below
    return path


def _refused(path, match, **options):
    """``prepare_output`` refuses, and nothing in the folder (or what it links to) changed."""
    before = _tree(path)
    with pytest.raises(OutputPathError, match=match) as err:
        prepare_output(path, **options)
    assert _tree(path) == before
    assert "\n" not in str(err.value)  # one line
    return str(err.value)


def test_a_foreign_file_in_shards_is_found_before_anything_is_deleted(zoo):
    (zoo / "README.md").unlink()
    (zoo / "shards" / "zz-mine.bin").write_bytes(b"keep")
    assert len(list((zoo / "shards").iterdir())) == 7  # 6 shards of the zoo and the stranger's file
    _refused(zoo, r"holds shards/zz-mine\.bin, which weightzoo did not write; nothing was deleted", overwrite=True)


def test_shards_as_a_link_to_another_folder_is_refused_and_that_folder_untouched(zoo, tmp_path):
    (zoo / "README.md").unlink()
    elsewhere = tmp_path / "elsewhere"
    (zoo / "shards").rename(elsewhere)  # someone's folder of safetensors files
    (zoo / "shards").symlink_to(elsewhere)
    before = _tree(elsewhere)
    _refused(zoo, r"shards \(a symbolic link\)", overwrite=True)
    assert _tree(elsewhere) == before and len(before) == 6


def test_a_linked_progress_folder_is_refused(zoo, tmp_path):
    (zoo / "README.md").unlink()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "generation.json").write_text("{}")
    (zoo / ".progress").symlink_to(theirs)
    _refused(zoo, r"\.progress \(a symbolic link\)", overwrite=True)
    _refused(zoo, r"\.progress \(a symbolic link\)", resume=True)
    assert (theirs / "generation.json").read_text() == "{}"


def test_a_hard_link_to_a_user_file_is_refused(zoo, tmp_path):
    """A ``.partial`` name hard-linked to someone's file: writing it would truncate their file."""
    (zoo / "README.md").unlink()
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("years of work")
    os.link(thesis, zoo / "index.parquet.partial")
    _refused(zoo, r"index\.parquet\.partial \(a file with 2 hard links", overwrite=True)
    assert thesis.read_text() == "years of work"


def test_notes_beside_the_manifest_and_an_unlisted_card_are_refused(zoo):
    (zoo / "NOTES.txt").write_text("what I found")
    _refused(zoo, r"holds NOTES\.txt", overwrite=True)
    (zoo / "NOTES.txt").unlink()
    # the synthetic zoo was written without a card: a README.md beside it is the user's, not the zoo's
    _refused(zoo, r"README\.md \(not listed in the zoo's manifest\.json\)", overwrite=True)
    (zoo / "README.md").unlink()
    (zoo / "shards" / "train-00099.safetensors").write_bytes(b"x")  # named like a shard, listed nowhere
    _refused(zoo, r"shards/train-00099\.safetensors \(not listed", overwrite=True)


def test_a_zoo_in_the_home_folder_with_other_files_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    write_synthetic_zoo(home, n=2)  # --out ~ by mistake, the zoo beside the user's files
    (home / ".bashrc").write_text("export X=1")
    (home / "Documents").mkdir()
    message = _refused(home, r"holds \.bashrc", overwrite=True)
    assert "and 1 more" in message  # Documents/ too, reported once


def test_other_entries_are_refused(zoo, tmp_path):
    (zoo / "README.md").unlink()
    os.mkfifo(zoo / "shards" / "train-00098.safetensors.partial")  # never opened: a FIFO would block
    _refused(zoo, r"a device, FIFO or socket", overwrite=True)
    os.unlink(zoo / "shards" / "train-00098.safetensors.partial")
    (zoo / "shards" / "nested").mkdir()
    _refused(zoo, r"shards/nested/ \(a folder weightzoo does not write\)", overwrite=True)
    (zoo / "shards" / "nested").rmdir()
    (zoo / "manifest.json").write_text('{"not": "a manifest"}')
    _refused(zoo, r"manifest\.json \(not a weightzoo manifest", overwrite=True)


def test_a_mount_point_is_not_emptied(zoo, monkeypatch):
    (zoo / "README.md").unlink()
    monkeypatch.setattr(output.os.path, "ismount", lambda p: os.path.realpath(p) == str(zoo))
    _refused(zoo, "is a mount point", overwrite=True)


def test_zoo_files_without_a_record_are_not_deleted(tmp_path):
    """Without a manifest or a progress record nothing vouches for a zoo's names: an index.parquet or README.md
    alone is someone's file."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "README.md").write_text("my project")
    _refused(folder, r"README\.md \(named like a zoo file, but no manifest\.json", overwrite=True)


class _Cut(BaseException):
    pass


def test_overwrite_replaces_a_zoo_and_survives_being_cut_short(zoo, monkeypatch):
    (zoo / "README.md").unlink()
    real_unlink, calls = os.unlink, []

    def unlink_then_die(path):
        calls.append(path)
        if len(calls) == 3:
            raise _Cut  # a kill or Ctrl-C in the middle of the deletion
        real_unlink(path)

    monkeypatch.setattr(output.os, "unlink", unlink_then_die)
    with pytest.raises(_Cut):
        prepare_output(zoo, overwrite=True)
    monkeypatch.setattr(output.os, "unlink", real_unlink)
    assert calls[0].endswith("/manifest.json")  # the manifest first: the folder never looks like a finished zoo
    assert inspect_output(fsspec.filesystem("file"), str(zoo)).kind == "interrupted"  # the marker vouches for it
    with pytest.raises(OutputPathError, match="interrupted run; pass --resume"):
        prepare_output(zoo)
    prepare_output(zoo, overwrite=True)
    assert sorted(p.name for p in zoo.iterdir()) == ["shards"] and not list((zoo / "shards").iterdir())


def test_overwrite_on_a_remote_file_system(tmp_path):
    fs = fsspec.filesystem("memory")
    write_synthetic_zoo("memory://remote-zoo", n=2)
    with pytest.raises(OutputPathError, match="finished zoo"):
        prepare_output("memory://remote-zoo")
    fs.pipe("/remote-zoo/shards/mine.txt", b"keep")
    with pytest.raises(OutputPathError, match=r"shards/mine\.txt"):
        prepare_output("memory://remote-zoo", overwrite=True)
    assert fs.exists("/remote-zoo/manifest.json")
    fs.rm("/remote-zoo/shards/mine.txt")
    prepare_output("memory://remote-zoo", overwrite=True)
    assert not fs.exists("/remote-zoo/manifest.json") and not fs.exists("/remote-zoo/index.parquet")
    fs.rm("/remote-zoo", recursive=True)


def test_resume_refuses_foreign_files_before_discarding_shards(tmp_path):
    out = tmp_path / "run"
    write_synthetic_zoo(out, n=3)
    (out / "manifest.json").unlink()
    (out / ".progress").mkdir()
    (out / "shards" / "holiday.jpg").write_bytes(b"keep")
    with pytest.raises(OutputPathError, match=r"holiday\.jpg"):
        ZooWriter(out, name="x", zoo_seed=0, generation={}, resume=True)
    assert (out / "shards" / "holiday.jpg").read_bytes() == b"keep"
    assert len(list((out / "shards").iterdir())) > 1


def test_a_failed_run_leaves_nothing_it_created(tmp_path, capsys):
    """Bad options are refused before the writer exists; a run that fails before its first network removes the
    folders it created (here two levels of them)."""
    out = tmp_path / "new" / "zoo"
    assert exit_code(generate_main, ["--out", str(out), "--pack-size", "-1", "--quiet"]) == 2
    assert not (tmp_path / "new").exists()
    assert generate_main(["--out", str(out), "--datasets", "mnist", "--image-root", str(tmp_path / "no-data"),
                          "--offline", "--quiet", "--num-networks", "1", "--max-epochs", "1"]) == 2  # fmt: skip
    assert "mnist" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_full_disk_is_one_line_exit_2_no_partial_file_and_resume_works(tmp_path, monkeypatch, capsys):
    """ENOSPC while a shard is written: ``error: no space left on device writing <file>; ... --resume``, exit 2, the
    ``.partial`` file removed; once space is free, ``--resume`` finishes the zoo."""
    import errno

    from fsspec.implementations.local import LocalFileOpener

    real_write, full = LocalFileOpener.write, {"on": True}

    def write(self, data):
        if full["on"] and str(self.path).endswith(".safetensors.partial"):
            real_write(self, bytes(data)[:100])  # some bytes reach the disk, then it is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(LocalFileOpener, "write", write)
    out = tmp_path / "zoo"
    args = ["--out", str(out), "--num-networks", "1", "--max-epochs", "1", "--train-images", "100", "--test-images",
            "100", "--offline", "--quiet", "--threads", "1"]  # fmt: skip
    assert exit_code(generate_main, args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: no space left on device writing ") and "train-00000.safetensors" in err
    assert "free space and run again with --resume" in err
    assert not list(out.rglob("*.partial"))
    full["on"] = False
    assert exit_code(generate_main, [*args, "--resume"]) == 0
    assert (out / "manifest.json").exists()


def test_a_file_replaced_after_the_inspection_is_left_alone(zoo):
    """Deletion checks each file is still the one inspected (device, inode): a file swapped in meanwhile stays, and
    the error names it."""
    (zoo / "README.md").unlink()
    fs = fsspec.filesystem("file")
    state = inspect_output(fs, str(zoo))
    index = zoo / "index.parquet"
    index.rename(zoo.parent / "old-index")
    index.write_bytes(b"someone's new file")  # same name, another inode
    with pytest.raises(OutputPathError, match=r"index\.parquet changed while being replaced; left as it is"):
        output.remove_files(fs, str(zoo), state)
    assert index.read_bytes() == b"someone's new file" and not (zoo / "manifest.json").exists()


def test_a_write_that_fails_names_the_file_and_leaves_no_partial(tmp_path, monkeypatch):
    import errno

    from fsspec.implementations.local import LocalFileOpener

    from weightzoo.format.shards import write_atomic

    def refuse(self, data):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(LocalFileOpener, "write", refuse)
    target = tmp_path / "index.parquet"
    with pytest.raises(OutputPathError, match=rf"could not write {target}: Permission denied"):
        write_atomic(fsspec.filesystem("file"), str(target), b"data")
    assert list(tmp_path.iterdir()) == []
