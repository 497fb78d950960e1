"""Vectorised reductions over contiguous groups of a sorted array.

Feature code sorts the events once, so every session, window and action is a
contiguous run of rows. :class:`Groups` describes such runs (an integer id per
row, ``0 .. n-1``, non-decreasing) and reduces value arrays over them in one
numpy call each: ``reduceat`` for sums and extremes (a sequential pass, no
scatter), one packed-key ``sort`` for quantiles. No Python loop per group,
but for the quantiles of few, large groups (whole sessions of thousands of
events), which are selected one group at a time instead of sorted.

Values may be masked: a row whose mask is False does not count, and a group
with no counted row gets ``fill``, so that results are always finite.
Masked-out rows are multiplied by zero in sums, so they must hold finite values.
"""

from __future__ import annotations

import numpy as np

from mouse_pipeline.cpu import numpy_sort_is_fast


def _sortable_bits(values: np.ndarray) -> np.ndarray:
    """Order-preserving map of float32 values to uint32 (IEEE-754 sign trick)."""
    bits = values.astype(np.float32).view(np.uint32)
    negative = (bits >> 31).astype(bool)
    return np.where(negative, ~bits, bits | np.uint32(0x80000000))


def _float_from_bits(bits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_sortable_bits`, as float64."""
    bits = bits.astype(np.uint32)
    was_negative = (bits >> 31) == 0
    raw = np.where(was_negative, ~bits, bits & np.uint32(0x7FFFFFFF))
    return raw.view(np.float32).astype(np.float64)


def previous(values: np.ndarray, fill) -> np.ndarray:
    """``values`` shifted one row down: row i holds row i-1's value, row 0 holds ``fill``."""
    out = np.empty_like(values)
    if len(values):
        out[0] = fill
        out[1:] = values[:-1]
    return out


def following(values: np.ndarray, fill) -> np.ndarray:
    """``values`` shifted one row up: row i holds row i+1's value, the last row holds ``fill``."""
    out = np.empty_like(values)
    if len(values):
        out[-1] = fill
        out[:-1] = values[1:]
    return out


def step(values: np.ndarray) -> np.ndarray:
    """Difference from the previous row as float64 (0 for the first row); one allocation, one pass."""
    out = np.empty(len(values), dtype=np.float64)
    if len(values):
        out[0] = 0.0
        np.subtract(values[1:], values[:-1], out=out[1:])
    return out


def same_as_previous(ids: np.ndarray) -> np.ndarray:
    """Boolean per row: does it have the previous row's id? (False for the first row.)"""
    out = np.zeros(len(ids), dtype=bool)
    if len(ids):
        np.equal(ids[1:], ids[:-1], out=out[1:])
    return out


_LOW32 = np.uint64(0xFFFFFFFF)
#: :meth:`Groups.quantiles` selects order statistics group by group (rather than sorting every
#: value) when groups hold at least this many rows on average: then the per-group Python step
#: costs less than the sort it saves.
_SELECT_GROUP_ROWS = 2048


def _linear_ranks(q: float | np.ndarray, size: int | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's linear interpolation for quantile level(s) ``q`` of ``size`` sorted values (either may
    be an array): the ranks below and above, and the weight of the one above."""
    pos = q * (size - 1)
    lo = np.floor(pos).astype(np.int64)
    return lo, np.minimum(lo + 1, size - 1), pos - lo


_COUNTED_BELOW = 1 << 16  # whole numbers below this are counted, not compared (time gaps in ms)


def _select(values: np.ndarray, qs: tuple[float, ...], fill: float) -> np.ndarray:
    """Quantiles of one group's float32 values with linear interpolation, by partial selection."""
    size = len(values)
    if size == 0:
        return np.full(len(qs), fill, dtype=np.float64)
    lo, hi, frac = _linear_ranks(np.asarray(qs, dtype=np.float64), size)
    ranks = np.unique(np.r_[lo, hi])
    at = _order_statistics(values, ranks)
    below, above = at[np.searchsorted(ranks, lo)], at[np.searchsorted(ranks, hi)]
    return below.astype(np.float64) * (1 - frac) + above.astype(np.float64) * frac


def _order_statistics(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The values at ``ranks`` (ascending) of ``values`` in sorted order.

    Whole numbers of a small range (time gaps in milliseconds: many ties, which
    slow a selection down) are counted instead: a ``bincount`` and its running
    total give the value at each rank. Anything else, and the few large values
    beside the counted ones, are ranked by ``np.partition``.
    """
    if len(values) >= _COUNTED_BELOW // 16 and values.min() >= 0:
        small = values < _COUNTED_BELOW
        counted = values[small] if not small.all() else values
        whole = counted.astype(np.int64)
        if (whole == counted).all():
            running = np.cumsum(np.bincount(whole))  # running[j]: how many counted values are <= j
            out = np.empty(len(ranks), dtype=values.dtype)
            inside = ranks < len(whole)
            out[inside] = np.searchsorted(running, ranks[inside], side="right")
            if not inside.all():  # ranks among the large values, above every counted one
                large = values[~small]
                beyond = ranks[~inside] - len(whole)
                out[~inside] = np.partition(large, beyond)[beyond]
            return out
    return np.partition(values, ranks)[ranks]


def _pick_quantiles(keys: np.ndarray, size: np.ndarray, qs: tuple[float, ...], out: np.ndarray,
                    shift: int = 0) -> None:
    """Fill ``out`` (groups x len(qs)) from sorted keys of group-major runs of ``size`` values.

    The value bits of a key sit ``shift`` bits above its lowest bit.
    """
    present = size > 0
    first = (np.cumsum(size) - size)[present]
    size = size[present]
    for j, q in enumerate(qs):  # one vectorised pass per quantile level, not per group
        lo, hi, frac = _linear_ranks(q, size)
        below = _float_from_bits((keys[first + lo] >> np.uint64(shift)) & _LOW32)  # decode only what is used
        above = _float_from_bits((keys[first + hi] >> np.uint64(shift)) & _LOW32)
        out[present, j] = below * (1 - frac) + above * frac


class Groups:
    """Contiguous groups of rows: ``ids`` (non-decreasing ints) and their number ``n``.

    Group boundaries are found once, then shared by every reduction.
    """

    def __init__(self, ids: np.ndarray, n: int, starts: np.ndarray | None = None):
        """``starts`` (the first row of each group, when every group has rows) may be given when known."""
        self.ids = ids
        self.n = n
        self.starts = np.searchsorted(ids, np.arange(n), side="left") if starts is None else starts
        self.sizes = np.diff(np.r_[self.starts, len(ids)])
        self.present = self.sizes > 0
        self._present_starts = self.starts[self.present]
        self._all_present = bool(self.present.all())

    def _reduce(self, ufunc: np.ufunc, values: np.ndarray, empty: float) -> np.ndarray:
        if self._all_present and self.n:
            return ufunc.reduceat(values, self.starts).astype(np.float64, copy=False)
        out = np.full((self.n, *values.shape[1:]), empty, dtype=np.float64)
        if len(self._present_starts):
            out[self.present] = ufunc.reduceat(values, self._present_starts)
        return out

    def count(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Number of (masked) rows per group, as float64."""
        if mask is None:
            return self.sizes.astype(np.float64)
        out = np.zeros(self.n, dtype=np.float64)
        if len(self._present_starts):  # sum the booleans as bytes: no float copy of the mask
            out[self.present] = np.add.reduceat(mask.view(np.int8), self._present_starts, dtype=np.int64)
        return out

    def total(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Sum of (masked) values per group; 0 for an empty group.

        ``values`` may be 2-D (rows x columns, one mask for all columns): the
        result is then groups x columns.
        """
        if mask is not None:
            values = values * (mask if values.ndim == 1 else mask[:, None])
        return self._reduce(np.add, values, 0.0)

    def mean(self, values: np.ndarray, mask: np.ndarray | None = None, fill: float = 0.0) -> np.ndarray:
        """Mean of (masked) values per group; ``fill`` for an empty group."""
        n = self.count(mask)
        return np.where(n > 0, self.total(values, mask) / np.maximum(n, 1.0), fill)

    def moments(
        self, values: np.ndarray, mask: np.ndarray | None = None, fill: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population standard deviation per group.

        The variance is the mean squared deviation from the group mean
        (two-pass), which stays accurate for values far from zero.
        """
        n = self.count(mask)
        if values.ndim == 2:
            n = n[:, None]
        has = n > 0
        safe_n = np.maximum(n, 1.0)
        m = self.total(values, mask) / safe_n
        dev = values - np.repeat(m, self.sizes, axis=0)
        dev *= dev
        var = self.total(dev, mask) / safe_n
        return np.where(has, m, fill), np.where(has, np.sqrt(np.maximum(var, 0.0)), fill)

    def extreme(
        self, values: np.ndarray, mask: np.ndarray | None = None, fill: float = 0.0, largest: bool = True
    ) -> np.ndarray:
        """Maximum (or minimum) of (masked) values per group; ``fill`` for an empty group."""
        sentinel = -np.inf if largest else np.inf
        v = values if mask is None else np.where(mask, values, sentinel)
        out = self._reduce(np.maximum if largest else np.minimum, v, sentinel)
        return np.where(np.isfinite(out), out, fill)

    def first(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Value of the first row of each group; ``fill`` for an empty group."""
        out = np.full(self.n, fill, dtype=np.float64)
        out[self.present] = values[self._present_starts]
        return out

    def broadcast(self, per_group: np.ndarray) -> np.ndarray:
        """Repeat one value per group onto the group's rows."""
        return np.repeat(per_group, self.sizes)

    def quantiles(
        self, values: np.ndarray, qs: tuple[float, ...], mask: np.ndarray | None = None, fill: float = 0.0,
        subset: np.ndarray | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Quantiles per group with linear interpolation (numpy's default method).

        Values are ranked at float32 precision (about 7 significant digits):
        each (group, value) pair is packed into one uint64 key, so a single
        ``np.sort`` (no permutation) orders every group at once, many times
        faster than a two-key ``lexsort``. The sort is numpy's SIMD quicksort
        where it is fast (:func:`mouse_pipeline.cpu.numpy_sort_is_fast`), else
        its stable one (radix/timsort), several times faster than a scalar
        quicksort on such group-major keys; equal keys are equal values, so
        both give the same array. For few, large groups (whole sessions), the
        order statistics are selected group by group instead (no full sort).
        Results do not depend on the other groups present.

        ``values`` may be 2-D (rows x columns, one mask for all columns): all
        columns then share one sort. ``subset`` (1-D values only), a mask of
        rows within ``mask``, asks for the quantiles of those rows too, from
        the same sort: a flag bit below the value bits marks them, and in
        sorted order they are already grouped and ranked.

        Returns an array of shape ``(n, len(qs))`` (``(n, columns, len(qs))``
        for 2-D values); ``fill`` for an empty group. With ``subset``, a pair:
        the quantiles of the masked rows and those of the subset.
        """
        if len(self.ids) >= _SELECT_GROUP_ROWS * max(self.n, 1):
            return self._selected_quantiles(values, qs, mask, fill, subset)
        if self.n >= 2**31:
            raise ValueError("too many groups for packed-key quantiles")
        two_d = values.ndim == 2
        columns = values.shape[1] if two_d else 1
        out = np.full((self.n * columns, len(qs)), fill, dtype=np.float64)
        ids = self.ids if mask is None else self.ids[mask]
        if mask is not None:
            values = values[mask]
        size = self.count(mask).astype(np.int64)
        if two_d:  # column j's groups are numbered j*n .. j*n + n-1
            ids = (ids[None, :] + (np.arange(columns) * self.n)[:, None]).ravel()
            values = values.T.ravel()
            size = np.tile(size, columns)
        shift = 0 if subset is None else 1
        keys = (ids.astype(np.uint64) << np.uint64(32 + shift)) | (_sortable_bits(values).astype(np.uint64)
                                                                    << np.uint64(shift))
        if subset is not None:
            keys |= (subset if mask is None else subset[mask]).astype(np.uint64)
        keys.sort(kind=None if numpy_sort_is_fast() else "stable")  # equal keys are equal values: same result
        _pick_quantiles(keys, size, qs, out, shift)
        if two_d:
            out = out.reshape(columns, self.n, len(qs)).transpose(1, 0, 2)
        if subset is None:
            return out
        inner = np.full((self.n, len(qs)), fill, dtype=np.float64)
        _pick_quantiles(keys[(keys & np.uint64(1)).astype(bool)], self.count(subset).astype(np.int64), qs, inner, 1)
        return out, inner

    def _selected_quantiles(
        self, values: np.ndarray, qs: tuple[float, ...], mask: np.ndarray | None, fill: float,
        subset: np.ndarray | None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """:meth:`quantiles` for few, large groups: per group, ``np.partition`` finds just the order
        statistics the levels need (linear time) instead of sorting every value. The same float32
        values are ranked, so the results equal the sort's; only the sign of a zero may differ
        (the sort puts -0.0 before +0.0, selection holds them equal), and NaN, which feature
        values never are, would rank last here but first in the sort when its sign bit is set."""
        two_d = values.ndim == 2
        v32 = values.astype(np.float32)
        if not two_d:
            v32 = v32[:, None]
        out = np.full((self.n, v32.shape[1], len(qs)), fill, dtype=np.float64)
        inner = np.full((self.n, len(qs)), fill, dtype=np.float64) if subset is not None else None
        for k in np.flatnonzero(self.present):  # one Python step per group, each group large
            rows = slice(self.starts[k], self.starts[k] + self.sizes[k])
            group = v32[rows] if mask is None else v32[rows][mask[rows]]
            for j in range(group.shape[1]):
                out[k, j] = _select(group[:, j], qs, fill)
            if inner is not None:
                chosen = subset[rows] if mask is None else subset[rows][mask[rows]]
                inner[k] = _select(group[chosen, 0], qs, fill)
        out = out if two_d else out[:, 0]
        return out if inner is None else (out, inner)
