"""Fast float32 draws from the portable generator, bit for bit as the drawing rule states.

With ``rng`` the portable generator:

- :func:`uniform` is ``rng.random(n, dtype=np.float32) * np.float32(scale) + np.float32(shift)``;
- :func:`normal` is Box–Muller in float32 on the two halves of ``k = ceil(n/2)`` pairs::

      u = rng.random(2 * k, dtype=np.float32)
      r = np.sqrt(np.log(np.float32(1) - u[:k]) * np.float32(-2)) * np.float32(std)
      theta = np.float32(2 * np.pi) * u[k:]
      value = np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n]
      # then + np.float32(mean) if mean != 0

and the generator is left where ``rng.random(n or 2k, dtype=np.float32)`` leaves it.

NumPy's ``rng.random(dtype=np.float32)`` spends most of its time per value in its buffering
of 32-bit words; for the default bit generator (PCG64) the words are read here in bulk from
``random_raw`` instead (each 64-bit output is two words, low half first, which is what
``rng.random`` does) and turned into floats with array operations: ``(w >> 8) · 2⁻²⁴``.
The values are computed in blocks that stay in the CPU's cache, and a large draw is split
between threads, each reading its own part of the stream from a copy of the generator
advanced to that part (``PCG64.advance``): the result does not depend on the number of
threads. Another bit generator is read through ``rng.random``: the same values, slower.

NumPy's float32 ``log``/``sin``/``cos`` give a value the same result wherever it sits in an
array (the tests check the blocked draws against the rule computed on whole arrays).
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import numpy as np

#: values per block and lane: the block's arrays (under 1 MiB) stay in the CPU's cache
BLOCK = 1 << 15
#: a thread is started for each further PER_THREAD values (a smaller share does not pay)
PER_THREAD = 1 << 20
#: at most this many threads per draw
MAX_THREADS = 4

_INV24 = np.float32(2.0 ** -24)
_TWO_PI = np.float32(2 * math.pi)
_TWO_PI_INV24 = _TWO_PI * _INV24  # exact (a power-of-two scaling): θ = m · this = 2π · u
_ONE24 = np.float32(2.0 ** 24)
_LOW = (1 << 32) - 1


def _cores() -> int:
    """The cores this process may use, at most ``OMP_NUM_THREADS`` when that is set (the
    usual way to ask numerical libraries for fewer threads)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return cores


