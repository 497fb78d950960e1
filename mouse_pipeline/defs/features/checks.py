"""Checks of the feature tables: one row per window, every session present, all values finite."""

import dagster as dg
import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.defs.storage import EventTable
from mouse_pipeline.features import WINDOW, feature_columns


def well_formed(table: pd.DataFrame, session_ids: pd.Series) -> dg.AssetCheckResult:
    """One row per (session, window), a row for every session of ``session_ids``, all values finite."""
    values = table[feature_columns(table)].to_numpy(dtype=np.float64)
    bad_cells = ~np.isfinite(values)
    bad_columns = [col for col, bad in zip(feature_columns(table), bad_cells.any(axis=0)) if bad]
    duplicated = int(table.duplicated([c.SESSION_ID, WINDOW]).sum())
    missing_sessions = sorted(set(session_ids) - set(table[c.SESSION_ID]))
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


def well_formed_check(asset: str, events_asset: str, name: str) -> dg.AssetChecksDefinition:
    """Blocking check that the feature table ``asset`` is :func:`well_formed` against the sessions of
    ``events_asset`` (read as a path handle: only its ``session_id`` column is loaded)."""

    @dg.asset_check(
        asset=asset, name=name, blocking=True,
        description="One row per session window, every session present, no NaN and no infinity.",
        additional_ins={"events": dg.AssetIn(events_asset, input_manager_key="event_table_loader")},
    )
    def _check(features: pd.DataFrame, events: EventTable) -> dg.AssetCheckResult:
        return well_formed(features, events.read(columns=[c.SESSION_ID])[c.SESSION_ID])

    return _check


train_features_one_row_per_window_all_finite = well_formed_check(
    "train_session_features", "raw_train_events", "train_features_one_row_per_window_all_finite")
test_features_one_row_per_window_all_finite = well_formed_check(
    "test_session_features", "raw_test_events", "test_features_one_row_per_window_all_finite")
