import itertools

import pytest

from weightzoo.architecture import Architecture
from weightzoo.errors import ConfigError, UnknownNameError


def test_nws_fixed_lengths_match_reference():
    arch = Architecture()
    assert arch.num_params == 92_868
    assert arch.weightn_conv == 16_880
    assert arch.weightn_fc == 92_868 - 16_880


def test_offsets_are_contiguous_and_conv_first():
    arch = Architecture(7, 5, 4, 12, 192)
    offset = 0
    for p in arch.params:
        assert p.offset == offset
        offset += p.size
    assert offset == arch.num_params
    sections = [p.section for p in arch.params]
    assert sections == sorted(sections)  # all "conv" before all "fc"
    assert sum(p.size for p in arch.params if p.section == "conv") == arch.weightn_conv


def test_layer_order_weight_bias_then_bn():
    names = [p.name for p in Architecture().params[:6]]
    assert names == [
        "conv0.weight",
        "conv0.bias",
        "conv0_bn.bias",
        "conv0_bn.weight",
        "conv0_bn.running_mean",
        "conv0_bn.running_var",
    ]
    assert [p.name for p in Architecture().params[-2:]] == ["out.weight", "out.bias"]


def test_blocks_widths_and_range_of_main_space():
    arch = Architecture(3, 5, 4, 4, 64)
    assert arch.blocks == (1, 2, 2)
    assert arch.conv_channels == (4, 8, 8, 16, 16)
    assert arch.fc_units == (64, 32, 16, 8)
    sizes = [
        Architecture(*c).num_params
        for c in itertools.product((3, 5, 7), (3, 4, 5), (2, 3, 4), (4, 8, 12), (64, 128, 192))
    ]
    # the reference: 21k to 388k values per snapshot, mean about 125k
    assert 21_000 <= min(sizes) < 22_000 and 388_000 <= max(sizes) < 389_000
    assert 120_000 < sum(sizes) / len(sizes) < 130_000


def test_bad_architecture_values():
    with pytest.raises(ConfigError, match="depth_conv"):
        Architecture(depth_conv=6)
    with pytest.raises(ConfigError, match="filter_size"):
        Architecture(filter_size=0)
    with pytest.raises(UnknownNameError, match="conv0.weight"):
        Architecture().param("conv9.weight")
