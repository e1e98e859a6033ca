"""The full-zoo projection (builder.engine.projection): its counted work models hold against the engine's real packs
(their front and lanes), exports and schedules, and its hours follow the stated roofline."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from builder.engine.member import Member
from builder.engine.op_count import OpCounter
from builder.engine.pack import iter_pack
from builder.engine.pack_front import Front
from builder.engine.pack_schedule import form_packs, pack_key
from builder.engine.projection import Device, Work, WorkCounter
from builder.engine.replay import Projection, project, stop_epochs
from builder.engine.sources import load_images
from builder.engine.space import get_preset
from builder.engine.train_config import TrainConfig
from weightzoo.hparams import ACTIVATIONS, OPTIMIZERS

DATASETS = ["mnist", "fashion", "cifar10", "svhn", "stl10"]


@pytest.fixture(scope="module")
def counter() -> WorkCounter:
    torch.set_num_threads(1)
    return WorkCounter()


def random_lane(rng: random.Random, size: int) -> list:
    """A lane as the zoo's packs make them: one nws_main architecture and batch size, everything else mixed."""
    base = get_preset("nws_main").sample(0, rng.randrange(10**6))
    return [
        dataclasses.replace(
            base,
            optimizer=rng.choice(OPTIMIZERS),
            activation=rng.choice(ACTIVATIONS),
            augmentation=rng.random() < 0.4,
            dataset=rng.choice(DATASETS),
        )
        for _ in range(size)
    ]


def test_the_kernel_model_matches_counted_packs(counter):
    """Packs of 1 to 4 lanes of 1 to 20 networks with every depth, mixes of optimizers, activations, augmentation
    and data sets: the additive model gives the kernels (and the eager staging) a real pack step counts, its
    front's and each lane's."""
    rng = random.Random(7)
    checked = 0
    for sizes in [[1], [2], [3, 1], [1, 1, 2], [5], [8, 2], [13], [20, 1, 3, 2], [2, 2], [3, 5, 1]]:
        lanes = [random_lane(rng, size) for size in sizes]
        real = counter.count_pack(lanes)
        members = [hp for lane in lanes for hp in lane]
        assert counter.front_kernels(members) == real.front, [dataclasses.asdict(h) for h in members]
        for hps, counted in zip(lanes, real.lanes, strict=True):
            assert counter.lane_kernels(hps) == counted, [dataclasses.asdict(h) for h in hps]
        front = counter.front_step(members)
        assert front.kernels + sum(map(counter.lane_kernels, lanes)) == real.kernels
        assert front.eager == real.staged  # what stays eager under a CUDA graph
        checked += 1
    assert checked == 10


def test_the_kernel_model_is_not_blind_to_the_mix(counter):
    """The mix matters (so the model above had something to get right): more activation runs or optimizers change
    a lane's count, augmented members or more data sets the front's."""
    hp = get_preset("nws_main").sample(0, 3)
    plain = [dataclasses.replace(hp, optimizer="adam", activation="relu", augmentation=False, dataset="mnist")] * 3
    base = counter.lane_kernels(plain)
    for hps in ([dataclasses.replace(plain[0], activation=a) for a in ("elu", "relu", "tanh")],
                [dataclasses.replace(plain[0], optimizer=o) for o in OPTIMIZERS]):  # fmt: skip
        assert counter.lane_kernels(hps) > base
        assert counter.lane_kernels(hps) == counter.count_lane(hps).lanes[0]
    front = counter.front_kernels(plain)
    for hps in ([dataclasses.replace(plain[0], augmentation=True), *plain[1:]],
                [dataclasses.replace(plain[0], augmentation=True)] * 3,
                [dataclasses.replace(plain[0], dataset=d) for d in DATASETS[:3]]):  # fmt: skip
        assert counter.front_kernels(hps) > front
        assert counter.front_kernels(hps) == counter.count_lane(hps).front


