"""The zoo as a Hugging Face dataset: ``load_dataset("weightzoo", ...)``.

``import weightzoo`` registers a builder named ``weightzoo`` with the ``datasets`` library (lazily: ``datasets``
is only imported when you import it), so that::

    from datasets import load_dataset
    ds = load_dataset("weightzoo", data_dir="zoo/demo")                   # a local zoo
    ds = load_dataset("weightzoo", data_dir="hf://datasets/org/nws-fixed")  # a Hub dataset repository
    ds = load_dataset("weightzoo")                                        # $WEIGHTZOO_HOME/demo
    net = model_from_row(ds["test"].with_format("torch")[0])             # a ready torch.nn.Module

The package has three modules: :mod:`~weightzoo.hf.registration` (how ``datasets`` finds the builder),
:mod:`~weightzoo.hf.builder` (the ``datasets`` builder: configurations, options, features; the only module that
imports ``datasets``) and :mod:`~weightzoo.hf.rows` (label names, a row back to its ``nn.Module``).

Example:
    >>> from weightzoo.hf import BUILDER_NAME, label_name
    >>> BUILDER_NAME, label_name(False)
    ('weightzoo', 'false')
"""

from __future__ import annotations

from weightzoo.hf.registration import BUILDER_NAME, is_registered, register, register_lazily

_ROWS = ("label_name", "label_names", "model_from_row")  # need torch: imported on first use


def __getattr__(name: str) -> object:
    if name in _ROWS:
        from weightzoo.hf import rows

        return getattr(rows, name)
    raise AttributeError(f"module 'weightzoo.hf' has no attribute {name!r}")


__all__ = [
    "BUILDER_NAME",
    "is_registered",
    "label_name",
    "label_names",
    "model_from_row",
    "register",
    "register_lazily",
]
