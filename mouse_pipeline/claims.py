"""Deciding claims ("is session s really user u?") with the champion, and after how many actions.

:func:`verify_events` is the one path from events and claims to decisions:
the ``mouse-pipeline verify`` command (:func:`verify_file`) and the Dagster
``verification`` asset call it. Each claim gets the champion's fused score
(its run's ``verification.fusion``), the decision at its calibrated,
length-aware threshold (:class:`~mouse_pipeline.verification.ScoringRule`),
the score after the first N actions of the session (``score_<N>_actions``,
empty where the session is shorter) and ``decided_at_actions``: the smallest
N from which the decision no longer changes. A claim naming a session or a
user the model does not know is kept, rejected, with a ``problem``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.fusion import fuse
from mouse_pipeline.ingest import IngestResult
from mouse_pipeline.prediction import window_probabilities
from mouse_pipeline.prefixes import DEFAULT_ACTION_COUNTS, action_counts, prefix_scores
from mouse_pipeline.scoring import REJECTED_FILE, champion_rule, check_champion_fits, features_for, read_unlabelled
from mouse_pipeline.tracking import Champion
from mouse_pipeline.verification import ScoringRule, lookup_scores, verify_claims

CLAIM = "claimed_user_id"
DECISIONS_FILE = "verification.csv"


def read_claims(path: str | Path) -> pd.DataFrame:
    """A claims CSV (``session_id``, ``claimed_user_id``, read as text; other columns kept).

    Raises ValueError with a message naming the file when it is missing, unreadable or lacks a column.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: claims file not found")
    try:
        claims = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable claims CSV ({str(exc).splitlines()[0][:200]})") from exc
    missing = sorted({c.SESSION_ID, CLAIM} - set(claims.columns))
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a claims file needs {c.SESSION_ID} and {CLAIM}")
    return claims


def claim_scores(pipeline, features: pd.DataFrame, fusion: str) -> pd.DataFrame:
    """Fused claim scores of whole sessions (index: session id; one column per user the model knows)."""
    return fuse(window_probabilities(pipeline, features), pipeline.classes_, features[c.SESSION_ID].to_numpy(),
                fusion)


def prefix_claim_scores(pipeline, events: pd.DataFrame, config, fusion: str,
                        action_grid: Sequence[int] = DEFAULT_ACTION_COUNTS,
                        sessions: Sequence[str] | None = None) -> dict[int, pd.DataFrame]:
    """Fused claim scores of the first N actions of each session, for each N of ``action_grid``
    (N -> table indexed by session id; sessions shorter than N are absent)."""
    return {n: prefix_scores(events, config, n, fusion, pipeline.classes_,
                             lambda table, _source: window_probabilities(pipeline, table), sessions)
            for n in action_grid}


def settled_at(prefix: np.ndarray, thresholds: np.ndarray, final: np.ndarray, n_actions: np.ndarray,
               grid: np.ndarray) -> np.ndarray:
    """The smallest N of ``grid`` from which every prefix decision agrees with the final one.

    ``prefix`` (claims x N) holds prefix scores (NaN: the session is shorter), ``thresholds`` (N) their
    thresholds, ``final`` (claims) the final decisions; when even the longest prefix disagrees, the
    session's own length ``n_actions``. Float array (NaN where ``n_actions`` is NaN).
    """
    present = ~np.isnan(prefix)
    agree = ~present | ((np.nan_to_num(prefix, nan=-np.inf) >= thresholds[None, :]) == final[:, None])
    from_here = np.logical_and.accumulate(agree[:, ::-1], axis=1)[:, ::-1] & present
    first = from_here.argmax(axis=1)
    return np.where(from_here.any(axis=1), grid[first].astype(np.float64), n_actions)


def decide_claims(whole: pd.DataFrame, prefixes: dict[int, pd.DataFrame], n_actions: pd.Series,
                  claims: pd.DataFrame, rule: ScoringRule) -> pd.DataFrame:
    """One row per claim, in order: ``session_id``, ``claimed_user_id``, ``n_actions``, ``score``,
    ``threshold``, ``accepted``, ``decided_at_actions``, ``score_<N>_actions`` for each N, ``problem``.

    ``whole`` and each of ``prefixes`` are fused score tables (index: session id), ``n_actions`` the
    number of actions of each session; thresholds come from ``rule``.
    """
    sessions = claims[c.SESSION_ID].astype(str).to_numpy()
    users = claims[CLAIM].astype(str).to_numpy()
    lengths = n_actions.reindex(sessions).to_numpy(dtype=np.float64)
    out = verify_claims(whole, claims, rule.verification_threshold_for(lengths))
    grid = np.array(sorted(prefixes), dtype=np.int64)
    scores = np.column_stack([lookup_scores(prefixes[n], sessions, users) for n in grid]) if len(grid) else \
        np.zeros((len(claims), 0))
    problem = out.pop("problem")
    out.insert(2, "n_actions", pd.array(lengths, dtype="Int64"))  # whole numbers, empty for an unknown session
    settled = settled_at(scores, rule.verification_threshold_for(grid, prefix=True), out["accepted"].to_numpy(),
                         lengths, grid)
    out["decided_at_actions"] = pd.array(np.where(problem.to_numpy() == "", settled, np.nan), dtype="Int64")
    for k, n in enumerate(grid):
        out[f"score_{n}_actions"] = scores[:, k]
    out["problem"] = problem
    return out[[c.SESSION_ID, CLAIM, "n_actions", "score", "threshold", "accepted", "decided_at_actions",
                *[f"score_{n}_actions" for n in grid], "problem"]]


