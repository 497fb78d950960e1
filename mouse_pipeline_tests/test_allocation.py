"""The allocator settings that importing ``mouse_pipeline`` makes, each in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mouse_pipeline import allocation

#: Environment variables that make a user's choice: none of them is passed on unless a test sets it.
_CHOICES = ("NUMPY_MADVISE_HUGEPAGE", *allocation.MIMALLOC_OPTIONS, "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "ARROW_DEFAULT_MEMORY_POOL", "MIMALLOC_VERBOSE")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in _CHOICES}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True)


def _pool() -> str:
    return _python("import pyarrow as pa; print(pa.default_memory_pool().backend_name)").stdout.strip()


def test_mimalloc_reads_the_packages_options_when_pyarrow_loads_after_it_unless_the_user_chose():
    if _pool() != "mimalloc":
        pytest.skip("pyarrow's default pool is not mimalloc here")
    probe = "import mouse_pipeline, pyarrow as pa\npa.array([1, 2, 3])"
    # mimalloc itself reports the options it read when pyarrow loaded.
    verbose = _python(probe, MIMALLOC_VERBOSE="1").stderr
    assert "option 'allow_thp': 0" in verbose and "option 'purge_delay': 10000" in verbose
    chosen = _python(probe, MIMALLOC_VERBOSE="1", MIMALLOC_PURGE_DELAY="250").stderr
    assert "option 'purge_delay': 250" in chosen and "option 'allow_thp': 0" in chosen
    # pyarrow first: too late for this process, and said so.
    late = _python("import pyarrow, json, mouse_pipeline.allocation as a\nprint(json.dumps(a.configure()))")
    assert json.loads(late.stdout)["mimalloc_in_this_process"] is False


@pytest.mark.skipif(not allocation.is_glibc() or "LD_PRELOAD" in os.environ,
                    reason="glibc's own malloc only")
def test_freed_arrays_stay_with_the_process_for_the_next_ones_unless_the_user_chose():
    # 24 MB of numpy array, touched then freed: glibc maps it apart and unmaps it on free by default
    # (the resident memory drops); with the package's settings it stays in the heap for the next array.
    probe = ("import mouse_pipeline, numpy as np, os\n"
             "page = os.sysconf('SC_PAGE_SIZE')\n"
             "def resident():\n"
             "    return int(open('/proc/self/statm').read().split()[1]) * page\n"
             "a = np.ones(3_000_000)\n"
             "before = resident()\n"
             "del a\n"
             "print((before - resident()) // (1 << 20))")
    assert int(_python(probe).stdout) < 2
    assert int(_python(probe, MALLOC_TRIM_THRESHOLD_="131072", MALLOC_MMAP_THRESHOLD_="131072").stdout) >= 20


def test_configure_reports_what_it_set_and_leaves_the_users_choices(monkeypatch):
    for name in _CHOICES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MIMALLOC_PURGE_DELAY", "5")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    done = allocation.configure()
    assert done == {"mimalloc": {"MIMALLOC_ALLOW_THP": "0"}, "mimalloc_in_this_process": False,
                    "numpy_small_pages": False, "glibc_keeps_freed_memory": False}
    assert os.environ["MIMALLOC_PURGE_DELAY"] == "5" and os.environ["MIMALLOC_ALLOW_THP"] == "0"


def test_glibc_thresholds_count_as_chosen_only_when_set(monkeypatch):
    for name in _CHOICES:
        monkeypatch.delenv(name, raising=False)
    assert not allocation.glibc_thresholds_chosen()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert not allocation.glibc_thresholds_chosen()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=1")
    assert allocation.glibc_thresholds_chosen()


@pytest.mark.skipif(not allocation.is_glibc(), reason="glibc only")
def test_the_package_applies_glibcs_settings_in_a_fresh_process():
    probe = "import json, mouse_pipeline.allocation as a\nprint(json.dumps(a.keep_freed_memory_for_numpy()))"
    assert json.loads(_python(probe).stdout) is True
    assert json.loads(_python(probe, MALLOC_TRIM_THRESHOLD_="131072").stdout) is False
