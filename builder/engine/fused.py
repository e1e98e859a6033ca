"""A lane layer's batch norm and activation as one compiled region (``TrainConfig.compile``).

Batch norm and the activation are most of an eager lane step's memory traffic: each of their kernels reads and
writes a whole activation (a ``nws_main`` lane of 8 networks at batch 128: 1.1 GB of 3.3 GB per step for one
[128, 8, 12, 32, 32] layer's 20 kernels, forward and backward). ``torch.compile`` (Inductor) fuses them into a few
kernels that read each activation about once per pass: 4 kernels and 0.44 GB there (35 bytes per element; a
lane of mixed activations 44), counted by Inductor itself (:func:`inductor_work`). The clean evaluation's layers
are regions too (:func:`eval_norm_act`: batch norm on the moving statistics and the activation in one kernel), and
so is each run of members' optimizer update (the TF1 rules of :mod:`weightzoo.optim`, in place: one kernel that
reads and writes each buffer once, where the eager update launches 3 to 12). What stays eager: the convolutions
and products (cuDNN and cuBLAS run them as one kernel each) and pooling (Inductor's moves more than the eager
kernels).

The regions are the same arithmetic as the eager lane (:mod:`builder.engine.batch_norm`, :data:`ACT`), written
plainly for Inductor: autograd derives the batch norm's backward, an activation's comes from its result
(:class:`_Act`), and when a lane's networks differ in theirs each member's is chosen by its code
(:class:`_Mixed`, ``torch.where``: exact, the same arithmetic per member as alone). Compiled once per variant
with dynamic shapes, so lanes of any width and batch reuse one compilation. Their values are the eager lane's up
to rounding (float64: ``tests/test_fused.py``), not its bytes: the option is recorded with the zoo, and a
compiled zoo is reproduced compiled.

Example:
    >>> x = torch.randn(4, 2, 3, 5, 5, dtype=torch.float64)
    >>> gamma, beta = torch.ones(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    >>> y, mean, var = norm_act(x, gamma, beta, 1e-3, "relu")
    >>> y.shape, mean.shape, bool((y >= 0).all())
    (torch.Size([4, 2, 3, 5, 5]), torch.Size([2, 3]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import _disable_current_modes

from weightzoo.hparams import ACTIVATIONS
from weightzoo.optim import adam_update_, momentum_update_, rmsprop_update_

__all__ = [
    "ACT",
    "CODES",
    "INDUCTOR_OPTIONS",
    "RegionCall",
    "RegionWork",
    "act_norm",
    "compiled",
    "counted",
    "inductor_work",
    "norm_act",
]

ACT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu, "elu": F.elu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
}  # fmt: skip
#: Each activation's code in a lane whose members differ in theirs (``codes``).
CODES: dict[str, int] = {name: i for i, name in enumerate(sorted(ACTIVATIONS))}


def _activate(h: torch.Tensor, activation: str, codes: torch.Tensor | None) -> torch.Tensor:
    """``activation`` of ``h`` [B, P, ...] (:class:`_Act`), or with ``activation="mixed"`` member ``p``'s own,
    ``codes[p]`` (:data:`CODES`; :class:`_Mixed`)."""
    if activation != "mixed":
        return _Act.apply(h, activation)
    assert codes is not None
    return _Mixed.apply(h, codes)


def _slope(name: str, y: torch.Tensor) -> torch.Tensor:
    """The derivative of activation ``name`` from its result ``y``, as autograd's for relu, sigmoid and tanh
    (elu: ``y + 1`` for ``y <= 0``, ``exp(h)`` up to rounding)."""
    if name == "relu":
        return (y > 0).to(y.dtype)
    if name == "elu":
        return torch.where(y > 0, 1.0, y + 1)
    if name == "sigmoid":
        return y * (1 - y)
    return 1 - y * y  # tanh


class _Act(torch.autograd.Function):
    """One activation, its backward from its result (:func:`_slope`): the result is what the next layer keeps
    anyway, and the same arithmetic as a member's in a mixed region (:class:`_Mixed`), so a network has the same
    bytes alone and in a lane of other activations."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, name: str) -> torch.Tensor:
        y = ACT[name](h)
        ctx.save_for_backward(y)
        ctx.name = name
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> Any:
        (y,) = ctx.saved_tensors
        return dy * _slope(ctx.name, y), None


