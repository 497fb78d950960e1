"""Which of numpy's sorts is quick on this processor.

numpy sorts 64-bit numbers with SIMD kernels: AVX-512 (numpy 1.25 and later)
or AVX2 (2.0 and later) on x86, Highway's on 64-bit Arm (2.0 and later).
Elsewhere ``np.sort`` is a scalar quicksort. So is, in effect, the AVX-512
kernel on an AMD Zen 4 (family 25 with AVX-512). It writes each partition with
the memory form of ``vpcompress``, which Zen 4 runs in microcode. There,
``np.sort`` of 2 million uint64 keys takes about 0.11 s, against 0.024 s with
the AVX2 kernel. This is a known issue: numpy/x86-simd-sort#6 and
numpy/numpy#32690.

:func:`numpy_sort_is_fast` tells the sorting code whether ``np.sort`` is
quick in this process. If it is not,
:func:`mouse_pipeline.features.segments.sort_uint64` takes a
radix-then-merge route, about 1.5 times faster than a scalar quicksort. Both
routes give the same sorted values, so results never depend on the choice.

The package does not change numpy's kernels. numpy picks them once, when it
is imported, and ``NPY_DISABLE_CPU_FEATURES`` can turn its AVX-512 kernels
off (:data:`AVX512_GROUPS`). That also changes numpy's float64 ``exp``,
``log``, ``log1p`` and ``arctan2`` by an ulp in some values, and so the
features. On a Zen 4 it is therefore an opt-in that the README describes.
"""

from __future__ import annotations

import platform
from functools import lru_cache

#: numpy's names (2.4 and later) of its AVX-512 kernel groups, for ``NPY_DISABLE_CPU_FEATURES``.
AVX512_GROUPS = "X86_V4 AVX512_ICL AVX512_SPR"


@lru_cache(maxsize=1)
def is_amd_zen4() -> bool:
    """Is this (Linux) machine's processor an AMD Zen 4? See :func:`describes_zen4`."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            return describes_zen4(handle.read(1 << 16))
    except OSError:
        return False


def describes_zen4(cpuinfo: str) -> bool:
    """Does ``/proc/cpuinfo`` text describe an AMD processor of family 25 (Zen 3 and Zen 4) with
    AVX-512, which only Zen 4 has? The first processor's entry is read."""
    first = cpuinfo.split("\n\n", 1)[0]
    fields = {key.strip(): value.strip() for key, value in
              (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    return (fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
            and "avx512f" in fields.get("flags", "").split())


def sort_is_fast(features: dict[str, bool], numpy_version: tuple[int, int], machine: str, zen4: bool) -> bool:
    """Is ``np.sort`` of 64-bit numbers a quick SIMD sort, given numpy's runtime CPU ``features``
    (its ``__cpu_features__``: a disabled kernel reads False), numpy's version, the machine
    (``platform.machine()``) and whether the processor is a Zen 4?"""
    if machine.lower() in ("x86_64", "amd64"):
        if features.get("AVX512_SKX"):  # numpy dispatches to its AVX-512 sort
            return numpy_version >= (1, 25) and not zen4
        return numpy_version >= (2, 0) and bool(features.get("AVX2"))
    if machine.lower() in ("aarch64", "arm64"):
        return numpy_version >= (2, 0) and bool(features.get("ASIMD"))
    return False


@lru_cache(maxsize=1)
def numpy_sort_is_fast() -> bool:
    """:func:`sort_is_fast` for the numpy of this process."""
    import numpy as np

    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:  # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    try:
        version = tuple(int(part) for part in np.__version__.split(".")[:2])
    except ValueError:
        return False
    return sort_is_fast(dict(features), version, platform.machine(), is_amd_zen4())
