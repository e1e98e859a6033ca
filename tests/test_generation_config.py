"""builder.generation_config: one table of options makes the parser, the config, the manifest record, the
provenance and the card's command, and they agree."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from builder.generation_config import GenerationConfig, build_parser, command_of, config_from_args
from weightzoo.format.record import GenerationRecord

#: A value other than the default for every option recorded in the manifest.
NOT_DEFAULT = {
    "preset": "nws_fixed", "num_networks": 7, "seed": 9, "max_epochs": 4, "start_id": 3,
    "datasets": ("mnist", "fashion"), "lr_decay": 0.96, "bn_decay": 0.8, "evaluation": "released",
    "epoch_cap": "epochs", "on_divergence": "continue", "license": "cc0-1.0", "eval_batch_size": 300,
    "fc_width": 192, "filter_size": 7, "train_images": 500, "test_images": 200, "device": "cpu", "threads": 2,
    "max_shard_bytes": 104857, "compile": True, "tf32": True,
}  # fmt: skip


def _roles() -> dict[str, str]:
    return {f.name: f.metadata["flag"].role for f in dataclasses.fields(GenerationConfig)}


def test_every_recorded_option_survives_the_cards_command():
    """record -> card's command -> parser -> config -> record: nothing lost, nothing added."""
    assert set(NOT_DEFAULT) == {n for n, r in _roles().items() if r == "zoo"}
    config = GenerationConfig(**NOT_DEFAULT)
    command = command_of(config.record())
    assert command.startswith("python -m builder.generate --preset nws_fixed")
    again = config_from_args(build_parser().parse_args(shlex.split(command)[3:]))
    assert again.record() == config.record()


def test_options_at_their_default_stay_out_of_the_command_but_the_run_is_named():
    command = command_of(GenerationConfig(num_networks=4, max_epochs=2).record())
    assert command == "python -m builder.generate --preset demo --num-networks 4 --seed 0 --max-epochs 2"


def test_each_option_has_one_role_and_provenance_stays_out_of_the_record():
    config = GenerationConfig(out="/tmp/x", image_root="/data", executor="process", workers=2, trainer="pack")
    record, provenance = config.record(), config.provenance()
    assert not set(record) & set(provenance)
    assert provenance["out"] == "/tmp/x" and provenance["trainer"] == "pack" and "out" not in record
    assert not {"overwrite", "resume", "progress"} & (set(record) | set(provenance))
    assert "--out" not in command_of(record) and "--image-root" not in command_of(record)


def test_the_reader_types_every_recorded_option():
    """Every option a generated zoo records is a typed field of the reader's GenerationRecord."""
    fields = {f.name for f in dataclasses.fields(GenerationRecord)}
    assert set(NOT_DEFAULT) <= fields
    record = GenerationRecord.from_dict(GenerationConfig(**NOT_DEFAULT).record())
    assert {name: getattr(record, name) for name in NOT_DEFAULT} == NOT_DEFAULT


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--offline"], "allow_download", False),
        ([], "allow_download", True),
        (["--max-shard-mb", "0.5"], "max_shard_bytes", 2**19),
        (["--quiet"], "progress", False),
        (["--progress"], "progress", True),
        ([], "progress", None),
        (["--datasets", "mnist"], "datasets", ("mnist",)),
    ],
)
def test_flags_whose_value_is_not_the_fields(argv, field, value):
    assert getattr(config_from_args(build_parser().parse_args(argv)), field) == value


def test_quiet_and_progress_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--quiet", "--progress"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err
