"""How well weights turn sample B into sample A.

* :func:`compare_histograms`: A against (weighted) B in one variable, B normalised to A's total,
  with a chi2 over the bins;
* :func:`classifier_test`: a second, independent classifier trained (cross-fitted) on A against
  weighted B; if the weights are right, nothing separates the two and its AUC is 0.5 within its
  uncertainty (bootstrap over events).
"""

from typing import NamedTuple

import numpy as np

from ..errors import DataError
from ..metrics import auc
from .classifier import cross_fitted_q


class HistogramComparison(NamedTuple):
    """A against normalised, weighted B in one variable.

    Fields (a named tuple):
        edges: (bins + 1,); a, a_err: counts of A and sqrt(sum of A's weights^2);
        b, b_err: B's weighted counts scaled to A's total, with errors;
        chi2: sum over bins with content of (a - b)^2 / (a_err^2 + b_err^2); ndf: those bins - 1
        (the normalisation); p_value: P(chi2(ndf) >= chi2).
    """

    edges: np.ndarray
    a: np.ndarray
    a_err: np.ndarray
    b: np.ndarray
    b_err: np.ndarray
    chi2: float
    ndf: int
    p_value: float


def compare_histograms(values_a, values_b, weights_b=None, *, bins=30, discrete=False, range=None):
    """Compare the distribution of one variable in A with that of (weighted) B.

    Args:
        values_a: (n_a,); values_b: (n_b,); weights_b: (n_b,) weights of B (default 1).
        bins: number of bins over ``range`` (default: the 0.5 %-99.5 % quantiles of A and B
            together; events outside are not compared); with ``discrete`` one bin per integer
            value (at most ``bins`` wide bins).
    """
    from scipy.stats import chi2 as chi2_dist

    a, b = np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)
    wb = np.ones(len(b)) if weights_b is None else np.asarray(weights_b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0 or wb.sum() <= 0:
        raise DataError("histogram comparison needs events in both samples")
    both = np.concatenate([a, b])
    lo, hi = np.quantile(both, [0.005, 0.995]) if range is None else range
    if discrete:
        step = max(1.0, np.ceil((hi - lo + 1) / bins))
        edges = np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 0.5 + step, step)
    else:
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    ha = np.histogram(a, edges)[0].astype(np.float64)
    scale = len(a) / wb.sum()
    hb = np.histogram(b, edges, weights=wb)[0] * scale
    hb_sq = np.histogram(b, edges, weights=wb**2)[0] * scale**2
    variance = ha + hb_sq
    used = variance > 0
    chi2 = float(np.sum((ha[used] - hb[used]) ** 2 / variance[used]))
    ndf = max(int(used.sum()) - 1, 1)
    return HistogramComparison(edges, ha, np.sqrt(ha), hb, np.sqrt(hb_sq), chi2, ndf,
                               float(chi2_dist.sf(chi2, ndf)))


class ClassifierTest(NamedTuple):
    """A second classifier's verdict: ``auc`` and its bootstrap standard deviation ``auc_err``,
    computed on the out-of-fold predictions of A (label 1) and weighted B (label 0)."""

    auc: float
    auc_err: float


def classifier_test(features_a, features_b, weights_b=None, *, kind="gbdt", folds=3, seed=0, bootstrap=50):
    """Train a fresh classifier on A against (weighted) B and report its weighted AUC.

    An AUC of 0.5 within ``auc_err`` means the classifier finds nothing that separates A from the
    weighted B; before reweighting the same test measures how different the samples are.
    """
    q_a, q_b = cross_fitted_q(features_a, features_b, kind, folds=folds, seed=seed, weights_b=weights_b)
    wb = np.ones(len(q_b)) if weights_b is None else np.asarray(weights_b, dtype=np.float64)
    y = np.concatenate([np.ones(len(q_a)), np.zeros(len(q_b))])
    score, weight = np.concatenate([q_a, q_b]), np.concatenate([np.full(len(q_a), wb.sum() / len(q_a)), wb])
    value = auc(y, score, weight=weight)
    rng = np.random.default_rng(seed)
    replicas = []
    for _ in range(bootstrap):
        k = rng.integers(0, len(y), len(y))
        if 0 < y[k].sum() < len(k):
            replicas.append(auc(y[k], score[k], weight=weight[k]))
    return ClassifierTest(value, float(np.std(replicas)) if replicas else float("nan"))
