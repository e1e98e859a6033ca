"""Filter sizes shared in one lane (TrainConfig.filter_size): kernels centred in larger ones, each network itself."""

import dataclasses

import pytest
import torch

from builder.engine.pack import iter_pack
from builder.engine.pack_schedule import pack_key
from tests.test_pack import (
    CONFIG,
    IMAGES,
    MIXED,
    assert_each_alone_as_in_its_pack,
    assert_each_padded_is_the_reference_alone,
)
from weightzoo.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

#: Networks that differ in their filter size (and in everything a lane may mix, dense widths too): with
#: filter_size=7 and fc_width=128 they share one lane, the smaller kernels centred in 7 x 7 zeros.
FILTERS = [
    dataclasses.replace(hp, filter_size=k, width_fc=w)
    for hp, k, w in zip(MIXED, [3, 5, 7, 3], [64, 128, 64, 64], strict=True)
]
PADDED = dataclasses.replace(CONFIG, filter_size=7, fc_width=128)


def test_networks_of_several_filter_sizes_share_a_lane_and_each_is_itself():
    """filter_size=7: one lane for filter sizes 3, 5 and 7 (and dense widths 64 and 128), each network (float64)
    what the reference loop gives it alone with its own kernels, its snapshots in its own shapes."""
    assert len({pack_key(hp, 128, 7) for hp in FILTERS}) == 1 and len({pack_key(hp) for hp in FILTERS}) == 3
    plain = dataclasses.replace(CONFIG, max_epochs=2)
    assert_each_padded_is_the_reference_alone(FILTERS, dataclasses.replace(plain, filter_size=7, fc_width=128), plain)


def test_a_network_with_padded_filters_is_bit_identical_in_any_pack():
    """Under filter_size, a network has the same bytes alone and in a lane of mixed filter sizes (float32, CPU)."""
    assert_each_alone_as_in_its_pack(FILTERS, PADDED)


def test_padded_kernel_positions_stay_exact_zeros():
    """The ring around a smaller kernel starts at zero and stays exactly zero (its gradients masked) in the
    weights and every optimizer slot, through training steps of all three optimizers; the kernel comes back in its
    own shape from the centre."""
    from builder.engine.member import Member
    from builder.engine.pack_lane import Lane
    from builder.engine.train import DeviceImages

    data = {name: DeviceImages(IMAGES[name], "cpu") for name in IMAGES}
    members = [Member(hp, data[hp.dataset], 0, i, PADDED, torch.float32) for i, hp in enumerate(FILTERS)]
    lane = Lane(PADDED, torch.device("cpu"), torch.float32)
    lane.restack([], members)
    assert lane.grad_mask is not None
    for _ in range(4):
        lane.step()
        for m in members:
            m.batch = (m.batch + 1) % m.n_batches
    moved = 0
    for slot, m in enumerate(lane.members):
        k = m.hp.filter_size
        lo = (7 - k) // 2
        for kind in ("p", "s1", "s2"):
            for name, t in lane.tensors(lane.flat[kind].detach()).items():
                if name.startswith("conv") and t.ndim == 5:
                    ring = t[slot].clone()
                    ring[:, :, lo : lo + k, lo : lo + k] = 0
                    assert not ring.any(), (k, kind, name)
        own = lane.member_weights(slot)["conv0.weight"]
        assert own.shape[2:] == (k, k)
        moved += int(not torch.equal(own, m.initial["conv0.weight"]))
    assert moved == len(members)  # the centres did train


def test_the_mask_is_what_keeps_the_ring_at_zero():
    """Without the mask, the ring's gradients are not zero (it sees real inputs): a step moves it."""
    from builder.engine.member import Member
    from builder.engine.pack_lane import Lane
    from builder.engine.train import DeviceImages

    data = {name: DeviceImages(IMAGES[name], "cpu") for name in IMAGES}
    members = [Member(hp, data[hp.dataset], 0, i, PADDED, torch.float32) for i, hp in enumerate(FILTERS[:1])]
    lane = Lane(PADDED, torch.device("cpu"), torch.float32)
    lane.restack([], members)
    lane.grad_mask = None
    lane.step()
    ring = lane.tensors(lane.flat["p"].detach())["conv0.weight"][0].clone()
    ring[:, :, 2:5, 2:5] = 0
    assert ring.any()


def test_a_lane_of_networks_of_its_own_filter_size_has_no_mask():
    from builder.engine.member import Member
    from builder.engine.pack_lane import Lane
    from builder.engine.train import DeviceImages

    hp = FILTERS[2]  # filter size 7
    members = [Member(hp, DeviceImages(IMAGES[hp.dataset], "cpu"), 0, 0, PADDED, torch.float32)]
    lane = Lane(PADDED, torch.device("cpu"), torch.float32)
    lane.restack([], members)
    assert lane.grad_mask is None


@pytest.mark.parametrize(("size", "message"), [(5, "network 2: filter_size=5 is below its filter_size=7"),
                                               (6, "filter_size=6; expected an odd size")])  # fmt: skip
def test_a_filter_size_below_a_networks_or_even_is_refused_by_name(size, message):
    with pytest.raises(ConfigError, match=message):
        cfg = dataclasses.replace(CONFIG, filter_size=size)
        next(iter_pack(FILTERS, IMAGES, zoo_seed=0, network_ids=[0, 1, 2, 3], config=cfg))


def test_the_gpu_sweeps_padded_pack_builds_and_steps_on_cpu():
    """benchmarks/gpu_sweep.py's realistic nws_main pack with --fc-width 192 --filter-size 7 (what a lent GPU
    times): built from the generator's first pack, networks of several own shapes in one lane; one step runs."""
    from benchmarks.gpu_sweep import pack_of
    from builder.engine.member import DeviceImages

    images = DeviceImages(IMAGES["digits"], "cpu")
    padded = pack_of(16, images, dataclasses.replace(CONFIG, fc_width=192, filter_size=7), graphs=False)
    assert len(padded.members) == 16 and len(padded.lanes) == 1
    assert len({m.hp.architecture for m in padded.members}) > 1 and padded.lanes[0].arch.filter_size == 7
    padded.step()
    assert all(m.steps == 1 for m in padded.members)
