"""The deep meta-classifier (DMC) of Eilertsen et al. 2020: a 1D CNN on slices of the flat weight vector, built
exactly as the authors' ``meta_classifier.py`` / ``model.py`` (``../shared/nws-reference.md``, "Exact
meta-classifier semantics").

Input: a slice of ``slice_length`` (L, default 5000) consecutive values of a network's flat reference-order
vector, at a random position redrawn every time a sample is used; ``region`` restricts slices to the conv part
(``[0, weightn_conv)``), the dense part (``[weightn_conv, end)``) or allows ``all``.

The network is the original's (:func:`~weightzoo.baselines.dmc_network.build_dmc`). Training: TF1 Adam, learning
rate 1e-3, batch 64, 50 epochs, cross-entropy; regression with an L1 loss on the raw target; 10 % of the training
samples (after a shuffle) held out for validation, scored every epoch (``validation_history_``), not trained on.

Per-network figures (both reported by :func:`weightzoo.baselines.fit`):

- ``mean_slice_accuracy`` (:meth:`DMCClassifier.score_mean_slices`): the original's figure (``valid_avg``), the
  accuracy of 64 evenly spaced slices of each test network, averaged;
- ``accuracy`` (:meth:`DMCClassifier.score`): this package's whole-network prediction, the argmax of the class
  probabilities averaged over the same 64 slices.

Deliberate differences, each an option away from the original:

- ``bn_at_test="moving"`` (default): batch norm uses its moving statistics at test time. The original ran its
  batch norm in training mode at test time too, so a prediction depended on the other slices in the batch
  (64 slices of one network in ``valid_avg``); ``bn_at_test="batch"`` reproduces that.
- Regression: the original's loss ``mean(|y - y_|)`` broadcast a [64, 1] prediction against [64] targets (every
  prediction against every target of the batch); here it is the per-sample L1 it evidently meant.
  ``standardize_target=True`` (an addition) fits the standardised target instead of the raw one.

Additions of this package, not in the original (documented in docs/baselines.md with their results):
``input_norm="slice"`` standardises every slice and adds two constant channels holding its scale, ``log10(std)``
and ``asinh(mean / 0.01)``; ``dense``, ``dropout`` and ``channels`` (one conv and one pool per listed width)
change the network. On small zoos and CPU budgets ``input_norm="slice"`` with a small head (``dense=(256, 64),
dropout=0.0``) learns where the original's configuration does not (see docs/baselines.md).

``X`` is [n_samples, num_params] float32, or a 1-D object array of vectors when lengths differ (``nws_main``);
``weightn_conv`` (per sample, or one int) is the conv/dense boundary, needed for ``region`` other than ``all``.

Example (the original trains ``slice_length=5000, epochs=50`` on the flat vectors of ``load_samples``):
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((8, 600)).astype("float32"), np.arange(8) % 2
    >>> est = DMCClassifier(slice_length=256, channels=(4,), dense=(8,), epochs=1, random_state=0)
    >>> est.fit(X, y, weightn_conv=300).slice_probabilities(X, weightn_conv=300).shape  # 64 slices per sample
    (8, 64, 2)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.baselines.dmc_network import DENSE, DROPOUT, build_dmc
from weightzoo.errors import ConfigError, MissingExtraError, UnknownNameError
from weightzoo.model import TLBatchNorm1d
from weightzoo.optim import TF1Adam
from weightzoo.options import check_params

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import NotFittedError as _SklearnNotFitted
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("scikit-learn", "baselines", "the deep meta-classifier") from None

REGIONS: tuple[str, ...] = ("all", "conv", "dense")
#: Input normalisation -> input channels of the net: the reference's raw values (one channel), or the standardised
#: slice plus its two scale channels (:func:`normalize_slices`).
INPUT_CHANNELS: dict[str, int] = {"none": 1, "slice": 3}
INPUT_NORMS: tuple[str, ...] = tuple(INPUT_CHANNELS)
#: Batch norm at test time: the moving statistics (default) or each forward batch's (the original).
BN_AT_TEST: tuple[str, ...] = ("moving", "batch")
#: Training batches: "stream" (the original's) or "epoch" (see :class:`_DMCBase`).
BATCHINGS: tuple[str, ...] = ("stream", "epoch")
#: The original's checkpoints: one every ``int(epochs * N / (batch * CHECKPOINTS))`` steps from step 0, so 51 for
#: its 50 epochs; its where-analysis loaded checkpoint 50 (``M = range(50, 51)``), the one before the last.
CHECKPOINTS = 50
#: Above this slice length the original built its 11-layer model with ``is_training`` false at test time, so its
#: batch norm used the moving statistics there whatever ``bn_at_test`` says.
LARGE_SLICE = 40_000


class NotFittedError(ConfigError, _SklearnNotFitted):
    """A DMC used before ``fit``: a :class:`~weightzoo.errors.ConfigError` and scikit-learn's ``NotFittedError``."""


