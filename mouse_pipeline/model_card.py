"""The model card: what was trained on what, how well, on what evidence, and what it does not promise.

:func:`card_metrics` gathers every number of the card in one ``name -> value``
dict (the metrics the shell logs to MLflow); :func:`render_model_card`
writes the Markdown from that same dict, so the card and the logged metrics
cannot diverge. :func:`permutation_importance` measures which columns, and
which feature families, the champion relies on at session level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from mouse_pipeline import contract as c
from mouse_pipeline.enrolment import Enrolment
from mouse_pipeline.evaluation import predicted_users, session_probabilities
from mouse_pipeline.features.families import FAMILIES, family_kind, feature_family, parse_families
from mouse_pipeline.modelling import fit_quietly
from mouse_pipeline.selection import Choice, FeatureSet, SelectionResult, session_folds, setting_name

#: Rows of a stacked permutation batch (columns x held-out rows), to bound memory.
_BATCH_ROWS = 60_000


@dataclass(frozen=True)
class ModelCard:
    """The card's Markdown and its numbers (exactly the metrics to log)."""

    markdown: str
    metrics: dict[str, float]


# --- Permutation importance at session level -------------------------------------------------------

def permutation_importance(result: SelectionResult, feature_set: FeatureSet) -> pd.DataFrame:
    """Session-level macro-F1 drop when a column (or a whole family) is permuted in held-out rows.

    The champion is refitted on ``settings.importance_folds`` folds; in each,
    the held-out rows (subsampled by session to ``importance_max_rows`` in
    all) have one column, or every column of one family together, shuffled
    across rows ``importance_repeats`` times; window probabilities are
    averaged per session and the macro-F1 drop is averaged over folds and
    repeats. Returns one row per column then per family: ``feature``
    (column or ``family:<name>``), ``family``, ``kind``, ``importance``,
    ``std``, best first within each part.
    """
    settings = result.settings
    choice = result.champion.choice
    folds = result.folds if result.folds is not None else session_folds([feature_set], settings)
    rng = np.random.default_rng(settings.random_state)
    groups = _permutation_groups(choice)
    drops = []
    for f in range(min(settings.importance_folds, settings.n_splits)):
        drops.append(_fold_drops(choice, feature_set, folds, f, groups, settings, rng))
    drops = np.concatenate(drops, axis=0)  # (folds x repeats) x groups
    names = list(groups)
    table = pd.DataFrame({"feature": names, "importance": drops.mean(axis=0), "std": drops.std(axis=0)})
    table["family"] = [n.split(":", 1)[1] if n.startswith("family:") else feature_family(n) for n in names]
    table["kind"] = table["family"].map(family_kind)
    table["part"] = np.where(table["feature"].str.startswith("family:"), 1, 0)
    table = table.sort_values(["part", "importance", "feature"], ascending=[True, False, True], kind="stable")
    return table.drop(columns="part").reset_index(drop=True)[["feature", "family", "kind", "importance", "std"]]


def _permutation_groups(choice: Choice) -> dict[str, list[int]]:
    """Column indices permuted together: each column alone, then each family's columns."""
    columns = list(choice.columns)
    groups = {col: [j] for j, col in enumerate(columns)}
    for family in FAMILIES:
        members = [j for j, col in enumerate(columns) if feature_family(col) == family]
        if members:
            groups[f"family:{family}"] = members
    return groups


