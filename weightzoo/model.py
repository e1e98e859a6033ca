"""The NWS CNN family in PyTorch, and conversions between a network and its flat reference-order vector.

Conv layer: k x k conv (same padding, bias) -> batch norm -> activation; each of the 3 blocks ends in a 2x2
max-pool. Dense layer: linear (bias) -> activation -> batch norm -> dropout 0.5 (the reference's order). Output:
linear with 20 units. Batch norm is TensorLayer 1.x's ``BatchNormLayer`` as the original code builds it
(``../shared/nws-reference.md``, "Exact training semantics"): moving-average decay 0.9, epsilon 1e-5, gamma drawn
from N(1, 0.002), beta 0, moving mean 0 and variance 1, and the moving variance fed with the batch's biased
variance (``tf.nn.moments``; PyTorch's own layer feeds the unbiased one). The feature map is flattened in
(height, width, channel) order like the original TensorFlow model, so the first dense matrix lines up with the
reference's.

Example:
    >>> import torch
    >>> from weightzoo.architecture import Architecture
    >>> net = NWSNet(Architecture(), activation="relu").eval()
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 20])
    >>> flat = to_flat(net.state_dict(), Architecture())
    >>> flat.shape
    torch.Size([92868])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from weightzoo.architecture import NUM_OUTPUTS, Architecture
from weightzoo.errors import UnknownNameError, ZooFormatError
from weightzoo.format.record import BN_DECAY, BN_EPS, GenerationRecord
from weightzoo.hparams import ACTIVATIONS, INITIALIZATIONS

#: TensorLayer ``BatchNormLayer`` defaults, as the original uses them: decay 0.9 (PyTorch momentum 0.1), epsilon
#: 1e-5 (both stated in :mod:`weightzoo.format.record`, with the epsilon of older zoos), gamma ~ N(1, 0.002).
BN_MOMENTUM = 1 - BN_DECAY
BN_GAMMA_STD = 0.002
DROPOUT = 0.5
_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class _MovingBatchNorm:
    """Training-mode batch norm with TensorLayer's moving averages: normalise with the batch's mean and biased
    variance, then ``moving = decay * moving + (1 - decay) * batch`` with that same biased variance. Evaluation mode
    is PyTorch's (the moving statistics)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)  # type: ignore[misc]
        dims = [0, *range(2, x.ndim)]
        with torch.no_grad():
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class TLBatchNorm2d(_MovingBatchNorm, nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` whose training-mode moving variance is fed the biased batch variance."""


class TLBatchNorm1d(_MovingBatchNorm, nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` whose training-mode moving variance is fed the biased batch variance."""


class NWSNet(nn.Module):
    """One network of the NWS family; ``state_dict`` keys are those of :attr:`Architecture.params`.

    ``bn_momentum`` is PyTorch's (1 - the moving-average decay): it only matters while training. ``bn_eps`` is
    the zoo's (1e-5 from generation version 2 on, 1e-3 before: :data:`LEGACY_BN_EPS`).
    """

    def __init__(
        self,
        architecture: Architecture,
        activation: str = "relu",
        bn_momentum: float = BN_MOMENTUM,
        bn_eps: float = BN_EPS,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise UnknownNameError("activation", activation, ACTIVATIONS)
        self.architecture = architecture
        self.activation = activation
        self.act = _ACTIVATIONS[activation]()
        k, c_in = architecture.filter_size, 3
        for i, c_out in enumerate(architecture.conv_channels):
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, k, padding=k // 2))
            setattr(self, f"conv{i}_bn", TLBatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum))
            c_in = c_out
        n_in = architecture.flat_features
        for j, n_out in enumerate(architecture.fc_units):
            setattr(self, f"fc{j}", nn.Linear(n_in, n_out))
            setattr(self, f"fc{j}_bn", TLBatchNorm1d(n_out, eps=bn_eps, momentum=bn_momentum))
            n_in = n_out
        self.out = nn.Linear(n_in, NUM_OUTPUTS)
        self.dropout = nn.Dropout(DROPOUT)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor, dropout_masks: Sequence[torch.Tensor] | None = None,
                norm_act: Callable[[torch.Tensor, nn.Module, bool], torch.Tensor] | None = None
                ) -> torch.Tensor:  # fmt: skip
        """Logits [B, 20] for images [B, 3, 32, 32] in [0, 1].

        ``dropout_masks``: one [B, units] tensor per dense layer, multiplied in place of :attr:`dropout`'s own
        draw (0 drops a unit, ``1 / (1 - p)`` keeps it); the trainers pass them in training mode so a network's
        masks are a function of its identity and step (``builder.engine.keyed_random``). None: ``nn.Dropout``.
        ``norm_act(z, bn, conv)``: a layer's batch norm and activation on its convolution's or product's output
        ``z`` (``conv``: batch norm then activation, else activation then batch norm), for a trainer that runs them
        as one compiled region (``builder.engine.fused``); None: the modules, ``act(bn(z))`` and ``bn(act(z))``."""
        layer = 0
        for n_layers in self.architecture.blocks:
            for _ in range(n_layers):
                z, bn = getattr(self, f"conv{layer}")(x), getattr(self, f"conv{layer}_bn")
                x = self.act(bn(z)) if norm_act is None else norm_act(z, bn, True)
                layer += 1
            x = self.pool(x)
        x = x.permute(0, 2, 3, 1).flatten(1)  # (h, w, c) order, as TensorFlow flattens NHWC
        for j in range(len(self.architecture.fc_units)):
            z, bn = getattr(self, f"fc{j}")(x), getattr(self, f"fc{j}_bn")
            x = bn(self.act(z)) if norm_act is None else norm_act(z, bn, False)
            x = self.dropout(x) if dropout_masks is None else x * dropout_masks[j]
        return self.out(x)


def initialize_(net: NWSNet, scheme: str, generator: torch.Generator) -> NWSNet:
    """Initialise weights in place with one of the reference schemes; biases zero, batch-norm beta 0 and gamma
    drawn from N(1, 0.002) (TensorLayer's ``BatchNormLayer``), moving mean 0 and variance 1.

    ``constant``: every weight 0.1. ``normal``: N(0, 1). ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in +
    fan_out)). ``glorot_normal``: TensorFlow 1's truncated normal (at 2 std) with std sqrt(2 / (fan_in +
    fan_out)) / 0.8796. Every draw comes from ``generator``, in parameter order (a layer's weight, then its
    batch-norm gamma).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> net = initialize_(NWSNet(Architecture()), "glorot_uniform", g)
        >>> float(net.conv0.bias.detach().abs().sum())
        0.0
    """
    if scheme not in INITIALIZATIONS:
        raise UnknownNameError("initialization", scheme, INITIALIZATIONS)
    with torch.no_grad():
        for spec in net.architecture.params:
            tensor = net.get_parameter(spec.name) if spec.name.endswith(("weight", "bias")) else None
            if tensor is None:
                continue  # running statistics keep their defaults (mean 0, variance 1)
            layer, kind = spec.name.rsplit(".", 1)
            if layer.endswith("_bn"):
                if kind == "weight":  # gamma ~ N(1, 0.002), TensorLayer's gamma_init
                    normal = torch.randn(tensor.shape, generator=generator, device=generator.device)
                    tensor.copy_(1.0 + BN_GAMMA_STD * normal)
                else:
                    tensor.zero_()
            elif kind == "bias":
                tensor.zero_()
            else:
                _init_weight(tensor, scheme, generator)
    return net


def _init_weight(w: torch.Tensor, scheme: str, generator: torch.Generator) -> None:
    receptive = math.prod(w.shape[2:])
    fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
    if scheme == "constant":
        w.fill_(0.1)
    elif scheme == "normal":
        w.copy_(torch.randn(w.shape, generator=generator, device=generator.device))
    elif scheme == "glorot_uniform":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        w.copy_(torch.rand(w.shape, generator=generator, device=generator.device) * 2 * a - a)
    else:
        glorot_normal_(w, generator)


def glorot_normal_(w: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """TF1's ``glorot_normal_initializer`` in place: a normal truncated at two standard deviations (redrawn until
    inside) with std ``sqrt(2 / (fan_in + fan_out)) / 0.8796``; fans over PyTorch's ``[out, in, *kernel]`` layout.

    Example:
        >>> w = glorot_normal_(torch.empty(64, 32), torch.Generator().manual_seed(0))
        >>> bool(w.abs().max() <= 2 * math.sqrt(2 / 96) / 0.87962566103423978)
        True
    """
    receptive = math.prod(w.shape[2:])
    fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
    std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
    values = torch.randn(w.shape, generator=generator, device=generator.device)
    while (bad := values.abs() > 2).any():
        values[bad] = torch.randn(int(bad.sum()), generator=generator, device=generator.device)
    with torch.no_grad():
        return w.copy_(values * std)


def to_flat(state: Mapping[str, torch.Tensor], architecture: Architecture) -> torch.Tensor:
    """The flat reference-order vector (float32) of a ``state_dict`` or of a per-layer weights dict."""
    parts = []
    for spec in architecture.params:
        if spec.name not in state:
            raise ZooFormatError(
                f"tensor {spec.name!r} missing; expected the {len(architecture.params)} tensors of {architecture}"
            )
        parts.append(state[spec.name].detach().reshape(-1).to(torch.float32))
    return torch.cat(parts)


def from_flat(vector: torch.Tensor, architecture: Architecture) -> dict[str, torch.Tensor]:
    """Split a flat reference-order vector back into named tensors (views of ``vector``)."""
    if vector.ndim != 1 or vector.numel() != architecture.num_params:
        raise ZooFormatError(
            f"flat vector of shape {tuple(vector.shape)}; expected ({architecture.num_params},) for {architecture}"
        )
    return {p.name: vector[p.offset : p.offset + p.size].view(p.shape) for p in architecture.params}


def build_model(
    weights: Mapping[str, torch.Tensor], architecture: Architecture, activation: str, bn_eps: float = BN_EPS
) -> NWSNet:
    """A ready ``NWSNet`` in eval mode holding ``weights`` (a per-layer dict as the reader returns it);
    ``bn_eps`` is the zoo's (:func:`bn_eps_of` reads it from a manifest's generation record).

    Example:
        >>> arch = Architecture()
        >>> w = NWSNet(arch).state_dict()
        >>> build_model(w, arch, "relu").training
        False
    """
    net = NWSNet(architecture, activation, bn_eps=bn_eps)
    missing = [p.name for p in architecture.params if p.name not in weights]
    if missing:
        raise ZooFormatError(f"weights lack {missing[:5]} for {architecture}")
    net.load_state_dict({k: weights[k] for k in (p.name for p in architecture.params)}, strict=False)
    return net.eval()


def state_tensors(net: NWSNet) -> dict[str, torch.Tensor]:
    """The network's tensors that make up its flat vector, by name, in reference order (detached, float32)."""
    state = net.state_dict()
    return {p.name: state[p.name].detach().to(torch.float32) for p in net.architecture.params}


def bn_eps_of(generation: Mapping[str, Any]) -> float:
    """The batch-norm epsilon a zoo's networks were trained with, from its manifest's ``generation`` record
    (:class:`~weightzoo.format.record.GenerationRecord`): recorded there from generation version 2 on; 1e-3 for
    older zoos, 1e-5 for converted releases.

    Example:
        >>> bn_eps_of({"train": {"bn_eps": 1e-5}}), bn_eps_of({"train": {"bn_decay": 0.99}})
        (1e-05, 0.001)
    """
    return GenerationRecord.from_dict(generation).train.bn_eps