class _DMCBase(BaseEstimator):
    """Shared by :class:`DMCClassifier` and :class:`DMCRegressor`: a scikit-learn estimator (``get_params``,
    ``set_params``, ``clone`` work as usual); ``__init__`` only stores the parameters."""

    _classify = True

    def __init__(
        self,
        slice_length: int = 5000,
        region: str = "all",
        channels: tuple[int, ...] | None = None,
        dense: tuple[int, ...] = DENSE,
        dropout: float = DROPOUT,
        epochs: int = 50,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        eval_slices: int = 64,
        input_norm: str = "none",
        validation_fraction: float = 0.1,
        bn_at_test: str = "moving",
        batching: str = "stream",
        standardize_target: bool = False,
        device: str | None = None,
        random_state: int | None = None,
        progress: bool = False,
    ):
        self.slice_length = slice_length
        self.region = region
        self.channels = channels
        self.dense = dense
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.eval_slices = eval_slices
        self.input_norm = input_norm
        self.validation_fraction = validation_fraction
        self.bn_at_test = bn_at_test
        self.batching = batching
        self.standardize_target = standardize_target
        self.device = device
        self.random_state = random_state
        self.progress = progress

    # -- slices -----------------------------------------------------------------------------------------------
    def _bounds(self, X: Any, weightn_conv: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per sample, the first and one-past-last allowed slice start."""
        if self.region not in REGIONS:
            raise UnknownNameError("region", self.region, REGIONS)
        n = len(X)
        lengths = np.full(n, X.shape[1]) if X.ndim == 2 else np.asarray([len(v) for v in X])
        if self.region == "all":
            lo, hi = np.zeros(n, dtype=np.int64), lengths
        else:
            if weightn_conv is None:
                raise ConfigError(f"region={self.region!r} needs weightn_conv (the conv/dense boundary per sample)")
            wc = np.broadcast_to(np.asarray(weightn_conv, dtype=np.int64), (n,))
            if self.region == "conv":  # the original: starts in [0, max(0, wc - L)], so a long slice runs on
                lo, hi = np.zeros(n, dtype=np.int64), np.minimum(np.maximum(wc, self.slice_length), lengths)
            else:
                lo, hi = wc, lengths
        room = hi - lo - self.slice_length
        if n and room.min() < 0:
            raise ConfigError(
                f"slice_length={self.slice_length} is longer than the {self.region!r} part of some networks "
                f"({int((hi - lo).min())} values); choose a shorter slice_length"
            )
        return lo.astype(np.int64), (room + 1 + lo).astype(np.int64)

    def _gather(self, X: Any, rows: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        offsets = starts[:, None] + np.arange(self.slice_length)
        if X.ndim == 2:
            batch = X[rows[:, None], offsets]
        else:
            batch = np.stack([X[r][s : s + self.slice_length] for r, s in zip(rows, starts, strict=True)])
        if self.input_norm == "slice":
            return torch.from_numpy(normalize_slices(batch))
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).unsqueeze(1)

    def _forward(self, X: Any, rows: np.ndarray, starts: np.ndarray, group: int | None = None) -> np.ndarray:
        """Outputs (probabilities or model-scale predictions) of the slices at ``starts`` of samples ``rows``.

        With ``bn_at_test="batch"`` batch norm normalises with the statistics of each forward batch, as the
        original did: batches of ``group`` consecutive rows (the caller orders them as the original batched) or of
        ``batch_size``; above :data:`LARGE_SLICE` the original's model used its moving statistics, and so does this.
        """
        if self.bn_at_test not in BN_AT_TEST:
            raise UnknownNameError("bn_at_test", self.bn_at_test, BN_AT_TEST)
        self.module_.eval()
        step = max(self.batch_size, 256)
        batch_stats = self._batch_stats_at_test()
        if batch_stats:
            for m in self.module_.modules():
                if isinstance(m, TLBatchNorm1d):
                    m.train()  # batch statistics; the moving ones are restored below, so scoring changes nothing
            saved = {k: v.clone() for k, v in self.module_.state_dict().items()}
            step = group or self.batch_size
        out = []
        with torch.no_grad():
            for i in range(0, len(rows), step):
                x = self._gather(X, rows[i : i + step], starts[i : i + step]).to(self.device_)
                y = self.module_(x)
                out.append((torch.softmax(y, dim=1) if self._classify else y[:, 0]).cpu().numpy())
        if batch_stats:
            self.module_.load_state_dict(saved)
            self.module_.eval()
        return np.concatenate(out) if out else np.zeros((0, self.n_outputs_), np.float32)

    def _batch_stats_at_test(self) -> bool:
        """Whether batch norm uses each batch's statistics at test time: ``bn_at_test="batch"``, except above
        :data:`LARGE_SLICE`, where the original's model did not."""
        return self.bn_at_test == "batch" and self.slice_length <= LARGE_SLICE

    def _even_starts(self, lo: np.ndarray, end: np.ndarray, fractions: np.ndarray) -> np.ndarray:
        """Starts at the given fractions (0 = first, 1 = last allowed position) of each sample's region."""
        return np.round(lo[:, None] + fractions[None, :] * (end - 1 - lo)[:, None]).astype(np.int64)

    # -- fitting ----------------------------------------------------------------------------------------------
    def _targets(self, y: np.ndarray) -> tuple[torch.Tensor, int]:
        raise NotImplementedError

    def fit(self, X: Any, y: Any, weightn_conv: Any = None) -> _DMCBase:
        """Train on random slices, redrawn every time a sample is used; returns ``self``.

        ``validation_fraction`` of the samples (after a shuffle) are held out and scored on one random slice each
        at the end of every epoch (``validation_history_``), as the original monitored its training.
        """
        if y is None:
            raise ConfigError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X = _as_input(X)
        y = np.asarray(y)
        if len(X) != len(y) or len(X) == 0:
            raise ConfigError(f"X has {len(X)} samples and y {len(y)}; expected the same, non-zero number")
        if self.input_norm not in INPUT_NORMS:
            raise UnknownNameError("input_norm", self.input_norm, INPUT_NORMS)
        if self.bn_at_test not in BN_AT_TEST:
            raise UnknownNameError("bn_at_test", self.bn_at_test, BN_AT_TEST)
        if self.batching not in BATCHINGS:
            raise UnknownNameError("batching", self.batching, BATCHINGS)
        check_params(self.get_params())  # every numeric parameter in its range (weightzoo.options.RANGES)
        self.device_ = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        targets, n_out = self._targets(y)
        self.n_outputs_ = n_out
        lo, end = self._bounds(X, weightn_conv)
        rng = np.random.default_rng(self.random_state)
        # The original's held-out validation samples: int(0.9 n) train, the rest validate.
        shuffled = rng.permutation(len(X))
        n_train = int((1 - self.validation_fraction) * len(X)) if self.validation_fraction else len(X)
        train_rows, val_rows = shuffled[:n_train], shuffled[n_train:]
        if len(train_rows) < 2:
            raise ConfigError(f"{len(X)} samples leave {len(train_rows)} to train on; a DMC needs at least 2")
        self.history_: list[float] = []
        self.validation_history_: list[float] = []
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(rng.integers(2**31)))
            init = torch.Generator().manual_seed(int(rng.integers(2**31)))
            self.module_ = build_dmc(
                self.slice_length, n_out, tuple(self.dense), self.dropout, INPUT_CHANNELS[self.input_norm],
                None if self.channels is None else tuple(self.channels), init,
            )  # fmt: skip
            self.module_.to(self.device_)
            opt = TF1Adam(self.module_.parameters(), lr=self.learning_rate)
            loss_fn = nn.CrossEntropyLoss() if self._classify else nn.L1Loss()
            self.checkpoint_state_: dict[str, torch.Tensor] | None = None
            fit_loop = self._fit_stream if self.batching == "stream" else self._fit_epochs
            start = time.perf_counter()
            seen = fit_loop(X, targets, train_rows, val_rows, lo, end, rng, opt, loss_fn)
            self.fit_seconds_ = time.perf_counter() - start
        self.samples_per_second_ = seen / max(self.fit_seconds_, 1e-9)
        return self

    def _step(self, X: Any, targets: torch.Tensor, rows: np.ndarray, lo: np.ndarray, end: np.ndarray,
              rng: np.random.Generator, opt: torch.optim.Optimizer, loss_fn: nn.Module) -> float:  # fmt: skip
        """One training step on random slices of samples ``rows``; its loss."""
        starts = rng.integers(lo[rows], end[rows])
        x = self._gather(X, rows, starts).to(self.device_, non_blocking=True)
        out = self.module_(x)
        t = targets[rows].to(self.device_)
        loss = loss_fn(out if self._classify else out[:, 0], t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def _validate(self, X: Any, targets: torch.Tensor, val_rows: np.ndarray, lo: np.ndarray, end: np.ndarray,
                  rng: np.random.Generator) -> None:  # fmt: skip
        """Score the held-out samples on one random slice each (``validation_history_``)."""
        if len(val_rows):
            out = self._forward(X, val_rows, rng.integers(lo[val_rows], end[val_rows]))
            self.validation_history_.append(self._slice_score(out, targets[val_rows].numpy()))
        self.module_.train()

    def _keep_checkpoint(self) -> None:
        self.checkpoint_state_ = {k: v.detach().clone() for k, v in self.module_.state_dict().items()}

    def _fit_stream(self, X, targets, train_rows, val_rows, lo, end, rng, opt, loss_fn) -> int:
        """The original's schedule: ``int(epochs * N / batch) + 1`` steps of full batches from a stream of the
        training samples that wraps around (reshuffled once a pass is used up); a checkpoint every
        ``int(epochs * N / (batch * 50))`` steps from step 0, each scored on the held-out samples before its step
        (``validation_history_``, 51 for 50 epochs) and the 50th kept (``checkpoint_state_``; of fewer, the last
        but one)."""
        n, bs = len(train_rows), self.batch_size
        total = int(self.epochs * n / bs) + 1
        every = max(int(self.epochs * n / (bs * CHECKPOINTS)), 1)
        keep = min(CHECKPOINTS, max((total - 1) // every, 1))  # the 50th, or the last but one of fewer
        order, shuffled, checkpoint, losses = train_rows[rng.permutation(n)], 0, 0, []
        steps = range(total)
        if self.progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="dmc", unit="step")
        self.module_.train()
        for i in steps:
            shuffled += 1
            if shuffled * bs > n:
                shuffled, order = 0, train_rows[rng.permutation(n)]
            rows = order[np.arange(i * bs, (i + 1) * bs) % n]
            if i % every == 0:
                checkpoint += 1
                if losses:
                    self.history_.append(float(np.mean(losses)))
                    losses = []
                self._validate(X, targets, val_rows, lo, end, rng)
                if checkpoint == keep:
                    self._keep_checkpoint()
            losses.append(self._step(X, targets, rows, lo, end, rng, opt, loss_fn))
            if self.progress and self.history_:
                steps.set_postfix(loss=f"{self.history_[-1]:.4f}")
        if losses:
            self.history_.append(float(np.mean(losses)))
        return total * bs

    def _fit_epochs(self, X, targets, train_rows, val_rows, lo, end, rng, opt, loss_fn) -> int:
        """Epochs: each training sample once per epoch in a fresh order (the last batch shorter; one of a single
        sample skipped: batch norm needs two), scored on the held-out samples after every epoch; the model before
        the last epoch kept (``checkpoint_state_``, the analogue of the original's checkpoint 50 of 51)."""
        epochs = range(self.epochs)
        if self.progress:
            from tqdm.auto import tqdm

            epochs = tqdm(epochs, desc="dmc", unit="epoch")
        seen = 0
        for epoch in epochs:
            if epoch == self.epochs - 1:
                self._keep_checkpoint()
            self.module_.train()
            order = train_rows[rng.permutation(len(train_rows))]
            total = 0.0
            for i in range(0, len(order), self.batch_size):
                rows = order[i : i + self.batch_size]
                if len(rows) < 2:  # batch norm needs two samples
                    continue
                total += self._step(X, targets, rows, lo, end, rng, opt, loss_fn) * len(rows)
                seen += len(rows)
            self.history_.append(total / len(order))
            self._validate(X, targets, val_rows, lo, end, rng)
            if self.progress:
                epochs.set_postfix(loss=f"{self.history_[-1]:.4f}")
        return seen

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    def _even_slices(self, X: Any, weightn_conv: Any) -> np.ndarray:
        """Outputs of ``eval_slices`` evenly spaced slices per sample: [n, eval_slices(, C)]."""
        self._check_fitted()
        X = _as_input(X)
        lo, end = self._bounds(X, weightn_conv)
        starts = self._even_starts(lo, end, np.linspace(0, 1, self.eval_slices))
        rows = np.repeat(np.arange(len(X)), self.eval_slices)
        out = self._forward(X, rows, starts.reshape(-1), group=self.eval_slices)
        return out.reshape(len(X), self.eval_slices, *out.shape[1:])

    def predict_slices(self, X: Any, positions: Any = 100, weightn_conv: Any = None, checkpoint: bool = False
                       ) -> np.ndarray:  # fmt: skip
        """Outputs at evenly spaced slice positions (an int) or at fractions in [0, 1] of the region: class
        probabilities [n, positions, C] (classifier) or predictions [n, positions] (regressor). ``checkpoint``:
        with the model kept before the end of training (``checkpoint_state_``), as the original's where-analysis.
        With ``bn_at_test="batch"`` the slices are batched as that analysis did: ``batch_size`` networks at one
        position."""
        self._check_fitted()
        X = _as_input(X)
        fractions = np.linspace(0, 1, positions) if np.isscalar(positions) else np.asarray(positions, float)
        lo, end = self._bounds(X, weightn_conv)
        starts = self._even_starts(lo, end, fractions)
        n, P = len(X), len(fractions)
        saved = None
        if checkpoint:
            if getattr(self, "checkpoint_state_", None) is None:
                raise ConfigError("this DMC kept no checkpoint (fitted by an older release); use checkpoint=False")
            saved = {k: v.clone() for k, v in self.module_.state_dict().items()}
            self.module_.load_state_dict(self.checkpoint_state_)
        try:
            if self.bn_at_test == "batch":  # position-major: each batch holds networks at one position
                out = self._forward(X, np.tile(np.arange(n), P), starts.T.reshape(-1), self.batch_size)
                out = out.reshape(P, n, *out.shape[1:]).swapaxes(0, 1)
            else:
                out = self._forward(X, np.repeat(np.arange(n), P), starts.reshape(-1), P)
                out = out.reshape(n, P, *out.shape[1:])
        finally:
            if saved is not None:
                self.module_.load_state_dict(saved)
        return self._decode_slices(np.ascontiguousarray(out))

    def _decode_slices(self, out: np.ndarray) -> np.ndarray:
        return out


class DMCClassifier(ClassifierMixin, _DMCBase):
    """The deep meta-classifier (classification). Learned: ``classes_``, ``module_``, ``history_`` (mean loss per
    epoch), ``device_``, ``fit_seconds_``, ``samples_per_second_`` (training throughput).

    Example:
        >>> est = DMCClassifier(slice_length=512, channels=(4, 8), dense=(32,), epochs=2)
        >>> X, y = np.random.default_rng(0).standard_normal((8, 1000)).astype("float32"), np.arange(8) % 2
        >>> est.fit(X, y).predict_proba(X).shape
        (8, 2)
    """

    _classify = True

    def _targets(self, y: np.ndarray) -> tuple[torch.Tensor, int]:
        from sklearn.utils.multiclass import check_classification_targets

        check_classification_targets(y)  # a continuous target is not a set of classes
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ConfigError(f"y holds {len(self.classes_)} class; a classifier needs at least 2")
        return torch.as_tensor(np.searchsorted(self.classes_, y), dtype=torch.long), len(self.classes_)

    def _slice_score(self, probs: np.ndarray, codes: np.ndarray) -> float:
        return float(np.mean(probs.argmax(axis=1) == codes))

    def slice_probabilities(self, X: Any, weightn_conv: Any = None) -> np.ndarray:
        """Class probabilities of ``eval_slices`` evenly spaced slices per sample [n, eval_slices, C]: what both
        per-network figures are computed from."""
        return self._even_slices(X, weightn_conv)

    def predict_proba(self, X: Any, weightn_conv: Any = None) -> np.ndarray:
        """Class probabilities averaged over ``eval_slices`` evenly spaced slices per sample [n, C]."""
        return self._even_slices(X, weightn_conv).mean(axis=1)

    def predict(self, X: Any, weightn_conv: Any = None) -> np.ndarray:
        """Whole-network prediction (argmax of the averaged probabilities)."""
        probs = self.predict_proba(X, weightn_conv)
        return self.classes_[np.argmax(probs, axis=1)]

    def score(self, X: Any, y: Any, weightn_conv: Any = None) -> float:
        """Accuracy of the whole-network prediction (argmax of the slice-averaged probabilities): this package's
        per-network figure."""
        return float(np.mean(self.predict(X, weightn_conv) == np.asarray(y)))

    def score_mean_slices(self, X: Any, y: Any, weightn_conv: Any = None) -> float:
        """The original's per-network figure (``valid_avg``): the accuracy of ``eval_slices`` (64) evenly spaced
        slices of each sample, averaged over the samples.

        Example:
            >>> est = DMCClassifier(slice_length=256, channels=(4,), dense=(8,), epochs=1, random_state=0)
            >>> X, y = np.random.default_rng(0).standard_normal((8, 600)).astype("float32"), np.arange(8) % 2
            >>> 0.0 <= est.fit(X, y).score_mean_slices(X, y) <= 1.0
            True
        """
        probs = self._even_slices(X, weightn_conv)
        hits = self.classes_[probs.argmax(axis=2)] == np.asarray(y)[:, None]
        return float(hits.mean(axis=1).mean())

    def score_slices(self, X: Any, y: Any, weightn_conv: Any = None, repeats: int = 4) -> float:
        """Accuracy of single slices at random positions (``repeats`` per sample, seeded by ``random_state``)."""
        self._check_fitted()
        X = _as_input(X)
        lo, end = self._bounds(X, weightn_conv)
        rng = np.random.default_rng(None if self.random_state is None else self.random_state + 1)
        rows = np.repeat(np.arange(len(X)), repeats)
        probs = self._forward(X, rows, rng.integers(lo[rows], end[rows]))
        return float(np.mean(self.classes_[probs.argmax(axis=1)] == np.asarray(y)[rows]))


class DMCRegressor(RegressorMixin, _DMCBase):
    """The deep meta-classifier as a regressor (L1 loss on the raw target as the original, e.g. the learning rate;
    ``standardize_target=True`` fits the standardised one).

    Example:
        >>> est = DMCRegressor(slice_length=512, channels=(4,), dense=(16,), epochs=1)
        >>> X = np.random.default_rng(0).standard_normal((8, 600)).astype("float32")
        >>> est.fit(X, np.linspace(0, 1, 8)).predict(X).shape
        (8,)
    """

    _classify = False

    def _targets(self, y: np.ndarray) -> tuple[torch.Tensor, int]:
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise ConfigError("y holds NaN or infinite values; a regressor needs finite targets")
        self.y_mean_, self.y_std_ = (float(y.mean()), float(y.std()) or 1.0) if self.standardize_target else (0.0, 1.0)
        return torch.as_tensor((y - self.y_mean_) / self.y_std_, dtype=torch.float32), 1

    def _slice_score(self, predictions: np.ndarray, targets: np.ndarray) -> float:
        return float(np.mean(np.abs(predictions - targets)) * self.y_std_)  # mean absolute error

    def predict(self, X: Any, weightn_conv: Any = None) -> np.ndarray:
        """Prediction averaged over ``eval_slices`` evenly spaced slices per sample."""
        return self._even_slices(X, weightn_conv).mean(axis=1) * self.y_std_ + self.y_mean_

    def _decode_slices(self, out: np.ndarray) -> np.ndarray:
        return out * self.y_std_ + self.y_mean_

    def score(self, X: Any, y: Any, weightn_conv: Any = None) -> float:
        """R^2 of the slice-averaged prediction."""
        y = np.asarray(y, float)
        ss = float(((y - y.mean()) ** 2).sum())
        return 1.0 - float(((y - self.predict(X, weightn_conv)) ** 2).sum()) / ss if ss else float("nan")


def normalize_slices(batch: np.ndarray) -> np.ndarray:
    """``input_norm="slice"``: [n, L] slices -> [n, 3, L] float32: the standardised slice, ``log10(std)`` and
    ``asinh(mean / 0.01)`` (constant along the slice).

    Example:
        >>> x = normalize_slices(np.array([[1.0, 3.0, 1.0, 3.0]]))
        >>> x[0, 0].tolist(), round(float(x[0, 1, 0]), 3)
        ([-1.0, 1.0, -1.0, 1.0], 0.0)
    """
    batch = np.asarray(batch, dtype=np.float64)
    mean = batch.mean(axis=1, keepdims=True)
    std = batch.std(axis=1, keepdims=True)
    out = np.empty((batch.shape[0], 3, batch.shape[1]), dtype=np.float32)
    out[:, 0] = (batch - mean) / np.maximum(std, 1e-8)  # below 1e-8: float32 rounding, not shape
    out[:, 1] = np.log10(std + 1e-12)
    out[:, 2] = np.arcsinh(mean / 0.01)
    return out


def _as_input(X: Any) -> np.ndarray:
    """``X`` as [n_samples, n_values] float32, or a 1-D object array of vectors when lengths differ; non-finite
    values (a diverged network) and sparse matrices are refused."""
    if hasattr(X, "toarray"):  # scipy.sparse: a weight vector is dense
        raise TypeError("sparse input is not supported: X holds dense flat weight vectors")
    if isinstance(X, (list, tuple)) and len({len(v) for v in X}) > 1:
        ragged = np.empty(len(X), dtype=object)
        ragged[:] = [np.asarray(v, dtype=np.float32) for v in X]
        X = ragged
    if not (isinstance(X, np.ndarray) and X.dtype == object):
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ConfigError(f"X must be [n_samples, n_values] (flat weight vectors), got shape {X.shape}")
    if not all(np.isfinite(v).all() for v in (X.ravel() if X.dtype == object else [X])):
        raise ConfigError("X holds NaN or infinite values (a diverged network?); every weight must be finite")
    return X