class _Mixed(torch.autograd.Function):
    """Each member's activation (its code in ``codes`` [P]) on its slice of ``h`` [B, P, ...]: every function on
    the whole tensor, each element taking its member's result, and in the backward its member's slope
    (``torch.where``: exact; :func:`_slope`, from the result). Inductor moves 44 bytes per element for a mixed
    convolution region forward and backward, against 56 through ``torch.where``'s own gradients."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        code = codes.view(1, -1, *([1] * (h.ndim - 2)))
        out = torch.zeros_like(h)
        for name, i in CODES.items():
            out = torch.where(code == i, ACT[name](h), out)
        ctx.save_for_backward(out, code)
        return out

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> Any:
        y, code = ctx.saved_tensors
        slope = torch.zeros_like(y)
        for name, i in CODES.items():
            slope = torch.where(code == i, _slope(name, y), slope)
        return dy * slope, None


def _normalise(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Batch norm of ``x`` [B, P, C, ...] on its statistics per (member, channel): ``(y, mean, var)``, the
    statistics [P, C] (biased variance), as :func:`builder.engine.batch_norm.batch_norm_train` computes them."""
    dims = [0, *range(3, x.ndim)]
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    tail = (None,) * (x.ndim - 3)
    alpha = gamma[(None, Ellipsis, *tail)] / torch.sqrt(var + eps)
    y = x * alpha + (beta[(None, Ellipsis, *tail)] - mean * alpha)
    return y, mean.view(gamma.shape).detach(), var.view(gamma.shape).detach()


