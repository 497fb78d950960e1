"""Vectorised reductions over contiguous groups of a sorted array.

Feature code sorts the events once, so every session, window and action is a
contiguous run of rows. The helpers here reduce a value array over such runs
in one numpy call each (``bincount``, ``reduceat``, one ``lexsort`` for
quantiles), never a Python loop per group. Groups are given as an integer id
per row (``0 .. n_groups-1``, non-decreasing). Values may be masked: a row
whose mask is False does not count, and a group with no counted row gets
``fill`` so that results are always finite.
"""

from __future__ import annotations

import numpy as np


def starts_of(group: np.ndarray, n_groups: int) -> np.ndarray:
    """Index of the first row of each group (all groups non-empty, ids sorted)."""
    return np.searchsorted(group, np.arange(n_groups), side="left")


def count(group: np.ndarray, n_groups: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Number of (masked) rows per group, as float64."""
    weights = None if mask is None else mask.astype(np.float64)
    return np.bincount(group, weights=weights, minlength=n_groups).astype(np.float64)


def total(values: np.ndarray, group: np.ndarray, n_groups: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Sum of (masked) values per group; 0 for an empty group."""
    v = values if mask is None else np.where(mask, values, 0.0)
    return np.bincount(group, weights=v, minlength=n_groups)


def mean(
    values: np.ndarray, group: np.ndarray, n_groups: int, mask: np.ndarray | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Mean of (masked) values per group; ``fill`` for an empty group."""
    n = count(group, n_groups, mask)
    s = total(values, group, n_groups, mask)
    return np.where(n > 0, s / np.maximum(n, 1), fill)


def std(
    values: np.ndarray, group: np.ndarray, n_groups: int, mask: np.ndarray | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Population standard deviation per group (two-pass, numerically stable)."""
    m = mean(values, group, n_groups, mask)
    dev = values - m[group]
    var = mean(dev * dev, group, n_groups, mask)
    n = count(group, n_groups, mask)
    return np.where(n > 0, np.sqrt(np.maximum(var, 0.0)), fill)


def extreme(
    values: np.ndarray, group: np.ndarray, n_groups: int, mask: np.ndarray | None = None,
    fill: float = 0.0, largest: bool = True,
) -> np.ndarray:
    """Maximum (or minimum) of (masked) values per group; ``fill`` for an empty group."""
    if len(values) == 0:
        return np.full(n_groups, fill)
    sentinel = -np.inf if largest else np.inf
    v = values if mask is None else np.where(mask, values, sentinel)
    ufunc = np.maximum if largest else np.minimum
    out = np.full(n_groups, sentinel)
    present = np.bincount(group, minlength=n_groups) > 0
    starts = starts_of(group, n_groups)[present]
    out[present] = ufunc.reduceat(v, starts)
    return np.where(np.isfinite(out), out, fill)


def quantiles(
    values: np.ndarray, group: np.ndarray, n_groups: int, qs: tuple[float, ...],
    mask: np.ndarray | None = None, fill: float = 0.0,
) -> np.ndarray:
    """Quantiles per group with linear interpolation (numpy's default method).

    Returns an array of shape ``(n_groups, len(qs))``; ``fill`` for an empty group.
    """
    if mask is not None:
        values, group = values[mask], group[mask]
    out = np.full((n_groups, len(qs)), fill, dtype=np.float64)
    if len(values) == 0:
        return out
    ordered = values[np.lexsort((values, group))]
    n = np.bincount(group, minlength=n_groups)
    present = n > 0
    first = (np.cumsum(n) - n)[present]
    size = n[present]
    for j, q in enumerate(qs):  # one vectorised pass per quantile level, not per group
        pos = q * (size - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, size - 1)
        frac = pos - lo
        out[present, j] = ordered[first + lo] * (1 - frac) + ordered[first + hi] * frac
    return out
