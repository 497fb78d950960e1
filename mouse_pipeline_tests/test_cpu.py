"""numpy's sort kernels: the Zen 4 switch, and the same results by either sorting route."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import cpu
from mouse_pipeline.features import grouped, segments
from mouse_pipeline.features.grouped import Groups
from mouse_pipeline.features.segments import sort_uint64
from mouse_pipeline.ingest import read_events

ZEN4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nflags\t\t: fpu avx2 avx512f avx512bw\n"


@pytest.mark.parametrize("cpuinfo, zen4", [
    (ZEN4 + "\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n", True),
    (ZEN4.replace(" avx512f avx512bw", ""), False),  # Zen 3: family 25 without AVX-512
    (ZEN4.replace(": 25", ": 26"), False),  # Zen 5 stores compressed vectors quickly
    (ZEN4.replace("AuthenticAMD", "GenuineIntel").replace(": 25", ": 6"), False),
    ("", False),
])
def test_zen4_is_recognised_from_cpuinfo(cpuinfo, zen4):
    assert cpu.describes_zen4(cpuinfo) is zen4


def _numpy_features_after_import(env: dict[str, str]) -> str:
    code = ("import mouse_pipeline, os; from mouse_pipeline.cpu import numpy_sort_is_fast; "
            "print(os.environ.get('NPY_DISABLE_CPU_FEATURES'), numpy_sort_is_fast())")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NPY_")}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def test_importing_the_pipeline_picks_numpys_avx2_sort_on_a_zen4_only_unless_the_user_chose():
    expected = cpu.AVX512_GROUPS if cpu.is_amd_zen4() and cpu._numpy_names_groups() else "None"
    disabled, fast = _numpy_features_after_import({}).rsplit(" ", 1)
    assert disabled == expected
    if expected != "None":
        assert fast == "True"  # the AVX2 kernel is the quick one
    assert _numpy_features_after_import({"NPY_ENABLE_CPU_FEATURES": ""}).startswith("None ")


@pytest.fixture(params=[True, False], ids=["numpy-sort", "radix-then-merge"])
def sort_route(request, monkeypatch):
    monkeypatch.setattr(segments, "numpy_sort_is_fast", lambda: request.param)
    monkeypatch.setattr(grouped, "numpy_sort_is_fast", lambda: request.param)
    return request.param


def test_either_sorting_route_gives_the_same_sorted_keys_and_quantiles(sort_route):
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 2**62, 200_000, dtype=np.uint64)
    keys[::3] = keys[0]  # ties
    np.testing.assert_array_equal(sort_uint64(keys), np.sort(keys))
    ids = np.repeat(np.arange(400), 50)
    values = rng.normal(size=len(ids))
    got = Groups(ids, 400).quantiles(values, (0.1, 0.5, 0.9))
    expected = [np.quantile(values[ids == k].astype(np.float32).astype(np.float64), (0.1, 0.5, 0.9))
                for k in range(400)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_either_sorting_route_ingests_a_shuffled_file_to_the_same_events(sort_route, tmp_path):
    rng = np.random.default_rng(9)
    n = 120_000  # above the size where the routes differ
    frame = pd.DataFrame({
        "uid": [f"u{i:07d}" for i in range(n)],
        "session_id": rng.choice([f"s{k}" for k in range(7)], n),
        "user_id": "-2416201405296648384",
        "timestamp": 1_655_000_000_000 + rng.integers(0, 3_600_000, n),
        "event_type": rng.choice([1, 2, 3, 4, 5], n),
        "screen_x": rng.integers(0, 1920, n).astype(float),
        "screen_y": rng.integers(0, 1080, n).astype(float),
    })
    frame.loc[5, "uid"] = frame.loc[4, "uid"]  # a reused uid, found through the sorted hashes
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    result = read_events(path, labelled=True)
    expected = frame.drop(index=5).sort_values(["session_id", "timestamp"], kind="stable")
    assert result.rows_rejected == 1 and "duplicate uid" in result.rejected["reason"].iloc[0]
    np.testing.assert_array_equal(result.events["source_line"].to_numpy(), expected.index.to_numpy() + 2)
