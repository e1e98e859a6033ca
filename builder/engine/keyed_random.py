"""Counter-based random numbers: a value is a pure function of (stream key, step, element), computed for many
networks at once.

The pack trainer (:mod:`builder.engine.pack`) trains many networks in one set of kernels, but each network must draw
the same random numbers whatever pack it is in. Drawing from one ``torch.Generator`` per network costs a few
kernel launches per network and step: on a GPU, hundreds of networks make that the bottleneck. Here a number is
instead a hash of its coordinates, so one call serves a whole pack, the same network gets the same numbers in
any pack (alone included), and the numbers are the same on every device (integer arithmetic only).

The hash is Chris Wellons' ``triple32`` (a 32-bit integer permutation with very low bias), applied as
``h(s0 ^ h(s1 ^ h(j)))`` where ``(s0, s1)``, 64 bits, are mixed from the stream key (63 bits, from
:func:`builder.engine.space.torch_seed`) and the step, and ``j`` is the element's index. Everything is computed on
int64 tensors holding 32-bit values, with 32x32-bit products formed from 16-bit halves, so no operation
overflows (no reliance on wrapping signed arithmetic, which C++ leaves undefined).

Used for the dropout masks (one bit per unit) and the augmentation's geometric and colour parameters: one
stream per (network, training step), drawn by both trainers (:func:`step_draws`, generation version 3). The
augmentation's Gaussian noise, one value per pixel, stays a draw of the network's own ``torch.Generator``:
hashing it element by element costs more memory traffic than the one launch per network it would save.

Example:
    >>> keys, steps = [11, 12], [0, 0]
    >>> u = uniform(keys, steps, 4)
    >>> u.shape, bool(((u >= 0) & (u < 1)).all())
    (torch.Size([2, 4]), True)
    >>> torch.equal(uniform(keys[1:], steps[1:], 4), u[1:])  # the same numbers alone as in a pack
    True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from builder.engine.augment import uniforms_per_batch
from weightzoo.model import DROPOUT

__all__ = [
    "StepDraws",
    "bits",
    "copy_from_host_",
    "element_words",
    "hash32",
    "mask_words",
    "step_draws",
    "stream_words",
    "to_device",
    "to_uniform",
    "uniform",
    "words_at",
]

_MASK32 = 0xFFFFFFFF
_MASK16 = 0xFFFF
#: Distinct constants folded into the two 32-bit stream words and the element index.
_SALT = (0x9E3779B9, 0x85EBCA6B, 0xC2B2AE35)


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2**32`` for ``x`` in [0, 2**32) (int64) and a 32-bit constant, without overflow."""
    lo = (x & _MASK16) * c  # < 2**48
    hi = ((x >> 16) * c) & _MASK16  # only its low 16 bits survive the shift by 16 modulo 2**32
    return (lo + (hi << 16)) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """``triple32``: a bijection of [0, 2**32) with very low bias, elementwise on an int64 tensor (or numpy
    array: the same operations, the same results).

    Example:
        >>> hash32(torch.tensor([0, 1, 2])).tolist()
        [0, 69681622, 4057983209]
    """
    x = x ^ (x >> 17)
    x = _mul32(x, 0xED5AD4BB)
    x = x ^ (x >> 11)
    x = _mul32(x, 0xAC4C1B51)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x31848BAB)
    return x ^ (x >> 14)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device`` without making the host wait for the device: on CUDA through pinned memory,
    asynchronously (a plain copy from pageable memory waits for all the work queued before it).

    Example:
        >>> to_device(torch.arange(3), torch.device("cpu")).tolist()
        [0, 1, 2]
    """
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def copy_from_host_(out: torch.Tensor, host: torch.Tensor) -> None:
    """:func:`to_device` into an existing tensor: ``host`` copied into ``out`` in place (its address kept, as a
    CUDA graph needs), on CUDA through pinned memory without making the host wait.

    Example:
        >>> out = torch.zeros(3, dtype=torch.int64)
        >>> copy_from_host_(out, torch.arange(3)); out.tolist()
        [0, 1, 2]
    """
    if out.device.type == "cuda":
        host = host.pin_memory()
    out.copy_(host, non_blocking=True)


def stream_words(keys: Sequence[int], steps: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """[P, 2] int64 on ``device``: the two 32-bit words of each stream (``keys[p]``, ``steps[p]``), every bit of
    key and step mixed into each. Computed on the host (the same integer arithmetic, on numpy), so a step costs
    the device one small copy rather than a few dozen kernels.

    Example:
        >>> stream_words([7, 7], [0, 1]).shape
        torch.Size([2, 2])
    """
    k, t = np.asarray(keys), np.asarray(steps)
    if k.dtype.kind not in "iu" or t.dtype.kind not in "iu" or k.shape != t.shape or k.ndim != 1:
        raise TypeError(f"keys and steps must be integer sequences of one length, got {k.dtype} {k.shape} and "
                        f"{t.dtype} {t.shape}")  # fmt: skip
    if (k < 0).any() or (t < 0).any() or (k >= 2**63).any():
        raise ValueError("keys and steps must be non-negative (keys below 2**63)")
    k, t = k.astype(np.int64), t.astype(np.int64)
    a = hash32((k & _MASK32) ^ hash32((k >> 32) ^ _SALT[0]))
    s0 = hash32((t & _MASK32) ^ hash32(((t >> 32) & _MASK32) ^ a))
    s1 = hash32(a ^ hash32(s0 ^ _SALT[1]))
    return to_device(torch.from_numpy(np.stack([s0, s1], axis=1)), torch.device(device))


@functools.lru_cache(maxsize=64)
def _element_words(n: int, device: torch.device) -> torch.Tensor:
    """The hashed element indices 0..n-1 (the same for every stream: a pure function of the length and device,
    memoised; the tensor is never written to)."""
    return hash32(torch.arange(n, dtype=torch.int64, device=device) ^ _SALT[2])


def _words(stream: torch.Tensor, n: int) -> torch.Tensor:
    """[P, n] 32-bit words (int64) of the streams ``stream`` ([P, 2], :func:`stream_words`)."""
    s0, s1 = stream[:, :1], stream[:, 1:]
    return hash32(s0 ^ hash32(s1 ^ _element_words(n, stream.device)[None, :]))


def element_words(index: torch.Tensor) -> torch.Tensor:
    """The hashed element indices ``index`` (int64, any shape): what :func:`words_at` mixes with the streams. A
    pure function of the indices, computed once for a fixed layout of draws.

    Example:
        >>> torch.equal(element_words(torch.arange(5)), _element_words(5, torch.device("cpu")))
        True
    """
    return hash32(index ^ _SALT[2])


def words_at(stream: torch.Tensor, hashed: torch.Tensor) -> torch.Tensor:
    """32-bit words (int64) of chosen elements of chosen streams: ``stream`` [T, 2] (each element's stream words,
    :func:`stream_words`) and ``hashed`` [T] (its index through :func:`element_words`). Element ``j`` of a stream
    is the same word as in :func:`uniform` and :func:`bits`, however the elements are laid out, so one call can
    draw for networks of different shapes.

    Example:
        >>> s = stream_words([3, 4], [0, 0])
        >>> w = words_at(s.repeat_interleave(5, dim=0), element_words(torch.arange(5).repeat(2)))
        >>> torch.equal(w.view(2, 5), _words(s, 5))
        True
    """
    return hash32(stream[:, 0] ^ hash32(stream[:, 1] ^ hashed))


def uniform(
    keys: Sequence[int], steps: Sequence[int], n: int, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> torch.Tensor:
    """[P, n] uniform numbers in [0, 1) on a 2**-24 grid (exact in float32): element ``j`` of stream
    (``keys[p]``, ``steps[p]``), on ``device``. ``keys`` and ``steps``: integer sequences (host side).

    Example:
        >>> u = uniform([5], [3], 100_000)
        >>> round(float(u.mean()), 2), round(float(u.std()), 2)  # 1/2 and sqrt(1/12)
        (0.5, 0.29)
    """
    return to_uniform(_words(stream_words(keys, steps, device), n), dtype)


def to_uniform(words: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform numbers in [0, 1) on a 2**-24 grid from 32-bit words (the top 24 bits), as :func:`uniform` makes them.

    Example:
        >>> to_uniform(torch.tensor([0, 2**32 - 1])).tolist()
        [0.0, 0.9999999403953552]
    """
    return (words >> 8).to(dtype) * 2.0**-24


