"""A seeded synthetic image set for classification examples (NumPy only, no download).

``synthetic_images`` stands in for Fashion-MNIST in the linear-networks examples: ten classes
of 28×28 grey images, each class a smooth random pattern of its own, every image that
pattern shifted by a pixel or two, with noise. Softmax regression learns it quickly but not
perfectly; the same seed gives the same images everywhere.

Examples:
    >>> from d2lparams import data
    >>> X, y = data.synthetic_images(100, seed=0)
    >>> X.shape, X.dtype, y.shape, y.dtype
    ((100, 1, 28, 28), dtype('float32'), (100,), dtype('int64'))
    >>> bool(X.min() >= 0 and X.max() <= 1), sorted(set(y.tolist())) == list(range(10))
    (True, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["minibatches", "synthetic_images"]


def _patterns(rng: np.random.Generator, num_classes: int, size: int) -> np.ndarray:
    """One smooth pattern per class in ``[0, 1]``: a sum of a few Gaussian blobs."""
    grid = np.arange(size, dtype=np.float64)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    patterns = np.zeros((num_classes, size, size))
    for c in range(num_classes):
        for _ in range(4):
            r, q = rng.uniform(0.2 * size, 0.8 * size, 2)
            width = rng.uniform(0.08 * size, 0.2 * size)
            patterns[c] += rng.uniform(0.5, 1.0) * np.exp(
                -((rows - r) ** 2 + (cols - q) ** 2) / (2 * width**2))
        patterns[c] /= patterns[c].max()
    return patterns


def synthetic_images(n: int = 1000, num_classes: int = 10, size: int = 28, *, seed: int = 0,
                     noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images and their labels, reproducible from ``seed``.

    Returns:
        ``(X, y)``: ``X`` float32 of shape ``(n, 1, size, size)`` with values in ``[0, 1]``
        (the ``(N, C, H, W)`` layout of d2l's Fashion-MNIST), ``y`` int64 class indices of
        shape ``(n,)``, balanced over the classes and shuffled.

    Raises:
        ValueError: a non-positive ``n``, ``num_classes`` or ``size``, or a negative
            ``noise``.
    """
    for name, value in (("n", n), ("num_classes", num_classes), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"synthetic_images: {name} must be a positive int, got {value!r}")
    if not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"synthetic_images: noise must be a number >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    patterns = _patterns(rng, num_classes, size)
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    shifts = rng.integers(-2, 3, size=(n, 2))
    X = np.empty((n, 1, size, size), np.float32)
    for i in range(n):
        image = np.roll(patterns[y[i]], tuple(shifts[i]), axis=(0, 1))
        X[i, 0] = np.clip(image + noise * rng.standard_normal((size, size)), 0.0, 1.0)
    return X, y


def minibatches(X: np.ndarray, y: np.ndarray, batch_size: int):
    """``(X[i:i+batch_size], y[i:i+batch_size])`` in order, the last one possibly smaller
    (d2l's data iterator without shuffling: the same batches on every backend)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"minibatches: batch_size must be a positive int, got {batch_size!r}")
    if len(X) != len(y):
        raise ValueError(f"minibatches: {len(X)} examples but {len(y)} labels")
    for start in range(0, len(X), batch_size):
        yield X[start:start + batch_size], y[start:start + batch_size]
