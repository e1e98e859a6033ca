"""The deep meta-classifier (DMC) of Eilertsen et al. 2020: a 1D CNN on slices of the flat weight vector.

Input: a slice of ``slice_length`` (L, default 5000) consecutive values of a network's flat reference-order
vector, at a random position redrawn every time a sample is used; ``region`` restricts slices to the conv part
(``[0, weightn_conv)``), the dense part (``[weightn_conv, end)``) or allows ``all``. Model: per level a conv
(kernel 5, same padding), ReLU, then batch norm and a max-pool by 2, channels 8 -> 256 doubling; then dense layers
1024-1024-1024-1024-64 with ReLU and dropout 0.5, then the output. Slices longer than 40,000 values get the deeper
variant (:func:`default_channels`): extra 256-channel levels until the flattened width is no more than for
L = 5000, so the first dense layer keeps its size. Adam (lr 1e-3), batch 64, cross-entropy
(classification) or L1 on the standardised target (regression). Trains on CUDA when present.

``input_norm`` (not in the reference, whose default ``"none"`` feeds the raw values): ``"slice"`` standardises
every slice to zero mean and unit std and adds two constant channels holding its scale, ``log10(std)`` and
``asinh(mean / 0.01)``, so the net sees the slice's shape and its scale on comparable ranges. Weights of networks
with normal (std 1), Glorot (std about 0.05) and constant initialisations, and batch-norm variances, differ by orders
of magnitude; with raw values the small ones vanish next to the large ones. On small zoos or short CPU budgets,
``input_norm="slice"`` with a smaller head (``dense=(256, 64), dropout=0.0``), and shorter slices
(``slice_length=1000``) for signals spread thinly, learn where the reference's configuration stays at chance
(see the README's results).

Whole-network prediction averages the class probabilities (or regression outputs) over ``eval_slices`` evenly
spaced slices; :meth:`DMCClassifier.score_slices` gives the single-slice accuracy reported next to it, and
:meth:`DMCClassifier.predict_slices` the probabilities at chosen positions (where the information sits).

``X`` is [n_samples, num_params] float32, or a 1-D object array of vectors when lengths differ (``nws_main``);
``weightn_conv`` (per sample, or one int) is the conv/dense boundary, needed for ``region`` other than ``all``.

Example:
    >>> est = DMCClassifier(slice_length=5000, epochs=50, random_state=0)  # doctest: +SKIP
    >>> est.fit(train.weights, train.y, weightn_conv=train.weightn_conv)  # doctest: +SKIP
    >>> est.score(test.weights, test.y, weightn_conv=test.weightn_conv)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from weightzoo.errors import ConfigError, UnknownNameError

REGIONS: tuple[str, ...] = ("all", "conv", "dense")
#: Input normalisation -> input channels of the net: the reference's raw values (one channel), or the standardised
#: slice plus its two scale channels (:func:`normalize_slices`).
INPUT_CHANNELS: dict[str, int] = {"none": 1, "slice": 3}
INPUT_NORMS: tuple[str, ...] = tuple(INPUT_CHANNELS)


#: The reference's conv levels for slices up to 40,000 values.
BASE_CHANNELS: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
DEEPER_ABOVE = 40_000


def default_channels(slice_length: int) -> tuple[int, ...]:
    """The conv channels per level for ``slice_length``: the reference's six levels, or, above 40,000 values,
    the deeper variant with extra 256-channel levels until the pooled length is at most 5000 / 64.

    Example:
        >>> len(default_channels(5000)), len(default_channels(92_868))
        (6, 11)
    """
    channels = list(BASE_CHANNELS)
    if slice_length > DEEPER_ABOVE:
        target, n = 5000 >> len(BASE_CHANNELS), slice_length >> len(BASE_CHANNELS)
        while n > target:
            channels.append(BASE_CHANNELS[-1])
            n >>= 1
    return tuple(channels)


def build_dmc(
    slice_length: int,
    n_out: int,
    channels: tuple[int, ...],
    dense: tuple[int, ...],
    dropout: float,
    in_channels: int = 1,
) -> nn.Sequential:
    """The 1D CNN: (conv k5 -> ReLU -> BN -> max-pool 2) per channel count, flatten, dense layers, output."""
    layers: list[nn.Module] = []
    c_in, n = in_channels, slice_length
    for c in channels:
        layers += [nn.Conv1d(c_in, c, 5, padding=2), nn.ReLU(), nn.BatchNorm1d(c), nn.MaxPool1d(2)]
        c_in, n = c, n // 2
    if n < 1:
        raise ConfigError(f"slice_length={slice_length} is too short for {len(channels)} max-pools by 2")
    layers.append(nn.Flatten())
    width = c_in * n
    for d in dense:
        layers += [nn.Linear(width, d), nn.ReLU(), nn.Dropout(dropout)]
        width = d
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class _DMCBase:
    _classify = True

    def __init__(
        self,
        slice_length: int = 5000,
        region: str = "all",
        channels: tuple[int, ...] | None = None,
        dense: tuple[int, ...] = (1024, 1024, 1024, 1024, 64),
        dropout: float = 0.5,
        epochs: int = 50,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        eval_slices: int = 64,
        input_norm: str = "none",
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
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in inspect.signature(_DMCBase.__init__).parameters if k != "self"}

    def set_params(self, **params: Any) -> _DMCBase:
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise UnknownNameError("DMC parameter", k, list(valid))
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(slice_length={self.slice_length}, region={self.region!r}, epochs={self.epochs}, "
            f"input_norm={self.input_norm!r})"
        )

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
            lo, hi = (np.zeros(n, dtype=np.int64), wc) if self.region == "conv" else (wc, lengths)
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

    def _forward(self, X: Any, rows: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Outputs (probabilities or standardised predictions) of the slices at ``starts`` of samples ``rows``."""
        self.module_.eval()
        out = []
        step = max(self.batch_size, 256)
        with torch.no_grad():
            for i in range(0, len(rows), step):
                x = self._gather(X, rows[i : i + step], starts[i : i + step]).to(self.device_)
                y = self.module_(x)
                out.append((torch.softmax(y, dim=1) if self._classify else y[:, 0]).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.n_outputs_), np.float32)

    def _even_starts(self, lo: np.ndarray, end: np.ndarray, fractions: np.ndarray) -> np.ndarray:
        """Starts at the given fractions (0 = first, 1 = last allowed position) of each sample's region."""
        return np.round(lo[:, None] + fractions[None, :] * (end - 1 - lo)[:, None]).astype(np.int64)

    # -- fitting ----------------------------------------------------------------------------------------------
    def _targets(self, y: np.ndarray) -> tuple[torch.Tensor, int]:
        raise NotImplementedError

    def fit(self, X: Any, y: Any, weightn_conv: Any = None) -> _DMCBase:
        """Train on random slices, redrawn every epoch; returns ``self``."""
        X = _as_input(X)
        y = np.asarray(y)
        if len(X) != len(y) or len(X) == 0:
            raise ConfigError(f"X has {len(X)} samples and y {len(y)}; expected the same, non-zero number")
        if self.input_norm not in INPUT_NORMS:
            raise UnknownNameError("input_norm", self.input_norm, INPUT_NORMS)
        self.device_ = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        targets, n_out = self._targets(y)
        self.n_outputs_ = n_out
        lo, end = self._bounds(X, weightn_conv)
        rng = np.random.default_rng(self.random_state)
        self.history_: list[float] = []
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(rng.integers(2**31)))
            channels = default_channels(self.slice_length) if self.channels is None else tuple(self.channels)
            self.module_ = build_dmc(
                self.slice_length, n_out, channels, tuple(self.dense), self.dropout, INPUT_CHANNELS[self.input_norm]
            )
            self.module_.to(self.device_)
            opt = torch.optim.Adam(self.module_.parameters(), lr=self.learning_rate)
            loss_fn = nn.CrossEntropyLoss() if self._classify else nn.L1Loss()
            epochs = range(self.epochs)
            if self.progress:
                from tqdm.auto import tqdm

                epochs = tqdm(epochs, desc="dmc", unit="epoch")
            start, seen = time.perf_counter(), 0
            for _ in epochs:
                self.module_.train()
                order = rng.permutation(len(X))
                total = 0.0
                for i in range(0, len(order), self.batch_size):
                    rows = order[i : i + self.batch_size]
                    if len(rows) < 2:  # batch norm needs two samples
                        continue
                    starts = rng.integers(lo[rows], end[rows])
                    x = self._gather(X, rows, starts).to(self.device_, non_blocking=True)
                    out = self.module_(x)
                    t = targets[rows].to(self.device_)
                    loss = loss_fn(out if self._classify else out[:, 0], t)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(rows)
                    seen += len(rows)
                self.history_.append(total / len(X))
                if self.progress:
                    epochs.set_postfix(loss=f"{self.history_[-1]:.4f}")
            self.fit_seconds_ = time.perf_counter() - start
        self.samples_per_second_ = seen / max(self.fit_seconds_, 1e-9)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise ConfigError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    def _average(self, X: Any, weightn_conv: Any) -> np.ndarray:
        self._check_fitted()
        X = _as_input(X)
        lo, end = self._bounds(X, weightn_conv)
        starts = self._even_starts(lo, end, np.linspace(0, 1, self.eval_slices))
        rows = np.repeat(np.arange(len(X)), self.eval_slices)
        out = self._forward(X, rows, starts.reshape(-1))
        return out.reshape(len(X), self.eval_slices, *out.shape[1:]).mean(axis=1)

    def predict_slices(self, X: Any, positions: Any = 100, weightn_conv: Any = None) -> np.ndarray:
        """Outputs at evenly spaced slice positions (an int) or at fractions in [0, 1] of the region: class
        probabilities [n, positions, C] (classifier) or predictions [n, positions] (regressor)."""
        self._check_fitted()
        X = _as_input(X)
        fractions = np.linspace(0, 1, positions) if np.isscalar(positions) else np.asarray(positions, float)
        lo, end = self._bounds(X, weightn_conv)
        starts = self._even_starts(lo, end, fractions)
        out = self._forward(X, np.repeat(np.arange(len(X)), len(fractions)), starts.reshape(-1))
        return self._decode_slices(out.reshape(len(X), len(fractions), *out.shape[1:]))

    def _decode_slices(self, out: np.ndarray) -> np.ndarray:
        return out


