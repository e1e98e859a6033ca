"""builder.convert_modelzoos: fake Model Zoos experiment folders as Ray Tune 1.8 writes them (trial folders with
params.json, result.json, checkpoint_<epoch:06d>/checkpoints of def_net.py's CNN and CNN3) converted and read
back: every checkpoint tensor, the metrics per epoch, errored trials, the forward pass of the original modules
(dropout's shifted layer indices included); checkpoints that would run code are refused; broken folders report
every problem together."""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil

import numpy as np
import pytest
import torch

import weightzoo
from builder.convert import main as convert_main
from builder.convert_modelzoos import convert
from tests.fake_sources import _def_net_modules, write_modelzoos
from weightzoo.errors import ReleaseError


@pytest.fixture(scope="module", params=[("CNN", 1), ("CNN3", 3)], ids=["cnn_s", "cnn_l"])
def fake(request, tmp_path_factory):
    kind, channels = request.param
    root = tmp_path_factory.mktemp(kind)
    states = write_modelzoos(root / "tune_zoo_x", trials=5, epochs=4, kind=kind, channels=channels)
    convert(root / "tune_zoo_x", root / "zoo", progress=False)
    return root, states, kind, channels


def test_every_checkpoint_and_metric_comes_back(fake):
    root, states, kind, _ = fake
    zoo = weightzoo.open_zoo(root / "zoo", verify=True)
    assert zoo.num_snapshots == 5 and len(zoo) == 5
    assert zoo.manifest.declared_architecture.family == {"CNN": "modelzoos_cnn_s", "CNN3": "modelzoos_cnn_l"}[kind]
    for nid in zoo.ids:
        row = zoo.row(nid)
        arrays = zoo.read_arrays(nid)
        lines = [json.loads(x) for x in (root / "tune_zoo_x" / row["trial"] / "result.json").read_text().splitlines()]
        for epoch in range(5):
            state = states.get((row["trial"], epoch))
            if state is None:  # the errored trial's missing last epoch
                assert row["snapshot_epochs"][epoch] == -1 and np.isnan(arrays["out.bias"][epoch]).all()
                continue
            by_layer = sorted({int(k.split(".")[1]) for k in state})
            names = ["conv0", "conv1", "conv2", "fc0", "out"]
            for name, index in zip(names, by_layer, strict=True):  # renamed by layer order
                for t in ("weight", "bias"):
                    assert np.array_equal(arrays[f"{name}.{t}"][epoch], state[f"module_list.{index}.{t}"])
            line = lines[epoch]
            assert row["test_accuracy"][epoch] == line["test_acc"]
            assert row["train_loss"][epoch] == (line["train_loss"] if epoch else pytest.approx(np.nan, nan_ok=True))
        assert row["activation"] == row["model_nlin"] and row["optim_lr"] > 0 and row["seed"] == nid + 1


def test_errored_trial_is_diverged_and_dropout_trial_reads(fake):
    root, _, _, _ = fake
    zoo = weightzoo.open_zoo(root / "zoo")
    assert zoo.manifest.status_counts == {"completed": 4, "diverged": 1}
    last = zoo.row(4)
    assert last["status"] == "diverged" and last["model_dropout"] == 0.5 and last["snapshot_epochs"][-1] == -1


def test_model_computes_what_def_net_computes(fake):
    root, states, kind, channels = fake
    zoo = weightzoo.open_zoo(root / "zoo")
    side = 28 if kind == "CNN" else 32
    x = torch.randn(4, channels, side, side)
    for nid in zoo.ids:
        row = zoo.row(nid)
        net = torch.nn.Sequential(*_def_net_modules(kind, channels, row["model_dropout"], row["activation"])).eval()
        state = states[(row["trial"], 3)]
        net.load_state_dict({k.removeprefix("module_list."): torch.as_tensor(v) for k, v in state.items()})
        torch.testing.assert_close(zoo.model(nid, snapshot=4)(x), net(x), rtol=1e-5, atol=1e-5)
        # what the probe reads of the hidden layers: every activation, the last one the classifier's input
        from weightzoo.baselines.probe import _recording

        model, into_classifier = zoo.model(nid, snapshot=4), []
        seen = _recording(model)
        net[-1].register_forward_hook(lambda _m, inputs, _out, into=into_classifier: into.append(inputs[0]))
        with torch.no_grad():
            model(x), net(x)
        assert len(seen) == 4  # three conv layers and the hidden dense layer
        torch.testing.assert_close(seen[-1], into_classifier[0], rtol=1e-5, atol=1e-5)


def test_probe_and_statistics_run_on_a_model_zoo(fake):
    from weightzoo.baselines import fit

    root, _, _, _ = fake
    est, report = fit(root / "zoo", target="test_accuracy", model="probe", snapshots=4, test_fraction=0.5,
                      epochs=2, n_probes=2, hidden=8)  # fmt: skip
    assert report.model == "probe" and len(est.loss_curve_) == 2
    from weightzoo.baselines import load_samples

    zoo = weightzoo.open_zoo(root / "zoo")
    train, _, protocol = load_samples(zoo, "test_accuracy", "2..4", features=("statnn",), test_fraction=0.5)
    assert protocol.feature_names[:2] == ["conv0.weight:mean", "conv0.weight:var"]
    w = zoo.read_arrays(int(train.network_id[0]), [2])["conv0.weight"][0]
    assert train.statnn[0, :2] == pytest.approx([w.mean(), w.var()], rel=1e-5)


