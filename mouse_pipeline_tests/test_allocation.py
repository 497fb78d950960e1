"""The allocator settings that importing ``mouse_pipeline`` makes, each in a fresh interpreter."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from mouse_pipeline import allocation

#: Environment variables that make a user's choice: none of them is passed on unless a test sets it.
_CHOICES = ("NUMPY_MADVISE_HUGEPAGE", *allocation.MIMALLOC_OPTIONS, "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "ARROW_DEFAULT_MEMORY_POOL")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in _CHOICES}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True)


def test_mimalloc_options_are_set_before_pyarrow_loads_unless_the_user_chose():
    probe = ("import mouse_pipeline, os, pyarrow as pa\n"
             "pa.array([1, 2, 3])\n"
             "print(pa.default_memory_pool().backend_name, os.environ['MIMALLOC_ALLOW_THP'],"
             " os.environ['MIMALLOC_PURGE_DELAY'])")
    backend, thp, delay = _python(probe, MIMALLOC_VERBOSE="1").stdout.split()
    assert (thp, delay) == ("0", "10000")
    chosen = _python(probe, MIMALLOC_PURGE_DELAY="250")
    assert chosen.stdout.split()[1:] == ["0", "250"]
    if backend == "mimalloc":  # mimalloc itself reports the options it read when pyarrow loaded
        verbose = _python(probe, MIMALLOC_VERBOSE="1").stderr
        assert "option 'allow_thp': 0" in verbose and "option 'purge_delay': 10000" in verbose
        assert "option 'purge_delay': 250" in _python(probe, MIMALLOC_VERBOSE="1", MIMALLOC_PURGE_DELAY="250").stderr


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_arrays_stay_with_the_process_for_the_next_ones_unless_the_user_chose():
    # 16 MB of numpy array, touched then freed: glibc maps it apart and unmaps it on free by default
    # (the resident memory drops); with the package's settings it stays in the heap for the next array.
    probe = ("import mouse_pipeline, numpy as np, os\n"
             "page = os.sysconf('SC_PAGE_SIZE')\n"
             "def resident():\n"
             "    return int(open('/proc/self/statm').read().split()[1]) * page\n"
             "a = np.ones(2_000_000)\n"
             "before = resident()\n"
             "del a\n"
             "print((before - resident()) // (1 << 20))")
    assert int(_python(probe).stdout) < 2
    assert int(_python(probe, MALLOC_TRIM_THRESHOLD_="131072", MALLOC_MMAP_THRESHOLD_="131072").stdout) >= 14


def test_configure_reports_what_it_set_and_leaves_the_users_choices(monkeypatch):
    for name in _CHOICES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MIMALLOC_PURGE_DELAY", "5")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    done = allocation.configure()
    assert done == {"mimalloc": {"MIMALLOC_ALLOW_THP": "0"}, "numpy_small_pages": False,
                    "glibc_keeps_freed_memory": False}
    assert os.environ["MIMALLOC_PURGE_DELAY"] == "5"
