"""Compiled regions (TrainConfig.compile, builder.engine.fused): a compiled pack trains each network as the reference
loop does (float64, up to rounding), a network has the same bytes in any compiled pack, and the projection charges
Inductor's own count of the regions' work (exact linear fits, nothing of the region left in the eager count)."""

import dataclasses

import pytest
import torch

from builder.engine import fused
from builder.engine.fused import RegionCall, RegionWork, counted
from builder.engine.op_count import OpCounter
from builder.engine.pack import train_pack
from tests.test_pack import (
    CONFIG,
    IMAGES,
    MIXED,
    assert_each_alone_as_in_its_pack,
    assert_each_padded_is_the_reference_alone,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

COMPILED = dataclasses.replace(CONFIG, max_epochs=1, compile=True)


def _inductor_works() -> bool:
    try:
        torch.compile(lambda x: x + 1, fullgraph=True)(torch.ones(2))
    except Exception:  # no C++ compiler, or an Inductor that cannot build on this machine
        return False
    return True


needs_inductor = pytest.mark.skipif(not _inductor_works(), reason="torch.compile (Inductor) cannot build here")


@needs_inductor
def test_a_compiled_pack_float64_equals_the_reference_loop_alone():
    """compile=True: every network of a mixed pack (four activations as one region's per-member codes, three
    optimizers, dropout, two data sets) is, in float64, what the eager reference loop gives it alone."""
    assert_each_padded_is_the_reference_alone(MIXED, COMPILED, dataclasses.replace(COMPILED, compile=False))


@needs_inductor
def test_a_compiled_network_is_bit_identical_in_any_pack():
    """compile=True: a network has the same bytes (float32, CPU) alone (a lane of one, computed as two) and in a
    pack of networks with other activations (the mixed region)."""
    assert_each_alone_as_in_its_pack(MIXED[:2], COMPILED)


@needs_inductor
def test_compiled_is_not_eager_and_the_option_is_what_changes_it():
    """The compiled path does run: a network's float32 weights differ from the eager engine's (other rounding,
    amplified by training; the float64 test above holds both to the reference), the reason the option is
    recorded and a compiled zoo reproduced compiled."""
    hps, ids = MIXED[:1], [0]
    eager = train_pack(hps, IMAGES, zoo_seed=0, network_ids=ids, config=dataclasses.replace(COMPILED, compile=False))
    compiled = train_pack(hps, IMAGES, zoo_seed=0, network_ids=ids, config=COMPILED)
    a, b = eager[0].weights, compiled[0].weights
    assert a.keys() == b.keys() and any(a[k].tobytes() != b[k].tobytes() for k in a)
    assert eager[0].n_epochs == compiled[0].n_epochs


def test_the_stand_in_hides_the_region_from_the_counter_and_records_it():
    """While a step is counted, a region runs eagerly (the same values as the plain function, forward and
    gradients) with none of its operations counted, forward or backward, and is recorded once per call."""
    x = torch.randn(6, 2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    gamma = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    beta = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    codes = torch.tensor([fused.CODES["tanh"], fused.CODES["elu"]])
    calls: list[RegionCall] = []
    with OpCounter() as count:
        y, mean, _ = counted(calls)(fused.norm_act)(x, gamma, beta, 1e-3, "mixed", codes)
        grads = torch.autograd.grad(y, (x, gamma, beta), torch.ones_like(y))
    assert count.kernels == 1  # the seed's ones only
    assert calls == [RegionCall("norm_act", "mixed", False, torch.float64, (6, 2, 3, 4, 4))]
    ref, ref_mean, _ = fused.norm_act(x, gamma, beta, 1e-3, "mixed", codes)
    assert torch.equal(y, ref) and torch.equal(mean, ref_mean)
    for got, want in zip(grads, torch.autograd.grad(ref, (x, gamma, beta), torch.ones_like(ref)), strict=True):
        assert torch.equal(got, want)
    h = fused._normalise(x, gamma, beta, 1e-3)[0]  # member 0 takes tanh, member 1 elu
    assert torch.equal(y[:, 0], torch.tanh(h[:, 0])) and torch.equal(y[:, 1], torch.nn.functional.elu(h[:, 1]))


@pytest.fixture(scope="module")
def regions():
    return RegionWork()


@needs_inductor
def test_region_traffic_is_exactly_linear_in_elements_channels_and_members(regions):
    """The fit of a region's bytes over four small shapes predicts Inductor's own count at a fifth, larger and
    of another width, exactly (a training region, forward and backward, and an evaluation's); its kernels are the
    same."""
    for call in (RegionCall("norm_act", "relu", False, torch.float32, (24, 5, 4, 8, 8)),
                 RegionCall("norm_act_eval", "relu", False, torch.float32, (40, 12, 8, 8))):  # fmt: skip
        kernels, moved = regions(call)
        measured = RegionWork.measure(*dataclasses.astuple(call))
        assert kernels == measured[0] and moved == pytest.approx(measured[1], rel=1e-12, abs=0)
    per_element = regions._fits[("norm_act", "relu", False, torch.float32, 5)][1][0]
    assert 8 <= per_element < 10 * 4  # bytes per element forward and backward: a few passes, not the eager ~22


@needs_inductor
def test_the_projection_charges_inductors_work_for_each_layer(regions):
    """A compiled lane's counted step is its eager remainder (what a counter sees with the regions hidden) plus
    Inductor's work for one region per layer (three convolutions, two dense layers) and for its optimizer run's
    update: fewer kernels and bytes than the eager step of the same lane."""
    from builder.engine.member import Member
    from builder.engine.pack_front import Front
    from builder.engine.pack_lane import Lane
    from builder.engine.projection import WorkCounter

    hp = dataclasses.replace(MIXED[0], dataset="mnist")
    compiled = WorkCounter(compile=True)
    compiled.regions = regions
    counted_lane = compiled.count_lane([hp, hp])
    eager = WorkCounter().count_lane([hp, hp])
    assert counted_lane.lanes[0] < eager.lanes[0] and counted_lane.lane_work.bytes < eager.lane_work.bytes

    config, cpu, data = compiled.config, torch.device("cpu"), compiled._data(hp.dataset)
    lane = Lane(config, cpu, torch.float32)
    lane.restack([], [Member(hp, data, 0, i, config, torch.float32) for i in range(2)])
    calls: list[RegionCall] = []
    lane.region = counted(calls)
    front = Front([lane], config, cpu, torch.float32)
    front.step()
    ((x, y, masks),) = front.inputs()
    calls.clear()
    with OpCounter() as remainder:
        lane.compute(x, y, masks)
    assert [c.fn for c in calls] == ["norm_act"] * 3 + ["act_norm"] * 2 + ["adam_update_"]
    work = [regions(c) for c in calls]
    assert counted_lane.lanes[0] == remainder.kernels + sum(k for k, _ in work)
    assert counted_lane.lane_work.bytes == pytest.approx(remainder.bytes + sum(b for _, b in work))


@needs_inductor
def test_a_mixed_lanes_modelled_bytes_are_its_counted_ones(regions):
    """The projection fits a member's bytes as a ReLU member's and adds what its lane's regions move beyond that:
    a lane of a ReLU and a tanh network (one mixed region per layer) is modelled at the bytes counted on it, and
    moves more than a lane of two ReLU networks."""
    from builder.engine.projection import WorkCounter

    counter = WorkCounter(compile=True)
    counter.regions = regions
    relu = dataclasses.replace(MIXED[0], dataset="mnist")
    pair = [relu, dataclasses.replace(relu, activation="tanh")]
    modelled = counter.lane_step(pair).bytes
    assert modelled == pytest.approx(counter.count_lane(pair).lane_work.bytes, rel=1e-9)
    assert modelled > counter.lane_step([relu, relu]).bytes


def test_compile_and_tf32_are_recorded_and_old_zoos_read_as_neither():
    """The two options that change what a network becomes on a GPU travel in the manifest's training record; a
    record that predates them reads as off (what those zoos did), and a non-boolean is refused by name."""
    from weightzoo.errors import ZooFormatError
    from weightzoo.format.record import TrainConfig

    record = dataclasses.asdict(TrainConfig(compile=True, tf32=True))
    assert TrainConfig.from_dict(record) == TrainConfig(compile=True, tf32=True)
    old = {k: v for k, v in record.items() if k not in ("compile", "tf32")}
    assert (TrainConfig.from_dict(old).compile, TrainConfig.from_dict(old).tf32) == (False, False)
    with pytest.raises(ZooFormatError, match="tf32='yes'; expected True or False"):
        TrainConfig.from_dict({**record, "tf32": "yes"})


def test_tf32_is_set_for_the_run_on_cuda_and_restored():
    """On a CUDA device the pack runs with both TF32 flags as the configuration says (PyTorch's own default
    would run cuDNN convolutions in TF32) and leaves them as it found them; elsewhere it touches nothing."""
    from builder.engine.pack import precision
    from builder.engine.train import TrainConfig

    flags = torch.backends.cuda.matmul, torch.backends.cudnn
    before = [f.allow_tf32 for f in flags]
    for tf32 in (False, True):
        with precision(TrainConfig(tf32=tf32), torch.device("cuda")):
            assert [f.allow_tf32 for f in flags] == [tf32, tf32]
        assert [f.allow_tf32 for f in flags] == before
    with precision(TrainConfig(tf32=not before[1]), torch.device("cpu")):
        assert [f.allow_tf32 for f in flags] == before
