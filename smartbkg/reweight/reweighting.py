"""Reweight sample B into sample A and measure how well it worked, in one call.

:func:`reweight_samples` splits both samples at random (seeded) into a training part and a test
part, trains the classifier (or an ensemble) on the training parts, computes the weights of the
test part of B (:func:`smartbkg.reweight.weights.classifier_weights`) and evaluates them on the
test parts only: A against B before and after reweighting in every variable
(:func:`~smartbkg.reweight.evaluate.compare_histograms`), a second classifier's AUC before and
after (:func:`~smartbkg.reweight.evaluate.classifier_test`), the effective sample size and the
clipped fraction. No event is weighted by a classifier that saw it.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .classifier import feature_matrix, predict_q, train_classifiers
from .evaluate import classifier_test, compare_histograms
from .weights import classifier_weights


@dataclass
class ReweightResult:
    """Weights of B's test events and their evaluation.

    Attributes:
        names: the feature names, in column order.
        test_a, test_b: indices of the test events in A and in B.
        weights: :class:`~smartbkg.reweight.weights.Weights` of B's test events.
        before, after: {name: HistogramComparison} of A against B, unweighted and weighted.
        auc_before, auc_after: :class:`~smartbkg.reweight.evaluate.ClassifierTest`.
        settings: how it was made (classifier, ensemble, clip, seed, sizes).
    """

    names: list
    test_a: np.ndarray
    test_b: np.ndarray
    weights: object
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    auc_before: object = None
    auc_after: object = None
    settings: dict = field(default_factory=dict)

    def summary(self):
        """Every number, as plain JSON-ready values."""
        def table(comparisons):
            return {k: {"chi2": c.chi2, "ndf": c.ndf, "chi2_ndf": c.chi2 / c.ndf, "p_value": c.p_value}
                    for k, c in comparisons.items()}

        w = self.weights
        return {
            "settings": self.settings,
            "test_events": {"a": int(len(self.test_a)), "b": int(len(self.test_b))},
            "weights": {"mean": float(np.mean(w.w)), "max": float(np.max(w.w)), "clip": w.clip,
                        "clipped_fraction": w.clipped_fraction, "n_eff": w.n_eff,
                        "n_eff_fraction": w.n_eff / len(w.w)},
            "auc_before": dict(self.auc_before._asdict()), "auc_after": dict(self.auc_after._asdict()),
            "chi2_before": table(self.before), "chi2_after": table(self.after),
            "mean_chi2_ndf_before": float(np.mean([c.chi2 / c.ndf for c in self.before.values()])),
            "mean_chi2_ndf_after": float(np.mean([c.chi2 / c.ndf for c in self.after.values()])),
        }


def _split(n, test_fraction, rng):
    order = rng.permutation(n)
    n_test = int(round(test_fraction * n))
    if n_test == 0 or n_test == n:
        raise DataError(f"a test fraction of {test_fraction} leaves no training or no test events of {n}")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _matrices(features_a, features_b):
    """(names, (n_a, F) array, (n_b, F) array) of two feature dicts with the same names."""
    names = list(features_a)
    if sorted(names) != sorted(features_b):
        only_a, only_b = sorted(set(features_a) - set(features_b)), sorted(set(features_b) - set(features_a))
        raise DataError(f"the two samples have different features (only in A: {only_a}; only in B: {only_b})")
    if not names:
        raise DataError("no features to reweight with")
    xa, xb = feature_matrix(features_a, names), feature_matrix(features_b, names)
    if len(xa) < 2 or len(xb) < 2:
        raise DataError(f"each sample needs at least 2 events, got {len(xa)} (A) and {len(xb)} (B)")
    return names, xa, xb


def _splits(n_a, n_b, test_fraction, seed):
    """((train_a, test_a), (train_b, test_b)) index arrays, seeded."""
    rng = np.random.default_rng(seed)
    return _split(n_a, test_fraction, rng), _split(n_b, test_fraction, rng)


def _evaluate(names, xa, xb, test_a, test_b, weights, settings, seed, discrete, bins):
    result = ReweightResult(names, test_a, test_b, weights, settings=settings)
    for j, name in enumerate(names):
        for target, w in ((result.before, None), (result.after, weights.w)):
            target[name] = compare_histograms(xa[test_a, j], xb[test_b, j], w, bins=bins, discrete=name in discrete)
    result.auc_before = classifier_test(xa[test_a], xb[test_b], seed=seed + 1000)
    result.auc_after = classifier_test(xa[test_a], xb[test_b], weights.w, seed=seed + 1000)
    return result


def reweight_samples(features_a, features_b, *, kind="gbdt", ensemble=1, clip=None, test_fraction=0.5, seed=0,
                     discrete=(), bins=30):
    """Weights that turn B into A, trained on one part of the events and evaluated on the rest.

    Args:
        features_a, features_b: {name: (n,) array} with the same names (event-level features).
        kind, ensemble: the classifier (:data:`smartbkg.reweight.classifier.CLASSIFIERS`) and the
            number of ensemble members.
        clip: largest weight (None: no clipping).
        test_fraction: share of each sample held out for the weights and their evaluation.
        discrete: names of integer-valued features (one histogram bin per value).

    Returns:
        :class:`ReweightResult`.
    """
    names, xa, xb = _matrices(features_a, features_b)
    (train_a, test_a), (train_b, test_b) = _splits(len(xa), len(xb), test_fraction, seed)
    models = train_classifiers(xa[train_a], xb[train_b], kind, ensemble=ensemble, seed=seed)
    weights = classifier_weights(predict_q(models, xb[test_b]), len(train_a), len(train_b), clip=clip)
    settings = {"classifier": kind, "ensemble": ensemble, "clip": clip, "seed": seed, "test_fraction": test_fraction,
                "events": {"a": len(xa), "b": len(xb)}}
    return _evaluate(names, xa, xb, test_a, test_b, weights, settings, seed, discrete, bins)


def reweight_tables(table_a, table_b, features_a, features_b, *, model="deepsets", options=None, epochs=8,
                    ensemble=1, clip=None, test_fraction=0.5, seed=0, discrete=(), bins=30):
    """As :func:`reweight_samples`, with a smartbkg graph model on the decay trees as the classifier.

    The classifier sees the whole decay tree of every event
    (:func:`smartbkg.reweight.graph_classifier.graph_classifier_q`); the weights are judged, as
    always, in the event-level ``features_a`` / ``features_b`` of the test halves (computed from
    the same events, in the same order as the tables).

    Args:
        table_a, table_b: :class:`~smartbkg.data.table.EventTable` of the two samples (same event
            types).
        model, options, epochs: the registry name of the graph model, its options and the
            training epochs.
    """
    from .graph_classifier import graph_classifier_q

    names, xa, xb = _matrices(features_a, features_b)
    if (len(xa), len(xb)) != (len(table_a), len(table_b)):
        raise DataError(f"features of {len(xa)} and {len(xb)} events for tables of {len(table_a)} and "
                        f"{len(table_b)} events")
    (train_a, test_a), (train_b, test_b) = _splits(len(xa), len(xb), test_fraction, seed)
    q = graph_classifier_q(table_a.take(train_a), table_b.take(train_b), table_b.take(test_b), model=model,
                           options=options, epochs=epochs, ensemble=ensemble, seed=seed)
    weights = classifier_weights(q, len(train_a), len(train_b), clip=clip)
    settings = {"classifier": model, "options": dict(options or {}), "epochs": epochs, "ensemble": ensemble,
                "clip": clip, "seed": seed, "test_fraction": test_fraction, "events": {"a": len(xa), "b": len(xb)}}
    return _evaluate(names, xa, xb, test_a, test_b, weights, settings, seed, discrete, bins)
