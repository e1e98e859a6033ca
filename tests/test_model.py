import pytest
import torch

from weightzoo.architecture import Architecture
from weightzoo.errors import UnknownNameError, ZooFormatError
from weightzoo.model import NWSNet, build_model, from_flat, initialize_, state_tensors, to_flat


@pytest.mark.parametrize("arch", [Architecture(), Architecture(3, 4, 3, 12, 192), Architecture(7, 5, 4, 4, 64)])
def test_state_dict_matches_architecture(arch):
    net = NWSNet(arch, "tanh")
    state = net.state_dict()
    for p in arch.params:
        assert tuple(state[p.name].shape) == p.shape
    assert to_flat(state, arch).numel() == arch.num_params
    assert net(torch.rand(3, 3, 32, 32)).shape == (3, 20)


def test_flat_round_trip_and_order():
    arch = Architecture()
    net = initialize_(NWSNet(arch), "glorot_normal", torch.Generator().manual_seed(1))
    flat = to_flat(net.state_dict(), arch)
    # conv0 kernel first, flattened like a PyTorch [out, in, k, k] tensor
    assert torch.equal(flat[: 8 * 3 * 25], net.conv0.weight.detach().reshape(-1))
    back = from_flat(flat, arch)
    for name, tensor in state_tensors(net).items():
        assert torch.equal(back[name], tensor)
    with pytest.raises(ZooFormatError, match="92868"):
        from_flat(flat[:-1], arch)


@pytest.mark.parametrize("scheme", ["constant", "normal", "glorot_uniform", "glorot_normal"])
def test_initialisations(scheme):
    arch = Architecture()
    net = initialize_(NWSNet(arch), scheme, torch.Generator().manual_seed(0))
    w = net.fc0.weight.detach()
    fan = 512 + 128
    assert float(net.fc0.bias.detach().abs().sum()) == 0.0 and float(net.conv1.bias.detach().abs().sum()) == 0.0
    assert torch.all(net.fc0_bn.weight == 1) and torch.all(net.fc0_bn.bias == 0)
    if scheme == "constant":
        assert torch.all(w == 0.1)
    elif scheme == "normal":
        assert abs(float(w.std()) - 1.0) < 0.02
    elif scheme == "glorot_uniform":
        a = (6 / fan) ** 0.5
        assert float(w.abs().max()) <= a and abs(float(w.std()) - a / 3**0.5) < 0.002
    else:
        std = (2 / fan) ** 0.5 / 0.87962566103423978
        assert float(w.abs().max()) <= 2 * std + 1e-7
        assert abs(float(w.std()) - (2 / fan) ** 0.5) < 0.002  # truncation brings the std back to Glorot's


def test_initialisation_is_deterministic():
    arch = Architecture()
    a = to_flat(initialize_(NWSNet(arch), "glorot_uniform", torch.Generator().manual_seed(5)).state_dict(), arch)
    b = to_flat(initialize_(NWSNet(arch), "glorot_uniform", torch.Generator().manual_seed(5)).state_dict(), arch)
    assert torch.equal(a, b)


def test_layer_order_conv_bn_act_and_dense_act_bn():
    arch = Architecture()
    net = NWSNet(arch, "relu").eval()
    seen = []
    for name in ["conv0", "conv0_bn", "act", "fc0", "fc0_bn"]:
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: seen.append(name))
    net(torch.rand(1, 3, 32, 32))
    assert seen[:3] == ["conv0", "conv0_bn", "act"]
    fc = seen[seen.index("fc0") :]
    assert fc[:3] == ["fc0", "act", "fc0_bn"]


def test_build_model_reproduces_outputs():
    arch = Architecture(3, 3, 2, 4, 64)
    net = initialize_(NWSNet(arch, "elu"), "glorot_uniform", torch.Generator().manual_seed(0)).eval()
    x = torch.rand(4, 3, 32, 32)
    rebuilt = build_model(state_tensors(net), arch, "elu")
    assert torch.equal(rebuilt(x), net(x))


def test_unknown_activation_lists_valid():
    with pytest.raises(UnknownNameError, match="relu"):
        NWSNet(Architecture(), "gelu")
