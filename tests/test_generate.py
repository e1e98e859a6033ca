"""`python -m builder.generate` end to end on the embedded digits: files, determinism, scale-out, bad input."""

import json

import numpy as np
import pytest
import torch

import builder.generate as gen
from builder.engine.pack_schedule import pack_key
from builder.engine.train import GENERATION_VERSION
from builder.generate import GenerationConfig, generate, main
from weightzoo import open_zoo
from weightzoo.cli import exit_code


def _run(out, *extra, n=3):
    args = [
        "--num-networks",
        str(n),
        "--max-epochs",
        "1",
        "--out",
        str(out),
        "--quiet",
        "--offline",
        "--threads",
        "1",
        *extra,
    ]
    return exit_code(main, args)  # argparse's usage errors (SystemExit 2) as codes too


@pytest.fixture(scope="module")
def demo_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "demo"
    assert _run(out, "--seed", "11", n=5) == 0
    return out


def test_generate_writes_a_complete_zoo(demo_zoo, capsys):
    zoo = open_zoo(demo_zoo)
    assert len(zoo) == 5 and zoo.manifest.name == "demo"
    assert zoo.manifest.splits == {"train": 4, "test": 1}
    zoo.verify()  # raises on any bad file
    gen_cfg = zoo.manifest.generation
    assert gen_cfg["preset"] == "demo" and gen_cfg["seed"] == 11 and gen_cfg["train"]["max_epochs"] == 1
    assert gen_cfg["search_space"]["choices"]["dataset"] == ["digits"]
    df = zoo.networks
    assert (df.dataset == "digits").all() and (df.num_params == 92_868).all()
    assert all(len(e) == 20 and e[0] == 0 and e[-1] == 1 for e in df.snapshot_epochs)
    card = (demo_zoo / "README.md").read_text()
    assert "Classifying the classifier" in card and "| networks | 5 |" in card and "--seed 11" in card
    assert card.startswith("---\n")  # Hugging Face YAML metadata
    net = zoo.model(0)
    assert net(__import__("torch").zeros(1, 3, 32, 32)).shape == (1, 20)


def test_same_networks_whatever_executor_shards_or_id_range(demo_zoo, tmp_path):
    ref = open_zoo(demo_zoo)
    out = tmp_path / "part"
    # networks 2..4 only, in two processes, one network per shard
    assert (
        _run(out, "--seed", "11", "--start-id", "2", "--executor", "process", "--workers", "2", "--max-shard-mb", "0.1")
        == 0
    )
    part = open_zoo(out)
    assert part.ids == [2, 3, 4]
    assert len(part.manifest.shards) == 3
    for nid in part.ids:
        a, b = ref.snapshots(nid), part.snapshots(nid)
        assert all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)
        assert ref.row(nid)["history_test_accuracy"] == part.row(nid)["history_test_accuracy"]
        assert ref.hyperparameters(nid) == part.hyperparameters(nid)


def test_bad_input_exits_with_a_clear_message(tmp_path, capsys):
    assert _run(tmp_path / "a", "--preset", "nws_huge") == 2
    assert "unknown preset 'nws_huge'; expected one of: nws_main, nws_fixed, demo" in capsys.readouterr().err
    assert _run(tmp_path / "b", "--datasets", "imagenet") == 2
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("not a folder")
    assert _run(tmp_path / "a-file" / "zoo", n=1) == 2  # missing parents are created; a file in the way is not
    assert str(tmp_path / "a-file") in capsys.readouterr().err
    assert _run(tmp_path / "c", "--device", "cuda:0", n=1) == (0 if torch.cuda.is_available() else 2)
    capsys.readouterr()
    assert _run(tmp_path / "d", "--eval-batch-size", "0", n=1) == 2
    assert "argument --eval-batch-size: '0': expected an integer from 1 to 1,000,000" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abcd")  # nothing written by any of these


def test_gpu_options_off_a_gpu_are_refused_by_name(tmp_path, capsys):
    """--tf32 and --cuda-graphs on a CPU would change nothing: refused, naming the option and the device, before
    a folder is made."""
    assert _run(tmp_path / "a", "--tf32", n=1) == 2
    assert "--tf32 is for CUDA devices (--device cpu given)" in capsys.readouterr().err
    assert _run(tmp_path / "b", "--cuda-graphs", "--trainer", "pack", n=1) == 2
    assert "--cuda-graphs needs --trainer pack on a CUDA device (given --trainer pack, --device cpu)" in (
        capsys.readouterr().err
    )
    assert not any((tmp_path / name).exists() for name in "ab")


