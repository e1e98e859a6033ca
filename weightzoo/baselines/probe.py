"""The probing baseline: read a network by what it computes (in the spirit of ProbeGen, Kahana et al., ICLR 2025;
this is our own, simpler model), beside what its weights' statistics say.

``n_probes`` learned input images are fed through every network (its own weights, in eval mode, as
:class:`~weightzoo.model.NWSNet` rebuilds it); what the networks compute on the probes is the *probe features*:
their outputs (``n_probes`` x 20 logits) and, with ``readout="outputs+hidden"`` (the default), a summary of their
first and last hidden activations (:data:`HIDDEN_STATS` over every probe, position and unit of the layer: mean,
spread, range, the fractions above and exactly at zero), all compressed with ``sign(x) log(1 + |x|)`` so a sigmoid
network's and a diverging one's values share a scale. ProbeGen reads outputs only (``readout="outputs"``, a black
box); we own the networks, and their hidden layers show what the logits blur (an activation function's range, how
many units a brightness switches off). Two stages:

1. **Probes learned end to end.** The probes start as a ramp of uniform grey images (levels 0.05 to 0.95, plus a
   little noise; ``probe_init="grey"``: a network's response to brightness tells its activation and data set
   apart, where random-noise images give features near chance on our zoos) and are trained with a small head
   (batch-normalised input, one hidden ReLU layer, dropout) by Adam: the gradient reaches the probes through the
   networks, whose weights stay fixed. Briefly (``epochs=10``): on a zoo of ~100 networks the head overfits
   soon, and held out networks say so (with ``early_stopping=True`` the held-out loss of the README's zoo bottoms
   out after 2 to 9 epochs), while probes still near their grey start generalise better.
2. **The head** (``head="boost"``, the default): histogram gradient boosting, the ``stats`` model's learner, refitted
   on the learned probes' features, on the per-tensor weight statistics (:mod:`weightzoo.baselines.features`),
   or on both: ``features="select"`` picks one of the three by k-fold cross-validation on the *training*
   networks (accuracy, or R^2 for a number) with the one-standard-error rule (the simplest set, in the order
   stats, probes, probes+stats, whose mean score is within one standard error of the best), recorded in
   ``features_`` and ``cv_scores_``. ``features="probes"`` keeps the purely functional model; ``head="mlp"``
   predicts with the end-to-end head itself (stage 1 only: the ProbeGen-like model).

Why the weight statistics are a candidate: on 100 networks the outputs do not see everything the weights do (the
initialisation scheme, which training leaves in the weights' spread, is invisible in the function: 0.6-0.75
accuracy from probes alone against 1.0 from statistics on the README's zoo), while on other targets the probes see
more (the data set a network was trained on). Cross-validation on the training networks, not the test networks,
decides per target; ``benchmarks/probe_vs_stats.py`` prints the choice beside each score.

Many networks run at once: the networks of one architecture and activation are stacked, and one
``torch.func.vmap`` of ``torch.func.functional_call`` evaluates all of them on the probes in the same kernels
(grouped convolutions on CPU and GPU). A zoo mixing architectures (``nws_main``) is grouped by architecture.

Input ``X``: a sequence of :class:`NetworkSample` (one network at one snapshot: its tensors, architecture,
activation and batch-norm epsilon), as :func:`weightzoo.baselines.samples.load_samples` makes them with
``features=("networks",)``.

Example (``zoo_path``: a small zoo written by the test fixtures):
    >>> from weightzoo.baselines import fit
    >>> est, report = fit(zoo_path, target="test_accuracy", model="probe", snapshots=20, test_fraction=0.5,
    ...                   epochs=3, n_probes=2, hidden=8)
    >>> report.model, type(est).__name__, len(est.loss_curve_), est.features_ in ("probes", "stats", "probes+stats")
    ('probe', 'ProbeRegressor', 3, True)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.architecture import NUM_OUTPUTS, Architecture
from weightzoo.baselines.estimators import small_zoo_leaf
from weightzoo.baselines.features import STATS, layer_slot, tensor_stats
from weightzoo.errors import ConfigError, MissingExtraError, UnknownNameError
from weightzoo.model import NWSNet
from weightzoo.options import check_params

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import NotFittedError as _SklearnNotFitted
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("scikit-learn", "baselines", "the probing baseline") from None

__all__ = ["FEATURE_SETS", "HEADS", "HIDDEN_STATS", "READOUTS", "NetworkSample", "ProbeClassifier", "ProbeRegressor"]

#: The networks' input: colour images 32 x 32 in [0, 1] (``weightzoo.model.NWSNet``).
IMAGE_SHAPE: tuple[int, int, int] = (3, 32, 32)


@dataclass(frozen=True)
class NetworkSample:
    """One network at one snapshot, ready to run: ``tensors`` (name -> array, the snapshot's values, reference
    order), its ``architecture``, ``activation`` and the batch-norm ``bn_eps`` of its zoo."""

    tensors: Mapping[str, np.ndarray]
    architecture: Architecture
    activation: str
    bn_eps: float

    @property
    def kind(self) -> tuple[Architecture, str, float]:
        """What networks must share to run in one batch."""
        return self.architecture, self.activation, self.bn_eps


def _input_shape(arch: Any) -> tuple[int, ...]:
    """What a network takes: a converted zoo's declared input, else the NWS networks' 3 x 32 x 32."""
    return tuple(getattr(arch, "input_shape", IMAGE_SHAPE))


def _num_outputs(arch: Any) -> int:
    return int(getattr(arch, "num_outputs", NUM_OUTPUTS))


def _template(arch: Any, activation: str, bn_eps: float) -> nn.Module:
    """The network (eval mode) that runs a group's stacked weights: NWS, or a declared family's."""
    if isinstance(arch, Architecture):
        return NWSNet(arch, activation, bn_eps=bn_eps).eval()
    from weightzoo.family_models import build_family_model

    return build_family_model(arch, activation)


#: What is read of a hidden activation on the probes (every probe, position and unit of one layer at once).
HIDDEN_STATS: tuple[str, ...] = ("mean", "std", "min", "max", "positive", "zero", "mean_abs")


def _hidden_summary(h: torch.Tensor) -> torch.Tensor:
    """:data:`HIDDEN_STATS` of one network's activations ``h`` (any shape) on the probes."""
    f = h.flatten()
    return torch.stack([f.mean(), f.std(), f.amin(), f.amax(), (f > 0).to(f.dtype).mean(),
                        (f == 0).to(f.dtype).mean(), f.abs().mean()])  # fmt: skip


