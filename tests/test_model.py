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
    assert torch.all(net.fc0_bn.bias == 0) and torch.all(net.fc0_bn.running_var == 1)
    assert torch.all(net.fc0_bn.running_mean == 0)
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


def test_batch_norm_defaults_are_tensorlayers():
    """TensorLayer BatchNormLayer (TL 1.x): decay 0.9, epsilon 1e-5, gamma ~ N(1, 0.002), beta 0, mean 0, var 1."""
    net = initialize_(NWSNet(Architecture()), "glorot_uniform", torch.Generator().manual_seed(0))
    for name in ("conv0_bn", "conv2_bn", "fc0_bn", "fc1_bn"):
        bn = getattr(net, name)
        assert bn.eps == 1e-5 and abs(bn.momentum - 0.1) < 1e-12
        assert torch.all(bn.bias == 0) and torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
    gammas = torch.cat([getattr(net, n).weight.detach() for n in ("conv0_bn", "conv1_bn", "conv2_bn", "fc0_bn")])
    assert not torch.all(gammas == 1)  # drawn, not filled
    assert abs(float(gammas.mean()) - 1) < 0.001 and abs(float(gammas.std()) - 0.002) < 0.0006
    assert float((gammas - 1).abs().max()) < 0.002 * 5


def test_gamma_is_drawn_from_the_init_stream_after_its_layers_weight():
    """Same generator state, same gammas; the draw is part of the network's init stream (not the global one)."""
    a = initialize_(NWSNet(Architecture()), "normal", torch.Generator().manual_seed(7))
    torch.manual_seed(123)
    b = initialize_(NWSNet(Architecture()), "normal", torch.Generator().manual_seed(7))
    assert torch.equal(a.conv1_bn.weight, b.conv1_bn.weight) and torch.equal(a.fc1.weight, b.fc1.weight)
    # The first draw after conv0's 8*3*5*5 weights is conv0's gamma.
    g = torch.Generator().manual_seed(7)
    first = torch.randn(8, 3, 5, 5, generator=g)
    gamma = 1 + 0.002 * torch.randn(8, generator=g)
    assert torch.equal(a.conv0.weight.detach(), first) and torch.allclose(a.conv0_bn.weight.detach(), gamma)


def test_training_batch_norm_moving_statistics_are_tensorlayers():
    """A transcription of TL's update: moments over (N, H, W), biased variance, moving = 0.9 moving + 0.1 batch;
    the output normalises with the batch statistics and epsilon 1e-5."""
    from weightzoo.model import TLBatchNorm1d, TLBatchNorm2d

    torch.manual_seed(0)
    x = torch.randn(6, 4, 5, 5) * 3 + 1
    bn = TLBatchNorm2d(4, eps=1e-5, momentum=0.1).train()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 0.5, 2.0, 1.5]))
        bn.bias.copy_(torch.tensor([0.0, 0.1, -0.2, 0.3]))
    y = bn(x)
    xd = x.double()
    mean = xd.mean(dim=(0, 2, 3))
    var = ((xd - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3))  # biased, as tf.nn.moments
    assert torch.allclose(bn.running_mean.double(), 0.9 * 0 + 0.1 * mean, atol=1e-6)
    assert torch.allclose(bn.running_var.double(), 0.9 * 1 + 0.1 * var, atol=1e-6)
    ref = (xd - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
    ref = ref * bn.weight.double().view(1, -1, 1, 1) + bn.bias.double().view(1, -1, 1, 1)
    assert torch.allclose(y.double(), ref, atol=1e-5)
    # Dense layers: over the batch only; with 4 images the biased and unbiased variances differ by 4/3.
    d = TLBatchNorm1d(3, eps=1e-5, momentum=0.1).train()
    z = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [4.0, 3.0, 2.0], [6.0, 3.0, 0.0]])
    d(z)
    assert torch.allclose(d.running_var, 0.9 + 0.1 * z.var(dim=0, unbiased=False))
    y_eval = d.eval()(z)
    assert torch.allclose(y_eval, (z - d.running_mean) / torch.sqrt(d.running_var + 1e-5) * d.weight + d.bias)


def test_dropout_masks_replace_the_modules_draw():
    """Given masks (the trainers' keyed draws), training mode multiplies them in instead of nn.Dropout's draw:
    masks of ones give the no-dropout output, and a zero mask on the last hidden layer leaves only the bias."""
    torch.manual_seed(0)
    arch = Architecture()
    net = NWSNet(arch, "relu").train()
    x = torch.rand(4, 3, 32, 32)
    ones = [torch.ones(4, n) for n in arch.fc_units]
    net.dropout.eval()
    expected = net(x)
    net.dropout.train()
    torch.testing.assert_close(net(x, ones), expected, rtol=0, atol=0)
    zeros = [*ones[:-1], torch.zeros(4, arch.fc_units[-1])]
    torch.testing.assert_close(net(x, zeros), net.out.bias.expand(4, -1), rtol=0, atol=0)
