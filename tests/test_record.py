"""weightzoo.format.record: the typed run record, tolerant of older manifests and strict with wrong types."""

from __future__ import annotations

import json

import pytest

from weightzoo.errors import ZooFormatError
from weightzoo.format.manifest import Manifest
from weightzoo.format.record import LEGACY_BN_EPS, GenerationRecord


def test_older_records_take_what_zoos_did_then():
    record = GenerationRecord.from_dict({"preset": "demo", "trainer": "pack", "train": {"max_epochs": 3}})
    assert record.generation_version == 1
    assert record.train.epoch_cap == "epochs" and record.train.bn_eps == LEGACY_BN_EPS  # not today's defaults
    assert record.other == {"trainer": "pack"}  # kept, not interpreted
    assert record.license_stated == "mit" and not record.is_converted


@pytest.mark.parametrize(
    ("generation", "named"),
    [
        ({"seed": "zero"}, "generation.seed is 'zero'; expected an integer"),
        ({"datasets": [1, 2]}, "generation.datasets"),
        ({"max_shard_bytes": None}, "generation.max_shard_bytes"),
        ({"train": []}, "generation.train is list"),
        ({"train": {"max_epochs": -4}}, "generation.train: the training record is not valid"),
        ({"train": {"fc_width": 10**9}}, "fc_width=1000000000; expected"),  # padding is bounded, as on the CLI
        ({"fc_width": "wide"}, "generation.fc_width"),
        ({"train": {"filter_size": 6}}, "filter_size=6; expected an odd size"),
        ({"filter_size": 7.5}, "generation.filter_size"),
        ({"preset": True}, "generation.preset"),
    ],
)
def test_wrong_types_are_named_with_the_file(generation, named):
    with pytest.raises(ZooFormatError, match="manifest.json") as exc:
        GenerationRecord.from_dict(generation)
    assert named in str(exc.value)


def _manifest(**changes):
    data = json.loads(
        Manifest(name="m", zoo_seed=0, num_networks=0, splits={}, status_counts={}, generation={}, files=[]).to_json()
    )
    data.update(changes)
    return data


def test_the_manifest_states_its_dtype_and_reads_older_manifests():
    assert Manifest.from_json(json.dumps(_manifest(dtype="float64")), "m.json").dtype == "float64"
    older = _manifest(generation={"dtype": "float64"})
    del older["dtype"]  # before the field: the converter wrote it into the generation record
    assert Manifest.from_json(json.dumps(older), "m.json").dtype == "float64"
    del older["generation"]["dtype"]
    assert Manifest.from_json(json.dumps(older), "m.json").dtype == "float32"
    with pytest.raises(ZooFormatError, match="m.json: dtype is 'int8'; expected float32 or float64"):
        Manifest.from_json(json.dumps(_manifest(dtype="int8")), "m.json")
    older["created"] = "2025-01-01T00:00:00+00:00"  # manifests before provenance.json kept the time
    assert not hasattr(Manifest.from_json(json.dumps(older), "m.json"), "created")
    with pytest.raises(ZooFormatError, match="m.json: generation.seed"):
        Manifest.from_json(json.dumps(_manifest(generation={"seed": 1.5})), "m.json")
