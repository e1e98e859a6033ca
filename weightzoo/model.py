"""The NWS CNN family in PyTorch, and conversions between a network and its flat reference-order vector.

Conv layer: k x k conv (same padding, bias) -> batch norm -> activation; each of the 3 blocks ends in a 2x2
max-pool. Dense layer: linear (bias) -> activation -> batch norm -> dropout 0.5 (the reference's order). Output:
linear with 20 units. Batch norm follows TensorFlow 1's defaults (momentum 0.99, epsilon 1e-3) as in the
original code. The feature map is flattened in (height, width, channel) order like the original TensorFlow
model, so the first dense matrix lines up with the reference's.

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
from collections.abc import Mapping

import torch
from torch import nn

from weightzoo.architecture import NUM_OUTPUTS, Architecture
from weightzoo.errors import UnknownNameError, ZooFormatError
from weightzoo.hparams import ACTIVATIONS, INITIALIZATIONS

#: TensorFlow 1 ``batch_normalization`` defaults: decay 0.99 (PyTorch momentum 0.01), epsilon 1e-3.
BN_MOMENTUM = 0.01
BN_EPS = 1e-3
DROPOUT = 0.5
_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class NWSNet(nn.Module):
    """One network of the NWS family; ``state_dict`` keys are those of :attr:`Architecture.params`.

    ``bn_momentum`` is PyTorch's (1 - TensorFlow's decay): it only matters while training.
    """

    def __init__(self, architecture: Architecture, activation: str = "relu", bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise UnknownNameError("activation", activation, ACTIVATIONS)
        self.architecture = architecture
        self.activation = activation
        self.act = _ACTIVATIONS[activation]()
        k, c_in = architecture.filter_size, 3
        for i, c_out in enumerate(architecture.conv_channels):
            setattr(self, f"conv{i}", nn.Conv2d(c_in, c_out, k, padding=k // 2))
            setattr(self, f"conv{i}_bn", nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=bn_momentum))
            c_in = c_out
        n_in = architecture.flat_features
        for j, n_out in enumerate(architecture.fc_units):
            setattr(self, f"fc{j}", nn.Linear(n_in, n_out))
            setattr(self, f"fc{j}_bn", nn.BatchNorm1d(n_out, eps=BN_EPS, momentum=bn_momentum))
            n_in = n_out
        self.out = nn.Linear(n_in, NUM_OUTPUTS)
        self.dropout = nn.Dropout(DROPOUT)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, 20] for images [B, 3, 32, 32] in [0, 1]."""
        layer = 0
        for n_layers in self.architecture.blocks:
            for _ in range(n_layers):
                x = self.act(getattr(self, f"conv{layer}_bn")(getattr(self, f"conv{layer}")(x)))
                layer += 1
            x = self.pool(x)
        x = x.permute(0, 2, 3, 1).flatten(1)  # (h, w, c) order, as TensorFlow flattens NHWC
        for j in range(len(self.architecture.fc_units)):
            x = self.dropout(getattr(self, f"fc{j}_bn")(self.act(getattr(self, f"fc{j}")(x))))
        return self.out(x)


def initialize_(net: NWSNet, scheme: str, generator: torch.Generator) -> NWSNet:
    """Initialise weights in place with one of the reference schemes; biases zero, BN gamma 1 and beta 0.

    ``constant``: every weight 0.1. ``normal``: N(0, 1). ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in +
    fan_out)). ``glorot_normal``: TensorFlow 1's truncated normal (at 2 std) with std sqrt(2 / (fan_in +
    fan_out)) / 0.8796. Every draw comes from ``generator``, in parameter order.

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
                tensor.fill_(1.0 if kind == "weight" else 0.0)
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
    else:  # glorot_normal: truncated at two standard deviations, redrawn until inside, as TF1 does
        std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
        values = torch.randn(w.shape, generator=generator, device=generator.device)
        while (bad := values.abs() > 2).any():
            values[bad] = torch.randn(int(bad.sum()), generator=generator, device=generator.device)
        w.copy_(values * std)


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


def build_model(weights: Mapping[str, torch.Tensor], architecture: Architecture, activation: str) -> NWSNet:
    """A ready ``NWSNet`` in eval mode holding ``weights`` (a per-layer dict as the reader returns it).

    Example:
        >>> arch = Architecture()
        >>> w = NWSNet(arch).state_dict()
        >>> build_model(w, arch, "relu").training
        False
    """
    net = NWSNet(architecture, activation)
    missing = [p.name for p in architecture.params if p.name not in weights]
    if missing:
        raise ZooFormatError(f"weights lack {missing[:5]} for {architecture}")
    net.load_state_dict({k: weights[k] for k in (p.name for p in architecture.params)}, strict=False)
    return net.eval()


def state_tensors(net: NWSNet) -> dict[str, torch.Tensor]:
    """The network's tensors that make up its flat vector, by name, in reference order (detached, float32)."""
    state = net.state_dict()
    return {p.name: state[p.name].detach().to(torch.float32) for p in net.architecture.params}
