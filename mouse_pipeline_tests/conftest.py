"""Shared fixtures: the real Kaggle files (skipped when absent) and small simulated data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mouse_pipeline.simulate import simulate

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

KAGGLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kaggle"
KAGGLE_TRAIN = KAGGLE_DIR / "Train_Mouse.csv"
KAGGLE_TEST = KAGGLE_DIR / "Test_Mouse.csv"


@pytest.fixture(scope="session")
def kaggle_train() -> Path:
    if not KAGGLE_TRAIN.exists():
        pytest.skip(f"real data not found at {KAGGLE_TRAIN}")
    return KAGGLE_TRAIN


@pytest.fixture(scope="session")
def kaggle_test() -> Path:
    if not KAGGLE_TEST.exists():
        pytest.skip(f"real data not found at {KAGGLE_TEST}")
    return KAGGLE_TEST


@pytest.fixture(scope="session")
def small_simulation():
    """6 users x 4 training sessions, 1 test session each."""
    return simulate(users=6, sessions=4, test_sessions=1, actions_per_session=8, seed=7)


@pytest.fixture()
def small_files(tmp_path, small_simulation) -> dict[str, Path]:
    return small_simulation.write(tmp_path / "sim")