def norm_act(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, activation: str,
             codes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """A convolution layer's batch norm then activation, on ``x`` [B, P, C, H, W] (``activation``: a name, or
    ``"mixed"`` with ``codes`` [P]): ``(y, mean, var)``.

    Example:
        >>> x = torch.randn(4, 2, 1, 3, 3)
        >>> y, _, _ = norm_act(x, torch.ones(2, 1), torch.zeros(2, 1), 1e-3, "mixed", torch.tensor([1, 3]))
        >>> bool((y[:, 0] >= 0).all()), bool((y[:, 1].abs() < 1).all())  # relu, tanh
        (True, True)
    """
    y, mean, var = _normalise(x, gamma, beta, eps)
    return _activate(y, activation, codes), mean, var


def act_norm(h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, activation: str,
             codes: torch.Tensor | None = None, mask: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """A dense layer's activation then batch norm, on ``h`` [B, P, n], then dropout by ``mask`` ([B, P, n] of
    zeros and scales, or None): ``(y, mean, var)``."""
    y, mean, var = _normalise(_activate(h, activation, codes), gamma, beta, eps)
    return (y if mask is None else y * mask), mean, var


def norm_act_eval(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                  eps: float, activation: str) -> torch.Tensor:  # fmt: skip
    """A convolution layer of one network in eval mode: batch norm on the moving statistics, then the activation,
    on ``x`` [B, C, H, W] (``weight``, ``bias``, ``mean``, ``var``: [C])."""
    return ACT[activation](_normalise_eval(x, weight, bias, mean, var, eps))


def act_norm_eval(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                  eps: float, activation: str) -> torch.Tensor:  # fmt: skip
    """A dense layer of one network in eval mode: the activation, then batch norm on the moving statistics, on
    ``h`` [B, n]."""
    return _normalise_eval(ACT[activation](h), weight, bias, mean, var, eps)


def _normalise_eval(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                    eps: float) -> torch.Tensor:  # fmt: skip
    """Batch norm of one network's ``x`` [B, C, ...] on the moving statistics (``weight`` ... ``var``: [C])."""
    shape = (1, -1, *([1] * (x.ndim - 2)))
    return (x - mean.view(shape)) * (weight / torch.sqrt(var + eps)).view(shape) + bias.view(shape)


def eval_norm_act(region: Callable[[Callable[..., Any]], Callable[..., Any]], activation: str
                  ) -> Callable[[torch.Tensor, nn.Module, bool], torch.Tensor]:  # fmt: skip
    """The ``norm_act`` of :meth:`weightzoo.model.NWSNet.forward` for an evaluation in compiled regions
    (:func:`norm_act_eval`, :func:`act_norm_eval`, run by ``region``: :func:`compiled`, or :func:`counted`'s
    stand-in).

    Example:
        >>> from weightzoo.architecture import Architecture
        >>> from weightzoo.model import NWSNet
        >>> net = NWSNet(Architecture(filter_size=3, depth_conv=3, depth_fc=2, width_conv=4, width_fc=16)).eval()
        >>> x = torch.rand(2, 3, 32, 32)
        >>> fused = net(x, norm_act=eval_norm_act(lambda fn: fn, "relu"))  # eagerly, for the example
        >>> bool(torch.allclose(fused, net(x), atol=1e-5))
        True
    """

    def apply(z: torch.Tensor, bn: nn.Module, conv: bool) -> torch.Tensor:
        fn = norm_act_eval if conv else act_norm_eval
        return region(fn)(z, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps, activation)

    return apply


_COMPILED: dict[str, Any] = {}
#: Inductor's options for the regions: a layer's normalised values feed every activation of a mixed lane (and each
#: several times), more reads than Inductor's default of 4 before it writes a value out to memory; above these
#: thresholds it computes them in the kernel that reads them (a mixed region's forward writes one tensor, not two).
INDUCTOR_OPTIONS = {"realize_reads_threshold": 64, "realize_opcount_threshold": 256, "realize_acc_reads_threshold": 64}


def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (:func:`norm_act`, :func:`act_norm` or their eval-mode forms) compiled by Inductor with dynamic
    shapes, made once per process; one compilation per variant (activation, dropout or not, gradients or not)."""
    name = fn.__name__
    if name not in _COMPILED:
        # One region serves up to 5 activations x (dropout or not) x (training or not x lane of one or more): more
        # variants than Dynamo's default of 8 per function before it falls back to eager.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _COMPILED[name] = torch.compile(fn, dynamic=True, fullgraph=True, options=INDUCTOR_OPTIONS)
    return _COMPILED[name]


def inductor_work(fn: Callable[..., Any], args: tuple, seed: torch.Tensor | None = None) -> tuple[int, int]:
    """(kernels, bytes) of ``fn(*args)``'s forward and backward as Inductor compiles them for these shapes (static):
    its scheduler's fused nodes and the buffers each reads and writes (Inductor's own count), the backward seeded
    with ``seed`` (None: forward only). Compiles afresh (seconds).

    Example (compiles):
        >>> x = torch.randn(8, 2, 3, 4, 4, requires_grad=True)
        >>> g, b = torch.ones(2, 3, requires_grad=True), torch.zeros(2, 3, requires_grad=True)
        >>> kernels, moved = inductor_work(norm_act, (x, g, b, 1e-3, "relu"), torch.ones_like(x))  # doctest: +SKIP
        >>> kernels < 20 and moved < 20 * x.nbytes  # doctest: +SKIP
        True
    """
    import logging

    from torch._inductor import metrics

    # Inductor counts bytes only while its metrics log is on: on, into a null handler, for this compilation.
    log = logging.getLogger("torch._inductor.compile_fx.__inductor_metrics")
    saved = log.level, log.propagate, log.disabled
    null = logging.NullHandler()
    log.addHandler(null)
    log.setLevel(logging.INFO)
    log.propagate, log.disabled = False, False
    # and only when it compiles: not from its caches of earlier compilations (which keep no node counts)
    uncached = (
        torch._inductor.config.patch(fx_graph_cache=False),
        torch._functorch.config.patch(enable_autograd_cache=False),
    )
    try:
        torch._dynamo.reset()
        metrics.reset()
        with uncached[0], uncached[1]:
            out = torch.compile(fn, dynamic=False, fullgraph=True, options=INDUCTOR_OPTIONS)(*args)
            if seed is not None:
                out[0].backward(seed)
        return len(metrics.nodes_num_elem), int(metrics.num_bytes_accessed)
    finally:
        log.removeHandler(null)
        log.setLevel(saved[0])
        log.propagate, log.disabled = saved[1], saved[2]
        torch._dynamo.reset()


@dataclass(frozen=True)
class RegionCall:
    """One call of a compiled region in a lane step, as :func:`counted` records it: which region (``fn``: its
    function's name), its variant and its shapes."""

    fn: str
    activation: str
    masked: bool
    dtype: torch.dtype
    shape: tuple[int, ...]  # x: [B, P, C, H, W] or [B, P, n]

    @property
    def features(self) -> tuple[int, int, int, int]:
        """What a region's traffic is linear in: its elements, channels (members x channels), members, and 1 (an
        eval-mode region: of one network, ``x`` [B, C, ...])."""
        if self.fn in _EVAL:
            return (int(np.prod(self.shape)), self.shape[1], 1, 1)
        if self.fn in _OPTIMIZERS:  # p [P, N]: the update's elements, its members
            return (int(np.prod(self.shape)), self.shape[0], 1, 1)
        return (int(np.prod(self.shape)), self.shape[1] * self.shape[2], self.shape[1], 1)


class _Hidden(torch.autograd.Function):
    """A region run eagerly with every dispatch mode off, forward and backward (an operation counter sees none of
    its work: :func:`counted` charges Inductor's instead)."""

    @staticmethod
    def forward(ctx: Any, fn: Callable[..., Any], eps: float, activation: str, x: torch.Tensor, gamma: torch.Tensor,
                beta: torch.Tensor, codes: torch.Tensor | None, *mask: torch.Tensor) -> Any:  # fmt: skip
        with _disable_current_modes(), torch.enable_grad():
            inputs = [t.detach().requires_grad_() for t in (x, gamma, beta)]
            y, mean, var = fn(*inputs, eps, activation, codes, *mask)
        ctx.inputs, ctx.y = inputs, y
        ctx.mark_non_differentiable(mean, var)
        ctx.set_materialize_grads(False)  # the statistics take no gradient: none made
        return y.detach(), mean, var

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor, *_: Any) -> Any:
        with _disable_current_modes():
            grads = torch.autograd.grad(ctx.y, ctx.inputs, dy)
        return (None, None, None, *grads, None, *([None] * (len(ctx.needs_input_grad) - 7)))


def counted(calls: list[RegionCall]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A stand-in for :func:`compiled` while a step is counted (a compiled region cannot run under an operation
    counter): each region runs eagerly, hidden from the counter, and is recorded in ``calls`` for its Inductor
    work (:class:`RegionWork`).

    Example:
        >>> from builder.engine.op_count import OpCounter
        >>> calls = []
        >>> x, gamma, beta = torch.randn(4, 2, 3, 5, 5, requires_grad=True), torch.ones(2, 3), torch.zeros(2, 3)
        >>> with OpCounter() as count:
        ...     y, _, _ = counted(calls)(norm_act)(x, gamma, beta, 1e-3, "relu")
        ...     dx = torch.autograd.grad(y, x, torch.ones_like(y))
        >>> dict(count.ops), calls[0].shape  # the backward's seed only
        ({'ones_like': 1}, (4, 2, 3, 5, 5))
    """

    def stand_in(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(x: torch.Tensor, *args: Any) -> Any:
            if fn.__name__ in _EVAL or fn.__name__ in _OPTIMIZERS:  # no gradients
                activation = args[-1] if fn.__name__ in _EVAL else ""  # (x, weight, bias, mean, var, eps, activation)
                calls.append(RegionCall(fn.__name__, activation, False, x.dtype, tuple(x.shape)))
                with _disable_current_modes():
                    return fn(x, *args)
            gamma, beta, eps, activation, *rest = args  # [codes, *mask]
            codes, mask = (rest[0], rest[1:]) if rest else (None, ())
            calls.append(RegionCall(fn.__name__, activation, bool(mask), x.dtype, tuple(x.shape)))
            return _Hidden.apply(fn, eps, activation, x, gamma, beta, codes, *mask)

        return run

    return stand_in


_EVAL = {"norm_act_eval": norm_act_eval, "act_norm_eval": act_norm_eval}
#: The TF1 update rules (:mod:`weightzoo.optim`), compiled in place on a lane's rows of its flat buffers (p, g, slots:
#: [P, N]; step sizes [P, 1]) with ``TrainConfig.compile``: each one kernel reading and writing each buffer once.
_OPTIMIZERS = {"adam_update_": (adam_update_, 3), "rmsprop_update_": (rmsprop_update_, 2),
               "momentum_update_": (momentum_update_, 2)}  # fmt: skip
#: Small shapes [B, P, C, H] a region is compiled at to fit its traffic (:class:`RegionWork`): the features of
#: :attr:`RegionCall.features` independent over them.
_FIT_SHAPES = ((16, 2, 3, 6), (32, 2, 3, 6), (16, 2, 6, 6), (16, 3, 3, 6))


class RegionWork:
    """Inductor's kernels and bytes for the compiled regions of a lane step, forward and backward: per variant
    (region, activation, dropout, dtype), compiled at four small shapes (:func:`inductor_work`), its bytes linear
    in :attr:`RegionCall.features` (every buffer Inductor reads or writes is a whole activation, a per-channel or a
    per-member vector, or a scalar; ``tests/test_fused.py`` checks the fit at a fifth shape) and its kernels the
    same at every shape.

    Example (compiles):
        >>> work = RegionWork()
        >>> call = RegionCall("norm_act", "relu", False, torch.float32, (128, 8, 12, 32, 32))
        >>> kernels, moved = work(call)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._fits: dict[tuple, tuple[int, np.ndarray]] = {}

    def __call__(self, call: RegionCall) -> tuple[int, float]:
        """(kernels, bytes) of one region call."""
        key = (call.fn, call.activation, call.masked, call.dtype, len(call.shape))
        if key not in self._fits:
            self._fits[key] = self.fit(*key)
        kernels, coef = self._fits[key]
        return kernels, float(np.dot(coef, call.features))

    @staticmethod
    def measure(fn: str, activation: str, masked: bool, dtype: torch.dtype, shape: tuple[int, ...]) -> tuple[int, int]:
        """Inductor's (kernels, bytes) for one region at ``shape`` (x's: [B, P, C, H, W] or [B, P, n]; eval-mode
        regions [B, C, H, W] or [B, n])."""
        gen = torch.Generator().manual_seed(0)
        if fn in _OPTIMIZERS:
            update, buffers = _OPTIMIZERS[fn]
            tensors = [torch.rand(shape, generator=gen, dtype=dtype) + 0.5 for _ in range(buffers + 1)]
            return inductor_work(update, (*tensors, torch.full((shape[0], 1), 1e-3, dtype=dtype)))
        if fn in _EVAL:
            x, C = torch.randn(shape, generator=gen, dtype=dtype), shape[1]
            stats = [torch.rand(C, generator=gen, dtype=dtype) + 0.5 for _ in range(4)]
            return inductor_work(_EVAL[fn], (x, *stats, 1e-3, activation))
        region = {"norm_act": norm_act, "act_norm": act_norm}[fn]
        x = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_()
        P, C = shape[1], shape[2]
        gamma = (torch.rand(P, C, generator=gen, dtype=dtype) + 0.5).requires_grad_()
        beta = torch.zeros(P, C, dtype=dtype).requires_grad_()
        codes = torch.arange(P) % len(CODES) if activation == "mixed" else None
        mask = (torch.ones(shape, dtype=dtype),) if masked else ()
        return inductor_work(region, (x, gamma, beta, 1e-3, activation, codes, *mask), torch.ones(shape, dtype=dtype))

    def fit(self, fn: str, activation: str, masked: bool, dtype: torch.dtype, ndim: int) -> tuple[int, np.ndarray]:
        """(kernels, coefficients of :attr:`RegionCall.features`) of a variant, from :data:`_FIT_SHAPES`."""
        rows, moved, kernels = [], [], set()
        for B, P, C, H in _FIT_SHAPES:
            shape = {5: (B, P, C, H, H), 3: (B, P, C * H), 4: (B, P * C, H, H), 2: (B, P * C * H)}[ndim]
            if fn in _OPTIMIZERS:
                shape = (P, B * C * H)
            k, b = self.measure(fn, activation, masked, dtype, shape)
            rows.append(RegionCall(fn, activation, masked, dtype, shape).features)
            moved.append(b)
            kernels.add(k)
        if len(kernels) != 1:
            raise RuntimeError(f"Inductor compiled {fn} ({activation}) into {sorted(kernels)} kernels at different "
                               "shapes; expected one count")  # fmt: skip
        # least squares: an eval-mode region's features have a constant column twice (exact all the same)
        coef = np.linalg.lstsq(np.array(rows, dtype=float), np.array(moved, dtype=float), rcond=None)[0]
        return kernels.pop(), coef