def _recording(template: nn.Module) -> list[torch.Tensor]:
    """Make ``template`` record the output of every activation function it applies, in order, into the returned
    list (which the caller clears before each forward): a hook on its one activation module ``act`` (NWS networks
    and declared families alike)."""
    seen: list[torch.Tensor] = []
    template.act.register_forward_hook(lambda _module, _inputs, out: seen.append(out))
    return seen


class NotFittedError(ConfigError, _SklearnNotFitted):
    """A probing model used before ``fit``."""


class _Stack:
    """The samples' networks stacked by kind: ``groups[k]`` (template network, {name: [G, *shape] tensor}) and,
    per sample, its group and position there."""

    def __init__(self, X: Sequence[NetworkSample], device: torch.device):
        if len(X) == 0:
            raise ConfigError("no networks to probe: X is empty")
        bad = [type(x).__name__ for x in X if not isinstance(x, NetworkSample)]
        if bad:
            raise ConfigError(
                f"X holds {bad[0]}; expected NetworkSample (load_samples(..., features=('networks',)) makes them)"
            )
        kinds: dict[tuple[Architecture, str, float], list[int]] = {}
        for i, x in enumerate(X):
            kinds.setdefault(x.kind, []).append(i)
        self.groups: list[tuple[nn.Module, dict[str, torch.Tensor], list[torch.Tensor]]] = []
        shapes = {(_input_shape(k[0]), _num_outputs(k[0])) for k in kinds}
        if len(shapes) > 1:
            raise ConfigError(f"the networks take different inputs or give different outputs ({sorted(shapes)}); "
                              "probe networks of one zoo (one input shape) at a time")  # fmt: skip
        (self.input_shape, self.num_outputs) = shapes.pop()
        self.group_of = np.zeros(len(X), dtype=np.int64)
        self.position = np.zeros(len(X), dtype=np.int64)
        for g, ((arch, activation, eps), members) in enumerate(kinds.items()):
            template = _template(arch, activation, eps).to(device)
            names = [p.name for p in arch.params]
            stacked = {
                n: torch.as_tensor(np.stack([np.asarray(X[i].tensors[n], dtype=np.float32) for i in members]))
                .to(device)
                for n in names
            }  # fmt: skip
            self.groups.append((template, stacked, _recording(template)))
            self.group_of[members] = g
            self.position[members] = np.arange(len(members))

    def responses(self, probes: torch.Tensor, rows: np.ndarray, hidden: bool = True) -> list[torch.Tensor]:
        """What the networks ``rows`` (sample indices) compute on ``probes``: their logits [len(rows), n_probes,
        outputs], then (``hidden``) the summaries of their first and last hidden activations [len(rows), 2,
        len(HIDDEN_STATS)]."""
        where, parts = [], []
        for g in np.unique(self.group_of[rows]):
            mask = self.group_of[rows] == g
            template, stacked, seen = self.groups[int(g)]
            pos = torch.as_tensor(self.position[rows][mask], device=probes.device)
            weights = {n: t.index_select(0, pos) for n, t in stacked.items()}

            def run(w: dict[str, torch.Tensor], template: nn.Module = template, seen: list = seen) -> tuple:
                seen.clear()
                out = torch.func.functional_call(template, w, (probes,))
                if not hidden:
                    return (out,)
                return out, torch.stack([_hidden_summary(seen[0]), _hidden_summary(seen[-1])])

            where.append(np.flatnonzero(mask))
            parts.append(torch.func.vmap(run)(weights))
        # each result's groups concatenated, then put back in the order of ``rows``
        back = torch.as_tensor(np.argsort(np.concatenate(where)), device=probes.device)
        return [torch.cat(result).index_select(0, back) for result in zip(*parts, strict=True)]