class DMCClassifier(_DMCBase):
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
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ConfigError(f"y holds {len(self.classes_)} class; a classifier needs at least 2")
        return torch.as_tensor(np.searchsorted(self.classes_, y), dtype=torch.long), len(self.classes_)

    def predict_proba(self, X: Any, weightn_conv: Any = None) -> np.ndarray:
        """Class probabilities averaged over ``eval_slices`` evenly spaced slices per sample [n, C]."""
        return self._average(X, weightn_conv)

    def predict(self, X: Any, weightn_conv: Any = None) -> np.ndarray:
        """Whole-network prediction (argmax of the averaged probabilities)."""
        probs = self.predict_proba(X, weightn_conv)
        return self.classes_[np.argmax(probs, axis=1)]

    def score(self, X: Any, y: Any, weightn_conv: Any = None) -> float:
        """Accuracy of the whole-network (slice-averaged) prediction."""
        return float(np.mean(self.predict(X, weightn_conv) == np.asarray(y)))

    def score_slices(self, X: Any, y: Any, weightn_conv: Any = None, repeats: int = 4) -> float:
        """Accuracy of single slices at random positions (``repeats`` per sample, seeded by ``random_state``)."""
        self._check_fitted()
        X = _as_input(X)
        lo, end = self._bounds(X, weightn_conv)
        rng = np.random.default_rng(None if self.random_state is None else self.random_state + 1)
        rows = np.repeat(np.arange(len(X)), repeats)
        probs = self._forward(X, rows, rng.integers(lo[rows], end[rows]))
        return float(np.mean(self.classes_[probs.argmax(axis=1)] == np.asarray(y)[rows]))


