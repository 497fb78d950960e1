"""Identification quality on the real Kaggle training file, in session-grouped cross-validation.

Usage::

    python -m benchmarks.kaggle_quality [--train ../shared/data/kaggle/Train_Mouse.csv] [--folds 6]
                                        [--families all]

Prints the session-level macro-F1, accuracy and top-3 accuracy of:

* the notebook's recipe: its 17 features, standard scaling and an MLP with
  one hidden layer of 40 units ([17, 40, 20]);
* the model selection of a retrain with default settings (feature settings x
  estimators, :func:`mouse_pipeline.selection.select`): the top of the
  candidate table, the champion with its 95 % interval, the best MLP, and
  the champion's behaviour-only and environment-only ablation;
* the champion's verification EER and ROC AUC (uncalibrated; the
  calibrated numbers come from ``benchmarks.verification_quality``).

Every score is out-of-fold: each fold holds out one whole session per user
(``SessionPerUserKFold``), and window probabilities are averaged per session.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mouse_pipeline import contract as c
from mouse_pipeline.enrolment import prepare_training_events
from mouse_pipeline.features import NOTEBOOK_FEATURES, FeatureConfig, extract_features
from mouse_pipeline.ingest import read_events
from mouse_pipeline.modelling import Candidate, SessionPerUserKFold, cross_validate
from mouse_pipeline.selection import featurise, plan_feature_settings, select
from mouse_pipeline.selection_settings import SelectionSettings
from mouse_pipeline.verification import error_rates, genuine_and_impostor_scores

DEFAULT_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "kaggle" / "Train_Mouse.csv"


class _NotebookCandidate(Candidate):
    def build(self, random_state: int):
        return make_pipeline(StandardScaler(), MLPClassifier((40,), max_iter=2000, random_state=random_state))


def show(name: str, scores: dict, seconds: float | None = None) -> None:
    timing = f"{seconds:>8.1f}" if seconds is not None else ""
    print(f"{name:<52} {scores['macro_f1']:>9.3f} {scores['accuracy']:>9.3f} {scores['top3_accuracy']:>7.3f} {timing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN)
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--families", default="all", help="feature families to train on (MOUSE_FEATURE_FAMILIES)")
    args = parser.parse_args()

    events = read_events(args.train, labelled=True).events
    settings = replace(SelectionSettings(), n_splits=args.folds, families=args.families)
    print(f"{args.train}: {len(events):,} events, {events[c.SESSION_ID].nunique()} sessions, "
          f"{events[c.USER_ID].nunique()} users; {args.folds}-fold session-grouped cross-validation, scores per "
          "session\n")
    print(f"{'model':<52} {'macro-F1':>9} {'accuracy':>9} {'top-3':>7} {'seconds':>8}")
    print("(seconds: the baseline's cross-validation; the whole selection on the champion's line)")

    started = time.perf_counter()
    whole = extract_features(events, FeatureConfig())
    baseline = cross_validate(_NotebookCandidate("notebook", "mlp", {}), whole[list(NOTEBOOK_FEATURES)],
                              whole[c.USER_ID].to_numpy(), whole[c.SESSION_ID].to_numpy(),
                              SessionPerUserKFold(args.folds, 0))
    show("notebook: 17 features, MLP [40]", baseline.scores, time.perf_counter() - started)

    started = time.perf_counter()
    enrolment = prepare_training_events(events, settings)
    feature_sets = featurise(enrolment.events, plan_feature_settings(enrolment.events, settings), settings)
    result = select(feature_sets, settings, enrolment.recorded_session)
    elapsed = time.perf_counter() - started
    finalists = result.table[result.table["folds_scored"] == settings.n_splits]
    for row in finalists.itertuples():
        label = ("champion: " if row.rank == 1 else "") + f"{row.estimator} on {row.feature_setting}"
        show(label, {"macro_f1": row.cv_macro_f1, "accuracy": row.cv_accuracy,
                     "top3_accuracy": row.cv_top3_accuracy}, elapsed if row.rank == 1 else None)
    low, high = result.intervals["macro_f1"]
    print(f"\nchampion macro-F1 95% interval (bootstrap over sessions): {low:.3f} - {high:.3f}")
    if result.best_mlp is not None:
        show(f"best MLP: {result.best_mlp.choice.name}", result.best_mlp.cv.scores)
    for kind, scored in result.ablation.items():
        show(f"champion on {kind} columns only", scored.cv.scores)

    champion = result.champion
    verification = error_rates(*genuine_and_impostor_scores(champion.cv.session_proba, champion.cv.truth), 0.01)
    print(f"\nverification with the champion (every session against its true user and each of the other "
          f"users, out of fold, mean window probability):\n  EER {verification.eer:.3f}, ROC AUC "
          f"{verification.auc:.4f}. The calibrated verification (fusion, decision curve, unknown verdict) is "
          "python -m benchmarks.verification_quality, and the verification_calibration asset.")

if __name__ == "__main__":
    main()
