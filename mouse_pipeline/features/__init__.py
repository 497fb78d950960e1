"""Behavioural features of mouse-event sessions (the functional core; no Dagster here)."""

from mouse_pipeline.features.extract import (
    ID_COLUMNS,
    WINDOW,
    FeatureConfig,
    extract_features,
    feature_columns,
)
from mouse_pipeline.features.notebook import NOTEBOOK_FEATURES

__all__ = [
    "ID_COLUMNS",
    "NOTEBOOK_FEATURES",
    "WINDOW",
    "FeatureConfig",
    "extract_features",
    "feature_columns",
]