class _Exploit:
    def __reduce__(self):
        return (shutil.copyfile, ("/etc/hostname", "/tmp/weightzoo-exploit-ran"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    src = tmp_path / "tune_zoo_x"
    write_modelzoos(src, trials=2, epochs=1)
    trial = sorted(p for p in src.iterdir() if p.is_dir())[0]
    target = tmp_path / "ran"
    payload = {"module_list.0.weight": _Exploit()}
    with open(trial / "checkpoint_000001" / "checkpoints", "wb") as f:
        pickle.dump(payload, f)
    with pytest.raises(ReleaseError) as e:
        convert(src, tmp_path / "out", progress=False)
    assert "weights_only=True" in str(e.value) and not target.exists()
    import os

    assert not os.path.exists("/tmp/weightzoo-exploit-ran")


def test_every_problem_is_reported_together(tmp_path, capsys):
    src = tmp_path / "tune_zoo_x"
    write_modelzoos(src, trials=4, epochs=2)
    trials = sorted(p for p in src.iterdir() if p.is_dir())
    params = json.loads((trials[0] / "params.json").read_text())
    (trials[0] / "params.json").write_text(json.dumps({**params, "model::nlin": "swish"}))
    state = torch.load(trials[1] / "checkpoint_000001" / "checkpoints", weights_only=True)
    state["module_list.0.weight"] = state["module_list.0.weight"][:, :, :3, :3].clone()
    torch.save(state, trials[1] / "checkpoint_000001" / "checkpoints")
    (trials[2] / "result.json").write_text("{not json\n")
    (trials[2] / "checkpoint_000002" / "checkpoints").unlink()
    (src / "stray").mkdir()
    with pytest.raises(ReleaseError) as e:  # the stray folder first (no params.json), then the rest
        convert(src, tmp_path / "out", progress=False)
    assert "stray: no params.json" in str(e.value)
    shutil.rmtree(src / "stray")
    assert convert_main(["--format", "modelzoos", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'swish'" in err and "has shape [8, 1, 3, 3]" in err and "not a JSON object" in err
    assert "holds no checkpoints file" in err and not (tmp_path / "out").exists()


def test_one_architecture_per_zoo(tmp_path):
    src = tmp_path / "tune_zoo_x"
    write_modelzoos(src, trials=2, epochs=1)
    trial = sorted(p for p in src.iterdir() if p.is_dir())[0]
    params = json.loads((trial / "params.json").read_text())
    (trial / "params.json").write_text(json.dumps({**params, "model::type": "Resnet18"}))
    with pytest.raises(ReleaseError, match="one architecture per zoo"):
        convert(src, tmp_path / "out", progress=False)


def test_linked_trials_and_files_are_problems(tmp_path):
    src = tmp_path / "tune_zoo_x"
    write_modelzoos(src, trials=3, epochs=1, errored=0)
    trials = sorted(p for p in src.iterdir() if p.is_dir())
    outside = tmp_path / "elsewhere"
    shutil.move(trials[0] / "checkpoint_000001", outside)
    (trials[0] / "checkpoint_000001").symlink_to(outside)
    shutil.move(trials[1], tmp_path / "moved")
    trials[1].symlink_to(tmp_path / "moved")
    with pytest.raises(ReleaseError) as e:
        convert(src, tmp_path / "out", progress=False)
    assert len(e.value.problems) == 2 and "checkpoint_000001 is a symbolic link" in e.value.problems[0]
    assert f"{trials[1]} is a symbolic link" in e.value.problems[1]


def test_the_source_checksum_is_sha256sum_of_every_file_read(fake, tmp_path, monkeypatch):
    """The manifest's source checksum is the sha256 of the ``sha256sum``-style listing of every file read, hashed
    as the scan reads them: a checkpoint is read twice in all (checked, then converted), and one that changes
    between the scan and its conversion is refused."""
    import hashlib

    import builder.convert_modelzoos as mz
    from builder.convert_modelzoos import _load, scan

    root, _, _, _ = fake
    source = root / "tune_zoo_x"
    everything = [p for p in source.rglob("*") if p.is_file()]
    files = sorted(p for p in everything if p.name in ("params.json", "result.json", "checkpoints"))
    assert len(files) < len(everything)  # Ray's own files (progress.csv, optimizer state, ...) are not read
    listing = "".join(f"{p.relative_to(source)} {hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in files)
    (entry,) = weightzoo.open_zoo(root / "zoo").manifest.generation["source"]["files"]
    assert entry["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert entry["bytes"] == sum(p.stat().st_size for p in files) and f"({len(files)} files" in entry["path"]
    copy = tmp_path / "tune_zoo_x"
    shutil.copytree(source, copy)
    reads: dict[str, int] = {}  # every file's reads: the scan's, then the conversion's
    real = mz._read_bounded

    def counted(path, limit):
        reads[path] = reads.get(path, 0) + 1
        return real(path, limit)

    with monkeypatch.context() as m:
        m.setattr(mz, "_read_bounded", counted)
        convert(copy, tmp_path / "zoo", progress=False)
    checkpoints = [n for p, n in reads.items() if p.endswith("checkpoints")]
    assert len(checkpoints) == sum(p.name == "checkpoints" for p in files) and set(checkpoints) == {2}
    assert {n for p, n in reads.items() if p.endswith("result.json")} == {2}
    found = scan(str(copy))
    trial = found["trials"][0]
    checkpoint = trial.checkpoints[2]
    state = torch.load(checkpoint, weights_only=True)
    torch.save({k: v + 1 for k, v in state.items()}, checkpoint)  # rewritten after the scan checked it
    with pytest.raises(ReleaseError, match="checkpoint_000002/checkpoints: changed since the source was checked"):
        _load(found, trial)
    found = scan(str(copy))  # the checkpoint as it is now; then the metrics change
    results = copy / pathlib.Path(trial.path).name / "result.json"
    results.write_text(results.read_text() + "\n")
    with pytest.raises(ReleaseError, match="result.json: changed since the source was checked"):
        _load(found, found["trials"][0])