def test_the_front_is_shared_by_the_lanes(counter):
    """What the front saves: a pack of three lanes runs one front (the same kernels as each lane's own front when
    stepped alone) and each lane's own work unchanged, so fewer kernels than the lanes stepped one by one."""
    rng = random.Random(5)
    lanes = []
    for _ in range(3):
        hps = [dataclasses.replace(hp, dataset="mnist", augmentation=False) for hp in random_lane(rng, 4)]
        lanes.append([dataclasses.replace(hps[0], augmentation=True), *hps[1:]])
    together = counter.count_pack(lanes)
    apart = [counter.count_lane(lane) for lane in lanes]
    assert together.lanes == [c.lanes[0] for c in apart]
    assert together.front == apart[0].front == apart[1].front == apart[2].front
    assert together.kernels == together.staged + together.front + sum(together.lanes)
    assert together.kernels == sum(c.kernels for c in apart) - 2 * (together.front + 2)  # + 2: the staging


def test_bytes_and_flops_per_member_add_up_to_a_mixed_lane(counter):
    """A lane's FLOPs are its members' (exactly); its bytes, and its front's, within 15 % (the model counts every
    member as an Adam, ReLU one of its batch)."""
    rng = random.Random(3)
    for _ in range(3):
        hps = random_lane(rng, 5)
        real = counter.count_lane(hps, flops=True)
        same = [dataclasses.replace(hp, batch_size=real.batch_size) for hp in hps]
        lane, front = counter.lane_step(same), counter.front_step(same)
        model = lane + front
        assert model.flops == pytest.approx(real.flops, rel=1e-9)
        assert model.bytes == pytest.approx(real.bytes, rel=0.15)
        assert front.bytes == pytest.approx(real.front_work.bytes, rel=0.10)  # each part's, not only their sum
        assert lane.bytes == pytest.approx(real.lane_work.bytes, rel=0.15)


def test_an_export_is_counted_as_the_member_captures_it(counter):
    """An export's kernels and FLOPs at given set sizes are what Member.capture counts with those sets."""
    hp = get_preset("nws_main").sample(0, 11)
    sizes = (0, 30, 1500, 40)  # (epoch, validation, test, train subset): 1 + 2 + 1 evaluation batches
    member = Member(hp, counter._data(hp.dataset), 0, 0, counter.config, torch.float32)
    x, y = counter._data(hp.dataset).train_x, counter._data(hp.dataset).train_y
    x, y = x.repeat(4, 1, 1, 1), y.repeat(4)
    member.eval_sets = {"train": (x[:40], y[:40]), "val": (x[:30], y[:30]), "test": (x[:1500], y[:1500])}
    from weightzoo.model import NWSNet

    net = NWSNet(hp.architecture, hp.activation)
    weights = dict(net.state_dict())
    with OpCounter(flops=True) as real:
        member.capture(weights, 1, None, None, net)
    model = counter.export(hp, sizes)
    assert model.kernels == real.kernels
    assert model.flops == pytest.approx(real.flops, rel=1e-9)
    assert model.bytes == pytest.approx(real.bytes, rel=0.02)


def test_the_replay_steps_the_lanes_that_iter_pack_steps(counter, monkeypatch):
    """A real pack (mixed batch sizes: several lanes, refills as networks finish) and its replay: the same lane
    steps, network-steps and kernels, step for step."""
    space = get_preset("demo")
    hps = {i: dataclasses.replace(space.sample(0, i), batch_size=(32, 64, 128)[i % 3]) for i in range(7)}
    order = form_packs(hps, size=100)[0]
    config = TrainConfig(max_epochs=2, epoch_cap="epochs", train_images=400, train_eval_images=20, test_images=20)
    images = {"digits": load_images("digits")}
    steps: list[tuple] = []
    counts: list[int] = []
    real_step = Front.step

    def counted(front: Front) -> None:
        steps.extend((pack_key(lane.members[0].hp), len(lane)) for lane in front.lanes)
        with OpCounter() as c:
            real_step(front)
        counts.append(c.kernels)

    kwargs = dict(zoo_seed=0, network_ids=order, config=config, width=3)
    list(iter_pack([hps[i] for i in order], images, **kwargs))  # warm the engine's memoised constants
    monkeypatch.setattr(Front, "step", counted)
    epoch_steps = {}
    real_members = Member.__init__

    def spy(self, *args, **kw):
        real_members(self, *args, **kw)
        epoch_steps[self.id] = self.n_batches

    monkeypatch.setattr(Member, "__init__", spy)
    results = dict(iter_pack([hps[i] for i in order], images, **kwargs))
    monkeypatch.undo()  # the counter's own lanes below are not the pack's
    stops = {nid: r.n_epochs for nid, r in results.items()}
    assert len(set(pack_key(h) for h in hps.values())) == 3 and set(stops.values()) == {2}

    replay = project(hps, stops, counter, width=3, epoch_steps=epoch_steps)
    assert replay.lane_steps == len(steps) and replay.pack_steps == len(counts)
    assert replay.network_steps == sum(p for _, p in steps)
    assert replay.train.kernels == sum(counts)
    assert replay.networks == 7