class _ProbeNet(nn.Module):
    """The probes (stored as logits: the images are their sigmoid, in [0, 1]) and the head."""

    def __init__(self, n_probes: int, hidden: int, dropout: float, n_out: int,
                 image_shape: tuple[int, ...] = IMAGE_SHAPE, num_outputs: int = NUM_OUTPUTS,
                 probe_init: str = "grey", readout: str = "outputs+hidden"):  # fmt: skip
        super().__init__()
        self.readout = readout
        noise = torch.randn(n_probes, *image_shape)
        if probe_init == "grey":  # uniform images, levels 0.05 .. 0.95, and a little noise to break the symmetry
            levels = torch.logit(torch.linspace(0.05, 0.95, n_probes)).view(-1, *([1] * len(image_shape)))
            noise = levels + 0.01 * noise
        self.probe_logits = nn.Parameter(noise)
        width = n_probes * num_outputs + (2 * len(HIDDEN_STATS) if readout == "outputs+hidden" else 0)
        self.head = nn.Sequential(
            nn.BatchNorm1d(width, affine=False),
            nn.Linear(width, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_out),
        )

    def probes(self) -> torch.Tensor:
        return torch.sigmoid(self.probe_logits)

    def features(self, stack: _Stack, rows: np.ndarray) -> torch.Tensor:
        """The probe features of the networks ``rows``, compressed: [len(rows), n_probes x outputs] logits, then
        (``readout="outputs+hidden"``) the 2 x len(HIDDEN_STATS) summaries of the first and last hidden layer."""
        responses = stack.responses(self.probes(), rows, hidden=self.readout == "outputs+hidden")
        features = torch.cat([r.flatten(1) for r in responses], dim=1)
        features = torch.sign(features) * torch.log1p(features.abs())
        return torch.nan_to_num(features, nan=0.0, posinf=30.0, neginf=-30.0)

    def forward(self, stack: _Stack, rows: np.ndarray) -> torch.Tensor:
        return self.head(self.features(stack, rows))


#: What the boosted head may be fitted on (``features=``); ``select`` picks one of them by cross-validation.
FEATURE_SETS: tuple[str, ...] = ("stats", "probes", "probes+stats")
#: The two heads: gradient boosting refitted on the features, or the end-to-end MLP.
HEADS: tuple[str, ...] = ("boost", "mlp")
#: What the probes read of a network: its outputs (a black box, as ProbeGen), or also its hidden activations.
READOUTS: tuple[str, ...] = ("outputs", "outputs+hidden")


def _role(arch: Any, name: str) -> str:
    """A tensor's role, to align the statistics of different NWS architectures (declared families: its name)."""
    return layer_slot(arch, name) if isinstance(arch, Architecture) else name


