"""Classifiers between two samples on event-level features, and their ensembles.

Two kinds, both from scikit-learn, seeded, with early stopping on an internal validation split:

* ``gbdt``: gradient-boosted trees (``HistGradientBoostingClassifier``), insensitive to the
  scale of the features;
* ``mlp``: a small feed-forward network (two hidden layers of 64, ReLU, Adam) on standardised
  features.

Sample A has label 1, sample B label 0; :func:`predict_q` gives P(A | x), averaged over the
members of an ensemble (members differ by their seed).
"""

import numpy as np

from ..errors import ConfigError, DataError

#: Classifier kinds on event-level features.
CLASSIFIERS = ("gbdt", "mlp")


def feature_matrix(features, names):
    """(n, F) float64 matrix of the feature dict ``features`` ({name: (n,) array}), columns in ``names`` order."""
    return np.stack([np.asarray(features[k], dtype=np.float64) for k in names], axis=1)


def make_classifier(kind, seed):
    """An unfitted scikit-learn classifier of ``kind`` (one of :data:`CLASSIFIERS`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "gbdt":
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, early_stopping=True,
                                              validation_fraction=0.2, n_iter_no_change=10, random_state=seed)
    if kind == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 64), early_stopping=True,
                                                             max_iter=200, random_state=seed))
    raise ConfigError(f"unknown classifier {kind!r}; choose one of {', '.join(CLASSIFIERS)}")


def _design(features_a, features_b, weights_b=None):
    """(X, y, sample weights) of A (label 1, weight 1) and B (label 0, ``weights_b`` or 1)."""
    a, b = np.asarray(features_a, dtype=np.float64), np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataError(f"the two samples need the same features, got shapes {a.shape} and {b.shape}")
    if len(a) == 0 or len(b) == 0:
        raise DataError(f"both samples need events, got {len(a)} (A) and {len(b)} (B)")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise DataError("features must be finite")
    wb = np.ones(len(b)) if weights_b is None else np.asarray(weights_b, dtype=np.float64)
    x = np.concatenate([a, b])
    y = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
    return x, y, np.concatenate([np.ones(len(a)), wb])


def train_classifiers(features_a, features_b, kind="gbdt", *, ensemble=1, seed=0, weights_b=None):
    """Fit ``ensemble`` classifiers of A (label 1) against B (label 0).

    Args:
        features_a: (n_a, F); features_b: (n_b, F) event-level features.
        kind: one of :data:`CLASSIFIERS`.
        ensemble: number of members (seeds ``seed``, ``seed + 1`` ...).
        weights_b: (n_b,) weights of the B events (e.g. to train on a reweighted B).

    Returns:
        list of fitted classifiers.
    """
    if ensemble < 1:
        raise ConfigError(f"the ensemble needs at least one classifier, got {ensemble}")
    x, y, w = _design(features_a, features_b, weights_b)
    models = []
    for k in range(ensemble):
        model = make_classifier(kind, seed + k)
        if kind == "mlp":  # scikit-learn's MLP takes no sample weights: weights only for gbdt
            if weights_b is not None:
                raise ConfigError("the mlp classifier cannot train on weighted events; use gbdt")
            model.fit(x, y)
        else:
            model.fit(x, y, sample_weight=w)
        models.append(model)
    return models


def predict_q(models, features):
    """P(A | x), (n,) float64: the mean of the ensemble members' probabilities."""
    x = np.asarray(features, dtype=np.float64)
    return np.mean([m.predict_proba(x)[:, 1] for m in models], axis=0)


def cross_fitted_q(features_a, features_b, kind="gbdt", *, folds=3, seed=0, weights_b=None):
    """Out-of-fold P(A | x) of every event: each fold is predicted by a classifier trained on the
    other folds (stratified, seeded), so no event is scored by a model that saw it.

    Returns:
        (q_a (n_a,), q_b (n_b,)).
    """
    from sklearn.model_selection import StratifiedKFold

    x, y, w = _design(features_a, features_b, weights_b)
    q = np.empty(len(y))
    for k, (train, test) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)):
        wb = w[train][y[train] == 0] if weights_b is not None else None
        [model] = train_classifiers(x[train][y[train] == 1], x[train][y[train] == 0], kind, seed=seed + k,
                                    weights_b=wb)
        q[test] = predict_q([model], x[test])
    n_a = int(np.sum(y == 1))
    return q[:n_a], q[n_a:]