def _varying_only(field, n=40):
    """``n`` nws_main draws given the first one's architecture and batch size but their own ``field`` (all three
    of its values drawn)."""
    space = get_preset("nws_main")
    hps = {i: space.sample(0, i) for i in range(n)}
    same = [f for f in ("filter_size", "depth_conv", "depth_fc", "width_conv", "width_fc", "batch_size") if f != field]
    hps = {i: dataclasses.replace(hp, **{f: getattr(hps[0], f) for f in same}) for i, hp in hps.items()}
    assert len({getattr(hp, field) for hp in hps.values()}) == 3
    return hps


def test_dense_width_padding_widens_lanes_at_the_cost_of_flops(counter):
    """The engine's dense-layer padding (fc_width=192) in the replay: the same networks and network-steps in fewer,
    wider lane steps, more FLOPs (the padded units), fewer kernels; each lane that pads charged its gather of
    dropout bits in the front. A modelled merge (conv widths) likewise; an unknown merge is refused by name."""
    from builder.engine.replay import MERGE_KERNELS, merged

    hps = _varying_only("width_fc")  # so padding dense layers changes the lanes
    stops, steps = {i: 1 for i in hps}, {i: 3 for i in hps}
    plain = project(hps, stops, counter, width=40, epoch_steps=steps)
    padded_counter = WorkCounter(fc_width=192)
    wide = project(hps, stops, padded_counter, width=40, epoch_steps=steps)
    assert wide.network_steps == plain.network_steps and wide.networks == plain.networks == 40
    assert wide.lane_steps == wide.pack_steps < plain.lane_steps and wide.pack_steps == plain.pack_steps
    assert wide.train.flops > plain.train.flops and wide.train.kernels < plain.train.kernels
    members = list(hps.values())
    lane, front = padded_counter.lane_step(members), padded_counter.front_step(members, padded_lanes=1)
    assert wide.train.kernels == (lane.kernels + front.kernels) * wide.pack_steps
    # the model of a padded pack against a real one: mixed dense widths in one lane, and a lane that pads nothing
    real = padded_counter.count_pack([members[:6], [dataclasses.replace(members[0], width_fc=192, batch_size=64)] * 2])
    assert padded_counter.padded_lanes([members[:6], [dataclasses.replace(members[0], width_fc=192)]]) == 1
    assert real.front == padded_counter.front_kernels(members[:6], padded_lanes=1)
    assert real.lanes[0] == padded_counter.lane_kernels(members[:6])
    modelled = project(hps, stops, counter, width=40, epoch_steps=steps, merges=["conv_width"])
    assert modelled.train.kernels == plain.train.kernels + MERGE_KERNELS * modelled.lane_steps  # one conv width
    with pytest.raises(ValueError, match="unknown merge 'depth'"):
        merged(hps[0], ["depth"])


