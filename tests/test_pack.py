"""The training engine (builder.engine.pack, builder.engine.pack_lane) against the per-network reference loop it
replaced (tests/reference_trainer.py: the reader's model and the optimizer classes, one tensor at a time), pack
independence (a network alone is a pack of one), the scheduler."""

import dataclasses

import numpy as np
import pytest
import torch

from builder.engine.pack import train_pack
from builder.engine.pack_schedule import form_packs, member_bytes, pack_key, pack_width
from builder.engine.space import get_preset
from builder.engine.task import PackTask, Task, train_pack_task, train_task
from builder.engine.train import TrainConfig, train_network
from tests.reference_trainer import reference_train
from tests.test_train import _tiny_images
from weightzoo.architecture import Architecture
from weightzoo.errors import ConfigError
from weightzoo.hparams import HyperParameters as H

IMAGES = {"digits": _tiny_images(seed=0), "mnist": _tiny_images(seed=1, name="mnist")}
#: A mixed pack: two data sets, three optimizers, four activations, four initialisations, augmentation on and
#: off, different learning rates; one stops early. (Constant initialisation is paired with RMSprop: with Adam its
#: symmetric units get steps from rounding noise, see the README. RMSprop with normal initialisation at 4e-3 is
#: as sensitive: its float64 weights move by 2e-6 between 1 and 2 threads of the reference loop, so that member
#: trains at 1e-3, where float64 rounding stays at rounding size.)
MIXED = [
    H("digits", 2e-3, 32, False, "adam", "relu", "glorot_uniform", 3, 3, 2, 4, 64),
    H("mnist", 1e-3, 32, True, "sgd_momentum", "elu", "glorot_normal", 3, 3, 2, 4, 64),
    H("digits", 1e-3, 32, True, "rmsprop", "tanh", "normal", 3, 3, 2, 4, 64),
    H("mnist", 3e-3, 32, False, "rmsprop", "sigmoid", "constant", 3, 3, 2, 4, 64),
]
CONFIG = TrainConfig(max_epochs=3, min_epochs=1, patience_falling=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _assert_same(single, pack, atol):
    assert (pack.status, pack.n_epochs, pack.images_seen) == (single.status, single.n_epochs, single.images_seen)
    assert pack.snapshot_epochs == single.snapshot_epochs
    for k, w in single.weights.items():
        np.testing.assert_allclose(pack.weights[k], w, rtol=0, atol=atol, err_msg=k)
    for m, values in single.history.items():
        np.testing.assert_allclose(pack.history[m], values, rtol=0, atol=atol, err_msg=m)


def test_mixed_pack_float64_equals_the_reference_loop_alone():
    """Every network of a mixed pack: the weights, metrics, epoch count and status the reference loop gives it
    alone (both in float64; the weights come back as float32, so 'equal' is within a float32 rounding step)."""
    ids = [0, 1, 2, 3]
    results = train_pack(MIXED, IMAGES, zoo_seed=0, network_ids=ids, config=CONFIG, dtype=torch.float64)
    statuses = set()
    for hp, nid, packed in zip(MIXED, ids, results, strict=True):
        alone = reference_train(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=CONFIG, dtype=torch.float64)
        _assert_same(alone, packed, atol=2e-7)
        statuses.add(alone.status)
    assert statuses == {"completed", "early_stopped"}


def test_released_evaluation_in_a_pack_equals_the_reference_loop_and_each_network_alone():
    """evaluation="released" (metrics through the training graph, moving statistics updated by every pass):
    float64 against the reference loop, and float32 bit for bit between a pack of three and each network alone."""
    cfg = TrainConfig(max_epochs=2, evaluation="released", train_images=200)
    ids = [0, 1, 2]
    packed = train_pack(MIXED[:3], IMAGES, zoo_seed=0, network_ids=ids, config=cfg, dtype=torch.float64)
    for hp, nid, r in zip(MIXED[:3], ids, packed, strict=True):
        alone = reference_train(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=cfg, dtype=torch.float64)
        _assert_same(alone, r, atol=2e-7)
    packed = train_pack(MIXED[:3], IMAGES, zoo_seed=0, network_ids=ids, config=cfg)
    for hp, nid, r in zip(MIXED[:3], ids, packed, strict=True):
        alone = train_network(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=cfg)
        assert all(r.weights[k].tobytes() == alone.weights[k].tobytes() for k in r.weights)
        assert r.history == alone.history


def test_diverging_member_leaves_with_its_status_and_spares_the_others(monkeypatch):
    """A member whose weights blow up (learning rate 1e30) is 'diverged' after the same epoch as alone, keeps
    its non-finite weights, and the others are untouched (the same bytes as in a pack without it)."""
    bad = dataclasses.replace(MIXED[0], optimizer="sgd_momentum", learning_rate=1e30)
    cfg = TrainConfig(max_epochs=3)
    hps, ids = [bad, MIXED[1], MIXED[2]], [7, 1, 2]
    results = train_pack(hps, IMAGES, zoo_seed=0, network_ids=ids, config=cfg)
    alone = train_network(bad, IMAGES["digits"], zoo_seed=0, network_id=7, config=cfg)
    assert results[0].status == alone.status == "diverged"
    assert results[0].n_epochs == alone.n_epochs
    assert not np.isfinite(results[0].weights["out.weight"][-1]).all()
    without = train_pack(hps[1:], IMAGES, zoo_seed=0, network_ids=ids[1:], config=cfg)
    for a, b in zip(results[1:], without, strict=True):
        assert all(a.weights[k].tobytes() == b.weights[k].tobytes() for k in a.weights)
        assert a.history == b.history


def test_same_network_in_any_pack_is_bit_identical():
    """float32, CPU: a network's bytes do not depend on its pack mates, the pack size (one included), its slot,
    or networks joining from the queue."""
    ids = [0, 1, 2, 3]
    full = dict(zip(ids, train_pack(MIXED, IMAGES, zoo_seed=0, network_ids=ids, config=CONFIG), strict=True))
    for subset, width in [([0], None), ([2, 0], None), ([3, 1, 0], None), ([0, 1, 2, 3], 2)]:
        hps = [MIXED[i] for i in subset]
        packed = train_pack(hps, IMAGES, zoo_seed=0, network_ids=subset, config=CONFIG, width=width)
        for nid, r in zip(subset, packed, strict=True):
            assert all(r.weights[k].tobytes() == full[nid].weights[k].tobytes() for k in r.weights), (subset, nid)
            assert r.history == full[nid].history and r.n_epochs == full[nid].n_epochs


def test_train_network_is_a_pack_of_one_bit_for_bit():
    """float32: train_network gives each network of a mixed pack the bytes the pack gives it (one engine); the
    reference loop (another implementation) is only close: the same draws, the same initialisation, the first
    epoch within a few % (float32 rounding differences grow during training)."""
    cfg = TrainConfig(max_epochs=2)
    packed = train_pack(MIXED, IMAGES, zoo_seed=0, network_ids=[0, 1, 2, 3], config=cfg)
    for nid, (hp, r) in enumerate(zip(MIXED, packed, strict=True)):
        alone = train_network(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=cfg)
        assert all(r.weights[k].tobytes() == alone.weights[k].tobytes() for k in r.weights), nid
        assert r.history == alone.history and r.status == alone.status
        ref = reference_train(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=TrainConfig(max_epochs=1))
        assert all(np.array_equal(r.weights[k][0], ref.weights[k][0]) for k in r.weights)
        if hp.optimizer == "adam":  # Adam steps biases before batch norm (gradient: rounding noise) by lr anyway
            continue
        for k, w in ref.weights.items():  # relative to each tensor's scale (normal(0, 1) weights are large)
            assert np.abs(r.weights[k][10] - w[-1]).max() <= 5e-2 * max(np.abs(w).max(), 1e-3), k


def test_pack_refuses_what_it_cannot_train():
    with pytest.raises(ConfigError, match="no images"):
        train_pack(MIXED[:1], {}, zoo_seed=0, network_ids=[0])
    with pytest.raises(ConfigError, match="width must be at least 1, got 0"):
        train_pack(MIXED[:1], IMAGES, zoo_seed=0, network_ids=[0], width=0)


#: Networks of three shapes: MIXED's architecture at batch 32 and 64, and a deeper, wider one at batch 32.
SHAPES = [
    MIXED[0],
    dataclasses.replace(MIXED[1], batch_size=64),
    dataclasses.replace(MIXED[2], filter_size=5, depth_conv=4, depth_fc=3, width_fc=128),
    dataclasses.replace(MIXED[3], batch_size=64),
    dataclasses.replace(MIXED[1], filter_size=5, depth_conv=4, depth_fc=3, width_fc=128, augmentation=False),
]


def test_pack_mixes_shapes_in_lanes_and_each_network_is_itself():
    """Architectures and batch sizes mix in one pack (one lane per shape): every network's bytes are those of a
    pack of its own shape, also when a memory budget admits one network at a time and the queue refills slots
    across shapes; in float64 a deeper one equals the reference loop alone."""
    ids, cfg = [10, 11, 12, 13, 14], dataclasses.replace(CONFIG, max_epochs=2)
    mixed = dict(zip(ids, train_pack(SHAPES, IMAGES, zoo_seed=0, network_ids=ids, config=cfg), strict=True))
    by_shape: dict = {}
    for hp, nid in zip(SHAPES, ids, strict=True):
        by_shape.setdefault(pack_key(hp), []).append((hp, nid))
    assert len(by_shape) == 3
    one = member_bytes(SHAPES[2].architecture, SHAPES[2].batch_size)
    serial = train_pack(SHAPES, IMAGES, zoo_seed=0, network_ids=ids, config=cfg, budget_bytes=one)
    for members in by_shape.values():
        alone = train_pack([hp for hp, _ in members], IMAGES, zoo_seed=0, network_ids=[i for _, i in members],
                           config=cfg)  # fmt: skip
        for (_, nid), r in zip(members, alone, strict=True):
            for other in (mixed[nid], serial[ids.index(nid)]):
                assert all(r.weights[k].tobytes() == other.weights[k].tobytes() for k in r.weights), nid
                assert r.history == other.history and r.status == other.status
    hp, nid = SHAPES[4], 14  # a deeper architecture than MIXED's, in float64 against the reference loop
    packed = train_pack(SHAPES[3:], IMAGES, zoo_seed=0, network_ids=[13, nid], config=cfg, dtype=torch.float64)
    single = reference_train(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=cfg, dtype=torch.float64)
    _assert_same(single, packed[1], atol=2e-7)


def test_budget_bounds_what_trains_at_once(monkeypatch):
    """The memory budget and the width bound how many networks train at once (counted from inside the pack)."""
    import builder.engine.pack as pack_module

    widest = []
    real_step = pack_module._Pack.step

    def step(self):
        widest.append(len(self))
        return real_step(self)

    monkeypatch.setattr(pack_module._Pack, "step", step)
    cfg = TrainConfig(max_epochs=1)
    need = [member_bytes(hp.architecture, hp.batch_size) for hp in SHAPES]
    train_pack(SHAPES, IMAGES, zoo_seed=0, network_ids=range(5), config=cfg, budget_bytes=need[0] + need[1])
    assert max(widest) == 2
    widest.clear()
    train_pack(SHAPES, IMAGES, zoo_seed=0, network_ids=range(5), config=cfg, width=3)
    assert max(widest) == 3


def test_scheduler_keeps_shapes_together_and_covers_every_network():
    space = get_preset("nws_main")
    hps = {i: space.sample(0, i) for i in range(400)}
    packs = form_packs(hps, size=32)
    assert sorted(i for p in packs for i in p) == list(range(400))
    assert [len(p) for p in packs] == [32] * 12 + [16]
    order = [i for p in packs for i in p]
    key_of = {i: pack_key(hp) for i, hp in hps.items()}
    keys = [key_of[i] for i in order]
    runs = [k for j, k in enumerate(keys) if j == 0 or keys[j - 1] != k]
    assert len(runs) == len(set(keys))  # each shape's networks consecutive, in id order
    assert all(a < b for a, b, ka, kb in zip(order, order[1:], keys, keys[1:], strict=False) if ka == kb)
    with pytest.raises(ValueError, match="size must be at least 1"):
        form_packs(hps, size=0)


def test_pack_width_follows_memory():
    arch = Architecture()
    one = member_bytes(arch, 128)
    assert member_bytes(arch, 256) > one > member_bytes(arch, 32)
    assert pack_width(arch, 128, budget_bytes=int(7.5 * one)) == 7
    assert pack_width(arch, 128, budget_bytes=1) == 1
    assert pack_width(arch, 32, budget_bytes=2**50) == 256


def test_pack_task_records_match_single_pack_tasks():
    """builder.engine.task: a PackTask gives each network the record and bytes of its own Task."""
    space = get_preset("demo")
    cfg = TrainConfig(max_epochs=1, test_images=40, train_eval_images=40)
    base = Task(space, 0, 0, cfg, threads=1, allow_download=False)
    ids = [i for i in range(12) if pack_key(space.sample(0, i)) == pack_key(space.sample(0, 0))][:2]
    packed = train_pack_task(PackTask(base, tuple(ids)))
    for nid, (rec, weights) in zip(ids, packed, strict=True):
        rec1, weights1 = train_task(dataclasses.replace(base, network_id=nid))
        assert rec.network_id == rec1.network_id == nid and rec.history == rec1.history
        assert all(weights[k].tobytes() == weights1[k].tobytes() for k in weights)


def test_stop_decided_a_step_later_discards_the_extra_epoch():
    """Epochs of one step: the pack reads an epoch's export a step later, so a stopping member has already ended
    its next epoch when its stop is decided; that epoch is neither exported nor reported, so status, epochs,
    metrics and progress reports are the reference loop's, which decides at once."""
    cfg = TrainConfig(max_epochs=8, min_epochs=1, patience_falling=1, train_images=60)
    hps, ids = [MIXED[0], MIXED[1]], [0, 1]
    reports: list[tuple[int, int]] = []
    packed = train_pack(hps, IMAGES, zoo_seed=0, network_ids=ids, config=cfg, dtype=torch.float64,
                        on_epoch=lambda nid, epoch, _: reports.append((nid, epoch)))  # fmt: skip
    statuses = set()
    for hp, nid, r in zip(hps, ids, packed, strict=True):
        alone = reference_train(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=cfg, dtype=torch.float64)
        assert alone.images_seen == alone.n_epochs * 32  # one step an epoch
        _assert_same(alone, r, atol=2e-7)
        assert [e for i, e in reports if i == nid] == list(range(1, alone.n_epochs + 1))
        statuses.add(alone.status)
    assert "early_stopped" in statuses


def test_a_lane_step_takes_the_same_operations_whatever_its_width():
    """The point of a pack: one step of a lane is one set of kernels, not one per network. Counted exactly (the
    ATen operations that do work), so this is no timing test: a lane of 16 takes no more operations than a lane of
    2, but for each augmented network's noise draw."""
    from benchmarks.pack_launches import lane_step_ops  # the counting benchmarks/pack_launches.py reports
    from builder.engine.train import DeviceImages

    data = DeviceImages(IMAGES["digits"], "cpu")

    def ops(hp, width):
        return sum(lane_step_ops([hp] * width, data, CONFIG).values())

    plain, augmented = MIXED[0], dataclasses.replace(MIXED[0], augmentation=True)
    ops(plain, 1), ops(augmented, 1)  # build the cached element hashes (builder.engine.keyed_random) of these sizes
    assert ops(plain, 16) == ops(plain, 2)
    assert ops(augmented, 16) - ops(augmented, 2) == 14  # one noise draw per augmented network


def test_a_lane_step_reads_nothing_back_to_the_host():
    """A step a CUDA graph can capture, and that never stalls the host: no operation of a lane step copies a value
    to the host (counted on CPU by builder.engine.op_count). A realistic pack's lanes (three shapes; optimizers,
    activations, augmentation and data sets mixed), several steps each, an epoch's end included; the exports are
    read one step later, outside the lanes' steps."""
    from builder.engine.member import Member
    from builder.engine.op_count import OpCounter
    from builder.engine.pack_lane import Lane
    from builder.engine.train import DeviceImages

    data = {name: DeviceImages(IMAGES[name], "cpu") for name in IMAGES}
    members = [Member(hp, data[hp.dataset], 0, i, CONFIG, torch.float32) for i, hp in enumerate(_realistic_mix())]
    lanes: dict[tuple, list[Member]] = {}
    for m in members:
        lanes.setdefault(m.lane_key, []).append(m)
    assert len(lanes) == 3 and max(len(v) for v in lanes.values()) >= 8
    for group in lanes.values():
        lane = Lane(CONFIG, torch.device("cpu"), torch.float32)
        lane.restack([], group)
        for _ in range(3):
            with OpCounter() as count:
                lane.step()
            assert count.kernels > 100 and not count.host_reads, dict(count.host_reads)
    with OpCounter() as count:  # the counter sees a read when there is one
        float(lane.state["loss_sum"].sum())
    assert count.host_reads == {"_local_scalar_dense": 1}


def test_a_pack_step_computes_from_fixed_tensors_only(monkeypatch):
    """What a CUDA graph replays: the device work of a pack step (Front._compute: the shared front, then every
    lane) reads only tensors at addresses that stay fixed while the pack's composition does (the lanes' stacks,
    the front's staged inputs and layout, the data sets) or tensors it made itself, and makes no tensor from host
    data; what changes between steps (batch indices, stream words, noise) is staged before it. A realistic pack's
    three lanes, across an epoch's end (when every member's order is redrawn)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    from builder.engine.member import Member
    from builder.engine.pack_front import Front
    from builder.engine.pack_lane import Lane
    from builder.engine.train import DeviceImages

    class Reads(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.made, self.read, self.from_host = set(), set(), []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            if name in ("lift_fresh", "lift_fresh_copy"):  # torch.tensor(host data)
                self.from_host.append(name)
            for t in tree_leaves((args, kwargs)):
                if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.made:
                    self.read.add(t.untyped_storage().data_ptr())
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.made.add(t.untyped_storage().data_ptr())
            return out

    data = {name: DeviceImages(IMAGES[name], "cpu") for name in IMAGES}
    members = [Member(hp, data[hp.dataset], 0, i, CONFIG, torch.float32) for i, hp in enumerate(_realistic_mix())]
    groups: dict[tuple, list[Member]] = {}
    for m in members:
        groups.setdefault(m.lane_key, []).append(m)
    lanes = []
    for group in groups.values():
        lanes.append(Lane(CONFIG, torch.device("cpu"), torch.float32))
        lanes[-1].restack([], group)
    front = Front(lanes, CONFIG, torch.device("cpu"), torch.float32)
    assert len(front.lanes) == 3 and front.augmented and len(front.gathers) > 1
    compute, reads = Front._compute, []

    def watched(self):
        with Reads() as r:
            compute(self)
        reads.append(r)

    monkeypatch.setattr(Front, "_compute", watched)
    steps = max(m.n_batches for m in members) + 2  # past every member's first epoch
    for _ in range(steps):
        front.step()
        for m in members:  # the pack's epoch bookkeeping: a new order at each epoch's end
            m.batch += 1
            if m.batch == m.n_batches:
                m.batch, m.order = 0, m.epoch_order()
    allowed = {t.untyped_storage().data_ptr() for t in front.fixed_tensors()}
    for r in reads:
        assert r.read <= allowed, f"the step read {len(r.read - allowed)} tensors it did not make or stage"
        assert not r.from_host, r.from_host
    assert len(reads) == steps


def _realistic_mix() -> list[H]:
    """16 networks of three shapes, interleaved so that every prefix mixes them: ten of the nws_fixed architecture
    (width_conv 8: its first layer is the one CPU grouped kernel that rounded by pack width) at batch 32, three
    deeper ones (filter 3, width_conv 12) at batch 64, three with filter 7 and width_conv 4 at batch 32; optimizers,
    activations, initialisations, augmentation and dropout (always on) varied."""
    opts, acts = ("adam", "rmsprop", "sgd_momentum"), ("relu", "elu", "tanh", "sigmoid")
    inits = ("glorot_uniform", "glorot_normal", "normal")
    fixed = [H("digits", 1e-3 + 2e-4 * i, 32, bool(i % 2), opts[i % 3], acts[i % 4], inits[i % 3], 5, 3, 2, 8, 128)
             for i in range(10)]  # fmt: skip
    deep = [H("mnist", 1e-3, 64, i == 1, opts[i], acts[i], inits[i], 3, 4, 3, 12, 64) for i in range(3)]
    wide = [H("digits", 2e-3, 32, True, opts[i], acts[3 - i], "glorot_uniform", 7, 5, 2, 4, 64) for i in range(3)]
    order = [fixed[0], deep[0], wide[0], fixed[1], fixed[2], deep[1], wide[1], fixed[3]]
    return [*order, fixed[4], wide[2], fixed[5], deep[2], *fixed[6:]]


@pytest.mark.slow
def test_a_network_is_bit_identical_in_packs_of_1_2_3_5_8_16():
    """float32, CPU: each network's bytes (weights and metrics, two epochs) are the same in a pack of 1 (what
    builder.reproduce trains), 2, 3, 5, 8 and 16 networks of three shapes, with lanes of up to ten networks."""
    hps = _realistic_mix()
    ids = list(range(100, 116))
    cfg = TrainConfig(max_epochs=2, train_images=160, test_images=40, train_eval_images=40)
    full = dict(zip(ids, train_pack(hps, IMAGES, zoo_seed=3, network_ids=ids, config=cfg), strict=True))
    assert max(sum(pack_key(h) == pack_key(g) for g in hps) for h in hps) == 10 and len({pack_key(h) for h in hps}) == 3
    for width in (1, 2, 3, 5, 8):
        subsets = [[0], [1], [3]] if width == 1 else [list(range(width))]
        for subset in subsets:
            packed = train_pack([hps[i] for i in subset], IMAGES, zoo_seed=3, network_ids=[ids[i] for i in subset],
                                config=cfg)  # fmt: skip
            for i, r in zip(subset, packed, strict=True):
                ref = full[ids[i]]
                assert all(r.weights[k].tobytes() == ref.weights[k].tobytes() for k in r.weights), (width, i)
                assert r.history == ref.history and r.n_epochs == ref.n_epochs


def test_cuda_graphs_refuse_the_released_evaluation():
    """A replayed step cannot read metrics mid-step: asking for both is refused by name, before any training."""
    from builder.engine.pack import iter_pack

    config = TrainConfig(max_epochs=1, evaluation="released")
    with pytest.raises(ConfigError, match="cuda_graphs needs evaluation='clean'"):
        next(iter_pack(MIXED[:1], IMAGES, zoo_seed=0, network_ids=[0], config=config, cuda_graphs=True))


#: Networks that differ in their dense width only (and in everything a lane may mix): with fc_width=192 they
#: share one lane, the narrower ones padded.
DENSE_WIDTHS = [dataclasses.replace(hp, width_fc=w) for hp, w in zip(MIXED, [64, 128, 64, 192], strict=True)]


def test_networks_of_several_dense_widths_share_a_lane_and_each_is_itself():
    """fc_width=192: one lane for dense widths 64, 128 and 192, each network (float64) what the reference loop
    gives it alone at its own width, its snapshots in its own shapes; without fc_width, three lanes."""
    from builder.engine.pack_schedule import pack_key

    assert len({pack_key(hp, 192) for hp in DENSE_WIDTHS}) == 1 and len({pack_key(hp) for hp in DENSE_WIDTHS}) == 3
    assert_each_padded_is_the_reference_alone(DENSE_WIDTHS, dataclasses.replace(CONFIG, fc_width=192), CONFIG)


def assert_each_padded_is_the_reference_alone(hps, padded, plain):
    """Each network of one pack of ``hps`` trained under ``padded`` (float64) is what the reference loop gives it
    alone under ``plain`` (its own shapes), its snapshots in its own shapes."""
    ids = list(range(len(hps)))
    results = train_pack(hps, IMAGES, zoo_seed=0, network_ids=ids, config=padded, dtype=torch.float64)
    for hp, nid, packed in zip(hps, ids, results, strict=True):
        alone = reference_train(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=plain, dtype=torch.float64)
        assert {k: v.shape for k, v in packed.weights.items()} == {k: v.shape for k, v in alone.weights.items()}
        _assert_same(alone, packed, atol=2e-7)


def test_padded_networks_with_the_released_evaluation_equal_the_reference_loop():
    """evaluation="released" (metrics through the padded lane's training graph, moving statistics updated there):
    float64, each network of mixed dense widths what the reference loop gives it alone."""
    cfg = TrainConfig(max_epochs=2, evaluation="released", train_images=200, fc_width=192)
    ids = [0, 1, 2]
    packed = train_pack(DENSE_WIDTHS[:3], IMAGES, zoo_seed=0, network_ids=ids, config=cfg, dtype=torch.float64)
    plain = dataclasses.replace(cfg, fc_width=None)
    for hp, nid, r in zip(DENSE_WIDTHS[:3], ids, packed, strict=True):
        alone = reference_train(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=plain, dtype=torch.float64)
        _assert_same(alone, r, atol=2e-7)


def assert_each_alone_as_in_its_pack(hps, config):
    """Each network trained alone has the bytes (weights, float32, CPU) and history it has in one pack of
    ``hps``."""
    ids = list(range(len(hps)))
    packed = train_pack(hps, IMAGES, zoo_seed=0, network_ids=ids, config=config)
    for hp, nid, r in zip(hps, ids, packed, strict=True):
        alone = train_network(hp, IMAGES[hp.dataset], zoo_seed=0, network_id=nid, config=config)
        assert r.weights.keys() == alone.weights.keys()
        assert all(r.weights[k].tobytes() == alone.weights[k].tobytes() for k in r.weights), hp
        assert r.history == alone.history


def test_a_padded_network_is_bit_identical_in_any_pack():
    """With fc_width, a network is padded the same way alone and in a lane of mixed dense widths: the same bytes
    (float32, CPU), and the padding left out of what it exports."""
    assert_each_alone_as_in_its_pack(DENSE_WIDTHS, dataclasses.replace(CONFIG, fc_width=192))


def test_padded_units_stay_exact_zeros():
    """The padded units' weights, biases, batch-norm scales and optimizer slots start at zero and stay exactly zero
    through training steps (their gradients are exact zeros), so a padded lane computes the networks it holds."""
    from builder.engine.member import Member
    from builder.engine.pack_lane import Lane
    from builder.engine.train import DeviceImages

    cfg = dataclasses.replace(CONFIG, fc_width=192)
    data = {name: DeviceImages(IMAGES[name], "cpu") for name in IMAGES}
    members = [Member(hp, data[hp.dataset], 0, i, cfg, torch.float32) for i, hp in enumerate(DENSE_WIDTHS)]
    lane = Lane(cfg, torch.device("cpu"), torch.float32)
    lane.restack([], members)
    for _ in range(4):
        lane.step()
        for m in members:
            m.batch = (m.batch + 1) % m.n_batches
    for slot, m in enumerate(lane.members):
        own = {p.name: p.shape for p in m.hp.architecture.params}
        for kind in ("p", "s2"):
            tensors = lane.tensors(lane.flat[kind].detach())
            for name, t in tensors.items():
                if name.startswith(("fc", "out")) and not name.endswith(("running_mean", "running_var")):
                    pad = t[slot].clone()
                    pad[tuple(slice(0, k) for k in own[name])] = 0
                    assert not pad.any(), (m.hp.width_fc, kind, name)
        assert {n: tuple(t.shape) for n, t in lane.member_weights(slot).items()} == own


def test_fc_width_below_a_networks_width_is_refused_by_name():
    from builder.engine.pack import iter_pack

    cfg = dataclasses.replace(CONFIG, fc_width=64)
    with pytest.raises(ConfigError, match="network 1: fc_width=64 is below its width_fc=128"):
        next(iter_pack(DENSE_WIDTHS, IMAGES, zoo_seed=0, network_ids=[0, 1, 2, 3], config=cfg))


def test_the_throughput_benchmark_runs_with_padded_dense_layers(capsys, monkeypatch):
    """benchmarks/pack_throughput.py end to end at a tiny size with --fc-width: both trainers on the same padded
    networks, their ratio printed, the padding stated."""
    import sys

    sys.path.insert(0, "benchmarks")
    try:
        import pack_throughput
    finally:
        sys.path.remove("benchmarks")
    argv = ["pack_throughput", "--networks", "3", "--epochs", "1", "--workers", "1", "--threads", "1",
            "--per-shape", "3", "--fc-width", "192", "--train-images", "300"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    pack_throughput.main()
    out = capsys.readouterr().out
    assert "nws_main: 3 networks in 1 shapes" in out and "dense layers padded to 192 (--fc-width)" in out
    assert out.count("pack of 3") == 2 and "vs one" in out


def test_optimizer_run_kernels_are_the_counted_ones():
    """OPTIMIZER_RUN_KERNELS and ADAM_STEP_KERNELS, which decide the lane's member order, are what the update
    launches: one run of each optimizer, and a lane stacked activation first with two runs of Adam and two of
    RMSprop (Adam's step sizes computed once)."""
    from builder.engine.member import Member
    from builder.engine.op_count import OpCounter
    from builder.engine.pack_lane import ADAM_STEP_KERNELS, OPTIMIZER_RUN_KERNELS, Lane
    from builder.engine.train import DeviceImages

    data = DeviceImages(IMAGES["digits"], "cpu")

    def update_kernels(hps):
        lane = Lane(CONFIG, torch.device("cpu"), torch.float32)
        lane.restack([], [Member(hp, data, 0, i, CONFIG, torch.float32) for i, hp in enumerate(hps)])
        lane.flat["p"].grad = torch.zeros_like(lane.flat["p"])
        with torch.no_grad(), OpCounter() as count:
            lane._optimize()
        return count.kernels, [o for o, _, _ in lane.opt_runs]

    for optimizer, expected in OPTIMIZER_RUN_KERNELS.items():
        hp = dataclasses.replace(MIXED[0], optimizer=optimizer)
        assert update_kernels([hp, hp])[0] == expected + (optimizer == "adam") * ADAM_STEP_KERNELS, optimizer
    deep = dataclasses.replace(MIXED[0], depth_conv=5, depth_fc=3)
    four = [dataclasses.replace(deep, optimizer=o, activation=a) for o in ("adam", "rmsprop") for a in ("elu", "relu")]
    kernels, runs = update_kernels(four)
    assert runs == ["adam", "rmsprop", "adam", "rmsprop"]
    assert kernels == 2 * OPTIMIZER_RUN_KERNELS["adam"] + 2 * OPTIMIZER_RUN_KERNELS["rmsprop"] + ADAM_STEP_KERNELS


def test_the_member_order_launches_fewer_kernels_and_changes_no_bytes(monkeypatch):
    """A lane of every (optimizer, activation) pair (8 layers) stacks its members activation first (4 activation
    runs, more optimizer runs), which counts fewer kernels than optimizer first; each member's bytes are the same
    either way."""
    import builder.engine.pack_lane as pack_lane
    from builder.engine.projection import WorkCounter

    hps = [dataclasses.replace(MIXED[0], depth_conv=5, depth_fc=3, optimizer=o, activation=a)
           for o in ("adam", "rmsprop", "sgd_momentum") for a in ("elu", "relu", "sigmoid", "tanh")]  # fmt: skip
    assert pack_lane.sort_first(hps) == "activation"
    one_epoch = dataclasses.replace(CONFIG, max_epochs=1)
    chosen = WorkCounter().count_lane(hps).lanes[0]
    chosen_weights = train_pack(hps, IMAGES, zoo_seed=0, network_ids=list(range(12)), config=one_epoch)
    monkeypatch.setattr(pack_lane, "sort_first", lambda hps, compiled=False: "optimizer")
    other = WorkCounter().count_lane(hps).lanes[0]
    other_weights = train_pack(hps, IMAGES, zoo_seed=0, network_ids=list(range(12)), config=one_epoch)
    assert chosen < other
    for a, b in zip(chosen_weights, other_weights, strict=True):
        assert all(a.weights[k].tobytes() == b.weights[k].tobytes() for k in a.weights)
