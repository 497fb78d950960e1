"""Every default of enrolment, model selection and the model card, written once.

:class:`SelectionSettings` is what the Dagster shell builds from its config
and environment (e.g. ``MOUSE_FEATURE_FAMILIES`` -> ``families``); the core
functions (:mod:`mouse_pipeline.enrolment`, :mod:`mouse_pipeline.selection`,
:mod:`mouse_pipeline.model_card`) take it and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mouse_pipeline.features import FeatureConfig
from mouse_pipeline.features.families import ALL, parse_families
from mouse_pipeline.modelling import Candidate
from mouse_pipeline.validation import RuleSettings

#: Window size or unit left to model selection.
AUTO = "auto"
WINDOW_UNITS = ("events", "actions")


@dataclass(frozen=True)
class FeaturePlan:
    """Which feature settings model selection may use: every planned one, or one pinned setting.

    ``pinned`` is None when the window size is ``auto`` (then
    :func:`~mouse_pipeline.selection.plan_feature_settings` offers whole
    sessions and windows in each of ``window_units``); otherwise it is the
    only setting, e.g. ``MOUSE_WINDOW_SIZE=20 MOUSE_WINDOW_UNIT=actions``.
    """

    pinned: FeatureConfig | None
    window_units: tuple[str, ...]
    pause_ms: float

    @classmethod
    def parse(cls, window_size: str | int | None, window_unit: str = AUTO, pause_ms: float = 2000.0) -> "FeaturePlan":
        """From the ``MOUSE_WINDOW_SIZE`` / ``MOUSE_WINDOW_UNIT`` values (ValueError naming a bad one)."""
        unit = str(window_unit).strip().lower() or AUTO
        if unit not in (AUTO, *WINDOW_UNITS):
            raise ValueError(f"MOUSE_WINDOW_UNIT={window_unit!r}: choose auto, events or actions")
        size = AUTO if window_size is None else str(window_size).strip().lower() or AUTO
        if size != AUTO and not (size.isdigit()):
            raise ValueError(f"MOUSE_WINDOW_SIZE={window_size!r}: expected auto or a whole number >= 0")
        units = WINDOW_UNITS if unit == AUTO else (unit,)
        if size == AUTO:
            return cls(None, units, float(pause_ms))
        pinned = FeatureConfig(int(size), "events" if unit == AUTO else unit, float(pause_ms))  # type: ignore[arg-type]
        return cls(pinned, units, float(pause_ms))

    def describe(self) -> str:
        if self.pinned is None:
            return f"auto: whole sessions and windows in {' and '.join(self.window_units)}, chosen by CV"
        return f"pinned: {self.pinned.window_size} {self.pinned.window_unit}" if self.pinned.window_size else \
            "pinned: whole sessions"


@dataclass(frozen=True)
class SelectionSettings:
    """Enrolment minimums, the candidates (feature settings x estimators), CV, halving and budget.

    Feature settings (see :func:`mouse_pipeline.selection.plan_feature_settings`)
        ``whole_sessions`` offers one row per session; for each unit of
        ``window_units``, ``sizes_per_unit`` window sizes are spread
        geometrically so that a typical session (or scoring chunk) gives from
        ``min_windows`` to ``max_windows`` windows, no window is smaller than
        ``min_window_events`` events or ``min_window_actions`` actions, and no
        setting gives more than ``max_training_rows`` training rows.
        ``pause_ms`` splits actions (as :class:`~mouse_pipeline.features.FeatureConfig`).
    The sessions to be scored
        ``scored_session_events``: the typical number of events of the
        sessions the model will score (the unlabelled test file's median,
        :func:`~mouse_pipeline.selection.typical_session_events`; 0: unknown).
        When it is below ``chunk_below`` times the training sessions' median,
        held-out sessions are scored in chunks of about that length (whole
        long held-out sessions would overstate accuracy on short ones) and
        windows are sized to it; single enrolment sessions are cut into blocks
        of about that length.
    Estimators
        The MLP grid (``mlp_hidden_layer_sizes`` x ``mlp_alpha``; inputs beside
        their one-hot quantile bin among ``mlp_bins``; each a soft vote of
        ``mlp_seeds`` networks), ExtraTrees for each of
        ``extra_trees_max_features``, and HistGradientBoosting when
        ``hist_gradient_boosting``. ``feature_selection`` ("trees" or "none")
        puts a tree-importance column selection inside every pipeline.
    Cross-validation and halving
        ``n_splits`` session-grouped folds (:class:`~mouse_pipeline.modelling.SessionPerUserKFold`,
        seeded by ``random_state``). Successive halving over folds: every
        candidate is scored on the first ``first_round_folds`` folds, the best
        ``1/halving_factor`` (and the best MLP) go on to twice as many folds,
        and so on until all folds; ``n_jobs`` processes.
    Families
        ``families`` selects the feature families the models train on (see
        :func:`~mouse_pipeline.features.families.parse_families`).
    Enrolment
        A user needs ``min_events_per_user`` events to be enrolled; a single
        session is cut into time blocks (at least two, at most one per fold) of
        about ``scored_session_events`` events, and of at least half the minimum.
    Model card
        ``bootstrap_resamples`` for 95 % intervals; permutation importance on
        ``importance_folds`` folds, ``importance_repeats`` permutations per
        column, held-out rows subsampled to ``importance_max_rows``.
    """

    # Feature settings.
    whole_sessions: bool = True
    window_units: tuple[str, ...] = ("events", "actions")
    sizes_per_unit: int = 3
    min_windows: int = 2
    max_windows: int = 300
    min_window_events: int = 10
    min_window_actions: int = 2
    max_training_rows: int = 12_000
    pause_ms: float = 2000.0
    scored_session_events: int = 0
    chunk_below: float = 0.5
    # Estimators.
    mlp_hidden_layer_sizes: tuple[tuple[int, ...], ...] = ((128,),)
    mlp_alpha: tuple[float, ...] = (0.3, 1.0)
    mlp_batch_size: int = 64
    mlp_learning_rate_init: float = 1e-3
    mlp_max_iter: int = 1000
    mlp_bins: int = 5
    mlp_seeds: int = 1
    feature_selection: str = "trees"
    extra_trees_max_features: tuple[str | float, ...] = (0.3,)
    extra_trees_n_estimators: int = 300
    hist_gradient_boosting: bool = True
    hist_gradient_boosting_max_cells: int = 200_000
    extra_trees_max_bytes: int = 1_000_000_000
    # Cross-validation, halving, processes.
    n_splits: int = 6
    random_state: int = 0
    first_round_folds: int = 2
    halving_factor: int = 3
    n_jobs: int = 2
    # Feature families.
    families: str = ALL
    # Enrolment.
    min_events_per_user: int = RuleSettings.min_events_per_user
    # Model card.
    bootstrap_resamples: int = 1000
    importance_folds: int = 2
    importance_repeats: int = 2
    importance_max_rows: int = 4000

    def __post_init__(self) -> None:
        parse_families(self.families)  # ValueError naming the valid families
        if self.feature_selection not in ("trees", "none"):
            raise ValueError(f"feature_selection must be 'trees' or 'none', not {self.feature_selection!r}")
        if self.n_splits < 2 or not 1 <= self.first_round_folds <= self.n_splits:
            raise ValueError("need n_splits >= 2 and 1 <= first_round_folds <= n_splits")
        if self.halving_factor < 2:
            raise ValueError("halving_factor must be at least 2")

    def estimators(self) -> list[Candidate]:
        """The estimator candidates, MLPs first (ties go to the earlier candidate)."""
        out = []
        for hidden in self.mlp_hidden_layer_sizes:
            for alpha in self.mlp_alpha:
                params = {"hidden_layer_sizes": tuple(hidden), "alpha": alpha, "batch_size": self.mlp_batch_size,
                          "learning_rate_init": self.mlp_learning_rate_init, "max_iter": self.mlp_max_iter}
                if self.mlp_bins > 0:
                    params["bins"] = self.mlp_bins
                if self.mlp_seeds > 1:
                    params["seeds"] = self.mlp_seeds
                name = f"mlp_{'x'.join(map(str, hidden))}_alpha{alpha:g}" + (
                    f"_bag{self.mlp_seeds}" if self.mlp_seeds > 1 else "")
                out.append(Candidate(name, "mlp", params, self.feature_selection))
        for max_features in self.extra_trees_max_features:
            out.append(Candidate(f"extra_trees_{max_features}", "extra_trees",
                                 {"n_estimators": self.extra_trees_n_estimators, "max_features": max_features},
                                 self.feature_selection))
        if self.hist_gradient_boosting:
            out.append(Candidate("hist_gradient_boosting", "hist_gradient_boosting",
                                 {"max_iter": 100, "learning_rate": 0.2, "max_leaf_nodes": 15}, self.feature_selection))
        if not out:
            raise ValueError("no estimator: give an MLP grid, ExtraTrees or HistGradientBoosting")
        return out

    def affordable(self, candidate: Candidate, rows: int, users: int) -> bool:
        """Whether ``candidate`` fits the budgets on a training table of ``rows`` rows and ``users`` users."""
        if candidate.family == "hist_gradient_boosting":
            return rows * users <= self.hist_gradient_boosting_max_cells
        if candidate.family == "extra_trees":
            return 16 * rows * users * candidate.params["n_estimators"] <= self.extra_trees_max_bytes
        return True

    def as_params(self) -> dict[str, str]:
        """Every setting as a flat ``name -> text`` dict (for MLflow params)."""
        return {k: str(v) for k, v in asdict(self).items()}