class DMCRegressor(_DMCBase):
    """The deep meta-classifier as a regressor (L1 loss on the standardised target, e.g. the learning rate).

    Example:
        >>> est = DMCRegressor(slice_length=512, channels=(4,), dense=(16,), epochs=1)
        >>> X = np.random.default_rng(0).standard_normal((8, 600)).astype("float32")
        >>> est.fit(X, np.linspace(0, 1, 8)).predict(X).shape
        (8,)
    """

    _classify = False

    def _targets(self, y: np.ndarray) -> tuple[torch.Tensor, int]:
        y = y.astype(np.float64)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        return torch.as_tensor((y - self.y_mean_) / self.y_std_, dtype=torch.float32), 1

    def predict(self, X: Any, weightn_conv: Any = None) -> np.ndarray:
        """Prediction averaged over ``eval_slices`` evenly spaced slices per sample."""
        return self._average(X, weightn_conv) * self.y_std_ + self.y_mean_

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
    if isinstance(X, np.ndarray) and X.dtype == object:
        return X
    if isinstance(X, (list, tuple)):
        lengths = {len(v) for v in X}
        if len(lengths) > 1:
            ragged = np.empty(len(X), dtype=object)
            ragged[:] = [np.asarray(v, dtype=np.float32) for v in X]
            return ragged
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ConfigError(f"X must be [n_samples, n_values] (flat weight vectors), got shape {X.shape}")
    return X
