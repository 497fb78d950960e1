"""Identification quality on the real Kaggle training file, in session-grouped cross-validation.

Usage::

    python -m benchmarks.kaggle_quality [--train ../shared/data/kaggle/Train_Mouse.csv] [--folds 6]

Prints the session-level macro-F1, accuracy and top-3 accuracy of:

* the notebook's recipe: its 17 features, standard scaling and an MLP with
  one hidden layer of 40 units ([17, 40, 20]);
* every candidate the pipeline's ``user_identifier`` cross-validates with its
  default settings, best first (the first is the champion);
* the champion's verification EER and ROC AUC, and its unknown-user
  detection in leave-one-user-out.

Every score is out-of-fold: each fold holds out one whole session per user
(``SessionPerUserKFold``), and window probabilities are averaged per session.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mouse_pipeline import contract as c
from mouse_pipeline.features import NOTEBOOK_FEATURES, FeatureConfig, extract_features, feature_columns
from mouse_pipeline.ingest import read_events
from mouse_pipeline.modelling import Candidate, SessionPerUserKFold, TrainingSettings, cross_validate, select_model
from mouse_pipeline.verification import error_rates, genuine_and_impostor_scores, leave_one_user_out_scores

DEFAULT_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "kaggle" / "Train_Mouse.csv"


class _NotebookCandidate(Candidate):
    def build(self, random_state: int):
        return make_pipeline(StandardScaler(), MLPClassifier((40,), max_iter=2000, random_state=random_state))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN)
    parser.add_argument("--folds", type=int, default=6)
    parser.add_argument("--window-size", type=int, default=0)
    args = parser.parse_args()

    events = read_events(args.train, labelled=True).events
    features = extract_features(events, FeatureConfig(window_size=args.window_size))
    y, groups = features[c.USER_ID].to_numpy(), features[c.SESSION_ID].to_numpy()
    print(f"{args.train}: {len(events):,} events, {len(set(groups))} sessions, {len(set(y))} users, "
          f"{len(features)} rows, {len(feature_columns(features))} features; {args.folds}-fold "
          "session-grouped cross-validation, scores per session\n")
    print(f"{'model':<34} {'macro-F1':>9} {'accuracy':>9} {'top-3':>7} {'seconds':>8}")
    print("(seconds: the baseline's cross-validation; the whole model search on the champion's line)")

    def show(name: str, scores: dict, seconds: float | None = None) -> None:
        timing = f"{seconds:>8.1f}" if seconds is not None else ""
        print(f"{name:<34} {scores['macro_f1']:>9.3f} {scores['accuracy']:>9.3f} "
              f"{scores['top3_accuracy']:>7.3f} {timing}")

    started = time.perf_counter()
    cv = SessionPerUserKFold(args.folds, 0)
    baseline = cross_validate(_NotebookCandidate("notebook", "mlp", {}), features[list(NOTEBOOK_FEATURES)],
                              y, groups, cv)
    show("notebook: 17 features, MLP [40]", baseline.scores, time.perf_counter() - started)

    started = time.perf_counter()
    settings = TrainingSettings(n_splits=args.folds)
    results = select_model(features[feature_columns(features)], y, groups, settings, n_jobs=2)
    elapsed = time.perf_counter() - started
    for rank, result in enumerate(results):
        label = ("champion: " if rank == 0 else "") + result.candidate.name
        show(label, result.scores, elapsed if rank == 0 else None)

    champion = results[0]
    verification = error_rates(*genuine_and_impostor_scores(champion.session_proba, champion.truth), 0.01)
    print(f"\nverification with the champion (every session against its true user and each of the other "
          f"users, out of fold):\n  EER {verification.eer:.3f}, ROC AUC {verification.auc:.4f}; at the "
          f"threshold for a 1% false-accept rate: FAR {verification.far:.3f}, FRR {verification.frr:.3f}")
    started = time.perf_counter()
    known, unknown = leave_one_user_out_scores(
        lambda: champion.candidate.build(0), features[feature_columns(features)], y, groups, n_splits=2, n_jobs=2
    )
    open_set = error_rates(known, unknown, 0.05)
    print(f"unknown-user detection (leave one user out, {time.perf_counter() - started:.0f} s): EER "
          f"{open_set.eer:.3f}, ROC AUC {open_set.auc:.3f}; at the threshold letting 5% of unknown "
          f"users' sessions through: {open_set.frr:.3f} of known users' sessions called unknown")


if __name__ == "__main__":
    main()
