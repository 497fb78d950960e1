"""Features on tiny hand-computed paths, edge cases, windows, and the real data."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from mouse_pipeline import contract as c
from mouse_pipeline.features import NOTEBOOK_FEATURES, FeatureConfig, extract_features, feature_columns
from mouse_pipeline.features.actions import DRAG, MOVE, POINT_CLICK, action_starts, measure_actions
from mouse_pipeline.ingest import read_events

T0 = 1_655_000_000_000


def session(points, session_id="s", user="u", reverse=True):
    """Events of one session from (t_ms, code, x, y) tuples, reversed (real files are
    not in time order) unless ``reverse`` is False."""
    rows = pd.DataFrame(points, columns=["t", "code", "x", "y"])
    frame = pd.DataFrame(
        {
            c.UID: [f"{session_id}-{i}" for i in range(len(rows))],
            c.SESSION_ID: session_id,
            c.USER_ID: user,
            c.TIMESTAMP: T0 + rows["t"].astype(np.int64),
            c.EVENT_TYPE: rows["code"].astype(np.int8),
            c.SCREEN_X: rows["x"].astype(float),
            c.SCREEN_Y: rows["y"].astype(float),
        }
    )
    return frame.iloc[::-1].reset_index(drop=True) if reverse else frame


def one_row(points, reverse=True, **config):
    table = extract_features(session(points, reverse=reverse), FeatureConfig(**config))
    assert len(table) == 1
    values = table[feature_columns(table)].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    return table.iloc[0]


def test_straight_line_at_constant_speed():
    row = one_row([(10 * i, 2, 10 * i, 0) for i in range(11)])  # 10 px every 10 ms
    assert row["speed_q50"] == pytest.approx(1000.0)  # px/s
    assert row["speed_std"] == pytest.approx(0.0, abs=1e-9)
    assert row["vx_mean"] == pytest.approx(1000.0)
    assert row["vy_mean"] == pytest.approx(0.0)
    assert row["accel_mean"] == pytest.approx(0.0, abs=1e-9)
    assert row["curvature_mean"] == pytest.approx(0.0)
    assert row["action_straightness_mean"] == pytest.approx(1.0)
    assert row["action_path_length_mean"] == pytest.approx(100.0)
    assert row["action_duration_mean"] == pytest.approx(0.1)
    assert row["action_max_deviation_mean"] == pytest.approx(0.0)
    assert row["action_critical_points_mean"] == 0
    assert row["direction_0_ratio"] == 1.0  # eastwards
    assert row["n_actions"] == 1 and row["action_move_ratio"] == 1.0


def test_diagonal_line_direction_sector():
    row = one_row([(10 * i, 2, 3 * i, 3 * i) for i in range(6)])  # right and down the screen
    assert row["direction_1_ratio"] == 1.0
    assert row["speed_q50"] == pytest.approx(math.hypot(3, 3) * 100)


def test_circle_has_constant_curvature_one_over_radius():
    n, radius = 72, 100.0
    angles = 2 * np.pi * np.arange(n + 1) / n
    row = one_row([(10 * i, 2, radius * np.cos(a), radius * np.sin(a)) for i, a in enumerate(angles)])
    chord_turn = (2 * np.pi / n) / (2 * radius * np.sin(np.pi / n))  # exact for the polygon
    assert row["curvature_mean"] == pytest.approx(chord_turn, rel=1e-9)
    assert row["action_mean_abs_curvature_q50"] == pytest.approx(chord_turn, rel=1e-6)  # float32 ranks
    assert chord_turn == pytest.approx(1 / radius, rel=1e-3)
    assert row["angular_velocity_mean"] == pytest.approx((2 * np.pi / n) / 0.010, rel=1e-9)
    assert row["curvature_std"] == pytest.approx(0.0, abs=1e-12)
    assert row["action_straightness_mean"] == pytest.approx(0.0, abs=1e-9)  # back where it started
    assert row["action_max_deviation_mean"] == pytest.approx(2 * radius, rel=1e-3)
    assert row["radius"] == pytest.approx(radius, rel=2e-2)


def test_click_only_session():
    row = one_row([(0, 5, 40, 50)])
    assert row["ev5"] == 1.0 and row["nbpoints"] == 1
    assert (row["center_click_x"], row["center_click_y"]) == (40, 50)
    assert row["action_point_click_ratio"] == 1.0
    assert row["speed_mean"] == 0.0 and row["stress"] == 0.0 and row["chill"] == 0.0


def test_one_event_session_is_finite():
    row = one_row([(0, 2, 7, 9)])
    assert row["nbpoints"] == 1 and row["radius"] == 0 and row["slope"] == 0 and row["narrow"] == 0
    assert (row["first_x"], row["center_click_x"]) == (7, 7)  # no click: click centre = centre


def test_repeated_timestamps_produce_no_infinity():
    # Equal timestamps keep file order (the sort is stable), so the path is 0, 5, 10, 20, 30.
    row = one_row([(0, 2, 0, 0), (0, 2, 5, 0), (10, 2, 10, 0), (10, 2, 20, 0), (20, 2, 30, 0)], reverse=False)
    assert row["duplicate_timestamp_ratio"] == pytest.approx(0.5)
    assert row["speed_q50"] == pytest.approx(750.0)  # only the timed steps: 500 and 1000 px/s
    assert row["action_path_length_mean"] == pytest.approx(30.0)  # untimed steps still count
    assert row["stress"] == 0.0


def test_long_idle_gap_splits_the_move_and_counts_as_a_pause():
    first = [(10 * i, 2, i, 0) for i in range(5)]
    second = [(10_040 + 10 * i, 2, 100 + i, 0) for i in range(5)]
    row = one_row(first + second, pause_ms=2000)
    assert row["n_actions"] == 2
    assert row["long_pause_ratio"] == 1.0
    assert row["idle_max_log_s"] == pytest.approx(math.log1p(10.0))
    assert row["chill"] == 10_000
    assert row["speed_q90"] == pytest.approx(100.0)  # the gap is not a step of either action


def test_notebook_features_by_hand():
    points = [(0, 2, 0, 0), (10, 2, 2, 0), (40, 2, 4, 2), (50, 5, 4, 2), (60, 1, 4, 2), (100, 3, 6, 4)]
    row = one_row(points)
    x = np.array([0, 2, 4, 4, 4, 6.0])
    y = np.array([0, 0, 2, 2, 2, 4.0])
    cx, cy = x.mean(), y.mean()  # 20/6, 10/6
    assert (row["center_x"], row["center_y"]) == (pytest.approx(cx), pytest.approx(cy))
    assert (row["center_click_x"], row["center_click_y"]) == (4, 2)
    assert (row["first_x"], row["first_y"]) == (0, 0)
    assert row["radius"] == pytest.approx(np.hypot(x - cx, y - cy).max())  # (0, 0) is farthest
    cov = ((x - cx) * (y - cy)).mean()
    assert row["slope"] == pytest.approx(cov / ((x - cx) ** 2).mean())
    eig = np.linalg.eigvalsh(np.cov(np.vstack([x, y]), bias=True))
    assert row["narrow"] == pytest.approx(eig[0] / eig[1])
    assert [row[f"ev{k}"] for k in range(1, 6)] == pytest.approx([1 / 6, 3 / 6, 1 / 6, 0, 1 / 6])
    assert (row["stress"], row["chill"]) == (10, 30)  # gaps between successive moves
    assert row["nbpoints"] == 6
    assert row["click_dwell_mean"] == pytest.approx(0.010)
    assert row["pause_before_click_mean"] == pytest.approx(0.010)
    assert row["transition_2_5"] == pytest.approx(1 / 5)


def test_notebook_slope_is_zero_when_x_is_constant():
    row = one_row([(0, 2, 5, 0), (10, 2, 5, 10), (20, 2, 5, 30)])
    assert row["slope"] == 0.0 and row["narrow"] == 0.0


def test_the_seventeen_notebook_features_are_present():
    table = extract_features(session([(0, 2, 1, 1), (5, 2, 2, 2)]))
    assert set(NOTEBOOK_FEATURES) <= set(table.columns) and len(NOTEBOOK_FEATURES) == 17


def test_action_segmentation_follows_the_grammar_and_tolerates_missing_releases():
    code = np.array([2, 2, 5, 1, 2, 2, 5, 4, 2, 2, 1, 3, 3, 2, 1])
    t = np.arange(len(code), dtype=float) * 10
    start = action_starts(code, t, np.r_[True, np.zeros(len(code) - 1, bool)], 2000)
    # [2 2 5 1] point-click with release, [2 2 5] point-click without, [4 2 2 1] drag,
    # [3 3] wheel, [2 1] move ending in a stray release (kept with the move, not dropped)
    assert list(np.flatnonzero(start)) == [0, 4, 7, 11, 13]
    xy = np.zeros(len(code))
    _, actions, _ = measure_actions(xy, xy, t, code, np.zeros(len(code), int), start)
    assert list(actions.kind[:3]) == [POINT_CLICK, POINT_CLICK, DRAG]
    assert actions.kind[4] == MOVE
    assert actions.click_dwell[0] == pytest.approx(0.010) and actions.click_dwell[1] == -1


def test_windows_of_events_and_of_actions():
    long = session([(10 * i, 2, i, 0) for i in range(100)], session_id="long")
    short = session([(10 * i, 2, i, 0) for i in range(50)], session_id="short")
    table = extract_features(pd.concat([long, short]), FeatureConfig(window_size=30))
    assert table.groupby(c.SESSION_ID).size().to_dict() == {"long": 3, "short": 1}
    assert list(table.loc[table[c.SESSION_ID] == "long", "nbpoints"]) == [30, 30, 40]
    clicks = session([(100 * i, 5 if i % 2 else 2, i, 0) for i in range(40)], session_id="clicks")
    by_action = extract_features(clicks, FeatureConfig(window_size=5, window_unit="actions"))
    assert len(by_action) == 4  # 20 point-click actions in windows of 5
    assert (by_action["n_actions"] == 5).all()


def test_train_and_test_go_through_the_same_code(small_simulation):
    train = extract_features(small_simulation.train)
    as_test = extract_features(small_simulation.train.drop(columns=[c.USER_ID]))
    pd.testing.assert_frame_equal(train.drop(columns=[c.USER_ID]), as_test)


def test_row_order_of_the_input_does_not_matter(small_simulation):
    events = small_simulation.train
    shuffled = events.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(extract_features(events), extract_features(shuffled))


@pytest.mark.kaggle
def test_real_training_file_features_are_finite_and_fast(kaggle_train):
    events = read_events(kaggle_train, labelled=True).events
    started = time.perf_counter()
    table = extract_features(events)
    elapsed = time.perf_counter() - started
    assert len(table) == 120
    assert np.isfinite(table[feature_columns(table)].to_numpy(dtype=float)).all()
    assert elapsed < 1.0  # the bound (it takes a few tens of milliseconds)


def test_chunks_never_split_a_session_and_do_not_change_the_result(small_simulation):
    from mouse_pipeline.features.extract import chunk_bounds

    session = np.repeat(np.arange(5), [3, 1, 4, 2, 5])
    for size in (1, 2, 4, 7, 100):
        bounds = chunk_bounds(session, size)
        assert bounds[0] == 0 and bounds[-1] == len(session)
        assert all(b == 0 or b == len(session) or session[b] != session[b - 1] for b in bounds)
    whole = extract_features(small_simulation.train, chunk_events=10**9)
    chunked = extract_features(small_simulation.train, chunk_events=500, threads=2)
    pd.testing.assert_frame_equal(whole, chunked)


@pytest.mark.parametrize("select_from_rows", [10**9, 1])  # the packed-key sort, then per-group selection
def test_grouped_quantiles_are_numpys_of_the_float32_values(select_from_rows, monkeypatch):
    from mouse_pipeline.features import grouped
    from mouse_pipeline.features.grouped import Groups

    monkeypatch.setattr(grouped, "_SELECT_GROUP_ROWS", select_from_rows)
    group_rows = 300
    rng = np.random.default_rng(7)
    sizes = rng.integers(group_rows // 2, group_rows * 2, 6)
    sizes[2] = 0  # an empty group
    ids = np.repeat(np.arange(6), sizes)
    values = np.c_[rng.lognormal(size=len(ids)), rng.normal(size=len(ids))]
    values[::7, 1] = -0.0
    mask = rng.random(len(ids)) < 0.8
    mask[ids == 4] = False  # a group with no counted row
    subset = mask & (rng.random(len(ids)) < 0.5)
    groups = Groups(ids, 6)
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)

    def expected(rows):
        return [np.quantile(values[rows & (ids == k), j].astype(np.float32).astype(np.float64), qs)
                if (rows & (ids == k)).any() else np.full(len(qs), -1.0) for k in range(6) for j in range(2)]

    both = groups.quantiles(values, qs, mask, fill=-1.0)
    assert both.shape == (6, 2, len(qs))
    np.testing.assert_allclose(both.reshape(12, len(qs)), expected(mask), rtol=1e-12, atol=0)
    first, inner = groups.quantiles(values[:, 0], qs, mask, fill=-1.0, subset=subset)
    np.testing.assert_allclose(first, expected(mask)[::2], rtol=1e-12, atol=0)
    np.testing.assert_allclose(inner, expected(subset)[::2], rtol=1e-12, atol=0)
    unmasked = groups.quantiles(values[:, 1], qs, fill=-1.0)
    np.testing.assert_allclose(unmasked, expected(np.ones(len(ids), bool))[1::2], rtol=1e-12, atol=0)


def test_quantiles_of_whole_numbers_are_counted_exactly_with_the_large_values_ranked_apart():
    from mouse_pipeline.features.grouped import Groups, _order_statistics

    rng = np.random.default_rng(3)
    gaps = rng.integers(0, 40, 20_000).astype(np.float64)  # ms between events: many ties
    gaps[rng.choice(len(gaps), 3_000, replace=False)] = rng.integers(70_000, 9_000_000, 3_000)  # long pauses
    ids = np.repeat([0, 1], [12_000, 8_000])
    qs = (0.0, 0.1, 0.5, 0.85, 0.9, 1.0)
    got = Groups(ids, 2).quantiles(gaps, qs)
    for k in range(2):
        np.testing.assert_allclose(got[k], np.quantile(gaps[ids == k].astype(np.float32).astype(np.float64), qs),
                                   rtol=1e-12, atol=0)
    ranks = np.array([0, 5, 16_999, 17_000, 19_999])  # the last counted value, the first large one
    for values in (gaps, gaps + 0.5):  # whole numbers are counted; fractions are ranked by selection
        values = values.astype(np.float32)
        np.testing.assert_array_equal(_order_statistics(values, ranks), np.sort(values)[ranks])


@pytest.mark.parametrize("times", ["epoch", "wide", "ties", "one_per_code"])
@pytest.mark.parametrize("sparse_codes", [False, True])
def test_sort_by_code_and_time_is_a_stable_lexsort(times, sparse_codes):
    """The packed key (time offsets from each code's first time, or from the earliest time when the
    codes are too sparse for a table of starts) gives exactly the stable (code, time) order, with the
    codes and times in that order; a span too wide to pack falls back to ``lexsort``."""
    from mouse_pipeline.features.segments import sort_by_code_and_time

    rng = np.random.default_rng(11)
    for n in (2, 7, 500, 70_000):  # the last takes the radix route of sort_uint64
        codes = rng.integers(0, 9, n).astype(np.int64)
        t = {"epoch": codes * 3_600_000 * 24 + rng.integers(1_600_000_000_000, 1_600_000_600_000, n),
             "wide": rng.integers(-2**62, 2**62, n),
             "ties": rng.integers(0, 3, n),
             "one_per_code": np.full(n, 1_655_993_031_000) - codes}[times].astype(np.int64)
        if sparse_codes:
            codes = codes * 1_000_003  # more codes than rows: no table of per-code starts
        order, sorted_codes, sorted_t = sort_by_code_and_time(codes, t)
        expected = np.lexsort((t, codes))
        if order is None:
            np.testing.assert_array_equal(expected, np.arange(n))
            continue
        np.testing.assert_array_equal(order, expected)
        np.testing.assert_array_equal(sorted_codes, codes[expected])
        np.testing.assert_array_equal(sorted_t, t[expected])


def test_take_rows_of_a_chunked_column_equals_a_take_of_the_joined_column():
    import pyarrow as pa

    from mouse_pipeline.features.segments import take_rows

    column = pa.chunked_array([pa.array(["a", "b", None]), pa.array([], pa.string()), pa.array(["d"]),
                               pa.array(["e", "f", "g"])])
    joined = column.combine_chunks()
    for rows in ([0, 3, 6, 1], [6, 5, 4, 3, 2, 1, 0], [], [2, 2, 4], [5]):
        rows = np.array(rows, dtype=np.int64)
        assert take_rows(column, rows).to_pylist() == joined.take(pa.array(rows, pa.int64())).to_pylist()
    assert take_rows(joined, np.array([1, 0])).to_pylist() == ["b", "a"]
    assert take_rows(pa.chunked_array([joined]), np.array([6])).to_pylist() == ["g"]
    assert take_rows(pa.chunked_array([], pa.string()), np.array([], dtype=np.int64)).to_pylist() == []
    for bad in ([7], [-1], [0, 7]):
        with pytest.raises(IndexError):
            take_rows(column, np.array(bad))


def test_features_of_chunked_and_joined_id_columns_agree(small_files):
    import pyarrow as pa

    small_events = read_events(small_files["train"], labelled=True).events
    small_events = small_events.sample(frac=1.0, random_state=0).reset_index(drop=True)  # any order
    chunked = small_events.copy()
    for name in (c.SESSION_ID, c.USER_ID, c.UID):
        values = pa.array(small_events[name].astype(str).tolist(), pa.large_string())
        cuts = list(range(0, len(values), 97)) + [len(values)]
        chunked[name] = pd.array(pa.chunked_array([values[a:b] for a, b in zip(cuts[:-1], cuts[1:])]), dtype="str")
    pd.testing.assert_frame_equal(extract_features(chunked), extract_features(small_events))


def test_step_lengths_are_hypots_without_overflow_or_underflow():
    import warnings

    from mouse_pipeline.features.actions import lengths

    rng = np.random.default_rng(4)
    whole = rng.integers(-3000, 3000, (2, 5000)).astype(np.float64)
    # Whole pixels: the sum of squares is exact, so its square root is the correctly rounded length.
    assert (lengths(*whole) == [math.sqrt(int(a) ** 2 + int(b) ** 2) for a, b in whole.T]).all()
    css = np.round(rng.random((2, 5000)) * 2000 / 1.25, 4)
    assert np.allclose(lengths(*css), np.hypot(*css), rtol=3e-16, atol=0)  # within a unit in the last place
    dx = np.array([1e200, 3e-200, 0.0, 3.0, 1e-170, -1e300])
    dy = np.array([1e200, 4e-200, 0.0, -4.0, 0.0, 1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or underflow warning either
        out = lengths(dx, dy)
    assert out.tolist() == np.hypot(dx, dy).tolist() and np.isfinite(out).all()
    assert out[4] == 1e-170 and out[2] == 0.0


def test_value_runs_find_runs_across_chunks_and_keep_each_missing_value_apart():
    import pyarrow as pa

    from mouse_pipeline.features.segments import value_runs

    text = pa.chunked_array([pa.array(["a", "a", "b"]), pa.array(["b", None, None]), pa.array(["b", "a"])])
    first, values = value_runs(text)
    assert first.tolist() == [True, False, True, False, True, True, True, True]
    assert values.to_pylist() == ["a", "b", None, None, "b", "a"] and isinstance(values, pa.Array)
    one = value_runs(pa.array(["x"]))
    assert one[0].tolist() == [True] and one[1].to_pylist() == ["x"]
    empty = value_runs(pa.array([], pa.string()))
    assert len(empty[0]) == 0 and len(empty[1]) == 0