class _Words:
    """The 32-bit words of a PCG64 stream from raw word ``start`` on (two words per 64-bit
    output, low half first), preceded by ``carry`` if given; ``state`` is not changed."""

    def __init__(self, state: Any, start: int, carry: int | None = None) -> None:
        bg = np.random.PCG64(0)  # seeded only to skip reading OS entropy; the state is replaced
        bg.state = state
        bg.advance(start // 2)
        if start % 2:
            carry = int(bg.random_raw()) >> 32
        self._bg, self._carry = bg, carry

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` words (a new, writable uint32 array)."""
        if self._carry is None and n % 2 == 0:
            return self._bg.random_raw(n // 2).view(np.uint32)
        out = np.empty(n, np.uint32)
        i = 0
        if self._carry is not None:
            out[0], self._carry, i = self._carry, None, 1
        pairs = (n - i) // 2
        out[i:i + 2 * pairs] = self._bg.random_raw(pairs).view(np.uint32)
        if (n - i) % 2:
            x = int(self._bg.random_raw())
            out[-1], self._carry = x & _LOW, x >> 32
        return out


class _NumPyWords:
    """The same words read through ``rng.random`` (any bit generator; slower)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def take(self, n: int) -> np.ndarray:
        m = self._rng.random(n, dtype=np.float32) * _ONE24  # exact: the 24-bit integers
        return m.astype(np.uint32) << np.uint32(8)


def _floats(w: np.ndarray, out: np.ndarray) -> None:
    """``out`` = the 24-bit integers ``w >> 8`` as float32 (exact; ``w`` is overwritten).
    Through the int32 view the conversion is one SIMD instruction, where uint32's is not."""
    np.right_shift(w, 8, out=w)
    np.copyto(out, w.view(np.int32), casting="unsafe")


def _fill(rng: np.random.Generator, length: int, lanes: int, block) -> None:
    """Read ``lanes · length`` words of the stream ``rng.random(lanes · length,
    dtype=np.float32)`` reads, lane ``j`` being words ``[j·length, (j+1)·length)``: call
    ``block(i, words)`` for blocks of values ``[i, i + len)`` with the words of each lane,
    and leave ``rng`` where that ``rng.random`` call leaves it."""
    if length == 0:
        return
    bg = rng.bit_generator
    if type(bg) is not np.random.PCG64:
        source = _NumPyWords(rng)
        lane_words = [source.take(length) for _ in range(lanes)]
        for i in range(0, length, BLOCK):
            block(i, [w[i:i + BLOCK] for w in lane_words])
        return
    state = bg.state
    pending = state["uinteger"] if state["has_uint32"] else None  # a word rng.random kept
    raw: Any = dict(state, has_uint32=0, uinteger=0)
    offset = 0 if pending is None else 1
    threads = max(1, min(MAX_THREADS, _cores(), lanes * length // PER_THREAD))
    per = -(-length // threads)
    per += -per % BLOCK  # parts start on a block boundary
    bounds = [(i, min(length, i + per)) for i in range(0, length, per)]

    def words_from(position: int) -> _Words:
        if position == 0 and pending is not None:
            return _Words(raw, 0, pending)
        return _Words(raw, position - offset)

    def run(lo: int, hi: int) -> None:
        readers = [words_from(lane * length + lo) for lane in range(lanes)]
        for i in range(lo, hi, BLOCK):
            size = min(hi, i + BLOCK) - i
            block(i, [reader.take(size) for reader in readers])

    errors: list = []

    def guarded(lo: int, hi: int) -> None:
        try:
            run(lo, hi)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    workers = [threading.Thread(target=guarded, args=b, daemon=True) for b in bounds[1:]]
    for t in workers:
        t.start()
    try:
        run(*bounds[0])
    finally:
        for t in workers:
            t.join()
    if errors:
        raise errors[0]
    used = lanes * length - offset  # raw words read (the pending one was not raw)
    bg.state = raw
    bg.advance(used // 2)
    if used % 2:  # rng.random keeps the high half of the last output for the next draw
        x = int(bg.random_raw())
        kept: Any = dict(bg.state, has_uint32=1, uinteger=x >> 32)
        bg.state = kept


def uniform(rng: np.random.Generator, n: int, scale: float = 1.0,
            shift: float = 0.0) -> np.ndarray:
    """``rng.random(n, dtype=np.float32) * np.float32(scale) + np.float32(shift)``."""
    out = np.empty(n, np.float32)
    scale32, shift32 = np.float32(scale), np.float32(shift)
    # (m · 2⁻²⁴) · scale rounds as m · (scale · 2⁻²⁴) unless scale · 2⁻²⁴ is subnormal
    exact = scale32 == 0 or abs(float(scale32)) * 2.0 ** -24 >= np.finfo(np.float32).tiny
    scale24 = scale32 * _INV24

    def block(i: int, words: list) -> None:
        o = out[i:i + words[0].size]
        _floats(words[0], o)
        if exact:
            o *= scale24
        else:
            o *= _INV24
            o *= scale32
        if shift32 != 0:  # u · scale is never -0, so adding +0 would change nothing
            o += shift32

    _fill(rng, n, 1, block)
    return out


def normal(rng: np.random.Generator, n: int, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """Box–Muller on ``rng.random(2 * ceil(n/2), dtype=np.float32)`` (the module docstring),
    scaled by ``std`` and shifted by ``mean`` in float32."""
    k = -(-n // 2)
    out = np.empty(2 * k, np.float32)
    std32, mean32 = np.float32(std), np.float32(mean)
    local = threading.local()

    def block(i: int, words: list) -> None:
        size = words[0].size
        if getattr(local, "scratch", None) is None:
            local.scratch = np.empty(BLOCK, np.float32)
        r, theta = out[i:i + size], local.scratch[:size]
        _floats(words[0], r)  # m1, then 1 - u1 = (2²⁴ - m1) · 2⁻²⁴ exactly
        np.subtract(_ONE24, r, out=r)
        r *= _INV24
        np.log(r, out=r)
        r *= np.float32(-2)
        np.sqrt(r, out=r)
        if std32 != 1:
            r *= std32  # the radius of an N(0, std²) pair
        _floats(words[1], theta)
        theta *= _TWO_PI_INV24  # float32(2π) · u2, rounded once
        sin = out[k + i:k + i + size]
        np.sin(theta, out=sin)
        np.cos(theta, out=theta)
        sin *= r
        r *= theta  # r · cos θ, in its place
        if mean32 != 0:  # (adding +0 would only turn a -0 into +0)
            r += mean32
            sin += mean32

    _fill(rng, k, 2, block)
    return out[:n]