def _fold_drops(choice: Choice, fs: FeatureSet, folds: pd.Series, fold: int, groups: dict[str, list[int]],
                settings, rng: np.random.Generator) -> np.ndarray:
    """Macro-F1 drops of every group in one fold: repeats x groups."""
    columns = list(choice.columns)
    table_fold = folds.loc[fs.table[c.SESSION_ID].astype(str)].to_numpy()
    train = fs.table[table_fold != fold]
    model = fit_quietly(choice.build(settings.random_state), train[columns].to_numpy(np.float64),
                        train[c.USER_ID].astype(str).to_numpy())
    units = fs.scoring[c.SESSION_ID].astype(str).to_numpy()
    held_units = np.unique(units[folds.loc[fs.scored_session.loc[units]].to_numpy() == fold])
    per_unit = pd.Series(units).value_counts()
    budget = max(settings.importance_max_rows // max(settings.importance_folds, 1), 1)
    held_units = rng.permutation(held_units)
    keep = held_units[np.cumsum(per_unit.loc[held_units].to_numpy()) <= budget]
    keep = keep if len(keep) else held_units[:1]
    rows = np.isin(units, keep)
    X = fs.scoring.loc[rows, columns].to_numpy(np.float64)
    unit = units[rows]
    user_of = pd.Series(fs.table[c.USER_ID].astype(str).to_numpy(), index=fs.table[c.SESSION_ID].astype(str))
    user_of = user_of[~user_of.index.duplicated()]
    truth = pd.Series(user_of.loc[fs.scored_session.loc[unit]].to_numpy(), index=unit).groupby(level=0).first()

    def macro_f1(proba: np.ndarray, owners: np.ndarray) -> float:
        pred = predicted_users(session_probabilities(proba, model.classes_, owners))
        return float(f1_score(truth.loc[pred.index], pred, average="macro", labels=sorted(set(truth)),
                              zero_division=0))

    baseline = macro_f1(model.predict_proba(X), unit)
    names = list(groups)
    out = np.zeros((settings.importance_repeats, len(names)))
    per_batch = max(_BATCH_ROWS // len(X), 1)
    for r in range(settings.importance_repeats):
        order = rng.permutation(len(X))
        for start in range(0, len(names), per_batch):
            batch = names[start:start + per_batch]
            stacked = np.repeat(X[None], len(batch), axis=0)
            for b, name in enumerate(batch):
                stacked[b][:, groups[name]] = X[order][:, groups[name]]
            proba = model.predict_proba(stacked.reshape(-1, X.shape[1])).reshape(len(batch), len(X), -1)
            for b, name in enumerate(batch):
                out[r, start + b] = baseline - macro_f1(proba[b], unit)
    return out


# --- The numbers -----------------------------------------------------------------------------------

def card_metrics(result: SelectionResult, enrolment: Enrolment) -> dict[str, float]:
    """Every number of the model card, by MLflow metric name."""
    champion = result.champion.cv
    users = enrolment.users
    metrics: dict[str, float] = {
        "users": len(users),
        "sessions": int(users["sessions"].sum()),
        "events": int(users["events"].sum()),
        "users_validated_by_blocks": enrolment.users_validated_by_blocks,
        "users_left_out": len(enrolment.left_out),
        "candidates": len(result.table),
        "selection_seconds": round(result.seconds, 1),
        **{f"cv_{k}": v for k, v in champion.scores.items()},
    }
    for name, (low, high) in result.intervals.items():
        metrics[f"cv_{name}_ci_low"], metrics[f"cv_{name}_ci_high"] = low, high
    if result.best_mlp is not None:
        metrics.update({f"best_mlp_cv_{k}": v for k, v in result.best_mlp.cv.scores.items()})
    for kind, scored in result.ablation.items():
        metrics[f"cv_macro_f1_{kind}_only"] = scored.cv.scores["macro_f1"]
    return {k: float(v) for k, v in metrics.items()}


# --- The Markdown ----------------------------------------------------------------------------------

def render_model_card(result: SelectionResult, enrolment: Enrolment, importance: pd.DataFrame,
                      top_features: int = 20, top_candidates: int = 5, verification: Mapping[str, float] | None = None,
                      per_user: pd.DataFrame | None = None, worst_users: int = 5, trained_on: str = "") -> ModelCard:
    """The card as Markdown, every number taken from :func:`card_metrics` or, for the verification
    section, from ``verification`` (the calibration's MLflow metrics) and ``per_user`` (each user's EER
    and AUC as the claimed user, worst first). ``trained_on`` names the model and its data (a line under
    the title: model version, MLflow run, training file, simulated or real)."""
    m = card_metrics(result, enrolment)
    sections = [
        _header(result) + (f"\n\n{trained_on}" if trained_on else ""),
        _data_section(m, enrolment),
        _choice_section(result, m, top_candidates),
        _scores_section(result, m),
        _ablation_section(m),
        _importance_section(importance, top_features, result.settings),
    ]
    if verification is not None:
        sections.append(_verification_section(verification, per_user, worst_users))
    sections.append(_promises_section(m, result))
    return ModelCard("\n\n".join(sections) + "\n", m)


def _verification_section(v: Mapping[str, float], per_user: pd.DataFrame | None, worst: int) -> str:
    lines = [
        "## Verification: is this the claimed user?",
        "Out of fold, every session against its true user and every other user, scores fused over the session:",
        "",
        "| measure | value | 95 % interval (bootstrap over users) |",
        "| --- | --- | --- |",
        f"| equal error rate | {_f(v['verification_eer'])} | {_f(v['verification_eer_ci95_low'])} - "
        f"{_f(v['verification_eer_ci95_high'])} |",
        f"| ROC AUC | {v['verification_auc']:.4f} | {v['verification_auc_ci95_low']:.4f} - "
        f"{v['verification_auc_ci95_high']:.4f} |",
        f"| false-reject rate at 1 % false accepts | {_f(v['verification_frr_at_far1'])} | |",
        f"| known users' sessions called `unknown` | {_f(v['unknown_false_rate'])} | |",
        f"| unknown users' sessions called `unknown` (users left out) | {_f(v['unknown_detection_rate'])} | |",
        "",
        f"Spread over users: median user EER {_f(v['verification_eer_median_user'])}, worst "
        f"{_f(v['verification_eer_worst_user'])}, Gini coefficient {_f(v['verification_eer_gini'])} "
        "(0: every user equally well verified).",
    ]
    if per_user is not None and len(per_user) and (per_user["eer"] > 0).any():
        lines += ["", f"The {min(worst, len(per_user))} hardest users to verify:", "",
                  _markdown_table(per_user.head(worst).round(4))]
    elif per_user is not None and len(per_user):
        lines += ["", "Every user was verified without error on these folds."]
    return "\n".join(lines)


def _f(value: float) -> str:
    return f"{value:.3f}"


def _header(result: SelectionResult) -> str:
    choice = result.champion.choice
    families = parse_families(result.settings.families)
    return (f"# Model card: mouse-dynamics user identification\n\n"
            f"Champion: **{choice.candidate.name}** on **{setting_name(choice.config)}** ({len(choice.columns)} "
            f"feature columns; families: {'all' if families == tuple(FAMILIES) else ', '.join(families)}).")


def _data_section(m: dict[str, float], enrolment: Enrolment) -> str:
    users = enrolment.users
    lines = ["## Data",
             f"- {m['users']:.0f} users enrolled, {m['sessions']:.0f} recorded sessions, {m['events']:,.0f} events.",
             f"- Validation: {len(users) - m['users_validated_by_blocks']:.0f} users by held-out **sessions**; "
             f"{m['users_validated_by_blocks']:.0f} users with a single session by held-out **blocks within one "
             "session** (consecutive time blocks of it, cut before featurising)."]
    if len(enrolment.left_out):
        lines.append(f"- {m['users_left_out']:.0f} users left out of training:")
        lines += [f"  - `{row.user_id}`: {row.reason}" for row in enrolment.left_out.itertuples()]
    else:
        lines.append("- No user was left out.")
    return "\n".join(lines)


def _choice_section(result: SelectionResult, m: dict[str, float], top: int) -> str:
    s = result.settings
    choice = result.champion.choice
    table = result.table.head(top)[["rank", "feature_setting", "estimator", "cv_macro_f1", "cv_accuracy",
                                    "folds_scored", "round_reached", "seconds"]]
    chunks = (f" Held-out sessions were scored in chunks of about {result.chunk_events} events, the typical "
              "length of the sessions to be scored." if result.chunk_events > 0 else "")
    return "\n".join([
        "## Chosen settings and why",
        f"{m['candidates']:.0f} candidates (feature settings x estimators) were scored in {s.n_splits}-fold "
        "cross-validation that holds out whole sessions (or blocks), at session level (window probabilities "
        f"averaged per session), by successive halving over folds (the best 1/{s.halving_factor} go on to "
        f"more folds), in {m['selection_seconds']:.0f} s.{chunks} The champion has the best macro-F1 on all "
        f"folds: `{choice.candidate.name}` with parameters `{choice.candidate.params}`"
        f"{' after a tree-importance column selection' if choice.candidate.feature_selection == 'trees' else ''}, "
        f"on {setting_name(choice.config)}. Top of the candidate table:",
        "",
        _markdown_table(table.round(3)),
    ])


def _scores_section(result: SelectionResult, m: dict[str, float]) -> str:
    lines = [
        "## Scores (out of fold, per session)",
        "| model | macro-F1 | 95 % interval | accuracy | 95 % interval | top-3 accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| champion | {_f(m['cv_macro_f1'])} | {_f(m['cv_macro_f1_ci_low'])} - {_f(m['cv_macro_f1_ci_high'])} "
        f"| {_f(m['cv_accuracy'])} | {_f(m['cv_accuracy_ci_low'])} - {_f(m['cv_accuracy_ci_high'])} "
        f"| {_f(m['cv_top3_accuracy'])} |",
    ]
    if result.best_mlp is not None:
        lines.append(f"| best MLP: {result.best_mlp.choice.name} | {_f(m['best_mlp_cv_macro_f1'])} | | "
                     f"{_f(m['best_mlp_cv_accuracy'])} | | {_f(m['best_mlp_cv_top3_accuracy'])} |")
    lines += ["", f"Intervals: percentile bootstrap ({result.settings.bootstrap_resamples} resamples) over recorded "
              "sessions of the out-of-fold predictions (the blocks or chunks of one recorded session are resampled "
              "together); macro-F1 of a resample averages the users present in it."]
    return "\n".join(lines)


def _ablation_section(m: dict[str, float]) -> str:
    def cell(key: str) -> str:
        return _f(m[key]) if key in m else "n/a"
    return "\n".join([
        "## Hand or machine: feature-family ablation",
        "The champion's estimator and feature setting, same folds, on one kind of columns only:",
        "",
        "| columns | macro-F1 |",
        "| --- | --- |",
        f"| all selected families | {_f(m['cv_macro_f1'])} |",
        "| behaviour only (kinematics, actions, timing, transitions, idle gaps) "
        f"| {cell('cv_macro_f1_behaviour_only')} |",
        f"| environment only (screen, pixel grid, fractional coordinates, sampling, first position) "
        f"| {cell('cv_macro_f1_environment_only')} |",
    ])


def _importance_section(importance: pd.DataFrame, top: int, settings) -> str:
    columns = importance[~importance["feature"].str.startswith("family:")].head(top)
    families = importance[importance["feature"].str.startswith("family:")]
    return "\n".join([
        f"## The {top} most important features",
        "Permutation importance at session level: drop of held-out macro-F1 when a column is shuffled across "
        "held-out rows (window probabilities averaged per session), mean over "
        f"{settings.importance_folds} folds x {settings.importance_repeats} shuffles, held-out rows subsampled "
        f"to at most {settings.importance_max_rows}.",
        "",
        _markdown_table(columns.round(4)) if (columns["importance"] > 0).any() else
        "No single column changes the held-out score when shuffled: others carry the same information (the "
        "families below may still matter).",
        "",
        "Whole families shuffled together:",
        "",
        _markdown_table(families.round(4)),
    ])


#: Macro-F1 gap between the behaviour-only and environment-only scores within which neither is said to dominate.
HAND_OR_MACHINE_MARGIN = 0.05


def hand_or_machine(behaviour: float | None, environment: float) -> str:
    """What the ablation says identifies users: the hand, the machine, or both alike (within the margin)."""
    gap = environment - (behaviour or 0.0)
    if gap > HAND_OR_MACHINE_MARGIN:
        return "More the machine than the hand"
    if gap < -HAND_OR_MACHINE_MARGIN:
        return "Mostly the hand"
    return "The machine as much as the hand"


def _promises_section(m: dict[str, float], result: SelectionResult) -> str:
    lines = [
        "## What these numbers promise, and what they do not",
        f"- **Closed set.** Scores rank the {m['users']:.0f} enrolled users against each other. A session of "
        "someone never enrolled is still given one of them; only the verification threshold and the `unknown` "
        "verdict (calibrated separately) address that.",
        "- **Out of fold, then selected.** Each score is measured on sessions the model did not train on, but "
        f"the champion is the best of {m['candidates']:.0f} candidates on these same folds: its CV score is "
        "optimistic by the selection; the interval does not include that.",
    ]
    behaviour, environment = m.get("cv_macro_f1_behaviour_only"), m.get("cv_macro_f1_environment_only")
    if environment is not None:
        lines.append(
            f"- **{hand_or_machine(behaviour, environment)}.** "
            f"Device and page traits alone reach {_f(environment)} macro-F1"
            f"{'' if behaviour is None else f', behaviour alone {_f(behaviour)}'}. The more the environment alone "
            "scores, the more the model may recognise the computer rather than the person: a user on a new "
            "device, or an impostor on the user's device, is not covered by these numbers.")
    if m["users_validated_by_blocks"]:
        lines.append(f"- **Block-validated users.** {m['users_validated_by_blocks']:.0f} users were validated on "
                     "time blocks of their single session: same day, device and mood, so their scores are likely "
                     "higher than on a later session.")
    if m["cv_macro_f1_ci_low"] >= 1.0:
        lines.append("- **Perfect scores.** Every held-out session was identified: the intervals have no width, "
                     "and these data cannot say how much worse new sessions could be.")
    if m["sessions"] < 10 * m["users"]:
        lines.append(f"- **Small data.** {m['sessions']:.0f} recorded sessions for {m['users']:.0f} users: scores "
                     "on another set of sessions may differ by as much as the intervals are wide, or more.")
    if result.settings.scored_session_events <= 0:
        lines.append("- **Session length.** The length of the sessions to be scored was not given, so held-out "
                     "sessions were scored whole: sessions shorter than the training ones will be identified less "
                     "reliably than these scores say.")
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False)
