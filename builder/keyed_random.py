"""Counter-based random numbers: a value is a pure function of (stream key, step, element), computed for many
networks at once.

The pack trainer (:mod:`builder.pack`) trains many networks in one set of kernels, but each network must draw
the same random numbers whatever pack it is in. Drawing from one ``torch.Generator`` per network costs a few
kernel launches per network and step: on a GPU, hundreds of networks make that the bottleneck. Here a number is
instead a hash of its coordinates, so one call serves a whole pack, the same network gets the same numbers in
any pack (alone included), and the numbers are the same on every device (integer arithmetic only).

The hash is Chris Wellons' ``triple32`` (a 32-bit integer permutation with very low bias), applied as
``h(s0 ^ h(s1 ^ h(j)))`` where ``(s0, s1)``, 64 bits, are mixed from the stream key (63 bits, from
:func:`builder.space.torch_seed`) and the step, and ``j`` is the element's index. Everything is computed on
int64 tensors holding 32-bit values, with 32x32-bit products formed from 16-bit halves, so no operation
overflows (no reliance on wrapping signed arithmetic, which C++ leaves undefined).

Used for the dropout masks (one bit per unit) and the augmentation's geometric and colour parameters, drawn by
both trainers (generation version 3). The augmentation's Gaussian noise, one value per pixel, stays a draw of
the network's own ``torch.Generator``: hashing it element by element costs more memory traffic than the one
launch per network it would save.

Example:
    >>> keys, steps = torch.tensor([11, 12]), torch.tensor([0, 0])
    >>> u = uniform(keys, steps, 4)
    >>> u.shape, bool(((u >= 0) & (u < 1)).all())
    (torch.Size([2, 4]), True)
    >>> torch.equal(uniform(keys[1:], steps[1:], 4), u[1:])  # the same numbers alone as in a pack
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from weightzoo.model import DROPOUT

__all__ = ["bits", "dropout_masks", "hash32", "uniform"]

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
    """``triple32``: a bijection of [0, 2**32) with very low bias, elementwise on an int64 tensor.

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


def _stream_words(keys: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 32-bit words per (key, step): every bit of both mixed into each."""
    if keys.dtype != torch.int64 or steps.dtype != torch.int64:
        raise TypeError(f"keys and steps must be int64 tensors, got {keys.dtype} and {steps.dtype}")
    if bool((keys < 0).any()) or bool((steps < 0).any()):
        raise ValueError("keys and steps must be non-negative")
    k0, k1 = keys & _MASK32, keys >> 32
    t0, t1 = steps & _MASK32, (steps >> 32) & _MASK32
    a = hash32(k0 ^ hash32(k1 ^ _SALT[0]))
    s0 = hash32(t0 ^ hash32(t1 ^ a))
    s1 = hash32(a ^ hash32(s0 ^ _SALT[1]))
    return s0, s1


def _words(keys: torch.Tensor, steps: torch.Tensor, n: int) -> torch.Tensor:
    """[P, n] 32-bit words (int64) of streams (``keys[p]``, ``steps[p]``)."""
    s0, s1 = _stream_words(keys, steps)
    j = hash32(torch.arange(n, dtype=torch.int64, device=keys.device) ^ _SALT[2])
    return hash32(s0[:, None] ^ hash32(s1[:, None] ^ j[None, :]))


def uniform(keys: torch.Tensor, steps: torch.Tensor, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[P, n] uniform numbers in [0, 1) on a 2**-24 grid (exact in float32): element ``j`` of stream
    (``keys[p]``, ``steps[p]``). ``keys`` and ``steps`` are int64 [P] tensors on the device to draw on.

    Example:
        >>> u = uniform(torch.tensor([5]), torch.tensor([3]), 100_000)
        >>> round(float(u.mean()), 2), round(float(u.std()), 2)  # 1/2 and sqrt(1/12)
        (0.5, 0.29)
    """
    return (_words(keys, steps, n) >> 8).to(dtype) * 2.0**-24


def bits(keys: torch.Tensor, steps: torch.Tensor, n: int) -> torch.Tensor:
    """[P, n] fair random bits (bool), 32 from every hashed word: element ``j`` of stream (``keys[p]``,
    ``steps[p]``).

    Example:
        >>> b = bits(torch.tensor([5, 6]), torch.tensor([0, 0]), 64_000)
        >>> round(float(b.float().mean()), 2), torch.equal(b[0], b[1])
        (0.5, False)
    """
    words = _words(keys, steps, -(-n // 32))
    shifts = torch.arange(32, dtype=torch.int64, device=keys.device)
    return ((words[:, :, None] >> shifts) & 1).flatten(1)[:, :n].bool()


def dropout_masks(
    keys: torch.Tensor, steps: torch.Tensor, batch: int, units: Sequence[int], dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """Dropout masks of one training step for ``P`` networks: per dense layer a [P, batch, units] tensor of 0
    (dropped) and 2 (kept, scaled by ``1 / (1 - 0.5)``), one fair bit per unit from stream (``keys[p]``,
    ``steps[p]``), the layers' bits one after another.

    Example:
        >>> m = dropout_masks(torch.tensor([1, 2]), torch.tensor([0, 0]), batch=3, units=[4, 2])
        >>> [tuple(t.shape) for t in m], sorted(set(torch.cat([t.flatten() for t in m]).tolist()))
        ([(2, 3, 4), (2, 3, 2)], [0.0, 2.0])
    """
    if DROPOUT != 0.5:
        raise ValueError(f"keyed dropout draws fair bits: it needs a drop probability of 0.5, not {DROPOUT}")
    total = sum(units)
    kept = bits(keys, steps, batch * total).view(len(keys), batch, total)
    return list((kept.to(dtype) * (1 / (1 - DROPOUT))).split(list(units), dim=2))
