"""Which of numpy's sorts is fast on this processor.

numpy sorts 64-bit and 32-bit numbers with SIMD kernels (AVX2 or AVX-512).
Its AVX-512 kernel writes each partition with the memory form of the
``vpcompress`` instruction, which AMD's Zen 4 processors (family 25 with
AVX-512) run in microcode: there, ``np.sort`` of 2 million uint64 keys takes
about 0.11 s with the AVX-512 kernel and 0.024 s with the AVX2 one (a known
issue: numpy/x86-simd-sort#6, numpy/numpy#32690). numpy picks its kernels
once, when it is imported, from ``NPY_DISABLE_CPU_FEATURES``; so
:func:`prefer_avx2_sort` asks for the AVX2 kernels on a Zen 4 before numpy is
imported (``mouse_pipeline`` calls it first thing), unless the user chose
(``NPY_DISABLE_CPU_FEATURES`` or ``NPY_ENABLE_CPU_FEATURES`` set) or numpy is
already loaded. Zen 4 runs AVX-512 arithmetic as two AVX2 halves, so the
other kernels lose nothing that the slice benchmark can see.

:func:`numpy_sort_is_fast` tells the sorting code whether ``np.sort`` is the
quick SIMD one in this process, or whether a radix-then-merge route is
quicker (:func:`mouse_pipeline.features.segments.sort_uint64`). Both give the
same sorted values, so results never depend on the choice.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from importlib import metadata

#: numpy's names (2.4 and later) of the AVX-512 kernel groups it dispatches to.
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


def _numpy_names_groups() -> bool:
    """Does the installed numpy (not imported) name its x86 kernels by groups (2.4 and later)?"""
    try:
        major, minor = (int(part) for part in metadata.version("numpy").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (2, 4)


def prefer_avx2_sort() -> bool:
    """Ask numpy, not yet imported, for its AVX2 kernels on a Zen 4; True if it was asked."""
    if "numpy" in sys.modules or "NPY_DISABLE_CPU_FEATURES" in os.environ or "NPY_ENABLE_CPU_FEATURES" in os.environ:
        return False
    if not (is_amd_zen4() and _numpy_names_groups()):
        return False
    os.environ["NPY_DISABLE_CPU_FEATURES"] = AVX512_GROUPS  # inherited by Dagster's run and step processes
    return True


@lru_cache(maxsize=1)
def numpy_sort_is_fast() -> bool:
    """Is ``np.sort`` of 64-bit numbers a SIMD sort here, other than the AVX-512 one on a Zen 4?"""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:  # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    avx512 = bool(features.get("AVX512_SKX"))
    if avx512:
        return not is_amd_zen4()
    return bool(features.get("AVX2"))
