"""Time and quality of a whole model selection with default settings, as a retrain runs it.

Usage::

    python -m benchmarks.selection_benchmark                       # the Kaggle training file
    python -m benchmarks.selection_benchmark --simulate long       # ~2.25 M events: 10 users x 6 long sessions
    python -m benchmarks.selection_benchmark --simulate all        # every simulated shape, then one table
    python -m benchmarks.selection_benchmark --simulate mid-long --no-test-length   # as if the test length were unknown

Each run goes through the core steps the shell calls: enrolment
(:func:`prepare_training_events`), the scoring chunk length from the test
file (:func:`typical_session_events`, unlabelled), planning the feature
settings, featurising each once, the halving race (:func:`select`, with the
ablation and the intervals), permutation importance, the model card and the
final fit. It prints the seconds of each step (wall, and CPU of this process
and its workers, since the machine may be shared), the top of the candidate
table, the champion's and the best MLP's cross-validated scores, the
ablation, and on simulated data the macro-F1 of the champion and of the best
MLP on the simulated test sessions, against the simulated truth.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import psutil
from sklearn.metrics import f1_score

from mouse_pipeline import contract as c
from mouse_pipeline.enrolment import prepare_training_events
from mouse_pipeline.features import extract_features
from mouse_pipeline.ingest import read_events
from mouse_pipeline.model_card import permutation_importance, render_model_card
from mouse_pipeline.prediction import predict_sessions
from mouse_pipeline.selection import (
    featurise,
    fit_choice,
    plan_feature_settings,
    select,
    setting_name,
    typical_session_events,
)
from mouse_pipeline.selection_settings import SelectionSettings
from mouse_pipeline.simulate import simulate

DEFAULT_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "kaggle" / "Train_Mouse.csv"
DEFAULT_TEST = DEFAULT_TRAIN.with_name("Test_Mouse.csv")

#: Simulated shapes: keyword arguments of :func:`mouse_pipeline.simulate.simulate`.
SHAPES = {
    # The pipeline's own default data: 20 users x 6 sessions of ~230 events, 2 test sessions each.
    "default": dict(users=20, sessions=6, test_sessions=2),
    # Balabit-like at full size: ~2.25 M training events, 10 users x 6 sessions of ~37k events on one
    # display; test sessions of ~1.7k events.
    "long": dict(users=10, sessions=6, test_sessions=4, actions_per_session=1550, test_actions_per_session=70,
                 same_display=True, separation=0.3),
    # The same shape at a fifth of the size, users harder to tell apart.
    "mid-long": dict(users=10, sessions=6, test_sessions=4, actions_per_session=300, test_actions_per_session=30,
                     same_display=True, separation=0.3),
    # SapiMouse-like: one enrolment session per user (~2.7k events) and one shorter later test session.
    "single": dict(users=120, sessions=1, test_sessions=1, actions_per_session=120, test_actions_per_session=40),
    # Hundreds of users with Kaggle-sized sessions.
    "many-users": dict(users=200, sessions=4, test_sessions=1, actions_per_session=10),
    # Everyone on one display and page: only behaviour separates users.
    "one-display": dict(users=20, sessions=6, test_sessions=2, same_display=True),
}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, its live workers and its finished children."""
    me = psutil.Process()
    live = sum(sum(p.cpu_times()[:2]) for p in me.children(recursive=True) if p.is_running())
    finished = resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(me.cpu_times()[:2]) + live + finished.ru_utime + finished.ru_stime


