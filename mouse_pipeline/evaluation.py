"""Session-level evaluation: scores, per-user report, confusion matrix and its heatmap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from mouse_pipeline.figures import png_bytes, pyplot


def session_probabilities(proba: np.ndarray, classes: np.ndarray, sessions: np.ndarray) -> pd.DataFrame:
    """Average the window probabilities of each session.

    Returns a frame indexed by session id (sorted) with one column per class.
    """
    frame = pd.DataFrame(np.asarray(proba, dtype=np.float64), columns=list(classes))
    return frame.groupby(np.asarray(sessions), sort=True).mean()


def top_k_accuracy(truth: pd.Series, proba: pd.DataFrame, k: int = 3) -> float:
    """Share of sessions whose true user is among the ``k`` most probable."""
    values = proba.to_numpy()
    k = min(k, values.shape[1])
    top = np.argsort(-values, axis=1, kind="stable")[:, :k]
    columns = np.asarray(proba.columns)
    return float(np.mean([t in set(columns[row]) for t, row in zip(truth.to_numpy(), top)]))


def predicted_users(proba: pd.DataFrame) -> pd.Series:
    """The most probable user of each session (ties: the first class in column order)."""
    return pd.Series(np.asarray(proba.columns)[proba.to_numpy().argmax(axis=1)], index=proba.index)


def session_scores(truth: pd.Series, proba: pd.DataFrame) -> dict[str, float]:
    """Macro-F1, accuracy and top-3 accuracy of session predictions.

    ``truth`` (true user per session) and ``proba`` (class probabilities per
    session) share the same index.
    """
    pred = predicted_users(proba)
    truth = truth.loc[proba.index]
    return {
        "macro_f1": float(f1_score(truth, pred, average="macro", labels=list(proba.columns), zero_division=0)),
        "accuracy": float(accuracy_score(truth, pred)),
        "top3_accuracy": top_k_accuracy(truth, proba, 3),
    }


@dataclass(frozen=True)
class EvaluationReport:
    """Scores, per-user precision/recall/F1 and the confusion matrix (rows: true user)."""

    scores: dict[str, float]
    per_user: pd.DataFrame
    confusion: pd.DataFrame


def evaluation_report(truth: pd.Series, proba: pd.DataFrame) -> EvaluationReport:
    """Full session-level report of out-of-fold predictions."""
    pred = predicted_users(proba)
    truth = truth.loc[proba.index]
    labels = list(proba.columns)
    report = classification_report(truth, pred, labels=labels, output_dict=True, zero_division=0)
    per_user = pd.DataFrame({u: report[u] for u in labels}).T.rename_axis("user_id").reset_index()
    per_user["support"] = per_user["support"].astype(int)
    cm = pd.DataFrame(confusion_matrix(truth, pred, labels=labels), index=labels, columns=labels)
    cm.index.name, cm.columns.name = "true user", "predicted user"
    return EvaluationReport(session_scores(truth, proba), per_user, cm)


def confusion_heatmap_png(confusion: pd.DataFrame, title: str = "Confusion matrix (sessions)") -> bytes:
    """The confusion matrix as a PNG heatmap (the notebook's plot); users numbered 0..n-1."""
    plt = pyplot()
    n = len(confusion)
    fig, ax = plt.subplots(figsize=(2 + 0.35 * n, 1.5 + 0.35 * n), dpi=90)
    image = ax.imshow(confusion.to_numpy(), cmap="Blues")
    ax.set_xticks(range(n), range(n), fontsize=7)
    ax.set_yticks(range(n), range(n), fontsize=7)
    ax.set_xlabel("predicted user (index)")
    ax.set_ylabel("true user (index)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return png_bytes(fig)
