"""Which numpy sort is quick: the processor and numpy facts, and the same results by either sorting route."""

from __future__ import annotations

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


AVX512 = {"AVX2": True, "AVX512_SKX": True}
AVX2 = {"AVX2": True, "AVX512_SKX": False}  # no AVX-512, or its kernels turned off


@pytest.mark.parametrize("features, version, machine, zen4, fast", [
    (AVX512, (2, 4), "x86_64", False, True),  # Intel, or AMD Zen 5
    (AVX512, (2, 4), "x86_64", True, False),  # Zen 4: the AVX-512 kernel runs in microcode
    (AVX2, (2, 4), "x86_64", True, True),  # Zen 4 with NPY_DISABLE_CPU_FEATURES set
    (AVX2, (1, 26), "x86_64", False, False),  # numpy 1.x has no AVX2 sort
    (AVX512, (1, 24), "x86_64", False, False),  # nor did it have an AVX-512 one before 1.25
    ({"AVX2": False, "AVX512_SKX": False}, (2, 4), "x86_64", False, False),
    ({"ASIMD": True}, (2, 1), "aarch64", False, True),
    ({"ASIMD": True}, (1, 26), "aarch64", False, False),
    ({}, (2, 4), "ppc64le", False, False),
])
def test_the_quick_sort_is_chosen_by_processor_kernels_and_numpy_version(features, version, machine, zen4, fast):
    assert cpu.sort_is_fast(features, version, machine, zen4) is fast


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
