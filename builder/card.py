"""Renders a zoo's dataset card (``README.md``) from the template in ``cards/`` and the zoo's own statistics.

Example:
    >>> text = render_card(manifest, index_table)  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from builder.engine.space import get_preset
from builder.generation_config import command_of
from cards import TEMPLATE_DIR, ZOO_CARD
from weightzoo.about import BIBTEX
from weightzoo.errors import MissingExtraError, UnknownNameError
from weightzoo.format.manifest import Manifest
from weightzoo.format.record import GenerationRecord
from weightzoo.hf import label_name
from weightzoo.hparams import CATEGORICAL

HOMEPAGE = "https://github.com/weightzoo/weightzoo"


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M"


def render_card(manifest: Manifest, index: pa.Table, template: str = ZOO_CARD) -> str:
    """The dataset card of a zoo as Markdown with Hugging Face YAML metadata; ``template``: a template in
    ``cards/`` (another variant, e.g. the converted release's ``nws_release_card.md.j2``)."""
    try:
        import jinja2
    except ImportError:
        raise MissingExtraError("jinja2", "builder", "rendering the dataset card") from None
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), keep_trailing_newline=True, autoescape=False)
    cols = index.to_pydict()
    per_dataset = []
    for name in sorted(set(cols["dataset"])):
        acc = np.array([a for d, a in zip(cols["dataset"], cols["final_test_accuracy"], strict=True) if d == name])
        finite = acc[np.isfinite(acc)] if np.isfinite(acc).any() else acc
        per_dataset.append(
            {
                "dataset": name,
                "n": len(acc),
                "mean": f"{np.mean(finite):.4f}",
                "median": f"{np.median(finite):.4f}",
                "max": f"{np.max(finite):.4f}",
            }
        )
    hparam_counts = {}
    for name in CATEGORICAL:
        counts = Counter(cols[name])
        # values written as the datasets ClassLabels name them (booleans as false / true)
        hparam_counts[name] = ", ".join(
            f"{label_name(k)} ({v})" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))
        )
    lr = np.array(cols["learning_rate"])
    hparam_counts["learning_rate"] = f"{lr.min():.5f} to {lr.max():.5f}" if len(lr) else "-"
    params = np.array(cols["num_params"]) if cols["num_params"] else np.zeros(1)
    epochs = np.array(cols["n_epochs"]) if cols["n_epochs"] else np.zeros(1)
    try:
        description = get_preset(str(manifest.record.preset)).description
    except UnknownNameError:
        description = ""
    return env.get_template(template).render(
        manifest=manifest,
        size_category=_size_category(manifest.num_networks),
        homepage=HOMEPAGE,
        description=description,
        location="<path or URL of this zoo>",
        num_shards=len(manifest.shards),
        params_min=f"{params.min():,}",
        params_max=f"{params.max():,}",
        params_mean=f"{params.mean():,.0f}",
        epochs_min=int(epochs.min()),
        epochs_max=int(epochs.max()),
        epochs_mean=f"{epochs.mean():.1f}",
        per_dataset=per_dataset,
        hparam_counts=hparam_counts,
        command=command_of(manifest.generation),
        license=manifest.record.license_stated,
        citation=BIBTEX,
        budget=_budget(manifest.record),
        released_evaluation=manifest.record.evaluation == "released",
    )


def _budget(record: GenerationRecord) -> str:
    """One sentence when the zoo was trained on a budget (fewer images or epochs than the reference), else ''."""
    parts = []
    if record.train_images is not None:
        parts.append(f"on a class-balanced subset of {record.train_images:,} training images each")
    cap = record.max_epochs
    if cap is not None and cap < 1000:
        parts.append(f"for at most {cap} epochs (early stopping may end a network sooner)")
    if record.test_images is not None:
        parts.append(f"with test metrics on {record.test_images:,} test images")
    if not parts:
        return ""
    return (
        "**A budget zoo**: its networks were trained " + ", ".join(parts) + "; the reference trains on all of a "
        "data set's training images, for up to 1000 epochs, and measures on the whole test set."
    )