def _weight_stats(X: Sequence[NetworkSample], roles: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Per-tensor statistics (``stats``) of every network, one row each, in the columns of ``roles`` (a tensor's
    role, :func:`_role`; NaN where a network lacks one). ``roles`` None: every role of ``X``, in first-seen order
    (kept by the estimator so the networks it predicts are laid out as those it was fitted on; a role it never saw
    is left out)."""
    per: list[dict[str, np.ndarray]] = []
    for x in X:
        names = list(x.tensors)
        block = tensor_stats({n: np.asarray(x.tensors[n])[None] for n in names}, (1,))[0].reshape(len(names), -1)
        per.append({_role(x.architecture, n): block[k] for k, n in enumerate(names)})
    if roles is None:
        roles = list(dict.fromkeys(r for row in per for r in row))
    width = len(STATS)
    out = np.full((len(X), len(roles) * width), np.nan)
    col = {r: j for j, r in enumerate(roles)}
    for i, row in enumerate(per):
        for r, values in row.items():
            if r in col:
                out[i, col[r] * width : (col[r] + 1) * width] = values
    return out, roles


class _ProbeBase(BaseEstimator):
    """Shared by :class:`ProbeClassifier` and :class:`ProbeRegressor` (scikit-learn estimators: ``get_params``,
    ``set_params`` and ``clone`` work; ``__init__`` only stores the parameters).

    Parameters: ``n_probes`` images, stage 1's ``hidden`` width, ``dropout``, ``epochs`` (at most),
    ``learning_rate``, ``batch_size`` and ``weight_decay``; ``early_stopping`` as scikit-learn's MLP does it:
    ``validation_fraction`` of the networks held out of stage 1, which stops once their loss has not improved for
    ``n_iter_no_change`` epochs and keeps the probes of its best epoch (``validation_curve_``, ``best_epoch_``);
    ``probe_init`` (``"grey"`` or ``"random"``: sigmoid of N(0, 1)
    noise); ``readout`` (:data:`READOUTS`); ``head`` (:data:`HEADS`), ``features`` (:data:`FEATURE_SETS` or
    ``"select"``) and ``cv_folds`` for the boosted head; ``random_state``; ``device`` (default: CUDA when
    available).
    """

    _classify = True

    def __init__(
        self,
        n_probes: int = 16,
        hidden: int = 64,
        dropout: float = 0.2,
        epochs: int = 10,
        learning_rate: float = 3e-3,
        batch_size: int = 64,
        weight_decay: float = 1e-4,
        early_stopping: bool = False,
        validation_fraction: float = 0.2,
        n_iter_no_change: int = 10,
        probe_init: str = "grey",
        readout: str = "outputs+hidden",
        head: str = "boost",
        features: str = "select",
        cv_folds: int = 5,
        random_state: int | None = 0,
        device: str | None = None,
    ):
        self.n_probes = n_probes
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.probe_init = probe_init
        self.readout = readout
        self.head = head
        self.features = features
        self.cv_folds = cv_folds
        self.random_state = random_state
        self.device = device

    def _device(self) -> torch.device:
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _check(self) -> None:
        check_params({"epochs": self.epochs, "learning_rate": self.learning_rate, "batch_size": self.batch_size,
                      "dropout": self.dropout, "random_state": self.random_state, "n_probes": self.n_probes,
                      "hidden": self.hidden, "weight_decay": self.weight_decay,
                      "validation_fraction": self.validation_fraction,
                      "n_iter_no_change": self.n_iter_no_change})  # fmt: skip
        for name, value, allowed in (("probe_init", self.probe_init, ("grey", "random")),
                                     ("readout", self.readout, READOUTS), ("head", self.head, HEADS),
                                     ("features", self.features, ("select", *FEATURE_SETS))):  # fmt: skip
            if value not in allowed:
                raise UnknownNameError(name, value, allowed)
        if not isinstance(self.early_stopping, bool):
            raise ConfigError(f"early_stopping={self.early_stopping!r}; expected True or False")
        if not isinstance(self.cv_folds, int) or self.cv_folds < 2:
            raise ConfigError(f"cv_folds={self.cv_folds!r}; expected an integer of at least 2")

    def fit(self, X: Sequence[NetworkSample], y: Any) -> _ProbeBase:
        """Learn probes (and the end-to-end head) on networks ``X`` and targets ``y``, then fit the head;
        ``loss_curve_`` holds each epoch's mean training loss of stage 1."""
        self._check()
        y = np.asarray(y)
        if len(y) != len(X):
            raise ConfigError(f"{len(X)} networks but {len(y)} targets")
        device = self._device()
        # every draw (probes, head, dropout, batch order) from the seed; the caller's global torch state untouched
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(int(self.random_state or 0))
            self._fit(X, y, device)
        for stale in ("stat_roles_", "booster_"):  # a refit lays the statistics out anew
            self.__dict__.pop(stale, None)
        if self.head == "boost":
            self._fit_booster(X, y)
        else:
            self.features_, self.cv_scores_ = "probes", {}
        return self

    def _fit(self, X: Sequence[NetworkSample], y: np.ndarray, device: torch.device) -> None:
        rng = np.random.default_rng(self.random_state)
        stack = _Stack(X, device)
        if self._classify:
            self.classes_, codes = np.unique(y, return_inverse=True)
            target = torch.as_tensor(codes, dtype=torch.int64, device=device)
            n_out, loss_fn = len(self.classes_), nn.functional.cross_entropy
        else:
            values = y.astype(np.float64)
            self.y_mean_, self.y_std_ = float(values.mean()), float(values.std() or 1.0)
            target = torch.as_tensor((values - self.y_mean_) / self.y_std_, dtype=torch.float32, device=device)
            n_out = 1

            def loss_fn(pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return nn.functional.mse_loss(pred[:, 0], t)

        net = _ProbeNet(self.n_probes, self.hidden, self.dropout, n_out, stack.input_shape, stack.num_outputs,
                        self.probe_init, self.readout)  # fmt: skip
        net = net.to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        fit_rows, val_rows = self._holdout(y, rng)
        self.loss_curve_: list[float] = []
        self.validation_curve_: list[float] = []
        best, best_state, waited = np.inf, None, 0
        self.best_epoch_ = self.epochs  # without early stopping: the last
        batch = max(2, min(self.batch_size, len(fit_rows)))  # batch norm needs two samples
        for epoch in range(1, self.epochs + 1):
            net.train()
            order = rng.permutation(fit_rows)
            total = 0.0
            for start in range(0, len(order), batch):
                rows = order[start : start + batch]
                if len(rows) < 2:
                    continue
                optimizer.zero_grad()
                loss = loss_fn(net(stack, rows), target[torch.as_tensor(rows, device=device)])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
            self.loss_curve_.append(total / len(order))
            if len(val_rows) == 0:
                continue
            net.eval()
            with torch.no_grad():
                held_out = float(loss_fn(net(stack, val_rows), target[torch.as_tensor(val_rows, device=device)]))
            self.validation_curve_.append(held_out)
            if held_out < best:
                best, best_state, waited, self.best_epoch_ = held_out, copy.deepcopy(net.state_dict()), 0, epoch
            else:
                waited += 1
                if waited >= self.n_iter_no_change:
                    break
        if best_state is not None:  # the probes and head of the epoch with the lowest held-out loss
            net.load_state_dict(best_state)
        self.net_ = net.eval()
        self.n_features_in_ = net.head[0].num_features

    def _holdout(self, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Stage 1's networks to learn on and those held out to stop by (``early_stopping``):
        ``validation_fraction`` of them (per class, for a classifier whose classes each have two networks); none
        held out (every epoch runs) without early stopping or when fewer than two would be on either side."""
        everyone = np.arange(len(y))
        n_val = round(self.validation_fraction * len(y)) if self.early_stopping else 0
        if n_val < 2 or len(y) - n_val < 2:
            return everyone, everyone[:0]
        from sklearn.model_selection import train_test_split

        counts = np.unique(y, return_counts=True)[1]
        stratify = y if self._classify and counts.min() >= 2 and min(n_val, len(y) - n_val) >= len(counts) else None
        fit_rows, val_rows = train_test_split(everyone, test_size=n_val, stratify=stratify,
                                              random_state=int(rng.integers(2**31)))  # fmt: skip
        return np.sort(fit_rows), np.sort(val_rows)

    def _candidates(self, X: Sequence[NetworkSample], names: Sequence[str]) -> dict[str, np.ndarray]:
        """The feature matrices ``names`` (of :data:`FEATURE_SETS`) of networks ``X``."""
        out: dict[str, np.ndarray] = {}
        if any("probes" in n for n in names):
            out["probes"] = self.probe_features(X)
        if any("stats" in n for n in names):
            out["stats"], roles = _weight_stats(X, getattr(self, "stat_roles_", None))
            self.stat_roles_ = roles
        if "probes+stats" in names:
            out["probes+stats"] = np.hstack([out["probes"], out["stats"]])
        return {n: out[n] for n in names}

    def _booster(self, n_train: int, seed: int | None) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if self._classify else HistGradientBoostingRegressor
        return cls(random_state=seed, min_samples_leaf=small_zoo_leaf(n_train))  # the ``stats`` model's rule

    def _fit_booster(self, X: Sequence[NetworkSample], y: np.ndarray) -> None:
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

        names = FEATURE_SETS if self.features == "select" else (self.features,)
        candidates = self._candidates(X, names)
        seed = self.random_state if isinstance(self.random_state, int) else 0
        self.cv_scores_: dict[str, float] = {}
        if len(names) > 1:
            if self._classify:
                smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
                folds = StratifiedKFold(max(2, min(self.cv_folds, smallest)), shuffle=True, random_state=seed)
            else:
                folds = KFold(max(2, min(self.cv_folds, len(y) // 2)), shuffle=True, random_state=seed)
            errors = {}
            for name, F in candidates.items():
                scores = cross_val_score(self._booster(len(y) * 4 // 5, seed), F, y, cv=folds)
                scores = scores[np.isfinite(scores)]  # R^2 of a fold whose targets are all equal: undefined
                self.cv_scores_[name] = float(np.mean(scores)) if len(scores) else -np.inf
                errors[name] = float(np.std(scores) / np.sqrt(len(scores))) if len(scores) else 0.0
            # the one-standard-error rule: the simplest set (FEATURE_SETS is in that order) whose score is within
            # one standard error of the best one's; on ~100 networks the folds' scores are noisy
            best = max(names, key=lambda n: self.cv_scores_[n])
            floor = self.cv_scores_[best] - errors[best]
            self.features_ = next(n for n in names if self.cv_scores_[n] >= floor)
        else:
            self.features_ = names[0]
        self.booster_ = self._booster(len(y), seed).fit(candidates[self.features_], y)

    def _require_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    def _run(self, X: Sequence[NetworkSample], features_only: bool) -> np.ndarray:
        """The probe features (``features_only``) or stage 1's head output of the networks ``X``, in batches of
        256, without gradients, as one array."""
        self._require_fitted()
        fn = self.net_.features if features_only else self.net_
        stack = _Stack(X, next(self.net_.parameters()).device)
        out = []
        with torch.no_grad():
            for start in range(0, len(X), 256):
                out.append(fn(stack, np.arange(start, min(start + 256, len(X)))).cpu().numpy())
        return np.concatenate(out)

    def probe_features(self, X: Sequence[NetworkSample]) -> np.ndarray:
        """The networks' compressed responses to the learned probes, float32: [len(X), n_probes x outputs], then
        (``readout="outputs+hidden"``) the :data:`HIDDEN_STATS` of their first and last hidden layers."""
        return self._run(X, features_only=True)

    def _head_input(self, X: Sequence[NetworkSample]) -> np.ndarray:
        self._require_fitted()
        return self._candidates(X, (self.features_,))[self.features_]

    def _raw(self, X: Sequence[NetworkSample]) -> np.ndarray:
        """Stage 1's head output (logits, or the standardised number)."""
        return self._run(X, features_only=False)

    def probe_images(self) -> np.ndarray:
        """The learned probes as images [n_probes, height, width, channels] in [0, 1] (to look at them)."""
        self._require_fitted()
        return self.net_.probes().detach().permute(0, 2, 3, 1).cpu().numpy()


class ProbeClassifier(ClassifierMixin, _ProbeBase):
    """Predicts a categorical hyper-parameter of a network from its outputs on learned probes (and, where
    cross-validation on the training networks says so, its weight statistics).

    Example:
        >>> ProbeClassifier(n_probes=8).get_params()["n_probes"]
        8
    """

    _classify = True

    def predict_proba(self, X: Sequence[NetworkSample]) -> np.ndarray:
        if hasattr(self, "booster_"):
            return self.booster_.predict_proba(self._head_input(X))
        return torch.softmax(torch.as_tensor(self._raw(X)), dim=1).numpy()

    def predict(self, X: Sequence[NetworkSample]) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class ProbeRegressor(RegressorMixin, _ProbeBase):
    """Predicts a number (learning rate, test accuracy) of a network from its outputs on learned probes (and,
    where cross-validation on the training networks says so, its weight statistics).

    Example:
        >>> ProbeRegressor(epochs=10).get_params()["epochs"]
        10
    """

    _classify = False

    def predict(self, X: Sequence[NetworkSample]) -> np.ndarray:
        if hasattr(self, "booster_"):
            return self.booster_.predict(self._head_input(X))
        return self._raw(X)[:, 0] * self.y_std_ + self.y_mean_