def test_filter_size_padding_is_counted_from_the_engine(counter):
    """The engine's kernel padding (filter_size=7) in the replay: networks of three filter sizes in one lane, more
    FLOPs, fewer kernels; the model's lane kernels (one more for the gradient mask where some member is padded)
    against real packs, with and without dense-width padding."""
    hps = _varying_only("filter_size")
    stops, steps = {i: 1 for i in hps}, {i: 3 for i in hps}
    plain = project(hps, stops, counter, width=40, epoch_steps=steps)
    padded = WorkCounter(filter_size=7)
    wide = project(hps, stops, padded, width=40, epoch_steps=steps)
    assert wide.network_steps == plain.network_steps and wide.lane_steps == wide.pack_steps < plain.lane_steps
    assert wide.train.flops > 1.3 * plain.train.flops and wide.train.kernels < plain.train.kernels
    mixed = list(hps.values())[:6]
    assert min(hp.filter_size for hp in mixed) < 7
    sevens = [dataclasses.replace(hp, filter_size=7, batch_size=64) for hp in mixed]  # the same lane, none padded
    for engine in (padded, WorkCounter(fc_width=192, filter_size=7)):
        real = engine.count_pack([mixed, sevens])
        assert real.lanes == [engine.lane_kernels(mixed), engine.lane_kernels(sevens)]
        assert real.lanes[0] == real.lanes[1] + 1  # the gradient mask


def test_hours_follow_the_roofline():
    """Each step takes the longest of its launches, memory traffic and compute; the dominant bound is named; under
    a CUDA graph only the eager kernels pay the eager launch."""
    device = Device(launch_s={"eager": 5e-6}, graph_s=1e-6, bandwidth=1e12, peak_flops={"fp32": 1e13})
    p = Projection()
    p.add(Work(kernels=100, bytes=1e6, flops=1e6, eager=10), 3600, device)  # 500 µs launches, 1 µs memory
    p.add(Work(kernels=1, bytes=1e9, flops=1e6), 3600, device)  # 1 ms memory
    assert p.hours("eager", "fp32") == pytest.approx(0.5e-3 + 1e-3)
    assert p.dominant("eager", "fp32") == "memory"
    assert p.hours("cuda graph", "fp32") == pytest.approx(10 * 5e-6 + 90 * 1e-6 + 1e-3)


def test_stop_epochs_are_drawn_as_stated():
    stops = stop_epochs(5000, seed=1, low=80, high=150)
    assert min(stops) == 80 and max(stops) == 150
    assert sum(stops) / len(stops) == pytest.approx(115, abs=1.5)
    assert stop_epochs(10, seed=1) == stop_epochs(10, seed=1)


def test_the_projection_command_prints_hours_for_every_mode(capsys, monkeypatch):
    """benchmarks/zoo_projection.py end to end on a few networks of each preset: totals and every mode's hours."""
    import sys

    sys.path.insert(0, "benchmarks")
    try:
        import zoo_projection
    finally:
        sys.path.remove("benchmarks")
    monkeypatch.setattr(sys, "argv", ["zoo_projection", "--fixed", "4", "--main", "3", "--width", "2",
                                      "--eager-us", "5", "--graph-us", "1.5"])  # fmt: skip
    zoo_projection.main()
    out = capsys.readouterr().out
    assert "full zoo: 7 networks" in out and "per network-step" in out
    assert "eager 5.0 µs, in a CUDA graph 1.5 µs" in out
    for mode in ("eager", "cuda graph"):
        assert any(line.strip().startswith(mode) for line in out.splitlines()), out


@pytest.mark.parametrize(
    "argv",
    [
        ["--width", "0"],
        ["--stop", "150", "80"],
        ["--memory-gb", "0"],
        ["--fc-width", "64"],
        ["--filter-size", "5"],
        ["--filter-size", "8"],
        ["--eval-batch-size", "0"],
    ],
)
def test_the_projection_command_refuses_bad_values_by_name(argv, capsys, monkeypatch):
    import sys

    sys.path.insert(0, "benchmarks")
    try:
        import zoo_projection
    finally:
        sys.path.remove("benchmarks")
    monkeypatch.setattr(sys, "argv", ["zoo_projection", *argv])
    with pytest.raises(SystemExit) as exit_:
        zoo_projection.main()
    assert exit_.value.code == 2 and argv[0] in capsys.readouterr().err
