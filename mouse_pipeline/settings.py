"""The one place the environment is read: every setting, its variable, its default and its meaning.

:class:`Settings` is a frozen dataclass; :meth:`Settings.from_env` reads it
from environment variables (an unset or empty variable takes the default).
The Dagster resources, the schedule, the command line and the Spark engine
all take their values from a ``Settings`` object, so each default is written
once, here. ``python -m mouse_pipeline.settings`` prints the table that
README.md shows (a test keeps the two identical).

With nothing set, the pipeline runs on its simulator's data and writes
everything under ``./data``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mouse_pipeline.features import FeatureConfig
from mouse_pipeline.features.families import ALL, parse_families
from mouse_pipeline.selection_settings import AUTO, FeaturePlan
from mouse_pipeline.spark_engine import DEFAULT_MASTER, ENGINES
from mouse_pipeline.validation import RuleSettings

#: The variable MLflow itself reads for its tracking URI (it may hold a password).
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
#: Registered model name in the MLflow registry.
DEFAULT_MODEL_NAME = "mouse-user-identifier"
#: A session whose top probability is below this is reported as low-confidence.
DEFAULT_LOW_CONFIDENCE = 0.5
_SWITCH_ON = ("on", "1", "true", "yes", "running")
_SWITCH_OFF = ("off", "0", "false", "no", "stopped")


def _setting(env: str, default: Any, meaning: str, shown_default: str | None = None):
    """A dataclass field read from ``env``; ``shown_default`` is how the README shows the default."""
    return field(default=default, metadata={"env": env, "meaning": meaning, "shown": shown_default})


_FEATURES = FeatureConfig()


@dataclass(frozen=True)
class Settings:
    """Every setting of the pipeline, with its default (see :meth:`from_env`)."""

    data_dir: str = _setting("MOUSE_DATA_DIR", "data", "folder of every output: tables, models, predictions, "
                             "reports", "`./data`")
    train_csv: str = _setting("MOUSE_TRAIN_CSV", "", "labelled training events (set with `MOUSE_TEST_CSV`; "
                              "neither: simulated data)", "simulated")
    test_csv: str = _setting("MOUSE_TEST_CSV", "", "unlabelled events to predict", "simulated")
    claims_csv: str = _setting("MOUSE_CLAIMS_CSV", "", "claims to verify (`session_id, claimed_user_id`)", "none")
    inbox_dir: str = _setting("MOUSE_INBOX_DIR", "", "folder watched by the inbox sensor", "`$MOUSE_DATA_DIR/inbox`")
    landing_dir: str = _setting("MOUSE_LANDING_DIR", "", "folder of training batches, each `*.csv` a partition",
                                "`$MOUSE_DATA_DIR/landing`")
    settle_seconds: float = _setting("MOUSE_SETTLE_SECONDS", 0.0, "a dropped file is read once its size and time "
                                     "have not changed for this long (0: two sensor intervals)", "`0`")
    window_size: str = _setting("MOUSE_WINDOW_SIZE", AUTO, "`auto`: model selection compares whole sessions and "
                                "window sizes that follow the data, and keeps the best; a number pins one setting "
                                "(`0`: whole sessions, `N`: windows of N units)", "`auto`")
    window_unit: str = _setting("MOUSE_WINDOW_UNIT", AUTO, "unit of windows: `events`, `actions`, or `auto` (both "
                                "compared; `events` when the size is pinned)", "`auto`")
    feature_families: str = _setting("MOUSE_FEATURE_FAMILIES", ALL, "feature families the models train on: `all`, "
                                     "`behaviour`, `environment`, or family names joined by commas", "`all`")
    min_events_per_user: int = _setting("MOUSE_MIN_EVENTS_PER_USER", RuleSettings.min_events_per_user, "a user with fewer training events is left "
                                        "out of training, named in `enrolled_training_events` and the model card")
    pause_ms: float = _setting("MOUSE_PAUSE_MS", _FEATURES.pause_ms, "a pause longer than this (ms) splits an "
                               "action")
    engine: str = _setting("MOUSE_ENGINE", ENGINES[0], "feature engine: `pandas` (in process) or `spark` (needs the "
                           "`spark` extra)")
    spark_master: str = _setting("MOUSE_SPARK_MASTER", DEFAULT_MASTER, "Spark master of the `spark` engine "
                                 "(`local[2]`, `spark://host:7077`, ...)")
    min_balance_ratio: float = _setting("MOUSE_MIN_BALANCE_RATIO", 0.5, "`users_balanced` warns below this "
                                        "smallest/largest ratio")
    max_grammar_deviation_share: float = _setting("MOUSE_MAX_GRAMMAR_DEVIATION_SHARE", 0.05, "`event_grammar` "
                                                  "warns when more sessions than this share depart from the event "
                                                  "grammar (as the log's dialect reads it)")
    tracking_uri: str = _setting(TRACKING_URI_ENV, "", "MLflow tracking server or store",
                                 "`sqlite:///$MOUSE_DATA_DIR/mlflow.db`")
    experiment: str = _setting("MOUSE_MLFLOW_EXPERIMENT", "mouse-pipeline", "MLflow experiment")
    model_name: str = _setting("MOUSE_MODEL_NAME", DEFAULT_MODEL_NAME, "registered model in the MLflow registry")
    champion_tolerance: float = _setting("MOUSE_CHAMPION_TOLERANCE", 0.02, "a new model takes the `champion` "
                                         "alias unless its `cv_macro_f1` is lower than the champion's by more "
                                         "than this")
    retrain_cron: str = _setting("MOUSE_RETRAIN_CRON", "0 3 * * 1", "when the `weekly_retrain` schedule runs")
    retrain_schedule: str = _setting("MOUSE_RETRAIN_SCHEDULE", "off", "`on` starts the schedule switched on")
    escape_csv_formulas: bool = _setting("MOUSE_ESCAPE_CSV_FORMULAS", True, "CSV files for people escape cells a "
                                         "spreadsheet would run as formulas (`off` for machine consumers)", "`on`")
    #: The variables :meth:`from_env` took a value from (not a setting itself).
    from_environment: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables; an unset or empty variable keeps the default.

        A value that does not convert (``MOUSE_WINDOW_SIZE=ten``) is a
        ValueError naming the variable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in _settings_fields():
            raw = environ.get(f.metadata["env"], "").strip()
            if not raw:
                continue
            kind = type(f.default)
            if kind is bool:
                if raw.lower() not in (*_SWITCH_ON, *_SWITCH_OFF):
                    raise ValueError(f"{f.metadata['env']}={raw!r}: expected on or off")
                values[f.name] = raw.lower() in _SWITCH_ON
                continue
            try:
                values[f.name] = kind(raw)
            except ValueError as exc:
                raise ValueError(f"{f.metadata['env']}={raw!r}: expected {kind.__name__} ({exc})") from None
        names = tuple(f.metadata["env"] for f in _settings_fields() if f.name in values)
        settings = cls(**values, from_environment=names)
        settings.validate()
        return settings

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields replaced (empty or None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v not in (None, "")})

    def validate(self) -> None:
        """Raise ValueError for values no step could use."""
        if self.engine not in ENGINES:
            raise ValueError(f"MOUSE_ENGINE={self.engine!r}: choose one of {', '.join(ENGINES)}")
        FeaturePlan.parse(self.window_size, self.window_unit, self.pause_ms)
        parse_families(self.feature_families)

    # Derived values -------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return Path(self.data_dir)

    @property
    def inbox(self) -> Path:
        return Path(self.inbox_dir) if self.inbox_dir else self.root / "inbox"

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir) if self.landing_dir else self.root / "landing"

    @property
    def mlflow_uri(self) -> str:
        """The tracking URI: ``MLFLOW_TRACKING_URI``, else a SQLite store in the data folder."""
        from mouse_pipeline.tracking import default_tracking_uri

        return self.tracking_uri or default_tracking_uri(self.root)

    @property
    def schedule_on(self) -> bool:
        return self.retrain_schedule.strip().lower() in _SWITCH_ON

    def feature_plan(self) -> FeaturePlan:
        """The feature settings model selection may use (all planned ones, or the one pinned)."""
        return FeaturePlan.parse(self.window_size, self.window_unit, self.pause_ms)


def _settings_fields():
    return [f for f in fields(Settings) if "env" in f.metadata]


def settings_table() -> str:
    """The Markdown table of every setting (variable, default, meaning), as README.md shows it."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for f in _settings_fields():
        shown = f.metadata["shown"] or (f"`{f.default}`" if f.default != "" else "none")
        rows.append(f"| `{f.metadata['env']}` | {shown} | {f.metadata['meaning']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
