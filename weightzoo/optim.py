"""The optimizers of the original code, with TensorFlow 1's update rules: the zoo's three (``builder.train``) and
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
- Momentum: TF1's ``accum = 0.95 accum + g; w -= lr accum`` is exactly ``torch.optim.SGD(momentum=0.95)``
  (no dampening, not Nesterov, the first buffer equal to the first gradient); it is used as is.

The arithmetic follows the TF1 kernels (``ApplyAdam``, ``ApplyRMSProp``, ``ApplyMomentum``) in float32, the
parameters' dtype; ``tests/test_optim.py`` checks 200-step trajectories against a float64 transcription.

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

__all__ = ["TF1Adam", "TF1RMSprop", "make_optimizer"]

#: TF1 defaults used by the original (``AdamOptimizer``, ``RMSPropOptimizer``, ``MomentumOptimizer(lr, 0.95)``).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_DECAY = 0.9
RMSPROP_EPS = 1e-10
MOMENTUM = 0.95


class TF1RMSprop(torch.optim.Optimizer):
    """``tf.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.0, epsilon=1e-10)``: accumulator initialised to ones,
    epsilon inside the square root.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(2)); opt = TF1RMSprop([w], lr=0.1)
        >>> w.grad = torch.tensor([1e-3, 1.0]); opt.step(); [round(v, 7) for v in w.tolist()]
        [-0.0001054, -0.1]
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, decay: float = RMSPROP_DECAY,
                 eps: float = RMSPROP_EPS):  # fmt: skip
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr, rho, eps = group["lr"], group["decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["ms"] = torch.ones_like(p)  # TF1: tf.ones_initializer for the "rms" slot
                ms = state["ms"]
                # ApplyRMSProp: ms += (g^2 - ms) * (1 - rho); mom = lr * g / sqrt(ms + eps) (momentum 0); w -= mom
                ms.add_((p.grad * p.grad - ms) * (1 - rho))
                p.sub_(lr * p.grad / torch.sqrt(ms + eps))


class TF1Adam(torch.optim.Optimizer):
    """``tf.train.AdamOptimizer(lr, beta1=0.9, beta2=0.999, epsilon=1e-8)``: bias corrections folded into the
    step size, epsilon added to ``sqrt(v)``; the beta powers are float32 accumulators multiplied once per step.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(1)); opt = TF1Adam([w], lr=0.1)
        >>> w.grad = torch.tensor([1e-6]); opt.step(); round(w.item(), 6)  # PyTorch's Adam: -0.09901
        -0.075974
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = ADAM_BETAS,
                 eps: float = ADAM_EPS):  # fmt: skip
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                    # TF1 keeps beta1^t and beta2^t as float32 variables, starting at beta (the power for t = 1).
                    state["b1_power"] = torch.tensor(b1, dtype=torch.float32)
                    state["b2_power"] = torch.tensor(b2, dtype=torch.float32)
                m, v, g = state["m"], state["v"], p.grad
                # ApplyAdam: alpha = lr sqrt(1 - b2^t) / (1 - b1^t); m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
                # w -= m alpha / (sqrt(v) + eps)
                alpha = lr * torch.sqrt(1 - state["b2_power"]) / (1 - state["b1_power"])
                m.add_((g - m) * (1 - b1))
                v.add_((g * g - v) * (1 - b2))
                p.sub_(m * alpha.to(p.device, p.dtype) / (torch.sqrt(v) + eps))
                state["b1_power"] = state["b1_power"] * b1
                state["b2_power"] = state["b2_power"] * b2


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    """The optimizer the original code builds for hyper-parameter ``optimizer`` (``adam``, ``rmsprop``,
    ``sgd_momentum``), with TF1's defaults.

    Example:
        >>> type(make_optimizer("sgd_momentum", [torch.nn.Parameter(torch.zeros(1))], 0.01)).__name__
        'SGD'
    """
    params = list(params)
    if name == "adam":
        return TF1Adam(params, lr=learning_rate)
    if name == "rmsprop":
        return TF1RMSprop(params, lr=learning_rate)
    if name == "sgd_momentum":
        # TF1 ApplyMomentum (use_nesterov=False): accum = momentum * accum + g; w -= lr * accum. Identical to
        # PyTorch's SGD with dampening 0, whose buffer starts at the first gradient (TF1: 0.95 * 0 + g).
        return torch.optim.SGD(params, lr=learning_rate, momentum=MOMENTUM, dampening=0.0, nesterov=False)
    raise UnknownNameError("optimizer", name, OPTIMIZERS)
