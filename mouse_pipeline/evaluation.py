"""Session-level evaluation: scores, per-user report, confusion matrix and its heatmap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from mouse_pipeline import contract as c
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


def session_truth(table: pd.DataFrame) -> pd.Series:
    """The user of each session of a labelled table (index: session id as text)."""
    return pd.Series(table[c.USER_ID].to_numpy().astype(str),
                     index=table[c.SESSION_ID].to_numpy().astype(str)).groupby(level=0).first()


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


#: Label of the per-user report's last row: the unweighted mean over users.
MACRO_AVERAGE = "macro average"


@dataclass(frozen=True)
class EvaluationReport:
    """Scores, per-user precision/recall/F1 (plus a last ``macro average`` row) and the confusion matrix
    (rows: true user)."""

    scores: dict[str, float]
    per_user: pd.DataFrame
    confusion: pd.DataFrame


def evaluation_report(truth: pd.Series, proba: pd.DataFrame) -> EvaluationReport:
    """Full session-level report of out-of-fold predictions."""
    pred = predicted_users(proba)
    truth = truth.loc[proba.index]
    labels = list(proba.columns)
    report = classification_report(truth, pred, labels=labels, output_dict=True, zero_division=0)
    rows = {**{u: report[u] for u in labels}, MACRO_AVERAGE: report["macro avg"]}
    per_user = pd.DataFrame(rows).T.rename_axis("user_id").reset_index()
    per_user["support"] = per_user["support"].astype(int)
    cm = pd.DataFrame(confusion_matrix(truth, pred, labels=labels), index=labels, columns=labels)
    cm.index.name, cm.columns.name = "true user", "predicted user"
    return EvaluationReport(session_scores(truth, proba), per_user, cm)


def confusion_heatmap_png(confusion: pd.DataFrame, title: str = "Confusion matrix (sessions)") -> bytes:
    """The confusion matrix as a PNG heatmap (the notebook's plot), user ids on both axes.

    Long ids are shortened to their last 10 characters (prefixed with an ellipsis), which keeps
    ids such as -2416201411472988629 apart; counts are written in the cells.
    """
    plt = pyplot()
    n = len(confusion)
    labels = [_short_id(u) for u in confusion.index]
    fig, ax = plt.subplots(figsize=(3 + 0.4 * n, 2.5 + 0.4 * n), dpi=90)
    values = confusion.to_numpy()
    image = ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(n), labels, fontsize=7, rotation=90)
    ax.set_yticks(range(n), labels, fontsize=7)
    if n <= 40:
        for (i, j), count in np.ndenumerate(values):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                        color="white" if count > values.max() / 2 else "black")
    ax.set_xlabel("predicted user")
    ax.set_ylabel("true user")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return png_bytes(fig)


def _short_id(user: object, width: int = 10) -> str:
    text = str(user)
    return text if len(text) <= width + 1 else "…" + text[-width:]
