"""Declared architectures (weightzoo.families, weightzoo.family_models) and the format-2 manifest that carries
them: a stranger's declaration is checked and bounded, NWS manifests stay format 1 byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from weightzoo.errors import UnknownNameError, ZooFormatError
from weightzoo.families import DeclaredArchitecture, modelzoos_declaration, smallcnnzoo_declaration
from weightzoo.family_models import build_family_model
from weightzoo.format.manifest import FileEntry, Manifest


def _manifest(**changes) -> dict:
    m = Manifest("z", -1, 0, {}, {}, {"source": {"kind": "smallcnnzoo"}}, [FileEntry("a", "0" * 64, 1)], 9, 2,
                 architecture=smallcnnzoo_declaration((1, 28, 28)), columns={"activation": "string"})  # fmt: skip
    data = json.loads(m.to_json())
    data.update(changes)
    return data


def test_declarations_describe_the_families():
    small = DeclaredArchitecture.from_dict(smallcnnzoo_declaration((1, 32, 32)), "t")
    assert small.num_params == 4970 and small.weightn_conv == 4800 and small.layout == "keras"
    s = DeclaredArchitecture.from_dict(modelzoos_declaration("modelzoos_cnn_s", 1), "t")
    large = DeclaredArchitecture.from_dict(modelzoos_declaration("modelzoos_cnn_l", 3), "t")
    assert (s.num_params, large.num_params) == (2464, 10853)  # the Model Zoos paper's CNN-s / CNN-l sizes
    with pytest.raises(UnknownNameError):
        modelzoos_declaration("resnet18", 3)
    for arch in (small, s, large):
        net = build_family_model(arch, "relu")
        assert list(net.state_dict()) == [p.name for p in arch.params]
        assert net(torch.zeros(2, *arch.input_shape)).shape == (2, 10)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"family": "resnet"}, "architecture.family"),
        ({"input_shape": [1, 28]}, "input_shape"),
        ({"num_outputs": True}, "num_outputs"),
        ({"tensors": [["../x.weight", [3]]]}, "architecture.tensors"),
        ({"tensors": [["a.weight", [3]], ["a.weight", [3]]]}, "architecture.tensors"),
        ({"tensors": [["a.weight", [0]]]}, "architecture.tensors"),
        ({"tensors": [["a.weight", [1]]] * 2000}, "1 to 1024"),
    ],
)
def test_a_strangers_declaration_is_checked(change, match):
    data = _manifest(architecture={**smallcnnzoo_declaration((1, 28, 28)), **change})
    with pytest.raises(ZooFormatError, match=match):
        Manifest.from_json(json.dumps(data), source="/z/manifest.json")


@pytest.mark.parametrize(
    "change, match",
    [
        ({"columns": {"split": "string"}}, "column name"),
        ({"columns": {"a b": "string"}}, "column name"),
        ({"columns": {"lr": "float16"}}, "the type of column lr"),
        ({"num_snapshots": 0}, "num_snapshots"),
        ({"num_snapshots": 10**6}, "num_snapshots"),
        ({"architecture": None}, "architecture is None"),
    ],
)
def test_format_2_columns_and_snapshots_are_checked(change, match):
    with pytest.raises(ZooFormatError, match=match):
        Manifest.from_json(json.dumps(_manifest(**change)), source="/z/manifest.json")


def test_format_1_declares_nothing_and_keeps_its_bytes():
    m = Manifest("z", 0, 0, {}, {}, {}, [FileEntry("a", "0" * 64, 1)])
    text = m.to_json()
    assert "architecture" not in text and "columns" not in text and json.loads(text)["format_version"] == 1
    for change in ({"num_snapshots": 9}, {"architecture": smallcnnzoo_declaration((1, 28, 28))}):
        with pytest.raises(ZooFormatError, match="format 1 zoo"):
            Manifest.from_json(json.dumps({**json.loads(text), **change}), source="m")
    good = Manifest.from_json(json.dumps(_manifest()), source="m")
    assert good.declared and good.index_schema.field("test_accuracy").type.list_size == 9


def test_the_writer_refuses_records_of_the_other_kind(tmp_path):
    from weightzoo.errors import ConfigError
    from weightzoo.format.index import ConvertedRecord
    from weightzoo.format.layout import METRICS
    from weightzoo.format.writer import ZooWriter

    with pytest.raises(ConfigError, match="declared with an architecture"):
        ZooWriter(tmp_path / "a", name="a", zoo_seed=0, generation={}, columns={"x": "string"})
    with pytest.raises(ZooFormatError, match="architecture.family"):  # checked before anything is written
        ZooWriter(tmp_path / "b", name="b", zoo_seed=-1, generation={}, architecture={"family": "resnet"})
    assert not (tmp_path / "b").exists()
    writer = ZooWriter(tmp_path / "c", name="c", zoo_seed=-1, generation={}, num_snapshots=2,
                       architecture=smallcnnzoo_declaration((1, 28, 28)), columns={})  # fmt: skip
    nan = float("nan")
    record = ConvertedRecord(0, "train", "completed", {}, 1, [0, 1], {m: [nan, nan] for m in METRICS}, 4970, 4800)
    writer.add(record, {n: np.zeros((2, *s), np.float32) for n, s in smallcnnzoo_declaration((1, 28, 28))["tensors"]})
    from weightzoo.format.index import NetworkRecord
    from weightzoo.hparams import HyperParameters

    hp = HyperParameters("digits", 1e-3, 64, False, "adam", "relu", "glorot_uniform")
    nws = NetworkRecord(1, "train", "completed", 0, hp, 19, list(range(20)), {m: [0.5] * 20 for m in METRICS}, {})
    with pytest.raises(ConfigError, match="NetworkRecord for a zoo with a declared architecture"):
        writer.add(nws, {})
    assert writer.close().num_networks == 1
