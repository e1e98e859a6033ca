"""Every numeric option of every command has a stated range, checked at parse time (one ``error:`` line, exit 2,
nothing written), and the Python API enforces the same ranges with ConfigError."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from weightzoo.__main__ import COMMANDS
from weightzoo.cli import exit_code
from weightzoo.errors import ConfigError
from weightzoo.options import Range, device_type

#: The least each command needs besides the option under test (positionals and required options).
_BASE = {
    "merge": ["part-a", "part-b", "--out", "merged"],
    "push": ["--repo", "org/name"],
    "convert": ["release", "--out", "converted"],
}
_VALUES = ("0", "-1", "1", "0.5", "1e23", "100000000000000000000000", "nan", "inf", "-inf", "abc", "")


def _parsers(module: str) -> list:
    """A command's parsers: its own, or for ``convert`` (a dispatcher on ``--format``) every converter's."""
    mod = importlib.import_module(module)
    if hasattr(mod, "FORMATS"):
        return [importlib.import_module(m)._parser() for m in mod.FORMATS.values()]
    return [mod._parser()]


def _numeric_options():
    for command, (module, _) in COMMANDS.items():
        for parser in _parsers(module):
            for action in parser._actions:
                if action.option_strings and action.type is not None:
                    yield command, parser, action


def _parsed(rng: Range, text: str):
    try:
        value = int(text) if rng.kind is int else float(text)
    except ValueError:
        return None
    return value if rng.contains(value) else None


def test_every_numeric_option_has_a_stated_range():
    seen = [(c, a.option_strings[0]) for c, _, a in _numeric_options()]
    assert ("generate", "--threads") in seen and ("baselines", "--channels") in seen and len(seen) > 25
    for command, _, action in _numeric_options():
        assert action.type not in (int, float), f"{command} {action.option_strings[0]}: a bare {action.type.__name__}"
        assert hasattr(action.type, "range") or action.type is device_type, (command, action.option_strings)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ("merge", "push")])  # no numeric options
def test_out_of_range_values_are_one_line_errors_at_parse_time(command, capsys):
    checked = 0
    for name, parser, action in _numeric_options():
        if name != command or not hasattr(action.type, "range"):
            continue
        rng, flag = action.type.range, action.option_strings[0]
        for text in _VALUES:
            argv = [*_BASE.get(command, []), f"{flag}={text}"]  # the = form: "-inf" is a value, not a flag
            expected = _parsed(rng, text)
            if expected is not None:
                value = getattr(parser.parse_args(argv), action.dest)
                assert value == expected or value == [expected], (command, flag, text)
                continue
            with pytest.raises(SystemExit) as exc:
                parser.parse_args(argv)
            err = capsys.readouterr().err
            assert exc.value.code == 2, (command, flag, text)
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert "error: argument" in err and flag in err and repr(text) in err and rng.describe() in err, err
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("generate", ["--threads", "-1"]),
        ("generate", ["--seed", "1e23"]),
        ("generate", ["--seed", str(10**23)]),
        ("generate", ["--max-shard-mb", "nan"]),
        ("generate", ["--pack-size", "0"]),
        ("generate", ["--num-networks", str(10**23)]),
        ("generate", ["--device", "bogus"]),
        ("generate", ["--start-id", "9999999", "--num-networks", "2"]),  # past the last id: caught by the config
        ("reproduce", ["--threads", "-3"]),
        ("convert", ["release", "--max-shard-mb", "-1"]),
        ("baselines", ["zoo", "--seed", "-1"]),
        ("baselines", ["zoo", "--max-iter", "0"]),
        ("baselines", ["zoo", "--dropout", "nan"]),
        ("baselines", ["zoo", "--channels", "0"]),
        ("baselines", ["zoo", "--dense", "-1"]),
        ("baselines", ["zoo", "--epochs", "0"]),
        ("baselines", ["zoo", "--learning-rate", "nan"]),
    ],
)
def test_bad_values_exit_2_with_one_line_and_write_nothing(command, argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(COMMANDS[command][0]).main
    out = tmp_path / "out"
    extra = ["--out", str(out)] if command in ("generate", "convert", "baselines") else []
    assert exit_code(main, [*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.split(":")[0] != "Traceback" and "error:" in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_python_api_enforces_the_same_ranges(synthetic_zoo):
    from builder.engine.train import TrainConfig
    from builder.generate import GenerationConfig
    from weightzoo.baselines import fit
    from weightzoo.baselines.dmc import DMCClassifier

    for kwargs in ({"max_epochs": 0}, {"lr_decay": math.nan}, {"eval_batch_size": 0}, {"test_images": 5}):
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            TrainConfig(**kwargs)
    for kwargs in ({"threads": 0}, {"workers": -1}, {"pack_size": 0}, {"seed": 2**64}, {"device": "bogus"}):
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            GenerationConfig(**kwargs)
    path, _ = synthetic_zoo
    with pytest.raises(ConfigError, match="random_state=-1"):
        fit(path, "optimizer", "chance", random_state=-1)
    with pytest.raises(ConfigError, match="epochs=0"):
        fit(path, "optimizer", "dmc", epochs=0)
    with pytest.raises(ConfigError, match="test_fraction=1.5"):
        fit(path, "optimizer", "chance", test_fraction=1.5)
    X, y = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32), np.arange(8) % 2
    with pytest.raises(ConfigError, match="learning_rate=nan"):
        DMCClassifier(slice_length=4, learning_rate=math.nan).fit(X, y)
    with pytest.raises(ConfigError, match="dropout=-1"):
        DMCClassifier(slice_length=4, dropout=-1).fit(X, y)