def bits(keys: Sequence[int], steps: Sequence[int], n: int, device: str = "cpu") -> torch.Tensor:
    """[P, n] fair random bits (bool), 32 from every hashed word: element ``j`` of stream (``keys[p]``,
    ``steps[p]``).

    Example:
        >>> b = bits([5, 6], [0, 0], 64_000)
        >>> round(float(b.float().mean()), 2), torch.equal(b[0], b[1])
        (0.5, False)
    """
    return _unpack(_words(stream_words(keys, steps, device), -(-n // 32)), n)


def _unpack(words: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` bits of every row of 32-bit words, low bits first."""
    shifts = torch.arange(32, dtype=torch.int64, device=words.device)
    return ((words[:, :, None] >> shifts) & 1).flatten(1)[:, :n].bool()


@dataclass
class StepDraws:
    """What one training step draws for ``P`` networks: per dense layer a [P, batch, units] dropout mask of 0
    (dropped) and 2 (kept, scaled by ``1 / (1 - 0.5)``), and the augmentation's uniform numbers [P, 6 * batch + 5]
    (None when not asked for; :func:`builder.engine.augment.params_from_uniform` turns them into parameters)."""

    masks: list[torch.Tensor]
    augment: torch.Tensor | None


def step_draws(
    keys: Sequence[int],
    steps: Sequence[int],
    batch: int,
    units: Sequence[int],
    dtype: torch.dtype = torch.float32,
    augmentation: bool = True,
    device: torch.device | str = "cpu",
) -> StepDraws:
    """The draws of training step ``steps[p]`` of the network with stream key ``keys[p]``, for all ``P`` at once,
    on ``device``: one stream per (network, step), its first words the dropout bits (one fair bit per unit, layer
    after layer), the next ``6 * batch + 5`` the augmentation's uniforms. An element's value depends only on its
    stream and index, so a network draws the same with or without augmentation asked for, alone or in any pack.

    Example:
        >>> d = step_draws([1, 2], [0, 0], batch=3, units=[4, 2])
        >>> [tuple(t.shape) for t in d.masks], tuple(d.augment.shape)
        ([(2, 3, 4), (2, 3, 2)], (2, 23))
        >>> torch.equal(step_draws([2], [0], 3, [4, 2]).augment, d.augment[1:])
        True
    """
    total, n_masks = sum(units), mask_words(batch, units)
    words = _words(stream_words(keys, steps, device), n_masks + (uniforms_per_batch(batch) if augmentation else 0))
    kept = _unpack(words[:, :n_masks], batch * total).view(len(words), batch, total)
    masks = list((kept.to(dtype) * (1 / (1 - DROPOUT))).split(list(units), dim=2))
    return StepDraws(masks, to_uniform(words[:, n_masks:], torch.float32) if augmentation else None)


def mask_words(batch: int, units: Sequence[int]) -> int:
    """Words of a step's dropout bits, the first of its stream (one fair bit per image and unit, layer after layer;
    the augmentation's uniforms follow them).

    Example:
        >>> mask_words(3, [4, 2]), mask_words(32, [128, 64])
        (1, 192)
    """
    if DROPOUT != 0.5:
        raise ValueError(f"keyed dropout draws fair bits: it needs a drop probability of 0.5, not {DROPOUT}")
    return -(-batch * sum(units) // 32)
