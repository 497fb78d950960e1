"""Feature assets: one row per session (or window) for training and test events."""


import time

import dagster as dg
import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.defs.metadata import table_preview
from mouse_pipeline.defs.resources import FeatureSettings
from mouse_pipeline.features import WINDOW, extract_features, feature_columns

GROUP = "features"


def _featurise(events: pd.DataFrame, settings: FeatureSettings) -> dg.Output:
    started = time.perf_counter()
    table = extract_features(events, settings.config())
    seconds = time.perf_counter() - started
    return dg.Output(
        table,
        metadata={
            "sessions": int(table[c.SESSION_ID].nunique()),
            "windows": len(table),
            "features": len(feature_columns(table)),
            "events": len(events),
            "events_per_second": round(len(events) / max(seconds, 1e-9)),
            "window_size": settings.window_size,
            "window_unit": settings.window_unit,
            "dagster/row_count": len(table),
            "preview": table_preview(table),
        },
    )


@dg.asset(group_name=GROUP)
def train_session_features(raw_train_events: pd.DataFrame, feature_settings: FeatureSettings) -> dg.Output:
    """Behavioural features of each training session or window (labelled with user_id)."""
    return _featurise(raw_train_events, feature_settings)


@dg.asset(group_name=GROUP)
def test_session_features(raw_test_events: pd.DataFrame, feature_settings: FeatureSettings) -> dg.Output:
    """Behavioural features of each test session or window, by the same code as training."""
    return _featurise(raw_test_events, feature_settings)


def _well_formed(table: pd.DataFrame, events: pd.DataFrame) -> dg.AssetCheckResult:
    values = table[feature_columns(table)].to_numpy(dtype=np.float64)
    bad_cells = ~np.isfinite(values)
    bad_columns = [col for col, bad in zip(feature_columns(table), bad_cells.any(axis=0)) if bad]
    duplicated = int(table.duplicated([c.SESSION_ID, WINDOW]).sum())
    missing_sessions = sorted(set(events[c.SESSION_ID]) - set(table[c.SESSION_ID]))
    passed = not bad_cells.any() and duplicated == 0 and not missing_sessions
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "non_finite_cells": int(bad_cells.sum()),
            "non_finite_columns": ", ".join(bad_columns[:20]),
            "duplicate_windows": duplicated,
            "sessions_without_features": len(missing_sessions),
            "missing_sessions": ", ".join(missing_sessions[:20]),
        },
    )


@dg.asset_check(
    asset=train_session_features, blocking=True, additional_ins={"events": dg.AssetIn("raw_train_events")},
    description="One row per session window, every session present, no NaN and no infinity.",
)
def train_features_one_row_per_window_all_finite(
    train_session_features: pd.DataFrame, events: pd.DataFrame
) -> dg.AssetCheckResult:
    return _well_formed(train_session_features, events)


@dg.asset_check(
    asset=test_session_features, blocking=True, additional_ins={"events": dg.AssetIn("raw_test_events")},
    description="One row per session window, every session present, no NaN and no infinity.",
)
def test_features_one_row_per_window_all_finite(
    test_session_features: pd.DataFrame, events: pd.DataFrame
) -> dg.AssetCheckResult:
    return _well_formed(test_session_features, events)