def test_existing_zoo_needs_overwrite(demo_zoo, capsys):
    assert _run(demo_zoo, n=1) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_interrupted_generation_leaves_no_complete_looking_zoo(tmp_path, monkeypatch):
    real = gen.run_tasks

    def interrupted(tasks, **kw):
        it = real(tasks, **kw)
        yield next(it)
        raise KeyboardInterrupt

    monkeypatch.setattr(gen, "run_tasks", interrupted)
    out = tmp_path / "z"
    with pytest.raises(KeyboardInterrupt):
        generate(GenerationConfig(num_networks=2, max_epochs=1, out=str(out), progress=False, max_shard_bytes=1))
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.partial"))
    with pytest.raises(Exception, match="interrupted"):
        open_zoo(out)


def test_manifest_records_how_to_regenerate(demo_zoo):
    manifest = json.loads((demo_zoo / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["num_networks"] == 5
    assert {f["path"] for f in manifest["files"]} >= {"index.parquet", "README.md"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    assert np.isclose(sum(manifest["status_counts"].values()), 5)
    gen_cfg = manifest["generation"]
    assert gen_cfg["generation_version"] == GENERATION_VERSION == open_zoo(demo_zoo).manifest.generation_version
    assert gen_cfg["train"]["bn_eps"] == 1e-5 and gen_cfg["train"]["bn_decay"] == 0.9
    assert gen_cfg["train"]["evaluation"] == "clean" and gen_cfg["train"]["min_epochs"] == 19
    assert gen_cfg["train"]["eval_batch_size"] == gen_cfg["eval_batch_size"] == 1000
    assert f"generation version\n{GENERATION_VERSION}" in (demo_zoo / "README.md").read_text()


@pytest.mark.parametrize("version", [None, GENERATION_VERSION - 1])
def test_reproduce_refuses_a_zoo_of_another_generation_version(demo_zoo, tmp_path, capsys, version):
    """A zoo made before version 2 (no version recorded) or by the version before this one (version 5: batch
    norm's backward through autograd, the same networks up to rounding but not the same bytes) is refused."""
    import shutil

    from builder.reproduce import main as reproduce_main

    old = tmp_path / "old"
    shutil.copytree(demo_zoo, old)
    manifest = json.loads((old / "manifest.json").read_text())
    if version is None:
        del manifest["generation"]["generation_version"]  # as zoos made before version 2 are
    else:
        manifest["generation"]["generation_version"] = version
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert reproduce_main([str(old), "--networks", "0"]) == 2
    err = capsys.readouterr().err
    assert f"generation version {version or 1}" in err and f"generation version {GENERATION_VERSION}" in err


def test_released_evaluation_is_recorded_in_the_manifest_and_card(tmp_path):
    out = tmp_path / "released"
    assert _run(out, "--seed", "11", "--evaluation", "released", n=1) == 0
    zoo = open_zoo(out)
    assert zoo.manifest.generation["train"]["evaluation"] == "released"
    assert "--evaluation released" in (out / "README.md").read_text()


def test_reproduce_retrains_bit_identically(demo_zoo, capsys):
    from builder.reproduce import main as reproduce_main

    assert reproduce_main([str(demo_zoo), "--networks", "0", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("True") == 2


def test_default_location_is_created_for_a_new_user(tmp_path, monkeypatch):
    home = tmp_path / "fresh" / "zoos"  # nothing of it exists yet, as on a new machine
    monkeypatch.setenv("WEIGHTZOO_HOME", str(home))
    generate(GenerationConfig(num_networks=1, max_epochs=1, progress=False, threads=1))
    assert len(open_zoo()) == 1 and (home / "demo" / "manifest.json").exists()


def test_budget_options_are_recorded_and_reproducible(demo_zoo, tmp_path):
    from builder.reproduce import main as reproduce_main

    out = tmp_path / "budget"
    assert _run(out, "--seed", "11", "--train-images", "300", "--test-images", "100", n=2) == 0
    zoo = open_zoo(out)
    train = zoo.manifest.generation["train"]
    assert train["train_images"] == 300 and train["test_images"] == 100 and train["train_eval_images"] == 100
    full = open_zoo(demo_zoo)
    for i in (0, 1):  # fewer images per epoch than the full run of the same networks
        assert zoo.networks.images_seen[i] < full.networks.images_seen[i]
    assert "--train-images 300 --test-images 100" in (out / "README.md").read_text()
    assert reproduce_main([str(out), "--networks", "1"]) == 0


def test_an_interrupted_run_resumes_to_the_same_zoo(demo_zoo, tmp_path, monkeypatch, capsys):
    out = tmp_path / "interrupted"
    real_run_tasks = gen.run_tasks

    def crash_after_three(*args, **kwargs):
        for k, item in enumerate(real_run_tasks(*args, **kwargs)):
            if k == 3:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(gen, "run_tasks", crash_after_three)
    assert _run(out, "--seed", "11", "--max-shard-mb", "0.1", n=5) == 130  # one network per shard; Ctrl-C: 130
    assert not (out / "manifest.json").exists()
    shards = sorted(p.name for p in (out / "shards").iterdir())
    assert len(shards) == 3
    # a new run refuses the folder and names --resume; a resume with other options is refused
    assert "3 networks finished and kept" in capsys.readouterr().err
    assert _run(out, "--seed", "11", "--max-shard-mb", "0.1", n=5) == 2
    assert "--resume" in capsys.readouterr().err
    assert _run(out, "--seed", "12", "--max-shard-mb", "0.1", "--resume", n=5) == 2
    assert "seed" in capsys.readouterr().err
    assert _run(out, "--seed", "11", "--max-shard-mb", "0.1", "--resume", "--overwrite", n=5) == 2
    assert "pick one" in capsys.readouterr().err
    # damage one finished shard, and empty the progress record of another (a power cut before it reached the
    # disk): both their networks are trained again, and the run says so
    damaged = out / "shards" / shards[0]
    damaged.write_bytes(damaged.read_bytes()[:-10])
    (out / ".progress" / shards[1].replace(".safetensors", ".json")).write_bytes(b"")
    monkeypatch.setattr(gen, "run_tasks", real_run_tasks)
    # the same folder by another name (a trailing slash), another executor and worker count: still the same run
    args = ("--seed", "11", "--max-shard-mb", "0.1", "--resume", "--executor", "process", "--workers", "2")
    assert _run(f"{out}/", *args, n=5) == 0
    captured = capsys.readouterr()
    assert "1 networks already written" in captured.out and "damaged progress record" in captured.err
    zoo, ref = open_zoo(out), open_zoo(demo_zoo)
    zoo.verify()  # raises on any bad file
    assert zoo.ids == ref.ids
    assert not (out / ".progress").exists()
    for i in ref.ids:
        a, b = zoo.read_arrays(i), ref.read_arrays(i)
        assert all(a[k].tobytes() == b[k].tobytes() for k in b)
        assert zoo.row(i)["test_accuracy"] == ref.row(i)["test_accuracy"]
    assert _run(out, "--seed", "11", "--max-shard-mb", "0.1", "--resume", n=5) == 2  # finished: nothing to resume


def test_ray_executor_trains_the_same_networks(demo_zoo, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        assert _run(out, "--seed", "11", "--start-id", "3", "--executor", "ray", "--workers", "2", n=2) == 0
    finally:
        ray.shutdown()
    ref, zoo = open_zoo(demo_zoo), open_zoo(out)
    assert zoo.ids == [3, 4] and zoo.provenance["executor"] == "ray"
    for nid in zoo.ids:
        a, b = ref.read_arrays(nid), zoo.read_arrays(nid)
        assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_a_run_that_trains_nothing_leaves_no_interrupted_run(tmp_path, capsys):
    """A data set missing offline fails before any network: the folder is not taken for an interrupted run."""
    out = tmp_path / "nothing"
    args = ("--preset", "nws_fixed", "--datasets", "mnist", "--cache-dir", str(tmp_path / "no-cache"))
    assert _run(out, *args, n=1) == 2
    assert "mnist" in capsys.readouterr().err
    assert not (out / ".progress").exists() and not (out / "shards").exists()
    assert _run(out, "--seed", "11", n=1) == 0  # a new run goes ahead: no "pass --resume"


def test_resume_of_a_finished_zoo_removes_a_leftover_progress_record(demo_zoo, tmp_path, capsys):
    import shutil

    out = tmp_path / "finished"
    shutil.copytree(demo_zoo, out)
    (out / ".progress").mkdir()  # killed after the manifest was written, before the record was removed
    (out / ".progress" / "generation.json").write_text("{}")
    assert _run(out, "--seed", "11", "--resume", n=5) == 2
    assert "nothing to resume" in capsys.readouterr().err and not (out / ".progress").exists()


def test_the_same_command_writes_the_same_bytes(demo_zoo, tmp_path):
    """Shards, index, card and manifest are byte-identical across runs, executors and worker counts; only
    provenance.json (time, host, paths, executor, seconds) differs."""
    out = tmp_path / "again"
    assert _run(out, "--seed", "11", "--executor", "process", "--workers", "2", n=5) == 0
    for name in [
        "manifest.json",
        "index.parquet",
        "README.md",
        *(f"shards/{p.name}" for p in (demo_zoo / "shards").iterdir()),
    ]:
        assert (out / name).read_bytes() == (demo_zoo / name).read_bytes(), name
    a, b = open_zoo(demo_zoo).provenance, open_zoo(out).provenance
    assert a["out"] != b["out"] and (a["executor"], b["executor"]) == ("local", "process")
    assert set(a["train_seconds"]) == {"0", "1", "2", "3", "4"} and "created" in a and "host" in a
    manifest = json.loads((out / "manifest.json").read_text())
    assert not {"out", "image_root", "cache_dir", "executor", "workers"} & set(manifest["generation"])
    assert "provenance.json" not in {f["path"] for f in manifest["files"]}


def test_parts_made_on_several_machines_merge_into_the_single_run_zoo(demo_zoo, tmp_path, capsys):
    from builder.merge import main as merge_main

    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(a, "--seed", "11", n=2) == 0
    assert _run(b, "--seed", "11", "--start-id", "2", n=3) == 0
    out = tmp_path / "merged"
    assert merge_main([str(b), str(a), "--out", str(out), "--quiet"]) == 0
    for name in [
        "manifest.json",
        "index.parquet",
        "README.md",
        *(f"shards/{p.name}" for p in (demo_zoo / "shards").iterdir()),
    ]:
        assert (out / name).read_bytes() == (demo_zoo / name).read_bytes(), name
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(p.name for p in (demo_zoo / "shards").iterdir())
    assert open_zoo(out).provenance["merged_from"] == [str(b), str(a)]
    # --out with --overwrite follows the writers' rules: a stranger's file stops it before anything is deleted
    (out / "notes.txt").write_text("mine")
    assert merge_main([str(b), str(a), "--out", str(out), "--overwrite", "--quiet"]) == 2
    assert "holds notes.txt" in capsys.readouterr().err and (out / "manifest.json").exists()
    (out / "notes.txt").unlink()
    assert merge_main([str(b), str(a), "--out", str(out), "--overwrite", "--quiet"]) == 0
    # parts that disagree or overlap are refused, naming what differs
    c = tmp_path / "c"
    assert _run(c, "--seed", "12", "--start-id", "5", n=1) == 0
    assert merge_main([str(a), str(c), "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "seed" in capsys.readouterr().err
    assert merge_main([str(a), str(a), "--out", str(tmp_path / "bad2"), "--quiet"]) == 2
    assert "both" in capsys.readouterr().err


_KILLER = """
import os, signal, sys
import builder.generate as gen
import weightzoo.format.progress_log as progress_log
import weightzoo.format.shards as shards
import weightzoo.format.writer as writer
point, count = sys.argv[1], int(sys.argv[2])
calls = {"n": 0}

def kill_on(n):
    calls["n"] += 1
    if calls["n"] == n:
        os.kill(os.getpid(), signal.SIGKILL)

real_write, real_run = shards.write_atomic, gen.run_tasks
if point == "shard-written":  # the shard renamed into place, its progress record not yet written
    def write_shard(fs, path, data):
        real_write(fs, path, data)
        kill_on(count)
    shards.write_atomic = write_shard
elif point.startswith("mid-write"):  # a file half-written under its .partial name: a progress record, the
    # index, the card or the manifest (mid-write:<name>)
    target = point.partition(":")[2] or ".json"
    def write_record(fs, path, data):
        if path.endswith(target) and (target != ".json" or "/.progress/" in path):
            calls["n"] += 1
            if calls["n"] == count:
                with fs.open(path + ".partial", "wb") as f:
                    f.write(data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        real_write(fs, path, data)
    writer.write_atomic = progress_log.write_atomic = write_record  # the zoo's files, the progress record
elif point == "mid-training":  # networks trained, some not yet handed to the writer
    def run_tasks(*args, **kwargs):
        for item in real_run(*args, **kwargs):
            kill_on(count)
            yield item
    gen.run_tasks = run_tasks
elif point == "after-manifest":  # the manifest written, the progress record not yet removed
    def remove_progress(fs, root):
        os.kill(os.getpid(), signal.SIGKILL)
    writer.remove_progress = remove_progress
sys.exit(gen.main(sys.argv[3:]))
"""


# ids 2..5: network 4 is a test network, so the shards are flushed train, train, test, train (not in name order)
_KILL_ARGS = ["--num-networks", "4", "--start-id", "2", "--max-epochs", "1", "--quiet", "--offline", "--threads", "1",
              "--seed", "11", "--max-shard-mb", "0.1"]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The zoo the kill tests' command writes when nothing interrupts it."""
    ref = tmp_path_factory.mktemp("uninterrupted") / "ref"
    assert main([*_KILL_ARGS, "--out", str(ref)]) == 0
    return ref


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "count"),
    [
        ("mid-training", 3),
        ("shard-written", 2),
        ("mid-write", 2),
        ("mid-write:index.parquet", 1),
        ("mid-write:README.md", 1),
        ("mid-write:manifest.json", 1),
        ("after-manifest", 1),
    ],
)
def test_killed_with_sigkill_and_resumed_is_byte_identical(uninterrupted, tmp_path, point, count):
    """A generate process killed (SIGKILL) at a given point (while training, after a shard, half-way through a
    progress record, the index, the card or the manifest, before removing the record), then resumed, writes the
    uninterrupted run's bytes: the manifest lists its files in one canonical order whatever the path taken."""
    import subprocess
    import sys

    args, ref = _KILL_ARGS, uninterrupted
    out = tmp_path / "killed"
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    env = {**__import__("os").environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, str(script), point, str(count), *args, "--out", str(out)], env=env)
    assert run.returncode == -9  # killed
    if point == "after-manifest":
        assert (out / "manifest.json").exists() and (out / ".progress").exists()
        assert main([*args, "--out", str(out), "--resume"]) == 2  # finished: the leftover record is removed
        assert not (out / ".progress").exists()
    else:
        assert not (out / "manifest.json").exists()
        assert main([*args, "--out", str(out), "--resume"]) == 0
    files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file() and p.name != "provenance.json")
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "provenance.json")
    for rel in files:
        assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel


def test_pack_trainer_zoo_is_the_same_whatever_pack_size_or_executor_and_reproduces(tmp_path):
    """--trainer pack end to end on a mix like a real run's: 10 demo networks of four shapes (lanes of up to four),
    augmentation and dropout on, two epochs; packs of 3 in this process, packs of 8 in two worker processes and
    the single trainer (one network per task) write the same files but provenance.json, and builder.reproduce
    (each network as a pack of one) gives every network's bytes."""
    from builder.reproduce import reproduce

    common = ("--seed", "5", "--max-epochs", "2", "--train-images", "700", "--test-images", "100")
    args = (*common, "--trainer", "pack")
    a, b, single = tmp_path / "a", tmp_path / "b", tmp_path / "single"
    assert _run(a, *args, "--pack-size", "3", n=10) == 0
    assert _run(b, *args, "--pack-size", "8", "--executor", "process", "--workers", "2", n=10) == 0
    assert _run(single, *common, n=10) == 0
    za, zb = open_zoo(a), open_zoo(b)
    assert za.provenance["trainer"] == "pack" and "trainer" not in za.manifest.generation
    assert za.ids == zb.ids == list(range(10))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "provenance.json")
    assert len(files) >= 4
    for rel in files:  # the manifest (checksums of every file), index, shards and card
        assert (b / rel).read_bytes() == (a / rel).read_bytes() == (single / rel).read_bytes(), rel
    shapes = [pack_key(za.hyperparameters(i)) for i in za.ids]
    assert len(set(shapes)) >= 3 and max(shapes.count(k) for k in shapes) >= 3
    assert any(za.hyperparameters(i).augmentation for i in za.ids)
    for nid in za.ids:
        x, y = za.snapshots(nid), zb.snapshots(nid)
        assert all(x[k].numpy().tobytes() == y[k].numpy().tobytes() for k in x), nid
    # one network of each shape (the widest lane's among them): each retrained as a pack of one
    picks = [za.ids[shapes.index(k)] for k in dict.fromkeys(shapes)]
    results = reproduce(za, picks, progress=False)
    assert _run(tmp_path / "c", *args, "--threads", "2", n=2) == 2  # more threads: packs would differ (measured)
    assert not (tmp_path / "c").exists()
    assert len(results) == len(set(shapes))
    assert [r.network_id for r in results if not r.identical] == [], [(r.network_id, r.max_abs_diff) for r in results]


def test_padded_zoo_records_it_and_reproduces(tmp_path):
    """--fc-width and --filter-size end to end: recorded in the manifest (top level and training config) and in the
    card's command, the snapshots in each network's own shapes, builder.reproduce retrains every network padded
    the same way and gets its bytes; a width or size below the preset's largest is refused before anything is
    written."""
    from builder.reproduce import reproduce

    out = tmp_path / "padded"
    padding = ("--fc-width", "192", "--filter-size", "7")
    args = ("--seed", "5", "--train-images", "400", "--test-images", "100", "--trainer", "pack", *padding)
    assert _run(out, *args, n=4) == 0
    zoo = open_zoo(out)
    for name, value in (("fc_width", 192), ("filter_size", 7)):
        assert zoo.manifest.generation[name] == value and zoo.manifest.generation["train"][name] == value
    assert "--fc-width 192 --filter-size 7" in (out / "README.md").read_text()
    shapes = {k: tuple(v.shape[1:]) for k, v in zoo.snapshots(0).items()}
    assert shapes["fc0.weight"] == (128, 512) and shapes["out.weight"] == (20, 64)  # its own, width_fc 128
    assert shapes["conv0.weight"] == (8, 3, 5, 5)  # its own filter size
    results = reproduce(zoo, zoo.ids, progress=False)
    assert [r.network_id for r in results if not r.identical] == [], [(r.network_id, r.max_abs_diff) for r in results]
    single = tmp_path / "single"  # one engine: the single trainer pads the same way
    assert _run(single, *args[:-6], *padding, n=4) == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "provenance.json")
    assert all((single / rel).read_bytes() == (out / rel).read_bytes() for rel in files)
    assert _run(tmp_path / "narrow", "--fc-width", "64", n=2) == 2
    assert _run(tmp_path / "small", "--filter-size", "3", n=2) == 2
    assert not (tmp_path / "narrow").exists() and not (tmp_path / "small").exists()


def test_ctrl_c_is_one_line_exit_130_and_resume_finishes_the_zoo(tmp_path, monkeypatch, capsys):
    """Ctrl-C after the first network: one line naming what was kept and how to continue, exit 130; --resume then
    writes the zoo a run without the interruption writes. Before any network: nothing left behind."""
    from weightzoo.format.writer import ZooWriter

    real_add, calls = ZooWriter.add, []

    def add(self, record, weights):
        calls.append(record.network_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_add(self, record, weights)

    out, ref = tmp_path / "zoo", tmp_path / "ref"
    monkeypatch.setattr(ZooWriter, "add", add)
    assert _run(out, n=3) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"interrupted: 1 networks finished and kept in {out}; continue with the same command and --resume"
    monkeypatch.setattr(ZooWriter, "add", real_add)
    assert _run(out, "--resume", n=3) == 0 and _run(ref, n=3) == 0
    for rel in ("manifest.json", "index.parquet"):
        assert (out / rel).read_bytes() == (ref / rel).read_bytes()
    calls.clear()
    monkeypatch.setattr(ZooWriter, "add", lambda self, r, w: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert _run(tmp_path / "none", n=2) == 130
    assert "nothing was written" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_reproduce_draws_no_bar_into_a_log_and_checks_ids_before_training(demo_zoo, capsys):
    from builder.reproduce import main as reproduce_main

    assert reproduce_main([str(demo_zoo), "--networks", "0"]) == 0
    assert "re-training" not in capsys.readouterr().err  # standard error is not a terminal here
    assert reproduce_main([str(demo_zoo), "--networks", "0", "999"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no network 999" in err and len(err.splitlines()) == 1 and "re-training" not in err


def test_the_bar_estimates_the_time_left_from_the_first_epoch():
    """An upper bound (every network not yet stopped runs to the cap) at the epochs/s so far, shown from the first
    finished epoch on, before any network finishes."""
    import time

    shown = []

    class Bar:
        def set_postfix_str(self, text, refresh=True):
            shown.append(text)

    live = gen._LiveNetworks(Bar(), time.perf_counter() - 10, networks=4, max_epochs=10)
    live.epoch(0, 2, 640)  # 2 epochs in 10 s; 3 networks waiting x 10 epochs + 8 left of this one = 38 epochs
    assert "at most 3:10 left" in shown[-1], shown[-1]
    live.finished(0, 1280, 0.5, epochs=4)  # stopped early at epoch 4: 30 epochs left at most, 4 in 10 s
    assert "at most 1:15 left" in shown[-1], shown[-1]


def test_the_card_states_its_licence_budget_and_how_to_install(demo_zoo, tmp_path, capsys):
    """The licence comes from --license (default cc-by-4.0), a budget zoo says so before anything else, the card
    says how to install weightzoo and load the index with plain datasets; a bad licence id is one line, exit 2."""
    card = (demo_zoo / "README.md").read_text()
    assert "\nlicense: cc-by-4.0\n" in card.split("---")[1]
    body = card.split("---", 2)[2]
    first = body.split("\n\n")[2]  # the opening paragraph (after the title)
    assert "**A budget zoo**" in first and "at most 1 epochs" in first, first
    assert 'pip install "weightzoo @ git+' in card and 'load_dataset("<org>/<name>", "index"' in card
    assert open_zoo(demo_zoo).manifest.generation["license"] == "cc-by-4.0"
    out = tmp_path / "cc0"
    assert _run(out, "--license", "cc0-1.0", n=1) == 0
    assert (
        "\nlicense: cc0-1.0\n" in (out / "README.md").read_text()
        and "--license cc0-1.0" in (out / "README.md").read_text()
    )
    assert _run(tmp_path / "bad", "--license", "My Licence", n=1) == 2
    assert "Hugging Face licence id" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_the_cards_command_makes_the_same_zoo_byte_for_byte(tmp_path):
    """Every option that changes bytes is in the card's command: run as written (plus --out), it writes the same
    manifest, index, shards and card (provenance.json, where and when, aside)."""
    import re
    import shlex

    a, b = tmp_path / "a", tmp_path / "b"
    options = ("--seed", "3", "--start-id", "2", "--lr-decay", "0.96", "--eval-batch-size", "300", "--max-shard-mb",
               "0.1", "--train-images", "300", "--test-images", "100", "--epoch-cap", "epochs", "--license",
               "cc0-1.0", "--max-epochs", "2")  # fmt: skip
    assert _run(a, *options, n=3) == 0
    card = (a / "README.md").read_text()
    (command,) = re.findall(r"^python -m builder\.generate .*$", card, flags=re.MULTILINE)
    words = shlex.split(command)[3:]
    for option in ("--eval-batch-size 300", "--max-shard-mb 0.1", "--lr-decay 0.96", "--start-id 2", "--threads 1"):
        assert option in command, (option, command)
    assert main([*words, "--out", str(b), "--quiet", "--offline"]) == 0
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "provenance.json")
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "provenance.json")
    assert len([f for f in files if f.suffix == ".safetensors"]) >= 2  # the shard cap was honoured
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_card_and_datasets_info_cite_and_license_as_the_one_source_says(demo_zoo, tmp_path):
    from weightzoo.about import BIBTEX

    card = (demo_zoo / "README.md").read_text()
    assert BIBTEX in card and open_zoo(demo_zoo).manifest.record.license_stated == "cc-by-4.0"
    import weightzoo

    ds = weightzoo.load_dataset(demo_zoo, split="train", cache_dir=str(tmp_path / "cache"), snapshots=20)
    assert ds.info.citation == BIBTEX and ds.info.license == "cc-by-4.0"


def test_a_generated_zoos_record_is_typed(demo_zoo):
    from weightzoo.format.record import TrainConfig

    manifest = open_zoo(demo_zoo).manifest
    record = manifest.record
    assert record.preset == manifest.generation["preset"] and record.seed == manifest.generation["seed"]
    assert isinstance(record.train, TrainConfig) and record.train.max_epochs == manifest.generation["max_epochs"]
    assert record.generation_version == manifest.generation_version and record.other == {}
    assert manifest.dtype == "float32"  # stated by the writer
