"""builder.engine.keyed_random: the counter-based draws both trainers take their dropout masks and augmentation
parameters from."""

import numpy as np
import pytest
import torch

from builder.engine.keyed_random import bits, hash32, step_draws, stream_words, uniform


def _triple32_numpy(x: np.ndarray) -> np.ndarray:
    """The published triple32, on uint32 (wrapping multiplication is defined there)."""
    x = x.astype(np.uint32)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint32(17)
        x *= np.uint32(0xED5AD4BB)
        x ^= x >> np.uint32(11)
        x *= np.uint32(0xAC4C1B51)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x31848BAB)
        x ^= x >> np.uint32(14)
    return x


def test_hash_is_triple32_on_the_whole_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([[0, 1, 2**16 - 1, 2**16, 2**31, 2**32 - 1], rng.integers(0, 2**32, 10_000)])
    got = hash32(torch.from_numpy(x.astype(np.int64)))
    np.testing.assert_array_equal(got.numpy(), _triple32_numpy(x).astype(np.int64))


def test_a_stream_is_the_same_alone_and_in_any_pack():
    keys = torch.tensor([3, 2**62 + 5, 17, 3])
    steps = torch.tensor([0, 9, 4, 1])
    together = uniform(keys, steps, 50)
    for p in range(4):
        assert torch.equal(uniform(keys[p : p + 1], steps[p : p + 1], 50), together[p : p + 1])
    assert torch.equal(uniform(keys.flip(0), steps.flip(0), 50), together.flip(0))
    assert torch.equal(uniform(keys, steps, 20), together[:, :20])  # a prefix does not depend on the length


def test_streams_differ_by_key_and_by_step_and_look_uniform():
    u = uniform(torch.tensor([1, 2, 1, 2**40 + 1]), torch.tensor([0, 0, 1, 0]), 200_000, dtype=torch.float64)
    assert bool(((u >= 0) & (u < 1)).all())
    assert np.allclose(u.mean(1).numpy(), 0.5, atol=0.005) and np.allclose(u.var(1).numpy(), 1 / 12, atol=0.002)
    corr = np.corrcoef(u.numpy())  # neighbouring keys, neighbouring steps, a high key bit: unrelated numbers
    assert np.abs(corr[np.triu_indices(4, 1)]).max() < 0.01
    lag = np.corrcoef(u[0, :-1].numpy(), u[0, 1:].numpy())[0, 1]
    assert abs(lag) < 0.01


def test_bits_are_fair_and_independent():
    b = bits(torch.tensor([5, 6]), torch.tensor([7, 7]), 100_001).double()
    assert b.shape == (2, 100_001)
    assert np.allclose(b.mean(1).numpy(), 0.5, atol=0.005)
    assert abs(np.corrcoef(b.numpy())[0, 1]) < 0.01


def test_step_draws_lay_out_mask_bits_then_augmentation_uniforms():
    """One stream per (network, step): the first words are the dropout bits layer after layer, the next the
    augmentation's uniforms; asking for no augmentation leaves the masks as they are, and a precomputed key word
    changes nothing; the stream words are triple32 on the host, as the elements' on the device."""
    keys, steps = torch.tensor([1, 2]), torch.tensor([0, 3])
    d = step_draws(keys, steps, batch=4, units=[6, 3], dtype=torch.float64)
    assert [m.shape for m in d.masks] == [(2, 4, 6), (2, 4, 3)] and d.masks[0].dtype == torch.float64
    words = -(-4 * 9 // 32)
    assert torch.equal(torch.cat(d.masks, 2), bits(keys, steps, 4 * 9).view(2, 4, 9).double() * 2)
    assert torch.equal(d.augment, uniform(keys, steps, words + 6 * 4 + 5)[:, words:])
    plain = step_draws(keys, steps, 4, [6, 3], torch.float64, augmentation=False)
    assert plain.augment is None and all(torch.equal(a, b) for a, b in zip(plain.masks, d.masks, strict=True))
    k, t = np.array([1, 2**62 + 3]), np.array([0, 2**33 + 5])
    a = _triple32_numpy((k & 0xFFFFFFFF) ^ _triple32_numpy((k >> 32) ^ 0x9E3779B9)).astype(np.int64)
    s0 = _triple32_numpy((t & 0xFFFFFFFF) ^ _triple32_numpy((t >> 32) ^ a)).astype(np.int64)
    s1 = _triple32_numpy(a ^ _triple32_numpy(s0 ^ 0x85EBCA6B)).astype(np.int64)
    np.testing.assert_array_equal(stream_words(k, t).numpy(), np.stack([s0, s1], 1))


def test_bad_keys_are_refused():
    with pytest.raises(TypeError, match="integer sequences of one length"):
        uniform(torch.tensor([1.0]), torch.tensor([0]), 3)
    with pytest.raises(TypeError, match="integer sequences of one length"):
        uniform([1, 2], [0], 3)
    with pytest.raises(ValueError, match="non-negative"):
        uniform(torch.tensor([-1]), torch.tensor([0]), 3)