def verify_events(champion: Champion, events: pd.DataFrame, claims: pd.DataFrame,
                  action_grid: Sequence[int] = DEFAULT_ACTION_COUNTS, features: pd.DataFrame | None = None,
                  features_config=None, rule: ScoringRule | None = None) -> pd.DataFrame:
    """Decisions on ``claims`` about unlabelled ``events`` by the champion (see :func:`decide_claims`).

    ``features`` / ``features_config``: a feature table of ``events`` already computed, used when its
    settings are the champion's (:func:`mouse_pipeline.scoring.features_for`); ``rule``: the champion's
    scoring rule when already loaded (:func:`mouse_pipeline.scoring.champion_rule`).
    """
    rule = rule or champion_rule(champion)
    config = champion.feature_config
    table = features_for(champion, events, features, features_config)
    claimed = np.unique(claims[c.SESSION_ID].astype(str).to_numpy())
    whole = claim_scores(champion.pipeline, table, rule.fusion)
    prefixes = prefix_claim_scores(champion.pipeline, events, config, rule.fusion, action_grid, claimed)
    return decide_claims(whole, prefixes, action_counts(events, config.pause_ms), claims, rule)


@dataclass(frozen=True)
class VerifyResult:
    """What verifying one events file against one claims file produced; ``foreign_champion`` is why the
    champion should not have decided them, when that was overridden ("" when it fits the file)."""

    source_file: str
    claims_file: str
    ingest: IngestResult
    decisions: pd.DataFrame
    champion: Champion
    rule: ScoringRule
    foreign_champion: str = ""

    def tables(self) -> dict[str, pd.DataFrame]:
        """The files to write: ``verification.csv`` and ``rejected_events.csv``."""
        return {DECISIONS_FILE: self.decisions, REJECTED_FILE: self.ingest.rejected}

    def info(self, **extra) -> dict:
        """The manifest: files, model and its training data, rule, counts."""
        champion, d, rule, identity = self.champion, self.decisions, self.rule, self.champion.identity
        return {
            "source": Path(self.source_file).name, "claims": Path(self.claims_file).name,
            "model": champion.describe(), "model_name": champion.name, "model_version": champion.version,
            "mlflow_run_id": champion.run_id, "training_data": identity.tags() if identity else None,
            "foreign_champion": self.foreign_champion or None, "fusion": rule.fusion,
            "verification_threshold": rule.verification_threshold, "claims_total": len(d),
            "accepted": int(d["accepted"].sum()), "with_problems": int((d["problem"] != "").sum()),
            "created_utc": pd.Timestamp.now(tz="UTC").isoformat(), **extra,
        }


def verify_file(events_path: str | Path, claims_path: str | Path, champion: Champion,
                progress: Callable[[str], None] | None = None, source_name: str | None = None,
                action_grid: Sequence[int] = DEFAULT_ACTION_COUNTS, allow_foreign_champion: bool = False
                ) -> VerifyResult:
    """Validate and featurise an unlabelled events CSV, then decide the claims of a claims CSV (nothing is
    written: see :meth:`VerifyResult.tables` and :mod:`mouse_pipeline.outputs`). ``allow_foreign_champion``
    decides even with a champion trained on other data (:func:`mouse_pipeline.scoring.check_champion_fits`).

    Raises
    ------
    mouse_pipeline.ingest.EventFileError
        When the events file cannot be used at all.
    mouse_pipeline.scoring.ForeignChampionError
        When the champion was trained on other data (simulated for a real file, or real for a simulated one).
    ValueError
        When the claims file is missing or malformed, or no event row is valid.
    """
    step = progress or (lambda _message: None)
    name = source_name or str(events_path)
    step(f"reading {name} and {claims_path}")
    claims = read_claims(claims_path)
    ingest = read_unlabelled(events_path, name, source_name)
    foreign = check_champion_fits(champion, ingest.events, name, allow_foreign_champion)
    step(f"deciding {len(claims):,} claims on {ingest.rows_accepted:,} events")
    rule = champion_rule(champion)
    decisions = verify_events(champion, ingest.events, claims, action_grid, rule=rule)
    return VerifyResult(name, str(claims_path), ingest, decisions, champion, rule, foreign)
