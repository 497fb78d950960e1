"""Shared fixtures: the real Kaggle files (skipped when absent) and small simulated data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mouse_pipeline.simulate import simulate

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

#: The real Kaggle files: ``MOUSE_KAGGLE_DIR``, else ``../shared/data/kaggle`` beside the repository.
KAGGLE_DIR = Path(os.environ.get("MOUSE_KAGGLE_DIR") or
                  Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kaggle")
KAGGLE_TRAIN = KAGGLE_DIR / "Train_Mouse.csv"
KAGGLE_TEST = KAGGLE_DIR / "Test_Mouse.csv"


@pytest.fixture(scope="session", autouse=True)
def own_dagster_home(tmp_path_factory):
    """Tests keep any Dagster run history in a home of their own, never the caller's DAGSTER_HOME."""
    import dagster as dg

    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dg.DagsterInstance.from_config(str(home)).dispose()  # its stores exist before any process races for them
    before = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    yield home
    if before is None:
        os.environ.pop("DAGSTER_HOME", None)
    else:
        os.environ["DAGSTER_HOME"] = before


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


# Helpers shared by the tests of the Dagster shell ------------------------------------------------

#: What the retrain job materialises.
ALL_ASSETS = {
    "raw_train_events", "raw_test_events", "rejected_train_events", "rejected_test_events",
    "rejected_events", "enrolled_training_events", "train_session_features", "test_session_features",
    "feature_matrix", "user_identifier", "model_evaluation", "predictions", "verification_calibration",
    "model_card", "verification", "champion",
}
EXPLORATION_ASSETS = {"event_profile", "user_plots"}
BATCH_ASSETS = {"batch_events", "rejected_batch_events", "batch_session_features"}
#: A small, fast model selection for tests (ModelSelectionResource fields): one MLP, one ExtraTrees, one
#: window size per unit, four folds raced at once.
FAST_SELECTION = {"n_splits": 4, "first_round_folds": 4, "mlp_hidden_layer_sizes": [[24]], "mlp_alpha": [0.01],
                  "mlp_max_iter": 300, "extra_trees_n_estimators": 60, "hist_gradient_boosting": False,
                  "sizes_per_unit": 1, "bootstrap_resamples": 200, "importance_repeats": 1, "n_jobs": 1}
FAST_CONFIG = {"ops": {"verification_calibration": {"config": {"n_jobs": 1, "unknown_groups": 2,
                                                               "open_set_folds": 2, "n_resamples": 200}}}}
#: FAST_CONFIG plus the fast model selection, for runs whose resources come from the environment (the CLI).
FAST_RUN_CONFIG = {**FAST_CONFIG, "resources": {"model_selection": {"config": FAST_SELECTION}}}


def pipeline_resources(tmp_path: Path, train="", test="", claims="", selection: dict | None = None,
                       **feature) -> dict:
    """Resources of a pipeline writing under ``tmp_path/data`` with its own MLflow store and a fast
    model selection (:data:`FAST_SELECTION`, updated by ``selection``)."""
    from mouse_pipeline.defs.resources import (
        FeatureEngineResource, MlflowResource, ModelSelectionResource, MouseDataResource, ValidationLimitsResource,
    )

    data_dir = str(tmp_path / "data")
    return {
        "mouse_data": MouseDataResource(data_dir=data_dir, train_csv=str(train), test_csv=str(test),
                                        claims_csv=str(claims)),
        "feature_engine": FeatureEngineResource(**feature),
        "model_selection": ModelSelectionResource(**{**FAST_SELECTION, **(selection or {})}),
        "validation_limits": ValidationLimitsResource(),
        "mlflow_tracking": MlflowResource(data_dir=data_dir, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
    }


def run_assets(defs, selection: str, run_config: dict | None = None, instance=None):
    """Materialise the assets ``selection`` names, in process; failures are returned, not raised."""
    import dagster as dg

    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        asset_selection=list(dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph())),
        run_config=run_config or {},
        raise_on_error=False,
    )


def materialized(result) -> set[str]:
    """Keys of the assets a run materialised."""
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def step_failure(result) -> str:
    """The error message of a run's first failed step."""
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    return str(failure.event_specific_data.error)
