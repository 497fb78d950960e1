"""Dagster resources: where the data is, how features are computed, validation limits, MLflow, Spark.

:func:`build_resources` makes every resource from one
:class:`~mouse_pipeline.settings.Settings` (read from the environment by
default), plus the IO managers that store asset values under the data
folder. Tests build resources directly with temporary paths.

Naming in this package: Dagster resources end in ``Resource``, run
configuration classes (``dg.Config``) end in ``RunConfig``; the core's plain
dataclasses (``FeatureConfig``, ``SelectionSettings``...) know nothing of Dagster.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import dagster as dg
import pandas as pd
from mlflow.tracking import MlflowClient
from pydantic import Field, PrivateAttr

from mouse_pipeline import contract as c
from mouse_pipeline.champion import DataIdentity, belongs_to
from mouse_pipeline.features import FeatureConfig
from mouse_pipeline.outputs import point_link, remove_stale_temporaries, write_csv
from mouse_pipeline.selection_settings import FeaturePlan, SelectionSettings
from mouse_pipeline.settings import DEFAULT_MODEL_NAME, TRACKING_URI_ENV, Settings
from mouse_pipeline.simulate import TEST_FILE, TRAIN_FILE, is_simulated_session, simulate
from mouse_pipeline.spark_engine import DEFAULT_MASTER, EVENTS_PER_GROUP, check_engine
from mouse_pipeline.tracking import Champion, default_tracking_uri, load_champion, use_experiment
from mouse_pipeline.validation import RuleSettings

#: Folder of the reports under the data folder, and the link in it to the serving model's reports.
REPORTS = "reports"
CHAMPION_REPORTS = "champion"

_DEFAULTS = Settings()
#: Concurrency pool of every step that writes the data folder (see dagster_home/dagster.yaml: with run
#: granularity and a limit of 1, runs on one data folder run one after the other).
DATA_POOL = "mouse_data"


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
    ``inbox_dir`` and ``landing_dir`` default to ``<data_dir>/inbox`` and ``<data_dir>/landing``.
    """

    data_dir: str = _DEFAULTS.data_dir
    train_csv: str = ""
    test_csv: str = ""
    claims_csv: str = ""
    inbox_dir: str = ""
    landing_dir: str = ""
    simulation_seed: int = 0
    escape_csv_formulas: bool = _DEFAULTS.escape_csv_formulas
    settle_seconds: float = _DEFAULTS.settle_seconds

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def tables_dir(self) -> Path:
        """Where event and feature tables are stored as Parquet."""
        return self.root / "tables"

    def inbox(self) -> Path:
        """The folder the inbox sensor watches."""
        return Path(self.inbox_dir) if self.inbox_dir else self.root / "inbox"

    def landing(self) -> Path:
        """The landing folder of training batches."""
        return Path(self.landing_dir) if self.landing_dir else self.root / "landing"

    def staging(self, name: str) -> Path:
        """Where a sensor copies the files it hands to runs (``<data_dir>/staging/<name>``)."""
        return self.root / "staging" / name

    def settle_time(self, sensor_interval_s: float) -> float:
        """How long a dropped file must stay unchanged: ``settle_seconds``, else two sensor intervals."""
        return self.settle_seconds if self.settle_seconds > 0 else 2 * sensor_interval_s

    def output_dir(self, name: str) -> Path:
        """A sub-folder of the data folder, created if needed (temporary files of killed writers removed)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        return path

    def report_dir(self, version: str) -> Path:
        """The reports of one model version: ``reports/versions/<version>/`` (model card, evaluation,
        verification)."""
        return self.output_dir(f"{REPORTS}/versions/{version}")

    def point_champion_reports(self, version: str) -> Path:
        """Point ``reports/champion`` at the reports of the serving model ``version``; returns the link."""
        self.report_dir(version)
        return point_link(self.root / REPORTS / CHAMPION_REPORTS, Path("versions") / str(version))

    def write_csv(self, frame: pd.DataFrame, path: Path) -> Path:
        """Write a CSV for people: atomically, formula cells escaped unless ``escape_csv_formulas`` is off."""
        return write_csv(frame, path, escape=self.escape_csv_formulas)

    def _simulated(self) -> tuple[Path, Path]:
        folder = self.output_dir("simulated")
        train, test = folder / TRAIN_FILE, folder / TEST_FILE
        if not (train.exists() and test.exists()) or not _marked_simulated(test):
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


def _marked_simulated(path: Path) -> bool:
    """Whether a simulated file's first session id carries the simulator's mark (files written by older
    versions do not: they are written again, so that scoring tells them from real files)."""
    first = pd.read_csv(path, usecols=[c.SESSION_ID], dtype=str, nrows=1)[c.SESSION_ID]
    return bool(len(first)) and bool(is_simulated_session(first.to_numpy()).all())


class FeatureEngineResource(dg.ConfigurableResource):
    """How sessions are cut into windows and actions, shared by training and test data, and which
    engine computes the features: ``pandas`` (in this process) or ``spark`` (see :class:`SparkResource`)."""

    window_size: Optional[int] = Field(
        default=None, description="None: model selection compares whole sessions and window sizes that follow the "
                                  "data; a number pins one setting (0: whole sessions)")
    window_unit: str = Field(default=_DEFAULTS.window_unit, description="auto, events or actions")
    pause_ms: float = _DEFAULTS.pause_ms
    engine: str = _DEFAULTS.engine
    families: str = Field(default=_DEFAULTS.feature_families,
                          description="feature families the models train on (all, behaviour, environment, ...)")

    def plan(self) -> FeaturePlan:
        """The feature settings model selection may use."""
        return FeaturePlan.parse(self.window_size, self.window_unit, self.pause_ms)

    def check_config(self) -> FeatureConfig:
        """The setting a training batch is featurised with to check it: the pinned one, else whole sessions."""
        return self.plan().pinned or FeatureConfig(0, "events", self.pause_ms)

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


class ValidationLimitsResource(dg.ConfigurableResource):
    """Limits of the validation checks on training events (see :class:`mouse_pipeline.validation.RuleSettings`)."""

    min_events_per_user: int = _DEFAULTS.min_events_per_user
    min_balance_ratio: float = _DEFAULTS.min_balance_ratio
    max_grammar_deviation_share: float = _DEFAULTS.max_grammar_deviation_share

    def rule_settings(self) -> RuleSettings:
        return RuleSettings(min_events_per_user=self.min_events_per_user, min_balance_ratio=self.min_balance_ratio,
                            max_deviating_share=self.max_grammar_deviation_share)


_SELECTION = SelectionSettings()


class ModelSelectionResource(dg.ConfigurableResource):
    """The candidates of model selection and how they are raced (defaults:
    :class:`~mouse_pipeline.selection_settings.SelectionSettings`, where every knob is explained).

    The feature settings come from :class:`FeatureEngineResource`, the enrolment minimum from
    :class:`ValidationLimitsResource`; :meth:`settings` joins them into the core's settings.
    """

    n_splits: int = _SELECTION.n_splits
    random_state: int = _SELECTION.random_state
    n_jobs: int = _SELECTION.n_jobs
    first_round_folds: int = _SELECTION.first_round_folds
    sizes_per_unit: int = _SELECTION.sizes_per_unit
    max_training_rows: int = _SELECTION.max_training_rows
    mlp_hidden_layer_sizes: list[list[int]] = [list(h) for h in _SELECTION.mlp_hidden_layer_sizes]
    mlp_alpha: list[float] = list(_SELECTION.mlp_alpha)
    mlp_max_iter: int = _SELECTION.mlp_max_iter
    mlp_seeds: int = _SELECTION.mlp_seeds
    mlp_bins: int = _SELECTION.mlp_bins
    feature_selection: str = _SELECTION.feature_selection
    extra_trees_max_features: list[float] = [float(f) for f in _SELECTION.extra_trees_max_features]
    extra_trees_n_estimators: int = _SELECTION.extra_trees_n_estimators
    hist_gradient_boosting: bool = _SELECTION.hist_gradient_boosting
    bootstrap_resamples: int = _SELECTION.bootstrap_resamples
    importance_repeats: int = _SELECTION.importance_repeats

    def settings(self, features: "FeatureEngineResource", limits: "ValidationLimitsResource",
                 scored_session_events: int = 0) -> SelectionSettings:
        """The core's settings; ``scored_session_events``: typical length of the sessions to be scored."""
        plan = features.plan()
        return SelectionSettings(
            window_units=plan.window_units, pause_ms=plan.pause_ms, sizes_per_unit=self.sizes_per_unit,
            max_training_rows=self.max_training_rows, scored_session_events=scored_session_events,
            mlp_hidden_layer_sizes=tuple(tuple(h) for h in self.mlp_hidden_layer_sizes),
            mlp_alpha=tuple(self.mlp_alpha), mlp_max_iter=self.mlp_max_iter, mlp_seeds=self.mlp_seeds,
            mlp_bins=self.mlp_bins, feature_selection=self.feature_selection,
            extra_trees_max_features=tuple(self.extra_trees_max_features),
            extra_trees_n_estimators=self.extra_trees_n_estimators,
            hist_gradient_boosting=self.hist_gradient_boosting, n_splits=self.n_splits,
            random_state=self.random_state, first_round_folds=min(self.first_round_folds, self.n_splits),
            n_jobs=self.n_jobs, families=features.families, min_events_per_user=limits.min_events_per_user,
            bootstrap_resamples=self.bootstrap_resamples, importance_repeats=self.importance_repeats,
        )


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking URI, experiment and registered model.

    An empty ``tracking_uri`` means a SQLite store in ``<data_dir>/mlflow.db``;
    artifacts of new experiments go to ``<data_dir>/mlartifacts``.
    """

    data_dir: str = _DEFAULTS.data_dir
    tracking_uri: str = ""
    experiment_name: str = _DEFAULTS.experiment
    registered_model_name: str = DEFAULT_MODEL_NAME
    champion_tolerance: float = _DEFAULTS.champion_tolerance

    def uri(self) -> str:
        return self.tracking_uri or default_tracking_uri(self.data_dir)

    def artifact_root(self) -> Path:
        return Path(self.data_dir) / "mlartifacts"

    def use_experiment(self) -> str:
        """Point MLflow at this store and experiment (created if needed); return the experiment id."""
        return use_experiment(self.uri(), self.experiment_name, self.artifact_root())

    def client(self) -> MlflowClient:
        return MlflowClient(self.uri())

    def champion(self, data: DataIdentity | None = None, allow_foreign: bool = False) -> Champion:
        """The registered champion (:func:`~mouse_pipeline.tracking.load_champion`), or a failure saying
        how to get one.

        With ``data`` (the identity of the current training data), a champion trained on other data
        is refused with the reason, unless ``allow_foreign``.
        """
        try:
            champion = load_champion(self.uri(), self.registered_model_name)
        except LookupError as exc:
            raise dg.Failure(str(exc)) from exc
        if data is not None and not allow_foreign:
            fits, why = belongs_to(champion.identity, data)
            if not fits:
                raise dg.Failure(
                    f"the champion ({champion.describe()}) does not belong to the current data ({data.describe()}): "
                    f"{why}. Its predictions would name users of other data. Retrain (the newest model of this "
                    "data failed the champion gate: see user_identifier's champion_gate), or set "
                    "allow_foreign_champion in the run config to score anyway.")
        return champion


def champion_fits_file(champion: Champion, events: pd.DataFrame, mouse_data: MouseDataResource,
                       allow_foreign: bool) -> str:
    """The test file's check of :func:`~mouse_pipeline.scoring.check_champion_fits` as a Dagster failure:
    a champion of simulated data never scores a real file (nor the reverse) unless ``allow_foreign``;
    returns the reason when overridden, "" when the champion fits."""
    from mouse_pipeline.scoring import ForeignChampionError, check_champion_fits

    try:
        return check_champion_fits(champion, events, mouse_data.event_files().test.name, allow_foreign)
    except ForeignChampionError as exc:
        raise dg.Failure(f"{exc} (in a Dagster run: allow_foreign_champion: true in the asset's config)") from exc


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """Every resource, configured from ``settings`` (default: :meth:`Settings.from_env`)."""
    s = settings or Settings.from_env()
    plan = s.feature_plan()
    return {
        "mouse_data": MouseDataResource(
            data_dir=s.data_dir, train_csv=s.train_csv, test_csv=s.test_csv, claims_csv=s.claims_csv,
            inbox_dir=s.inbox_dir, landing_dir=s.landing_dir, escape_csv_formulas=s.escape_csv_formulas,
            settle_seconds=s.settle_seconds,
        ),
        "feature_engine": FeatureEngineResource(
            window_size=plan.pinned.window_size if plan.pinned else None,
            window_unit=s.window_unit, pause_ms=s.pause_ms, engine=s.engine, families=s.feature_families,
        ),
        "model_selection": ModelSelectionResource(),
        "spark": SparkResource(master=s.spark_master),
        "validation_limits": ValidationLimitsResource(min_events_per_user=s.min_events_per_user,
                                                      min_balance_ratio=s.min_balance_ratio,
                                                      max_grammar_deviation_share=s.max_grammar_deviation_share),
        "mlflow_tracking": MlflowResource(
            # A URI from the environment stays there (dg.EnvVar): the UI shows the variable's name, never a
            # password it may hold.
            data_dir=s.data_dir,
            tracking_uri=dg.EnvVar(TRACKING_URI_ENV) if TRACKING_URI_ENV in s.from_environment else s.mlflow_uri,
            experiment_name=s.experiment,
            registered_model_name=s.model_name, champion_tolerance=s.champion_tolerance,
        ),
    }
