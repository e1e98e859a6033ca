"""Convert a Model Zoos zoo (Schuerholt et al., NeurIPS 2022 Datasets and Benchmarks) into a weightzoo zoo:
``weightzoo convert --format modelzoos EXPERIMENT_DIR --out ZOO``.

EXPERIMENT_DIR is one zoo as Ray Tune 1.8 wrote it (e.g. ``tune_zoo_mnist_uniform/``): one folder per trained
model (``NN_tune_trainable_<id>_<trial>_<tag>_<date>``), each holding

- ``params.json``: the trial's configuration (``model::type`` "CNN" = CNN-s or "CNN3" = CNN-l,
  ``model::channels_in``, ``model::nlin``, ``model::init_type``, ``model::dropout``, ``optim::optimizer``,
  ``optim::lr``, ``optim::wd``, ``seed``, ``training::batchsize``, ...);
- ``result.json``: one JSON object per line and Tune iteration (``training_iteration``, ``train_loss``,
  ``train_acc``, ``test_loss``, ``test_acc``; iteration 0 evaluates the initial model, its train values the
  sentinel -999);
- ``checkpoint_<epoch, 6 digits>/checkpoints``: the model's ``state_dict`` as ``torch.save`` wrote it (epoch 0, the
  initialisation, to the last), read with ``torch.load(weights_only=True)`` only: nothing in a zoo is executed.

Other files of the experiment folder (``config.json``, ``dataset.pt``, Ray's state files) are not read.

What is kept: every trial as one network, its snapshots the epochs 0 .. the zoo's last (51 for the published CNN
zoos), tensors renamed by layer order (``module_list.<i>`` of ``def_net.py`` -> ``conv0`` .. ``conv2``, ``fc0``,
``out``: the indices shift when dropout layers are present, the order does not), PyTorch layout, float32; train
and test accuracy and loss per epoch from ``result.json`` (the last line of an iteration when a restarted trial
reported it twice; the -999 sentinel NaN; no validation metrics: NaN); every scalar of ``params.json`` as a column
(``model::nlin`` -> ``model_nlin``; lists and mappings as JSON text), with ``activation`` (= ``model::nlin``),
``trial`` (the folder's name) and ``experiment``. A trial without its last checkpoint (an errored trial), or with
non-finite values, has status ``diverged``; its missing epochs NaN with epoch -1.

Split: a seeded permutation of the trials (numpy ``default_rng(0)``), its second half ``test`` (Model Zoos' own
loader shuffles the folders in file-system order, which is not portable).

Example:
    >>> convert("zoos/MNIST/tune_zoo_mnist_uniform", "zoos/modelzoos-mnist")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from builder.convert_common import (
    column_type,
    common_options,
    converter_parser,
    raise_problems,
    report,
    typed,
    write_converted,
)
from builder.nws_release import linked_part
from weightzoo.cli import command, run_main
from weightzoo.errors import ReleaseError
from weightzoo.families import FAMILIES, modelzoos_declaration
from weightzoo.format.index import CORE_COLUMNS, ConvertedRecord
from weightzoo.format.layout import DEFAULT_SHARD_BYTES, MAX_SNAPSHOTS, METRICS
from weightzoo.format.manifest import Manifest, sha256_bytes

#: ``model::type`` -> family (``def_net.py``: ``CNN`` is CNN-s, ``CNN3`` CNN-l).
MODEL_TYPES = {"CNN": "modelzoos_cnn_s", "CNN3": "modelzoos_cnn_l"}
#: ``result.json`` key -> the index's metric.
RESULT_KEYS = {"train_loss": "train_loss", "train_acc": "train_accuracy", "test_loss": "test_loss",
               "test_acc": "test_accuracy"}  # fmt: skip
#: Train metrics of iteration 0: the trainable only evaluates the initial model then.
SENTINEL = -999
_CHECKPOINT = re.compile(r"checkpoint_(\d+)")
_KEY = re.compile(r"module_list\.(\d+)\.(weight|bias)")
#: Bounds on what a trial may make this read (an untrusted zoo): a params.json, a result.json, a checkpoint.
MAX_PARAMS_BYTES = 2**20
MAX_RESULT_BYTES = 256 * 2**20
MAX_CHECKPOINT_BYTES = 256 * 2**20
SOURCE_KIND = "modelzoos"
PAPER = ("Schuerholt, Taskiran, Knyazev, Giro-i-Nieto, Borth: Model Zoos: A Dataset of Diverse Populations of "
         "Neural Network Models, NeurIPS 2022 Datasets and Benchmarks")  # fmt: skip
CITATION = """@inproceedings{schurholt2022model,
  title={Model Zoos: A Dataset of Diverse Populations of Neural Network Models},
  author={Sch{\\"u}rholt, Konstantin and Taskiran, Diyar and Knyazev, Boris and Gir{\\'o}-i-Nieto, Xavier
          and Borth, Damian},
  booktitle={Thirty-sixth Conference on Neural Information Processing Systems Datasets and Benchmarks Track},
  year={2022},
  url={https://openreview.net/forum?id=MOCZI3h8Ye}
}"""


@dataclass(frozen=True)
class Trial:
    """One trained model of the zoo: its network id, folder, configuration, checkpoint folders by epoch and the
    sha256 and size of every file the scan read (by path)."""

    network_id: int
    path: str
    params: dict[str, Any]
    checkpoints: dict[int, str]
    split: str = "train"
    read: dict[str, tuple[str, int]] = field(default_factory=dict)


def _read_bounded(path: str, limit: int) -> bytes:
    size = os.path.getsize(path)
    if size > limit:
        raise ReleaseError(f"{path}: {size} bytes; at most {limit} are read from a file of this kind")
    with open(path, "rb") as f:
        return f.read(limit + 1)


def _read_hashed(path: str, limit: int, expected: str | None) -> tuple[bytes, str]:
    """A file's bytes (at most ``limit``) and their sha256; :class:`~weightzoo.errors.ReleaseError` when the sha256
    is not ``expected`` (what the scan read: the file changed since)."""
    data = _read_bounded(path, limit)
    digest = sha256_bytes(data)
    if expected is not None and digest != expected:
        raise ReleaseError(f"{path}: changed since the source was checked (sha256 {digest[:12]}..., the scan read "
                           f"{expected[:12]}...); convert again from a source nothing is writing to")  # fmt: skip
    return data, digest


def load_state(path: str, expected: str | None = None) -> tuple[dict[str, np.ndarray], str, int]:
    """A checkpoint's ``state_dict`` as numpy arrays, read with ``torch.load(weights_only=True)`` (nothing in the
    file is executed), with the sha256 and size of the bytes read; :class:`~weightzoo.errors.ReleaseError` naming
    the file otherwise, or when its sha256 is not ``expected``."""
    import io

    import torch

    data, digest = _read_hashed(path, MAX_CHECKPOINT_BYTES, expected)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ReleaseError(f"{path}: not a state_dict torch.load(weights_only=True) reads ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None  # fmt: skip
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReleaseError(f"{path}: holds {type(state).__name__}; expected a state_dict (names -> tensors)")
    out = {}
    for k, v in state.items():
        if not v.dtype.is_floating_point:
            raise ReleaseError(f"{path}: tensor {k} is {v.dtype}; expected floating-point weights")
        out[str(k)] = v.detach().to(torch.float32).numpy()
    return out, digest, len(data)


def canonical(state: dict[str, np.ndarray], family: str, channels: int, where: str) -> dict[str, np.ndarray]:
    """A ``def_net.py`` state_dict renamed to the family's declared tensors by layer order (``module_list``
    indices sorted; conv layers are the 4-D weights); :class:`~weightzoo.errors.ReleaseError` when its tensors
    are not the family's."""
    declared = modelzoos_declaration(family, channels)["tensors"]
    layers: dict[int, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        m = _KEY.fullmatch(key)
        if m is None:
            raise ReleaseError(f"{where}: tensor {key!r}; expected module_list.<i>.weight / .bias (def_net.py)")
        layers.setdefault(int(m[1]), {})[m[2]] = value
    names = [name.split(".")[0] for name, _ in declared[::2]]
    if len(layers) != len(names) or any(set(t) != {"weight", "bias"} for t in layers.values()):
        raise ReleaseError(f"{where}: layers {sorted(layers)} with tensors {[sorted(t) for t in layers.values()]}; "
                           f"expected the {len(names)} layers of {family}, each with weight and bias")  # fmt: skip
    out = {}
    for name, index in zip(names, sorted(layers), strict=True):
        for tensor in ("weight", "bias"):
            out[f"{name}.{tensor}"] = layers[index][tensor]
    for name, shape in declared:
        if tuple(out[name].shape) != tuple(shape):
            raise ReleaseError(f"{where}: {name} (module_list.{sorted(layers)[names.index(name.split('.')[0])]}) "
                               f"has shape {list(out[name].shape)}; {family} with {channels} input channels has "
                               f"{shape}")  # fmt: skip
    return {name: out[name] for name, _ in declared}


def read_results(path: str, expected: str | None = None) -> tuple[dict[int, dict[str, float]], str, int]:
    """``result.json``: per ``training_iteration``, its metrics (the last line of an iteration wins: a restarted
    trial reports it again), with the sha256 and size of the bytes read (refused when not ``expected``)."""
    out: dict[int, dict[str, float]] = {}
    data, digest = _read_hashed(path, MAX_RESULT_BYTES, expected)
    text = data.decode("utf-8", errors="replace")
    for k, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            iteration = int(item["training_iteration"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ReleaseError(f"{path} line {k}: not a JSON object with a training_iteration") from None
        values = {}
        for key, metric in RESULT_KEYS.items():
            v = item.get(key)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v != SENTINEL
            values[metric] = float(v) if ok else math.nan
        out[iteration] = values
    return out, digest, len(data)


def scan(source: str) -> dict[str, Any]:
    """Find and check every trial (configuration, metrics, every checkpoint's tensors); every problem together
    in one :class:`~weightzoo.errors.ReleaseError`."""
    if not os.path.isdir(source):
        raise ReleaseError(f"{source}: no such folder; expected a Model Zoos experiment folder (trial folders)")
    # a linked folder is listed (and reported below), not left out
    folders = sorted(e.name for e in os.scandir(source) if e.is_dir())  # links to folders too
    if not folders:
        raise ReleaseError(f"{source}: no trial folders; expected one folder per model (NN_tune_trainable_...)")
    problems: list[str] = []
    trials: list[Trial] = []
    for name in folders:
        path = os.path.join(source, name)
        link = linked_part(source, path)
        if link is not None:  # the release's own rule (builder.nws_release): plain folders and files, no links
            problems.append(f"{path}: {link} is a symbolic link (to {os.path.realpath(link)}); a trial folder holds "
                            "plain files: copy them in instead")  # fmt: skip
            continue
        try:
            raw, digest = _read_hashed(os.path.join(path, "params.json"), MAX_PARAMS_BYTES, None)
            params = json.loads(raw)
        except FileNotFoundError:
            problems.append(f"{path}: no params.json (not a Ray Tune trial folder)")
            continue
        except (json.JSONDecodeError, UnicodeDecodeError, ReleaseError) as e:
            problems.append(f"{path}/params.json: not readable JSON ({e})")
            continue
        if not isinstance(params, dict):
            problems.append(f"{path}/params.json: a JSON {type(params).__name__}; expected an object")
            continue
        checkpoints = {}
        for entry in os.scandir(path):
            m = _CHECKPOINT.fullmatch(entry.name)
            if m and entry.is_dir(follow_symlinks=False):
                checkpoints[int(m[1])] = os.path.join(entry.path, "checkpoints")
        if not os.path.isfile(os.path.join(path, "result.json")):
            problems.append(f"{path}: no result.json")
        if not checkpoints:
            problems.append(f"{path}: no checkpoint_<epoch> folders")
        read = {os.path.join(path, "params.json"): (digest, len(raw))}
        trials.append(Trial(len(trials), path, params, dict(sorted(checkpoints.items())), read=read))
    raise_problems(source, problems, "Model Zoos experiment folder")
    kinds = {(t.params.get("model::type"), t.params.get("model::channels_in", 3)) for t in trials}
    if len(kinds) != 1 or next(iter(kinds))[0] not in MODEL_TYPES:
        raise ReleaseError(f"{source}: model::type and model::channels_in {sorted(map(str, kinds))}; expected one "
                           f"architecture per zoo, of {sorted(MODEL_TYPES)} (CNN-s, CNN-l)")  # fmt: skip
    model_type, channels = next(iter(kinds))
    family = MODEL_TYPES[model_type]
    last = max(max(t.checkpoints) for t in trials)
    if last + 1 > MAX_SNAPSHOTS:
        raise ReleaseError(f"{source}: checkpoints up to epoch {last}; at most {MAX_SNAPSHOTS - 1} are read")
    for trial in trials:
        activation = trial.params.get("model::nlin")
        if activation not in FAMILIES[family][1]:
            problems.append(f"{trial.path}/params.json: model::nlin {activation!r}; expected one of "
                            f"{list(FAMILIES[family][1])}")  # fmt: skip
        results = os.path.join(trial.path, "result.json")
        try:
            _, digest, size = read_results(results)
            trial.read[results] = (digest, size)
        except (ReleaseError, OSError) as e:
            problems.append(str(e))
        for epoch, file in trial.checkpoints.items():
            try:  # checked and hashed for the manifest in one read; the conversion compares its read with this one
                state, digest, size = load_state(file)
                canonical(state, family, int(channels), file)
                trial.read[file] = (digest, size)
            except FileNotFoundError:
                problems.append(f"{file}: missing (checkpoint_{epoch:06d} holds no checkpoints file)")
            except (ReleaseError, OSError) as e:
                problems.append(str(e))
    raise_problems(source, problems, "Model Zoos experiment folder")
    order = np.random.default_rng(0).permutation(len(trials))
    half = int(0.5 * len(trials))
    trials = [replace(t, split="test" if order[t.network_id] >= half else "train") for t in trials]
    keys = sorted({k for t in trials for k in t.params})
    names = {k: re.sub(r"\W", "_", k.replace("::", "_")) for k in keys}
    taken = CORE_COLUMNS | {"activation", "trial", "experiment"}
    names = {k: f"param_{v}" if v in taken or not v.isidentifier() else v for k, v in names.items()}
    values = {names[k]: [_scalar(t.params.get(k)) for t in trials] for k in keys}
    columns = {name: column_type(v) for name, v in values.items()}
    columns.update({"activation": "string", "trial": "string", "experiment": "string"})
    return {"trials": trials, "family": family, "channels": int(channels), "num_snapshots": last + 1,
            "columns": columns, "values": values}  # fmt: skip


def _scalar(value: Any) -> Any:
    """A configuration value as a column holds it: scalars as they are, anything else as JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _load(found: dict[str, Any], trial: Trial) -> tuple[ConvertedRecord, dict[str, np.ndarray]]:
    n = found["num_snapshots"]
    declared = modelzoos_declaration(found["family"], found["channels"])["tensors"]
    tensors = {name: np.full((n, *shape), np.nan, dtype=np.float32) for name, shape in declared}
    for epoch, file in trial.checkpoints.items():
        state = load_state(file, expected=trial.read[file][0])[0]
        for name, value in canonical(state, found["family"], found["channels"], file).items():
            tensors[name][epoch] = value
    results_json = os.path.join(trial.path, "result.json")
    results = read_results(results_json, expected=trial.read[results_json][0])[0]
    metrics = {m: [math.nan] * n for m in METRICS}
    for epoch in range(n):
        for metric, value in results.get(epoch, {}).items():
            metrics[metric][epoch] = value
    epochs = [e if e in trial.checkpoints else -1 for e in range(n)]
    finite = all(np.isfinite(t[list(trial.checkpoints)]).all() for t in tensors.values())
    columns = {name: typed(found["values"][name][trial.network_id], kind)
               for name, kind in found["columns"].items() if name in found["values"]}  # fmt: skip
    columns.update({"activation": trial.params.get("model::nlin"), "trial": os.path.basename(trial.path),
                    "experiment": os.path.basename(os.path.dirname(trial.path))})  # fmt: skip
    conv = sum(math.prod(shape) for name, shape in declared if name.startswith("conv"))
    record = ConvertedRecord(
        network_id=trial.network_id,
        split=trial.split,
        status="completed" if (n - 1) in trial.checkpoints and finite else "diverged",
        columns=columns,
        n_epochs=max(trial.checkpoints),
        snapshot_epochs=epochs,
        snapshot_metrics=metrics,
        num_params=sum(math.prod(shape) for _, shape in declared),
        weightn_conv=conv,
    )
    return record, tensors


def _tree_digest(source: str, trials: list[Trial]) -> dict[str, Any]:
    """The source's checksum in the manifest (a Model Zoos zoo is thousands of small files): one sha256 over the
    lines ``<relative path> <sha256 of the file>`` of every file the scan read, sorted by path (``sha256sum``'s
    listing, so a user can check any one file), with their count and total size."""
    read = {os.path.relpath(path, source): entry for trial in trials for path, entry in trial.read.items()}
    listing = "".join(f"{path} {read[path][0]}\n" for path in sorted(read))
    return {"path": f"{os.path.basename(source)}/ ({len(read)} files: params.json, result.json, checkpoints)",
            "sha256": sha256_bytes(listing.encode()),
            "bytes": sum(size for _, size in read.values())}  # fmt: skip


def convert(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool | None = None,
) -> Manifest:
    """Convert the Model Zoos experiment folder ``source`` into a weightzoo zoo at ``out`` (see the module
    docstring); every problem of the source is reported together before anything is written."""
    src = os.path.abspath(os.fspath(source)).rstrip(os.sep)
    found = scan(src)
    trials = found["trials"]
    experiment = os.path.basename(src)
    kept = [
        f"**Weights**: every checkpoint of every trial (epochs 0 to {found['num_snapshots'] - 1}), read with "
        "`torch.load(weights_only=True)`, the `module_list.<i>` tensors renamed by layer order (conv0 .. conv2, "
        "fc0, out), PyTorch layout, float32.",
        "**Metrics**: train and test accuracy and loss per epoch from `result.json` (iteration 0's train values, the "
        "trainable's -999 sentinel, NaN); no validation metrics in the source (NaN).",
        "**Status**: `diverged` for a trial without its last checkpoint (errored) or with non-finite values; "
        "missing epochs NaN with epoch -1.",
        "**Split**: a seeded permutation of the trials (numpy default_rng(0)), its second half test.",
        "**Columns**: every scalar of `params.json` (`model::nlin` -> `model_nlin`), `activation`, `trial`, "
        "`experiment`. Not read: the experiment's `config.json`, `dataset.pt` and Ray's state files.",
    ]
    source_record = {
        "kind": SOURCE_KIND,
        "title": f"Model Zoos `{experiment}`",
        "paper": PAPER,
        "citation": CITATION,
        "license": "cc-by-4.0",
        "subset": experiment,
        "files": [_tree_digest(src, trials)],
        "split": "a seeded permutation of the trials (numpy default_rng(0)), its second half test",
        "kept": kept,
        "converter": "builder.convert_modelzoos",
    }
    return write_converted(
        out,
        name=f"modelzoos-{experiment}",
        source=source_record,
        architecture=modelzoos_declaration(found["family"], found["channels"]),
        columns=found["columns"],
        num_snapshots=found["num_snapshots"],
        networks=trials,
        load=lambda trial: _load(found, trial),
        converter="builder.convert_modelzoos",
        max_shard_bytes=max_shard_bytes,
        overwrite=overwrite,
        resume=resume,
        progress=progress,
        provenance={"source_dir": src},
    )


def _parser() -> Any:
    return converter_parser("builder.convert_modelzoos", (__doc__ or "").split("\n\n")[0].replace("``", ""),
                            "one Model Zoos experiment folder (Ray Tune trial folders)")  # fmt: skip


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return report(lambda: convert(args.source, args.out, **common_options(args)))


if __name__ == "__main__":
    run_main(main)
