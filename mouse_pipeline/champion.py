"""Which model may serve: the identity of training data, and the champion gate.

A model is only as good as the data it knows. Every registered version
records the :class:`DataIdentity` of what it was trained on: the user set,
the labelled sessions, the cross-validation folds its score comes from, and
whether the data was simulated. :func:`decide` then judges a newly trained
model (the *challenger*) against the current champion:

1. **Validation criteria** (the idea of MLflow Recipes' validation step): the
   challenger must be complete (every artifact scoring needs, the calibrated
   thresholds included, logged to its run), and its cross-validated macro-F1
   clearly better than chance (:func:`default_min_macro_f1`, or a floor the
   user sets). A challenger that fails is registered, never promoted.
2. **Comparability**: scores are compared only when both models were scored on
   the same folds of the same sessions (equal ``folds_sha256``). A champion
   trained on other users, other sessions or simulated data does not belong
   to the current data, so a valid challenger replaces it, and the decision
   says why ("handover").
3. **Tolerance**: on the same folds, the challenger is promoted unless its
   score is lower than the champion's by more than the tolerance.

The decision carries its evidence (each criterion with value, threshold and
outcome) so that the Dagster metadata, the MLflow tags and the gate's JSON
artifact show why a version serves or does not.

:func:`may_score` guards scoring a file: a model trained on simulated data
never names the users of a real file, nor a model of real data those of a
simulated one (simulated files say so in-band: their session ids start with
``sim-``, see :func:`mouse_pipeline.simulate.is_simulated_session`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from mouse_pipeline import contract as c
from mouse_pipeline.simulate import SIMULATED_SESSION_PREFIX, is_simulated_session

#: Prefix of the model-version tags that hold a :class:`DataIdentity`.
TAG_PREFIX = "data."


def _digest(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DataIdentity:
    """What a model was trained on, in a form that fits in MLflow tags.

    Attributes
    ----------
    n_users, n_sessions:
        Number of users and of (labelled) training sessions.
    users_sha256:
        sha256 of the sorted user ids: equal for the same user set.
    sessions_sha256:
        sha256 of the sorted ``session<TAB>user`` pairs: equal for the same
        labelled sessions, whatever file they came from.
    folds_sha256:
        sha256 of the sorted ``session<TAB>fold`` pairs of the cross-validation
        the model was scored with: equal scores are comparable only when equal.
    simulated:
        Whether the data came from the project's simulator (its session ids start with ``sim-``).
    source:
        A human-readable name of the data (a file name, never a full path).
    """

    n_users: int
    n_sessions: int
    users_sha256: str
    sessions_sha256: str
    folds_sha256: str
    simulated: bool
    source: str = ""

    @classmethod
    def of(cls, users: Sequence, sessions: Sequence, folds: Mapping | pd.Series, simulated: bool,
           source: str = "") -> DataIdentity:
        """The identity of training rows (one user and session per row; rows may repeat a session) scored
        with ``folds`` (fold of each session). ``simulated`` says the data came from the simulator; data
        whose every session id is simulated (:func:`~mouse_pipeline.simulate.is_simulated_session`) is
        simulated too, wherever its file came from."""
        pairs = pd.DataFrame({"session": np.asarray(sessions).astype(str), "user": np.asarray(users).astype(str)})
        pairs = pairs.drop_duplicates("session").sort_values("session", kind="stable")
        simulated = simulated or (len(pairs) > 0 and bool(is_simulated_session(pairs["session"]).all()))
        fold_of = pd.Series(folds)
        fold_lines = [f"{s}\t{fold_of.get(s, '')}" for s in pairs["session"]]
        return cls(
            n_users=int(pairs["user"].nunique()),
            n_sessions=len(pairs),
            users_sha256=_digest(sorted(pairs["user"].unique())),
            sessions_sha256=_digest([f"{s}\t{u}" for s, u in zip(pairs["session"], pairs["user"])]),
            folds_sha256=_digest(fold_lines),
            simulated=bool(simulated),
            source=source,
        )

    def tags(self) -> dict[str, str]:
        """The identity as MLflow tags (``data.*``)."""
        return {f"{TAG_PREFIX}{k}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> DataIdentity | None:
        """The identity recorded in ``tags``, or None when a version predates identities."""
        try:
            return cls(
                n_users=int(tags[f"{TAG_PREFIX}n_users"]),
                n_sessions=int(tags[f"{TAG_PREFIX}n_sessions"]),
                users_sha256=tags[f"{TAG_PREFIX}users_sha256"],
                sessions_sha256=tags[f"{TAG_PREFIX}sessions_sha256"],
                folds_sha256=tags[f"{TAG_PREFIX}folds_sha256"],
                simulated=tags[f"{TAG_PREFIX}simulated"] == "true",
                source=tags.get(f"{TAG_PREFIX}source", ""),
            )
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        kind = "simulated" if self.simulated else "real"
        return (f"{kind} data{f' ({self.source})' if self.source else ''}: {self.n_users} users, "
                f"{self.n_sessions} sessions, sessions {self.sessions_sha256[:10]}")


def belongs_to(model: DataIdentity | None, data: DataIdentity) -> tuple[bool, str]:
    """Whether a model trained on ``model`` data may serve ``data``, and why not."""
    if model is None:
        return False, "the model records no training-data identity (registered before identities were kept)"
    if model.simulated and not data.simulated:
        return False, "the model was trained on simulated data and the current data is real"
    if data.simulated and not model.simulated:
        return False, ("the model was trained on real data and the current data is simulated (no "
                       "MOUSE_TRAIN_CSV and MOUSE_TEST_CSV in the environment of the process that ran this)")
    if model.users_sha256 != data.users_sha256:
        return False, (f"the model knows other users (its {model.n_users} users are not the "
                       f"{data.n_users} users of the current data)")
    if model.sessions_sha256 != data.sessions_sha256:
        return False, "the model was trained on other sessions of these users"
    return True, ""


def may_score(model: DataIdentity | None, events: pd.DataFrame) -> tuple[bool, str]:
    """Whether a model trained on ``model`` data may score ``events`` (a frame with ``session_id``), and
    why not: the reason names the model's training data and what the file holds.

    A model of simulated data may score only simulated sessions, a model of real data only real ones, since
    its predictions name the users it was trained on. A model that records no identity (registered before
    identities were kept) is not judged.
    """
    if model is None:
        return True, ""
    sessions = pd.unique(events[c.SESSION_ID].astype(str).to_numpy())
    simulated = int(is_simulated_session(sessions).sum())
    real = len(sessions) - simulated
    prefix = f"'{SIMULATED_SESSION_PREFIX}'"
    if model.simulated and real:
        holds = (f"the file holds real sessions (none of its {real} session ids starts with {prefix})" if not simulated
                 else f"the file mixes real and simulated sessions ({real} of its {len(sessions)} session ids lack "
                      f"{prefix})")
        return False, f"the model was trained on {model.describe()}; {holds}"
    if not model.simulated and simulated:
        holds = (f"the file holds simulated sessions (its session ids start with {prefix})" if not real
                 else f"the file mixes real and simulated sessions ({simulated} of its {len(sessions)} session ids "
                      f"start with {prefix})")
        return False, f"the model was trained on {model.describe()}; {holds}"
    return True, ""


def default_min_macro_f1(n_users: int) -> float:
    """The validation floor by default: twice the macro-F1 of guessing (1/users), at most 0.5."""
    return min(0.5, 2.0 / max(n_users, 1))


@dataclass(frozen=True)
class Criterion:
    """One piece of evidence of a gate decision."""

    name: str
    value: str
    threshold: str
    passed: bool


@dataclass(frozen=True)
class Contender:
    """A registered model version as the gate sees it."""

    version: str
    score: float  # cross-validated session macro-F1
    identity: DataIdentity | None
    missing: tuple[str, ...] = ()  # what scoring needs and the version's run lacks


@dataclass(frozen=True)
class GateDecision:
    """What the champion gate decided for a challenger, and the evidence."""

    version: str
    promoted: bool
    score: float
    previous_version: str | None
    previous_score: float | None
    message: str
    handover: bool = False  # the champion is replaced because it belonged to other data
    criteria: tuple[Criterion, ...] = field(default_factory=tuple)

    def evidence(self) -> pd.DataFrame:
        """The criteria as a table: criterion, value, threshold, passed."""
        return pd.DataFrame([asdict(c) for c in self.criteria], columns=["name", "value", "threshold", "passed"])

    def record(self) -> dict:
        """Everything, for a JSON artifact."""
        return {**{k: v for k, v in asdict(self).items() if k != "criteria"},
                "criteria": [asdict(c) for c in self.criteria]}


def decide(challenger: Contender, champion: Contender | None, tolerance: float,
           min_macro_f1: float | None = None, metric: str = "cv_macro_f1") -> GateDecision:
    """The champion gate (see the module docstring): promote ``challenger`` or keep ``champion``."""
    identity = challenger.identity
    floor = default_min_macro_f1(identity.n_users if identity else 2) if min_macro_f1 is None else min_macro_f1
    criteria = [Criterion("complete: everything scoring needs is logged",
                          "missing " + ", ".join(challenger.missing) if challenger.missing else "complete",
                          "complete", not challenger.missing),
                Criterion(f"{metric} above the validation floor", f"{challenger.score:.4f}", f">= {floor:.4f}",
                          challenger.score >= floor)]
    previous = (None, None) if champion is None else (champion.version, champion.score)
    common = dict(version=challenger.version, score=challenger.score, previous_version=previous[0],
                  previous_score=previous[1])
    if challenger.missing:
        return GateDecision(promoted=False, criteria=tuple(criteria), message=(
            f"version {challenger.version} is incomplete (its run lacks {', '.join(challenger.missing)}): "
            "registered, not promoted; a champion must carry everything scoring needs"), **common)
    if not criteria[1].passed:
        kept = f"; version {champion.version} keeps the alias" if champion else ""
        return GateDecision(promoted=False, criteria=tuple(criteria), message=(
            f"version {challenger.version} failed validation ({metric} {challenger.score:.4f} < {floor:.4f}, "
            f"no better than guessing among {identity.n_users if identity else '?'} users): registered, not "
            f"promoted{kept}"), **common)
    if champion is None:
        return GateDecision(promoted=True, criteria=tuple(criteria), message=(
            f"version {challenger.version} is the first champion ({metric} {challenger.score:.4f})"), **common)
    if str(champion.version) == str(challenger.version):
        return GateDecision(promoted=True, criteria=tuple(criteria),
                            message=f"version {challenger.version} already holds the alias", **common)
    comparable = (champion.identity is not None and identity is not None
                  and champion.identity.folds_sha256 == identity.folds_sha256
                  and champion.identity.simulated == identity.simulated)
    criteria.append(Criterion("champion scored on the same folds of the same data",
                              "yes" if comparable else "no", "yes", comparable))
    if not comparable:
        fits, why = belongs_to(champion.identity, identity) if identity else (False, "no identity")
        reason = why or "it was scored on other cross-validation folds"
        return GateDecision(promoted=True, handover=True, criteria=tuple(criteria), message=(
            f"version {challenger.version} ({metric} {challenger.score:.4f}) replaces champion version "
            f"{champion.version}, which does not belong to the current data: {reason}"), **common)
    margin = challenger.score - champion.score
    criteria.append(Criterion(f"{metric} within tolerance of the champion", f"{margin:+.4f}",
                              f">= -{tolerance:g}", margin >= -tolerance))
    if margin >= -tolerance:
        return GateDecision(promoted=True, criteria=tuple(criteria), message=(
            f"version {challenger.version} ({metric} {challenger.score:.4f}) replaces champion version "
            f"{champion.version} ({metric} {champion.score:.4f}, same folds, tolerance {tolerance:g})"), **common)
    return GateDecision(promoted=False, criteria=tuple(criteria), message=(
        f"version {challenger.version} ({metric} {challenger.score:.4f}) stays registered without the champion "
        f"alias: version {champion.version} scores {champion.score:.4f} on the same folds (more than "
        f"{tolerance:g} better)"), **common)
