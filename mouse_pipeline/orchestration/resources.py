"""Dagster resources: where the data is, how features are cut, validation limits, MLflow.

Each resource is built from environment variables by :func:`resources_from_env`
with working defaults, so that with nothing set the pipeline runs on its
simulator's data under ``./data``. Tests build them directly with temporary
paths.
"""


import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from mouse_pipeline.features import FeatureConfig
from mouse_pipeline.simulate import TEST_FILE, TRAIN_FILE, simulate
from mouse_pipeline.spark_engine import (
    DEFAULT_MASTER,
    EVENTS_PER_GROUP,
    check_engine,
    spark_master,
)
from mouse_pipeline.tracking import default_tracking_uri


@dataclass(frozen=True)
class EventFiles:
    """The event files of a run and whether they came from the simulator."""

    train: Path
    test: Path
    simulated: bool


class MouseDataResource(dg.ConfigurableResource):
    """Input CSVs and the output folder.

    An empty ``train_csv`` / ``test_csv`` means "use the simulator": 20 users
    with 6 training sessions each and 40 test sessions, written (once,
    deterministically) into ``<data_dir>/simulated/`` where a person can open them.
    """

    data_dir: str = "data"
    train_csv: str = ""
    test_csv: str = ""
    claims_csv: str = ""
    landing_dir: str = ""
    simulation_seed: int = 0

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def tables_dir(self) -> Path:
        """Where event and feature tables are stored as Parquet."""
        return self.root / "tables"

    def landing(self) -> Path:
        """The landing folder of training batches (``landing_dir``, default ``<data_dir>/landing``)."""
        return Path(self.landing_dir) if self.landing_dir else self.root / "landing"

    def output_dir(self, name: str) -> Path:
        """A sub-folder of the data folder, created if needed."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _simulated(self) -> tuple[Path, Path]:
        folder = self.output_dir("simulated")
        train, test = folder / TRAIN_FILE, folder / TEST_FILE
        if not (train.exists() and test.exists()):
            data = simulate(users=20, sessions=6, test_sessions=2, seed=self.simulation_seed)
            # Write to temporary names then rename, so concurrent steps never read half a file.
            tmp = folder / f".tmp-{os.getpid()}"
            paths = data.write(tmp)
            for path in paths.values():
                os.replace(path, folder / path.name)
            tmp.rmdir()
        return train, test

    def event_files(self) -> EventFiles:
        """Paths of the training and test CSVs (simulated ones when none are configured)."""
        if self.train_csv and self.test_csv:
            return EventFiles(Path(self.train_csv), Path(self.test_csv), simulated=False)
        if self.train_csv or self.test_csv:
            raise dg.Failure(
                "set both MOUSE_TRAIN_CSV and MOUSE_TEST_CSV, or neither to use simulated data "
                f"(train_csv={self.train_csv!r}, test_csv={self.test_csv!r})"
            )
        train, test = self._simulated()
        return EventFiles(train, test, simulated=True)


class FeatureSettings(dg.ConfigurableResource):
    """How sessions are cut into windows and actions, shared by training and test data, and which
    engine computes the features: ``pandas`` (in this process) or ``spark`` (see :class:`SparkResource`)."""

    window_size: int = 0
    window_unit: str = "events"
    pause_ms: float = 2000.0
    engine: str = "pandas"

    def config(self) -> FeatureConfig:
        return FeatureConfig(self.window_size, self.window_unit, self.pause_ms)  # type: ignore[arg-type]

    @property
    def uses_spark(self) -> bool:
        return check_engine(self.engine) == "spark"


class SparkResource(dg.ConfigurableResource):
    """The Spark session of the Spark feature engine, started on first use.

    Nothing happens until a step calls :meth:`session`, so runs on the pandas
    engine never import PySpark nor start a JVM. The session is stopped when
    the run's steps are done. ``master`` is any Spark master URL
    (``local[*]``, ``local[2]``, ``spark://host:7077``...); ``conf`` adds Spark
    settings (executor memory, cores...); ``events_per_group`` sizes the groups
    of whole sessions each Python worker featurises at once (see
    :func:`mouse_pipeline.spark_engine.session_features`).
    """

    master: str = DEFAULT_MASTER
    app_name: str = "mouse-pipeline"
    conf: dict[str, str] = {}
    events_per_group: int = EVENTS_PER_GROUP
    _session: object = PrivateAttr(default=None)
    _owned: bool = PrivateAttr(default=False)

    @property
    def started(self) -> bool:
        return self._session is not None

    def session(self):
        """The ``pyspark.sql.SparkSession``, started now if it was not yet (a session already active
        in this process, a notebook's say, is used as it is)."""
        if self._session is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError as exc:
                raise dg.Failure("the spark feature engine (MOUSE_ENGINE=spark) needs PySpark: "
                                 "pip install 'mouse-pipeline[spark]', with Java 17 or newer") from exc
            from mouse_pipeline.spark_engine import start_session

            self._owned = SparkSession.getActiveSession() is None
            try:
                self._session = start_session(self.master, self.app_name, self.conf)
            except Exception as exc:  # most often: no Java, or a master that does not answer
                raise dg.Failure(f"Spark did not start on master {self.master!r} (it needs Java 17 or newer "
                                 f"on PATH or in JAVA_HOME): {exc}") from exc
        return self._session

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._session is not None and self._owned:
            self._session.stop()
        self._session = None


class ValidationSettings(dg.ConfigurableResource):
    """Limits of the validation checks on training events."""

    min_sessions_per_user: int = 2
    min_balance_ratio: float = 0.5


class MlflowTracking(dg.ConfigurableResource):
    """MLflow tracking URI, experiment and registered model.

    An empty ``tracking_uri`` means ``MLFLOW_TRACKING_URI`` when set, else a
    SQLite store in ``<data_dir>/mlflow.db`` with artifacts in
    ``<data_dir>/mlartifacts``.
    """

    data_dir: str = "data"
    tracking_uri: str = ""
    experiment_name: str = "mouse-pipeline"
    registered_model_name: str = "mouse-user-identifier"
    champion_tolerance: float = 0.02

    def uri(self) -> str:
        return self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(self.data_dir)

    def artifact_root(self) -> Path:
        return Path(self.data_dir) / "mlartifacts"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "") or default


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """Resources configured from ``MOUSE_*`` and ``MLFLOW_TRACKING_URI`` environment variables.

    ``MOUSE_ENGINE`` (``pandas`` or ``spark``) picks the feature engine and
    ``MOUSE_SPARK_MASTER`` the Spark master (default ``local[*]``).
    """
    data_dir = _env("MOUSE_DATA_DIR", "data")
    return {
        "mouse_data": MouseDataResource(
            data_dir=data_dir,
            train_csv=_env("MOUSE_TRAIN_CSV", ""),
            test_csv=_env("MOUSE_TEST_CSV", ""),
            claims_csv=_env("MOUSE_CLAIMS_CSV", ""),
            landing_dir=_env("MOUSE_LANDING_DIR", ""),
        ),
        "feature_settings": FeatureSettings(
            window_size=int(_env("MOUSE_WINDOW_SIZE", "0")),
            window_unit=_env("MOUSE_WINDOW_UNIT", "events"),
            pause_ms=float(_env("MOUSE_PAUSE_MS", "2000")),
            engine=check_engine(_env("MOUSE_ENGINE", "pandas")),
        ),
        "spark": SparkResource(master=spark_master()),
        "validation_settings": ValidationSettings(
            min_balance_ratio=float(_env("MOUSE_MIN_BALANCE_RATIO", "0.5")),
        ),
        "mlflow_tracking": MlflowTracking(
            data_dir=data_dir,
            tracking_uri=_env("MLFLOW_TRACKING_URI", ""),
            experiment_name=_env("MOUSE_MLFLOW_EXPERIMENT", "mouse-pipeline"),
            champion_tolerance=float(_env("MOUSE_CHAMPION_TOLERANCE", "0.02")),
        ),
    }