class Clock:
    """Wall and CPU seconds per step."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()

    def lap(self, step: str) -> None:
        wall, cpu = time.perf_counter(), cpu_seconds()
        self.rows.append((step, wall - self._wall, cpu - self._cpu))
        self._wall, self._cpu = wall, cpu

    @property
    def wall(self) -> float:
        return sum(r[1] for r in self.rows)

    def report(self) -> str:
        lines = [f"{'step':<30} {'wall s':>8} {'cpu s':>8}"]
        lines += [f"{step:<30} {wall:>8.1f} {cpu:>8.1f}" for step, wall, cpu in self.rows]
        return "\n".join([*lines, f"{'total':<30} {self.wall:>8.1f} {sum(r[2] for r in self.rows):>8.1f}"])


def test_macro_f1(choice, feature_sets, test: pd.DataFrame, truth: pd.Series, model=None) -> float:
    """Macro-F1 of a choice on the test sessions (fitted on its feature set unless ``model`` is given)."""
    if model is None:
        table = next(fs.table for fs in feature_sets if fs.config == choice.config)
        model = fit_choice(choice, table)
    predicted = predict_sessions(model, extract_features(test, choice.config)).set_index(c.SESSION_ID)[c.USER_ID]
    return float(f1_score(truth.loc[predicted.index], predicted, average="macro"))


def run(train: pd.DataFrame, test: pd.DataFrame, truth: pd.Series | None, label: str, chunks: bool = True,
        card: Path | None = None) -> dict:
    """One retrain's core steps with default settings, timed; prints the details and returns a summary row.
    ``chunks``: tell the selection how long the test sessions are (else it scores whole held-out sessions)."""
    clock = Clock()
    settings = SelectionSettings()
    if chunks and len(test):
        settings = replace(settings, scored_session_events=typical_session_events(test))
    enrolment = prepare_training_events(train, settings)
    configs = plan_feature_settings(enrolment.events, settings)
    clock.lap("enrol and plan")
    feature_sets = featurise(enrolment.events, configs, settings)
    clock.lap("featurise settings")
    result = select(feature_sets, settings, enrolment.recorded_session)
    clock.lap("select (race, ablation, CI)")
    champion_set = next(fs for fs in feature_sets if fs.config == result.feature_config)
    importance = permutation_importance(result, champion_set)
    model_card = render_model_card(result, enrolment, importance)
    clock.lap("importance and model card")
    model = result.fit(champion_set.table)
    clock.lap("final fit")

    m = model_card.metrics
    print(f"\n=== {label}: {len(train):,} events, {m['sessions']:.0f} sessions, {m['users']:.0f} users "
          f"({m['users_validated_by_blocks']:.0f} validated by blocks), scoring chunks: "
          f"{result.chunk_events or 'whole held-out sessions'}")
    print("feature settings:", ", ".join(setting_name(cfg) for cfg in configs))
    print(clock.report())
    shown = ["rank", "feature_setting", "estimator", "rows", "cv_macro_f1", "cv_accuracy", "folds_scored",
             "round_reached", "seconds"]
    print(result.table[shown].head(8).round(3).to_string(index=False))
    print(f"champion {result.champion.choice.name}: cv_macro_f1 {m['cv_macro_f1']:.3f} "
          f"[{m['cv_macro_f1_ci_low']:.3f}, {m['cv_macro_f1_ci_high']:.3f}]")
    print(f"best MLP {result.best_mlp.choice.name}: cv_macro_f1 {m['best_mlp_cv_macro_f1']:.3f}")
    print(f"behaviour only {m['cv_macro_f1_behaviour_only']:.3f}, environment only "
          f"{m['cv_macro_f1_environment_only']:.3f}")
    row = {"data": label, "events": len(train), "chosen": result.champion.choice.name,
           "cv_macro_f1": m["cv_macro_f1"], "best_mlp": result.best_mlp.choice.name,
           "best_mlp_cv": m["best_mlp_cv_macro_f1"], "behaviour_only": m["cv_macro_f1_behaviour_only"],
           "environment_only": m["cv_macro_f1_environment_only"], "seconds": clock.wall}
    if truth is not None:
        row["test_macro_f1"] = test_macro_f1(result.champion.choice, feature_sets, test, truth, model)
        row["best_mlp_test"] = test_macro_f1(result.best_mlp.choice, feature_sets, test, truth)
        print(f"simulated test sessions ({len(truth)}): champion macro-F1 {row['test_macro_f1']:.3f}, "
              f"best MLP {row['best_mlp_test']:.3f}")
    if card:
        card.write_text(model_card.markdown)
        print(f"model card: {card}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN)
    parser.add_argument("--test", type=Path, default=DEFAULT_TEST, help="unlabelled; its median session length is the scored_session_events setting")
    parser.add_argument("--simulate", choices=[*SHAPES, "all"], default=None)
    parser.add_argument("--seed", type=int, default=1, help="simulator seed")
    parser.add_argument("--no-test-length", action="store_true",
                        help="do not tell the selection how long the test sessions are (no scoring chunks, blocks)")
    parser.add_argument("--card", type=Path, default=None, help="write the (last) model card here")
    args = parser.parse_args()

    rows = []
    if args.simulate:
        for shape in SHAPES if args.simulate == "all" else [args.simulate]:
            data = simulate(**SHAPES[shape], seed=args.seed)
            truth = data.truth.set_index(c.SESSION_ID)[c.USER_ID]
            rows.append(run(data.train, data.test, truth, shape, not args.no_test_length, args.card))
    else:
        train = read_events(args.train, labelled=True).events
        test = read_events(args.test, labelled=False).events if args.test.exists() else train.iloc[:0]
        rows.append(run(train, test, None, args.train.name, not args.no_test_length, args.card))
    print("\n" + pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
