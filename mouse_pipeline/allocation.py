"""How this process's allocators hand out memory: set once, when ``mouse_pipeline`` is imported.

Ingestion and features allocate hundreds of MB of fresh arrays per million
events, and on a virtual machine fresh memory is dear: each page the process
touches for the first time is a page fault, and the host may have to back it
again (about 0.4 to 0.5 s of kernel time per GB on the 2-core VM the
benchmarks run on, a fifth to a third of the slice's CPU time). Two allocators
are at work:

* numpy's arrays come from the C library's ``malloc`` (glibc on Linux);
* Arrow's buffers (the CSV reader, Arrow compute, the events frame's strings)
  come from pyarrow's default pool, mimalloc on Linux.

By default both ask the kernel for transparent huge pages and both hand
freed memory back to the kernel within moments, so that the next stage faults
it in again. :func:`configure` asks them instead for ordinary pages and to
keep freed memory for reuse:

* numpy: no huge-page requests (:func:`small_pages_for_numpy`);
* mimalloc: no huge pages, and freed memory kept 10 s before it is returned
  (``MIMALLOC_ALLOW_THP=0``, ``MIMALLOC_PURGE_DELAY=10000``,
  :func:`arrow_allocator_options`);
* glibc (64-bit): blocks up to 32 MB (a column of 4 million 64-bit values)
  come from the heap rather than from a mapping of their own, and up to
  256 MB of freed heap is kept (``mallopt``, :func:`keep_freed_memory_for_numpy`).
  A long-lived process that imports the package (a Spark worker, say) may so
  hold up to 256 MB it no longer uses, for its next arrays.

Each setting yields to the user's own choice: ``NUMPY_MADVISE_HUGEPAGE``,
``MIMALLOC_ALLOW_THP``, ``MIMALLOC_PURGE_DELAY``, or glibc's thresholds
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, or a
``glibc.malloc.mmap_threshold`` or ``glibc.malloc.trim_threshold`` entry of
``GLIBC_TUNABLES``) in the environment leaves that allocator as the user set
it. What they
bought, measured with ``python -m benchmarks.pipeline_benchmark`` (whose
first line reports the settings), is in the README.

mimalloc reads its options when pyarrow's library loads, so its options take
effect only when ``mouse_pipeline`` is imported before ``pyarrow`` (and
before ``pandas``, which imports it), as the Dagster code location and the
benchmarks do; imported later, they reach only the processes this one starts
(:func:`configure` says which). The other settings apply from the moment they
are made.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

#: mimalloc's options as this package sets them (environment variables, read when pyarrow loads).
MIMALLOC_OPTIONS: dict[str, str] = {"MIMALLOC_ALLOW_THP": "0", "MIMALLOC_PURGE_DELAY": "10000"}
#: glibc ``mallopt`` parameters: their numbers in ``<malloc.h>``, and the values set.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for it on 64-bit systems
TRIM_THRESHOLD = 256 << 20


def small_pages_for_numpy() -> bool:
    """Ask numpy not to request transparent huge pages for its large arrays; True if set here.

    Where the kernel defragments memory for huge pages on request (the common
    ``madvise`` setting of ``/sys/kernel/mm/transparent_hugepage/defrag``),
    every fresh array of a few MB can stall while the kernel compacts memory:
    ingestion of 2 million events spent more time in the kernel than in its
    own code, and ran about 20% slower in a fresh process. The pipeline's
    arrays are written once and read a few times, where huge pages gain little.
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        try:  # numpy 1.x
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:  # another numpy: its default stays
            return False
    try:
        _set_madvise_hugepage(False)
    except (TypeError, ValueError, RuntimeError):  # a numpy whose private switch changed: its default stays
        return False
    return True


def arrow_allocator_options() -> dict[str, str]:
    """Set mimalloc's options (:data:`MIMALLOC_OPTIONS`) that the user has not set; returns those set.

    * No transparent huge pages: mimalloc 3 asks for them by default. On a VM
      whose host takes back the guest's free memory (free page reporting hands
      it whole free huge pages), every fresh huge page is faulted in again on
      the host: the slice of the pipeline benchmark took 1.51 s with ordinary
      pages and 1.92 s with huge pages (medians of 6 alternating runs in fresh
      processes).
    * Freed memory is kept 10 s (mimalloc's default: 1 s) so that the next
      stage reuses it instead of faulting in more.
    """
    chosen = {name: value for name, value in MIMALLOC_OPTIONS.items() if name not in os.environ}
    os.environ.update(chosen)
    return chosen


def is_glibc() -> bool:
    """Is this a Linux process on glibc (whose ``mallopt`` the settings use)?"""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def glibc_thresholds_chosen() -> bool:
    """Has the user set glibc's mmap or trim threshold in the environment?"""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return ("MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ
            or "glibc.malloc.mmap_threshold" in tunables or "glibc.malloc.trim_threshold" in tunables)


def keep_freed_memory_for_numpy() -> bool:
    """Ask glibc's ``malloc`` to keep freed memory for the next arrays; True if both settings were made.

    glibc maps every block from 128 kB up (more once it has seen large blocks
    freed) to a mapping of its own and unmaps it when it is freed, and returns
    the top of the heap to the kernel beyond 128 kB free: each stage's arrays
    are then faulted in afresh. Here blocks up to :data:`MMAP_THRESHOLD` come
    from the heap, and up to :data:`TRIM_THRESHOLD` of freed heap is kept. Does
    nothing but on glibc, or where the user set glibc's thresholds
    (:func:`glibc_thresholds_chosen`).
    """
    if glibc_thresholds_chosen() or not is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mapped = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1  # 0 where out of range (a 32-bit glibc)
    kept = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mapped and kept


def configure() -> dict[str, object]:
    """Apply every setting of this module (each unless the user chose); returns what was set.

    ``mimalloc`` holds the options set in the environment, ``mimalloc_in_this_process`` whether
    they reach this process's allocator (pyarrow not loaded yet) rather than only the processes it
    starts.
    """
    in_this_process = "pyarrow" not in sys.modules
    return {"mimalloc": arrow_allocator_options(), "mimalloc_in_this_process": in_this_process,
            "numpy_small_pages": small_pages_for_numpy(), "glibc_keeps_freed_memory": keep_freed_memory_for_numpy()}
