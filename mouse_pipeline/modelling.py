"""Model building, session-grouped cross-validation and model selection.

Rows of the training matrix are windows (or whole sessions); the unit that
must never leak between training and validation is the *session*.
:class:`SessionPerUserKFold` holds out whole sessions, one per user in each
fold where a user has enough sessions, and every score here is computed at
session level: window probabilities are averaged per session before the
argmax, as in production.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, VotingClassifier
from sklearn.feature_selection import SelectFromModel, VarianceThreshold
from sklearn.model_selection import BaseCrossValidator, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, KBinsDiscretizer, OneHotEncoder, StandardScaler

from mouse_pipeline import contract as c
from mouse_pipeline.evaluation import session_probabilities, session_scores
from mouse_pipeline.features import feature_columns


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(v) * log(1 + |v|)``: tames heavy tails (jerk, idle gaps) and keeps sign and zero."""
    values = np.asarray(values, dtype=np.float64)
    return np.sign(values) * np.log1p(np.abs(values))


class SessionPerUserKFold(BaseCrossValidator):
    """K-fold over sessions that holds out about one session per user in every fold.

    Each user's sessions are shuffled (seeded) and dealt to folds in turn,
    starting at a user-dependent fold so that users with fewer sessions than
    folds still spread over all folds. All rows (windows) of a session share
    its fold, so no held-out session leaks into training.

    Parameters
    ----------
    n_splits:
        Number of folds (at least 2).
    random_state:
        Seed of the shuffle of each user's sessions.
    """

    def __init__(self, n_splits: int = 6, random_state: int = 0):
        if n_splits < 2:
            raise ValueError("n_splits must be at least 2")
        self.n_splits = n_splits
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:  # noqa: N803 (sklearn API)
        return self.n_splits

    def session_folds(self, y: Sequence, groups: Sequence) -> pd.Series:
        """Fold number of each session (index: session id)."""
        if groups is None:
            raise ValueError("SessionPerUserKFold needs groups (the session id of each row)")
        sessions = pd.DataFrame({"session": np.asarray(groups), "user": np.asarray(y)})
        sessions = sessions.drop_duplicates("session").sort_values("session", kind="stable")
        rng = np.random.default_rng(self.random_state)
        sessions["key"] = rng.random(len(sessions))
        sessions = sessions.sort_values(["user", "key"], kind="stable")
        rank = sessions.groupby("user", sort=False).cumcount().to_numpy()
        user_code = pd.factorize(sessions["user"], sort=True)[0]
        offset = user_code % self.n_splits
        sessions["fold"] = (rank + offset) % self.n_splits
        return sessions.set_index("session")["fold"]

    def _iter_test_masks(self, X=None, y=None, groups=None) -> Iterator[np.ndarray]:  # noqa: N803
        fold_of_row = self.session_folds(y, groups).loc[np.asarray(groups)].to_numpy()
        for fold in range(self.n_splits):
            yield fold_of_row == fold


@dataclass(frozen=True)
class Candidate:
    """One model to cross-validate: a name, the estimator family, its parameters and whether
    a tree-importance column selection precedes it (``feature_selection``: "none" or "trees")."""

    name: str
    family: str
    params: dict
    feature_selection: str = "none"

    def build(self, random_state: int) -> Pipeline:
        return build_pipeline(self.family, self.params, random_state, self.feature_selection)


def build_pipeline(family: str, params: dict, random_state: int = 0, feature_selection: str = "none") -> Pipeline:
    """A scikit-learn Pipeline: signed log, standard scaling, optional column selection, the classifier.

    ``family`` is ``"mlp"`` (:class:`~sklearn.neural_network.MLPClassifier`;
    ``params["bins"] = b > 0`` adds, beside each input, its one-hot quantile
    bin among ``b``, which lets the network draw sharp thresholds as trees do;
    ``params["seeds"] = k > 1`` makes it a soft vote of k networks with seeds
    ``random_state .. random_state+k-1``), ``"hist_gradient_boosting"`` or
    ``"extra_trees"``; the other ``params`` are passed to the classifier.
    ``feature_selection="trees"`` drops constant columns, then keeps the
    columns whose ExtraTrees importance is above the mean (fitted on the
    training rows only, so cross-validation stays honest).
    """
    params = dict(params)
    encoding = []
    if family == "mlp":
        seeds, bins = int(params.pop("seeds", 1)), int(params.pop("bins", 0))
        nets = [MLPClassifier(random_state=random_state + i, **params) for i in range(seeds)]
        clf = nets[0] if seeds == 1 else VotingClassifier(
            [(f"seed{random_state + i}", net) for i, net in enumerate(nets)], voting="soft")
        if bins > 0:
            encoding = [("encode", FeatureUnion([("values", FunctionTransformer()),
                                                 ("bins", quantile_bins(bins, random_state))]))]
    elif family == "hist_gradient_boosting":
        clf = HistGradientBoostingClassifier(random_state=random_state, **params)
    elif family == "extra_trees":
        clf = ExtraTreesClassifier(random_state=random_state, n_jobs=1, **params)
    else:
        raise ValueError(f"unknown estimator family {family!r}")
    return Pipeline([*preprocessing_steps(), *selection_steps(feature_selection, random_state), *encoding,
                     ("classifier", clf)])


