"""The range of every numeric option, stated once: the command-line tools check it at parse time (an argparse
``type=``), the Python API (``TrainConfig``, ``GenerationConfig``, ``fit``, the DMC estimators) with
:class:`~weightzoo.errors.ConfigError`. Zero, negative, huge, NaN, infinite and non-numeric values are each refused
with one line naming the option, the value and the range.

Example:
    >>> RANGES["threads"].describe()
    'an integer from 1 to 1,024'
    >>> RANGES["threads"].check("threads", 2)
    2
    >>> RANGES["dropout"].parse("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 'nan': expected a number from 0 to 1 (1 excluded)
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from typing import Any

from weightzoo.errors import ConfigError

__all__ = [
    "MAX_NETWORK_ID",
    "RANGES",
    "Range",
    "check_params",
    "device_type",
    "device_type_checked",
    "option_type",
]

#: Network ids are zero-padded to 7 digits in shard tensor names (``format.layout.tensor_name``), which keeps a
#: network's tensors contiguous: ids run from 0 to this.
MAX_NETWORK_ID = 10**7 - 1


@dataclass(frozen=True)
class Range:
    """Numbers of ``kind`` (int or float) from ``low`` to ``high``; ``*_open`` excludes a bound. Always finite."""

    kind: type
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        excluded = [str(_show(b)) for b, o in ((self.low, self.low_open), (self.high, self.high_open)) if o]
        tail = f" ({' and '.join(excluded)} excluded)" if excluded else ""
        return f"{what} from {_show(self.low)} to {_show(self.high)}{tail}"

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it lies in the range; else :class:`ConfigError` naming ``name``, the value and the range."""
        if hasattr(value, "item") and not isinstance(value, (int, float)):
            value = value.item()  # a numpy scalar
        if not self.contains(value):
            raise ConfigError(f"{name}={value!r}; expected {self.describe()}")
        return value

    def parse(self, text: str) -> Any:
        """The argparse ``type=``: text to a number in the range, or ``argparse.ArgumentTypeError``."""
        try:
            value: Any = int(text) if self.kind is int else float(text)
        except ValueError:
            value = None
        if value is None or not self.contains(value):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {self.describe()}")
        return value


def _show(bound: float) -> str:
    """A bound as people write it: 2**63 - 1, 1,000,000, 0.5."""
    if float(bound).is_integer():
        n = int(bound)
        if n > 2**16 and (n + 1) & n == 0:
            return f"2**{n.bit_length()} - 1"
        return f"{n:,}"
    return f"{bound:g}"


#: Every numeric option of the package, by its Python name (the command-line flag is the same with dashes).
RANGES: dict[str, Range] = {
    # generate
    "seed": Range(int, 0, 2**63 - 1),  # the index stores it as int64
    "start_id": Range(int, 0, MAX_NETWORK_ID),
    "num_networks": Range(int, 1, MAX_NETWORK_ID + 1),
    "network_id": Range(int, 0, MAX_NETWORK_ID),
    "max_epochs": Range(int, 1, 100_000),
    "lr_decay": Range(float, 0, 1, low_open=True),
    "bn_decay": Range(float, 0, 1, high_open=True),
    "train_images": Range(int, 20, 10**9),
    "test_images": Range(int, 20, 10**9),
    "train_eval_images": Range(int, 20, 10**9),
    "eval_batch_size": Range(int, 1, 10**6),
    "fc_width": Range(int, 1, 65_536),
    "filter_size": Range(int, 1, 63),
    "workers": Range(int, 1, 1024),
    "pack_size": Range(int, 1, 4096),
    "threads": Range(int, 1, 1024),
    "max_shard_mb": Range(float, 0, 2**20, low_open=True),
    # baselines
    "random_state": Range(int, 0, 2**32 - 1),  # what scikit-learn accepts
    "test_fraction": Range(float, 0, 1, low_open=True, high_open=True),
    "max_iter": Range(int, 1, 10**6),
    "epochs": Range(int, 1, 100_000),
    "slice_length": Range(int, 1, 10**9),
    "channels": Range(int, 1, 4096),
    "dense": Range(int, 1, 65_536),
    "dropout": Range(float, 0, 1, high_open=True),
    "learning_rate": Range(float, 0, 10, low_open=True),
    "batch_size": Range(int, 1, 10**6),
    "eval_slices": Range(int, 1, 10**6),
    "validation_fraction": Range(float, 0, 1, high_open=True),
    "n_probes": Range(int, 1, 4096),
    "hidden": Range(int, 1, 65_536),
    "weight_decay": Range(float, 0, 1),
    "n_iter_no_change": Range(int, 1, 100_000),
    "seeds": Range(int, 1, 100),
}


def option_type(name: str) -> Any:
    """The argparse ``type=`` of option ``name`` (see :data:`RANGES`); it carries the range as ``.range``.

    Example:
        >>> option_type("workers")("4"), option_type("workers").range.describe()
        (4, 'an integer from 1 to 1,024')
    """
    rng = RANGES[name]

    def parse(text: str) -> Any:
        return rng.parse(text)

    parse.range = rng  # type: ignore[attr-defined]
    parse.__name__ = name
    return parse


_DEVICE = re.compile(r"cpu|cuda(:\d{1,3})?|mps|xpu(:\d{1,3})?|meta")


def device_type(text: str) -> str:
    """The argparse ``type=`` of ``--device``: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``xpu[:N]`` (checked
    without importing torch; whether the device exists is checked when the run starts).

    Example:
        >>> device_type("cuda:1")
        'cuda:1'
    """
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a torch device such as cpu, cuda or cuda:1")
    return text


def device_type_checked(device: str) -> str:
    """:func:`device_type` for the Python API: :class:`ConfigError` naming the value."""
    try:
        return device_type(device)
    except argparse.ArgumentTypeError as e:
        raise ConfigError(f"device={device!r}: {str(e).split(': ', 1)[1]}") from None


def check_params(params: dict[str, Any]) -> None:
    """Check every value of ``params`` whose name has a range (None means "the default" and passes; a tuple or list
    is checked element by element, as ``channels=(16, 32)``); :class:`ConfigError` names the first bad one.

    Example:
        >>> check_params({"epochs": 5, "dense": (64, 0), "device": "cpu"})
        Traceback (most recent call last):
        ...
        weightzoo.errors.ConfigError: dense=0; expected an integer from 1 to 65,536
    """
    for name, value in params.items():
        rng = RANGES.get(name)
        if rng is None or value is None or (name == "random_state" and not isinstance(value, (int, float))):
            continue  # random_state may also be a numpy Generator, as scikit-learn allows
        for item in value if isinstance(value, (tuple, list)) else (value,):
            rng.check(name, item)
