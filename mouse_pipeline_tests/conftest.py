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


#: Set in CI, where PySpark and Java are installed: Spark tests then fail instead of skipping.
REQUIRE_SPARK = os.environ.get("MOUSE_REQUIRE_SPARK", "") == "1"


def _no_spark(reason: str):
    if REQUIRE_SPARK:
        pytest.fail(f"MOUSE_REQUIRE_SPARK=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def spark_session():
    """A real local Spark (2 cores) shared by the Spark tests; skipped where PySpark or Java is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        _no_spark("PySpark is not installed (pip install -e '.[spark]')")
    from mouse_pipeline.spark_engine import start_session

    try:
        spark = start_session("local[2]", "mouse-pipeline-tests", {"spark.sql.shuffle.partitions": "4"})
    except Exception as exc:  # no Java, most often
        _no_spark(f"Spark did not start: {exc}")
    yield spark
    spark.stop()