def fit_quietly(model: Pipeline, X, y) -> Pipeline:
    """Fit, without two warnings that are expected here: the MLP's batch size clipped to a small
    training set, and quantile bins merged on a column with few distinct values."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Got `batch_size` less than 1 or larger than sample size")
        warnings.filterwarnings("ignore", message="Bins whose width are too small")
        return model.fit(X, y)


def quantile_bins(bins: int, random_state: int = 0) -> Pipeline:
    """One-hot quantile bins of every column (ordinal bins, then one-hot: no dtype object to trust when
    the model is loaded with skops, unlike ``KBinsDiscretizer(encode="onehot-dense")``)."""
    return Pipeline([
        ("ordinal", KBinsDiscretizer(bins, encode="ordinal", strategy="quantile", random_state=random_state)),
        ("one_hot", OneHotEncoder(sparse_output=False, handle_unknown="ignore")),
    ])


def selection_steps(feature_selection: str, random_state: int = 0) -> list[tuple[str, object]]:
    """Column selection steps: none, or constant columns dropped then ExtraTrees importance above the mean."""
    if feature_selection == "none":
        return []
    if feature_selection != "trees":
        raise ValueError(f"unknown feature selection {feature_selection!r}: 'none' or 'trees'")
    # Depth capped: importances need only the top of the trees, and the selector stays small in the model
    # (at most 1024 leaves a tree, whatever the number of rows).
    trees = ExtraTreesClassifier(n_estimators=200, max_depth=10, random_state=random_state, n_jobs=1)
    return [("drop_constant", VarianceThreshold()), ("select", SelectFromModel(trees, threshold="mean"))]


def preprocessing_steps() -> list[tuple[str, object]]:
    """The steps every model starts with: signed log, then standard scaling."""
    return [
        ("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")),
        ("scale", StandardScaler()),
    ]


@dataclass
class CrossValidation:
    """Out-of-fold result of one candidate."""

    candidate: Candidate
    classes: np.ndarray
    session_proba: pd.DataFrame  # index session_id, one column per class
    truth: pd.Series  # true user of each session, same index
    scores: dict[str, float] = field(default_factory=dict)


def cross_validate(
    candidate: Candidate, X: np.ndarray, y: np.ndarray, groups: np.ndarray,
    cv: SessionPerUserKFold, random_state: int = 0, n_jobs: int = 1,
) -> CrossValidation:
    """Out-of-fold window probabilities, averaged per session, and session-level scores."""
    classes = np.unique(y)
    proba = cross_val_predict(
        candidate.build(random_state), X, y, groups=groups, cv=cv, method="predict_proba", n_jobs=n_jobs
    )
    by_session = session_probabilities(proba, classes, groups)
    truth = pd.Series(y, index=groups).groupby(level=0).first().loc[by_session.index]
    return CrossValidation(candidate, classes, by_session, truth, session_scores(truth, by_session))


@dataclass(frozen=True)
class FeatureMatrix:
    """Training and test features aligned on one column order, plus their scaled form.

    ``preprocessor`` (signed log, then standard scaling: the model's own
    first steps) is fitted on training rows only and applied unchanged to
    the test rows.
    """

    columns: list[str]
    train: pd.DataFrame  # features, training rows
    labels: np.ndarray  # user of each training row
    sessions: np.ndarray  # session of each training row (the CV group)
    test: pd.DataFrame  # features, test rows, same columns
    preprocessor: Pipeline
    train_scaled: np.ndarray
    test_scaled: np.ndarray


def build_feature_matrix(train_features: pd.DataFrame, test_features: pd.DataFrame) -> FeatureMatrix:
    """Align test features on the training columns and scale both with a train-only fit."""
    columns = feature_columns(train_features)
    missing = [col for col in columns if col not in test_features.columns]
    if missing:
        raise KeyError(f"test features lack {len(missing)} training column(s): {missing[:10]}")
    preprocessor = Pipeline(preprocessing_steps())
    train = train_features[columns]
    test = test_features[columns]
    train_scaled = preprocessor.fit_transform(train)
    return FeatureMatrix(
        columns=columns,
        train=train,
        labels=train_features[c.USER_ID].to_numpy().astype(str),
        sessions=train_features[c.SESSION_ID].to_numpy().astype(str),
        test=test,
        preprocessor=preprocessor,
        train_scaled=train_scaled,
        test_scaled=preprocessor.transform(test),
    )
