"""The declared families (:mod:`weightzoo.families`) in PyTorch: modules whose ``state_dict`` is exactly a
converted zoo's tensors (same names, order and layout), so ``zoo.model(n)`` and the probing baseline's batched
``functional_call`` take a network's stored tensors as they are.

- ``smallcnnzoo``: the Keras model of Unterthiner et al. (``dnn_predict_accuracy/train_network.py``): three
  ``Conv2D(16, 3, strides=2)`` with Keras' default ``valid`` padding, each followed by the activation, global
  average pooling, ``Dense(10)`` without activation (logits). Kernels stay HWIO and (in, out): the forward pass
  transposes them. Inputs as the original feeds them: images scaled to [-1, 1], colour averaged to one channel.
- ``modelzoos_cnn_s`` / ``modelzoos_cnn_l``: ``def_net.py`` of ModelZooDataset (``CNN`` and ``CNN3``): conv ->
  max-pool 2 -> activation (CNN-s' last conv has no pool), flatten, dense 20 -> activation, dense 10. Dropout
  layers hold no tensors and are identities in evaluation.

Example:
    >>> import torch
    >>> from weightzoo.families import DeclaredArchitecture, smallcnnzoo_declaration
    >>> arch = DeclaredArchitecture.from_dict(smallcnnzoo_declaration((1, 28, 28)), "doc")
    >>> net = build_family_model(arch, "relu")
    >>> list(net.state_dict()) == [p.name for p in arch.params], net(torch.zeros(2, 1, 28, 28)).shape
    (True, torch.Size([2, 10]))
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from weightzoo.errors import UnknownNameError, ZooFormatError
from weightzoo.families import FAMILIES, DeclaredArchitecture

#: Modules, as :class:`~weightzoo.model.NWSNet`'s: one ``act`` module applied after every hidden layer (a forward
#: hook on it sees every hidden activation; the probing baseline reads them so).
_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leakyrelu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


class _Layer(nn.Module):
    """One layer's tensors, registered in stored order (so the ``state_dict`` keeps it)."""

    def __init__(self, specs: list[tuple[str, tuple[int, ...]]]):
        super().__init__()
        for name, shape in specs:
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))


class FamilyNet(nn.Module):
    """A network of a declared family (see the module docstring), in evaluation mode once built."""

    def __init__(self, architecture: DeclaredArchitecture, activation: str):
        super().__init__()
        if activation not in FAMILIES[architecture.family][1]:
            raise UnknownNameError(f"{architecture.family} activation", activation, FAMILIES[architecture.family][1])
        self.architecture, self.activation = architecture, activation
        layers: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        for p in architecture.params:
            layer, _, tensor = p.name.partition(".")
            layers.setdefault(layer, []).append((tensor, p.shape))
        for layer, specs in layers.items():
            self.add_module(layer, _Layer(specs))
        self.act = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        family = self.architecture.family
        if family == "smallcnnzoo":
            for i in range(3):
                layer = getattr(self, f"conv{i}")
                x = self.act(F.conv2d(x, layer.weight.permute(3, 2, 0, 1), layer.bias, stride=2))
            return x.mean(dim=(2, 3)) @ self.out.weight + self.out.bias
        for i in range(3):
            layer = getattr(self, f"conv{i}")
            x = F.conv2d(x, layer.weight, layer.bias)
            if i < 2 or family == "modelzoos_cnn_l":
                x = F.max_pool2d(x, 2)
            x = self.act(x)
        x = self.act(F.linear(x.flatten(1), self.fc0.weight, self.fc0.bias))
        return F.linear(x, self.out.weight, self.out.bias)


def build_family_model(
    architecture: DeclaredArchitecture, activation: str, weights: Mapping[str, torch.Tensor] | None = None
) -> FamilyNet:
    """A :class:`FamilyNet` in eval mode, holding ``weights`` (a network's stored tensors) when given."""
    net = FamilyNet(architecture, activation)
    if weights is not None:
        missing = [p.name for p in architecture.params if p.name not in weights]
        if missing:
            raise ZooFormatError(f"weights lack {missing[:5]} for the {architecture.family} architecture")
        net.load_state_dict({p.name: torch.as_tensor(weights[p.name]) for p in architecture.params})
    return net.eval()
