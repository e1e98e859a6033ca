"""weightzoo.baselines.probe: networks run batched exactly as alone; probes and head learn what networks compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.zoos import write_synthetic_zoo
from weightzoo.architecture import Architecture
from weightzoo.baselines import fit, load_samples
from weightzoo.baselines.probe import NetworkSample, ProbeClassifier, ProbeRegressor, _Stack
from weightzoo.errors import ConfigError
from weightzoo.model import NWSNet, initialize_
from weightzoo.zoo import open_zoo


def test_networks_batched_by_kind_compute_what_each_computes_alone(tmp_path):
    """Mixed architectures and activations (nws_main draws): the vmapped forward of every group, put back in the
    order asked for, equals each network's own model() on the same images, and so do the summaries of its first
    and last hidden activations."""
    write_synthetic_zoo(tmp_path / "zoo", 8, preset="nws_main", diverged=())
    zoo = open_zoo(tmp_path / "zoo")
    train, test, _ = load_samples(zoo, "activation", 20, features=("networks",), balance=False, test_fraction=0.5)
    samples = list(train.networks) + list(test.networks)
    for s in samples:  # synthetic weights are N(0, 1): keep the moving variances positive
        for name, a in s.tensors.items():
            if name.endswith("running_var"):
                s.tensors[name][...] = np.abs(a) + 0.5
    assert len({s.kind for s in samples}) > 1  # several groups
    stack = _Stack(samples, torch.device("cpu"))
    probes = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    rows = np.random.default_rng(0).permutation(len(samples))
    batched, hidden = stack.responses(probes, rows)
    (outputs_only,) = stack.responses(probes, rows, hidden=False)  # readout="outputs": the logits alone
    torch.testing.assert_close(outputs_only, batched)
    for k, i in enumerate(rows):
        s = samples[i]
        net = NWSNet(s.architecture, s.activation, bn_eps=s.bn_eps).eval()
        net.load_state_dict({n: torch.as_tensor(a) for n, a in s.tensors.items()}, strict=False)
        seen = []
        net.act.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out))
        with torch.no_grad():
            alone = net(probes)
        # the same up to float32 rounding: vmap runs a group as one grouped convolution, summing in another order
        scale = float(alone.abs().max())
        torch.testing.assert_close(batched[k], alone, rtol=1e-4, atol=1e-5 * scale)
        # the hidden readout: the first conv layer's and the last dense layer's activations, summarised alike
        assert len(seen) == len(s.architecture.conv_channels) + len(s.architecture.fc_units)
        first, last = seen[0].flatten(), seen[-1].flatten()
        for j, h in enumerate((first, last)):
            expected = [h.mean(), h.std(), h.min(), h.max(), (h > 0).float().mean(), (h == 0).float().mean(),
                        h.abs().mean()]  # fmt: skip
            torch.testing.assert_close(hidden[k, j], torch.stack(expected), rtol=1e-3, atol=1e-4)


def _population(n: int, seed: int, classes: bool = True) -> tuple[list[NetworkSample], np.ndarray, np.ndarray]:
    """Networks of one architecture whose output unit 0 is raised by an amount (a behaviour the probes can see):
    by class (``classes``: 0 to 1, or 2 to 3) or anywhere from 0 to 3; the amount is the regression target."""
    arch = Architecture(filter_size=3, depth_conv=3, depth_fc=1, width_conv=4, width_fc=16)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    samples, labels, target = [], [], []
    for i in range(n):
        net = initialize_(NWSNet(arch, "relu"), "glorot_uniform", g)
        label = i % 2
        shift = float(rng.uniform(0, 1)) + 2.0 * label if classes else float(rng.uniform(0, 3))
        with torch.no_grad():
            net.out.bias[0] += shift
        tensors = {p.name: net.state_dict()[p.name].numpy().copy() for p in arch.params}
        samples.append(NetworkSample(tensors, arch, "relu", 1e-5))
        labels.append(("low", "high")[label])
        target.append(shift)
    return samples, np.array(labels), np.array(target)


def test_the_probe_classifier_and_regressor_learn_what_the_networks_compute():
    samples, labels, _ = _population(40, seed=0)
    clf = ProbeClassifier(n_probes=4, hidden=16, epochs=40, batch_size=16, random_state=0)
    clf.fit(samples[:30], labels[:30])
    assert clf.score(samples[30:], labels[30:]) >= 0.9
    assert clf.predict_proba(samples[30:]).shape == (10, 2)
    samples, _, target = _population(40, seed=1, classes=False)
    reg = ProbeRegressor(n_probes=4, hidden=16, epochs=60, batch_size=16, random_state=0).fit(samples[:30], target[:30])
    from scipy.stats import kendalltau

    assert kendalltau(reg.predict(samples[30:]), target[30:]).statistic > 0.6  # chance: 0
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    assert reg.probe_images().shape == (4, 32, 32, 3)
    # the features: 4 probes x 20 logits, then 2 layers x 7 hidden summaries unless the readout is outputs only
    assert reg.probe_features(samples[:3]).shape == (3, 4 * 20 + 2 * 7)
    black_box = ProbeRegressor(n_probes=4, hidden=8, epochs=1, readout="outputs").fit(samples[:30], target[:30])
    assert black_box.probe_features(samples[:3]).shape == (3, 4 * 20)


def test_early_stopping_keeps_the_probes_of_the_best_held_out_epoch():
    """Stage 1 holds networks out, stops once their loss has not improved for ``n_iter_no_change`` epochs and
    keeps the best epoch's probes and head: the fitted model's held-out loss is the lowest one recorded."""
    samples, _, target = _population(40, seed=1, classes=False)
    reg = ProbeRegressor(n_probes=4, hidden=16, epochs=400, batch_size=16, learning_rate=0.03, early_stopping=True,
                         n_iter_no_change=3, head="mlp", random_state=0).fit(samples, target)  # fmt: skip
    assert len(reg.validation_curve_) == len(reg.loss_curve_) < 400  # stopped early
    assert len(reg.loss_curve_) == reg.best_epoch_ + 3
    # the same held-out networks (the holdout is the first draw of the seed's generator), scored by the fitted model
    fit_rows, held_out = reg._holdout(target, np.random.default_rng(0))
    assert len(held_out) == 8 and set(fit_rows).isdisjoint(held_out)
    loss = np.mean((reg.predict([samples[i] for i in held_out]) - target[held_out]) ** 2) / reg.y_std_**2
    assert loss == pytest.approx(min(reg.validation_curve_), rel=1e-4)
    everything = ProbeRegressor(n_probes=2, hidden=8, epochs=5).fit(samples, target)  # no early stopping
    assert len(everything.loss_curve_) == 5 and everything.validation_curve_ == [] and everything.best_epoch_ == 5
    with pytest.raises(ConfigError, match="early_stopping='yes'"):
        ProbeRegressor(early_stopping="yes").fit(samples, target)


def test_the_same_seed_gives_the_same_model_and_errors_are_named():
    samples, _, target = _population(12, seed=1)
    a = ProbeRegressor(n_probes=2, hidden=8, epochs=3, random_state=3).fit(samples, target).predict(samples)
    b = ProbeRegressor(n_probes=2, hidden=8, epochs=3, random_state=3).fit(samples, target).predict(samples)
    assert np.array_equal(a, b)
    with pytest.raises(ConfigError, match="not fitted"):
        ProbeRegressor().predict(samples)
    with pytest.raises(ConfigError, match="expected NetworkSample"):
        ProbeRegressor(epochs=1).fit([np.zeros(3)] * 4, target[:4])
    with pytest.raises(ConfigError, match="n_probes=0"):
        ProbeRegressor(n_probes=0).fit(samples, target)


def test_fit_runs_the_probe_model_on_a_zoo(tmp_path):
    write_synthetic_zoo(tmp_path / "zoo", 8, preset="nws_fixed", diverged=(3,))
    est, report = fit(tmp_path / "zoo", target="optimizer", model="probe", snapshots="19..20", test_fraction=0.5,
                      balance=False, epochs=2, n_probes=2, hidden=8)  # fmt: skip
    assert report.model == "probe" and isinstance(est, ProbeClassifier)
    assert report.samples["train"] + report.samples["test"] == 2 * 7  # the diverged network left out, counted
    assert report.excluded == {"3": "diverged"}


def _hidden_or_seen(n: int, seed: int, where: str) -> tuple[list[NetworkSample], np.ndarray]:
    """Networks whose class the probes cannot see but the weight statistics can (``where="weights"``: the first
    conv layer and its batch-norm statistics scaled by 1 or 4, which leaves the eval-mode function as it was) or
    the other way round (``"function"``: output unit 0 or 1 raised by 3, the same per-tensor statistics)."""
    arch = Architecture(filter_size=3, depth_conv=3, depth_fc=1, width_conv=4, width_fc=16)
    g = torch.Generator().manual_seed(seed)
    samples, labels = [], []
    for i in range(n):
        net = initialize_(NWSNet(arch, "relu"), "glorot_uniform", g)
        label = i % 2
        with torch.no_grad():
            net.conv0_bn.running_var.uniform_(0.5, 1.5, generator=g)
            if where == "weights":
                c = (1.0, 4.0)[label]
                net.conv0.weight.mul_(c), net.conv0.bias.mul_(c)
                net.conv0_bn.running_mean.mul_(c), net.conv0_bn.running_var.mul_(c * c)
            else:
                net.out.bias.zero_()
                net.out.bias[label] = 3.0
        tensors = {p.name: net.state_dict()[p.name].numpy().copy() for p in arch.params}
        samples.append(NetworkSample(tensors, arch, "relu", 1e-5))
        labels.append(("a", "b")[label])
    return samples, np.array(labels)


@pytest.mark.parametrize("where", ["weights", "function"])
def test_cross_validation_chooses_the_features_that_carry_the_class(where):
    """The boosted head's candidates: a class only the weights' statistics show is found through them, one only
    the function shows through the probes; the probes alone are near chance on the first (they cannot see it)."""
    samples, labels = _hidden_or_seen(48, seed=2, where=where)
    kw = {"n_probes": 4, "hidden": 8, "epochs": 3, "random_state": 0, "cv_folds": 3}
    clf = ProbeClassifier(**kw).fit(samples[:32], labels[:32])
    assert set(clf.cv_scores_) == {"stats", "probes", "probes+stats"}
    assert clf.cv_scores_[clf.features_] >= max(clf.cv_scores_.values()) - 0.2  # the one-standard-error rule
    assert clf.score(samples[32:], labels[32:]) >= 0.9
    functional = ProbeClassifier(**kw, features="probes").fit(samples[:32], labels[:32])
    if where == "weights":
        assert "stats" in clf.features_ and clf.cv_scores_["stats"] > clf.cv_scores_["probes"]
        assert functional.score(samples[32:], labels[32:]) <= 0.75  # chance 0.5: the function does not show it
    else:
        assert "probes" in clf.features_ and clf.cv_scores_["probes"] > clf.cv_scores_["stats"]
        assert functional.score(samples[32:], labels[32:]) >= 0.9
    mlp = ProbeClassifier(**kw, head="mlp").fit(samples[:32], labels[:32])
    assert mlp.features_ == "probes" and not hasattr(mlp, "booster_")
    with pytest.raises(ConfigError, match="head"):
        ProbeClassifier(head="forest").fit(samples[:4], labels[:4])
    with pytest.raises(ConfigError, match="features.*'both'"):
        ProbeClassifier(features="both").fit(samples[:4], labels[:4])
    with pytest.raises(ConfigError, match="probe_init.*'zeros'"):
        ProbeClassifier(probe_init="zeros").fit(samples[:4], labels[:4])
    with pytest.raises(ConfigError, match="cv_folds"):
        ProbeClassifier(cv_folds=1).fit(samples[:4], labels[:4])
