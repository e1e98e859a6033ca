"""The optimizers of the original code, with TensorFlow 1's update rules: the zoo's three (``builder.engine.train``) and
the meta-classifier's Adam (``weightzoo.baselines.dmc``).

The original trains with ``tf.train.AdamOptimizer(lr)``, ``tf.train.RMSPropOptimizer(lr)`` (decay 0.9) and
``tf.train.MomentumOptimizer(lr, 0.95)`` (``../shared/nws-reference.md``, "Exact training semantics"). PyTorch's
built-ins differ from two of them in ways that matter for the weights a zoo stores:

- RMSprop: TF1 starts the mean-square accumulator at ONES and adds epsilon (1e-10) INSIDE the square root, with
  no momentum: ``ms = 0.9 ms + 0.1 g^2; w -= lr g / sqrt(ms + 1e-10)``. ``torch.optim.RMSprop`` starts at zeros
  and adds epsilon outside the root, so its first steps are about ``1 / sqrt(ms)`` times larger (with gradients
  around 1e-3: a thousand times).
- Adam: TF1 folds the bias corrections into the step size, ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``, and adds
  epsilon (1e-8) to ``sqrt(v)`` before that correction ("epsilon hat"). PyTorch adds it to ``sqrt(v_hat)``;
  the two part where ``sqrt(v)`` is near epsilon (gradients around 1e-6 and below).
- Momentum: TF1's ``accum = 0.95 accum + g; w -= lr accum`` is ``torch.optim.SGD(momentum=0.95)`` (no
  dampening, not Nesterov, the first buffer equal to the first gradient) up to rounding.

Each rule is written once, as an in-place function on tensors (:func:`rmsprop_update_`, :func:`adam_update_`,
:func:`momentum_update_`): the optimizer classes apply it tensor by tensor, the training engine
(:mod:`builder.engine.pack_lane`) to the rows of its stacked buffers, with per-network learning rates. The arithmetic
follows the TF1 kernels (``ApplyAdam``, ``ApplyRMSProp``, ``ApplyMomentum``) in the parameters' dtype;
``tests/test_optim.py`` checks 200-step trajectories against a float64 transcription.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = make_optimizer("rmsprop", [w], learning_rate=0.01)
    >>> w.grad = torch.tensor([0.5]); opt.step()
    >>> round(w.item(), 6)  # 1 - 0.01 * 0.5 / sqrt(0.9 + 0.1 * 0.25)
    0.994801
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from weightzoo.errors import UnknownNameError
from weightzoo.hparams import OPTIMIZERS

__all__ = [
    "TF1Adam",
    "TF1Momentum",
    "TF1RMSprop",
    "adam_alpha",
    "adam_update_",
    "make_optimizer",
    "momentum_update_",
    "rmsprop_update_",
]

#: TF1 defaults used by the original (``AdamOptimizer``, ``RMSPropOptimizer``, ``MomentumOptimizer(lr, 0.95)``).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_DECAY = 0.9
RMSPROP_EPS = 1e-10
MOMENTUM = 0.95


def rmsprop_update_(p: torch.Tensor, g: torch.Tensor, ms: torch.Tensor, lr: float | torch.Tensor) -> None:
    """TF1 ``ApplyRMSProp`` (momentum 0), in place: ``ms += (g^2 - ms)(1 - decay); p -= lr g / sqrt(ms + eps)``.

    Example:
        >>> p, ms = torch.zeros(1), torch.ones(1); rmsprop_update_(p, torch.tensor([1.0]), ms, 0.1); round(p.item(), 6)
        -0.1
    """
    ms.add_((g * g - ms) * (1 - RMSPROP_DECAY))
    p.sub_(lr * g / torch.sqrt(ms + RMSPROP_EPS))


def adam_alpha(lr: float | torch.Tensor, b1_power: torch.Tensor, b2_power: torch.Tensor) -> torch.Tensor:
    """TF1 Adam's step size with the bias corrections folded in, ``lr sqrt(1 - b2^t) / (1 - b1^t)``, from the
    float32 beta-power accumulators.

    Example:
        >>> round(adam_alpha(0.1, torch.tensor(0.9), torch.tensor(0.999)).item(), 6)
        0.031623
    """
    return lr * torch.sqrt(1 - b2_power) / (1 - b1_power)


def adam_update_(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor) -> None:
    """TF1 ``ApplyAdam``, in place: ``m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); p -= m alpha / (sqrt(v) + eps)``
    (``alpha`` from :func:`adam_alpha`, in ``p``'s dtype).

    Example:
        >>> p, m, v = torch.zeros(1), torch.zeros(1), torch.zeros(1)
        >>> adam_update_(p, torch.tensor([1.0]), m, v, torch.tensor(0.1)); round(p.item(), 4)  # 0.1 / sqrt(0.001) * 0.1
        -0.3162
    """
    b1, b2 = ADAM_BETAS
    m.add_((g - m) * (1 - b1))
    v.add_((g * g - v) * (1 - b2))
    p.sub_(m * alpha / (torch.sqrt(v) + ADAM_EPS))


def momentum_update_(p: torch.Tensor, g: torch.Tensor, accum: torch.Tensor, lr: float | torch.Tensor) -> None:
    """TF1 ``ApplyMomentum`` (not Nesterov), in place: ``accum = 0.95 accum + g; p -= lr accum`` (a zero
    accumulator makes the first step ``accum = g``).

    Example:
        >>> p, acc = torch.zeros(1), torch.zeros(1); momentum_update_(p, torch.tensor([2.0]), acc, 0.5); p.item()
        -1.0
    """
    accum.mul_(MOMENTUM).add_(g)
    if isinstance(lr, torch.Tensor):
        p.addcmul_(accum, lr, value=-1)
    else:
        p.add_(accum, alpha=-lr)


class _TF1Optimizer(torch.optim.Optimizer):
    """The loop the three TF1 optimizers share: every parameter with a gradient, its slots made on first use
    (:meth:`_slots`), then its rule applied (:meth:`_update`)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float):
        super().__init__(params, {"lr": lr})

    def _slots(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _update(self, p: torch.Tensor, state: dict[str, torch.Tensor], lr: float) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(self._slots(p))
                self._update(p, state, group["lr"])


class TF1RMSprop(_TF1Optimizer):
    """``tf.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.0, epsilon=1e-10)``: accumulator initialised to ones,
    epsilon inside the square root.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(2)); opt = TF1RMSprop([w], lr=0.1)
        >>> w.grad = torch.tensor([1e-3, 1.0]); opt.step(); [round(v, 7) for v in w.tolist()]
        [-0.0001054, -0.1]
    """

    def _slots(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ms": torch.ones_like(p)}  # TF1: tf.ones_initializer for the "rms" slot

    def _update(self, p: torch.Tensor, state: dict[str, torch.Tensor], lr: float) -> None:
        rmsprop_update_(p, p.grad, state["ms"], lr)


class TF1Adam(_TF1Optimizer):
    """``tf.train.AdamOptimizer(lr, beta1=0.9, beta2=0.999, epsilon=1e-8)``: bias corrections folded into the
    step size, epsilon added to ``sqrt(v)``; the beta powers are float32 accumulators multiplied once per step.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(1)); opt = TF1Adam([w], lr=0.1)
        >>> w.grad = torch.tensor([1e-6]); opt.step(); round(w.item(), 6)  # PyTorch's Adam: -0.09901
        -0.075974
    """

    def _slots(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        b1, b2 = ADAM_BETAS
        # TF1 keeps beta1^t and beta2^t as float32 variables, starting at beta (the power for t = 1).
        powers = {"b1_power": torch.tensor(b1, dtype=torch.float32), "b2_power": torch.tensor(b2, dtype=torch.float32)}
        return {"m": torch.zeros_like(p), "v": torch.zeros_like(p), **powers}

    def _update(self, p: torch.Tensor, state: dict[str, torch.Tensor], lr: float) -> None:
        b1, b2 = ADAM_BETAS
        alpha = adam_alpha(lr, state["b1_power"], state["b2_power"])
        adam_update_(p, p.grad, state["m"], state["v"], alpha.to(p.device, p.dtype))
        state["b1_power"] = state["b1_power"] * b1
        state["b2_power"] = state["b2_power"] * b2


class TF1Momentum(_TF1Optimizer):
    """``tf.train.MomentumOptimizer(lr, 0.95)``: ``accum = 0.95 accum + g; w -= lr accum``.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(1)); opt = TF1Momentum([w], lr=0.1)
        >>> for _ in range(2): w.grad = torch.ones(1); opt.step()
        >>> round(w.item(), 6)  # -0.1 - 0.1 * 1.95
        -0.295
    """

    def _slots(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"accum": torch.zeros_like(p)}

    def _update(self, p: torch.Tensor, state: dict[str, torch.Tensor], lr: float) -> None:
        momentum_update_(p, p.grad, state["accum"], lr)


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    """The optimizer the original code builds for hyper-parameter ``optimizer`` (``adam``, ``rmsprop``,
    ``sgd_momentum``), with TF1's defaults.

    Example:
        >>> type(make_optimizer("sgd_momentum", [torch.nn.Parameter(torch.zeros(1))], 0.01)).__name__
        'TF1Momentum'
    """
    params = list(params)
    if name == "adam":
        return TF1Adam(params, lr=learning_rate)
    if name == "rmsprop":
        return TF1RMSprop(params, lr=learning_rate)
    if name == "sgd_momentum":
        return TF1Momentum(params, lr=learning_rate)
    raise UnknownNameError("optimizer", name, OPTIMIZERS)
