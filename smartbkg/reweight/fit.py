"""Fit a generator parameter by reweighting (the "tuning" use of classifier reweighting).

Given a nominal sample, samples generated at parameter values theta_1 ... theta_k and a
(pseudo-)data sample, each theta_i gets a classifier between its sample (A) and the nominal
sample (B); the weights turn the held-out half of the nominal sample into a sample at theta_i.
The reweighted nominal is compared with the data in every feature (the sum of the
:func:`~smartbkg.reweight.evaluate.compare_histograms` chi2); a parabola through chi2(theta)
through the lowest point and its two neighbours gives the fitted value. The uncertainty is the
standard deviation of the fitted value over bootstrap replicas of the data and of the reweighted
nominal events (the features are correlated, so the chi2 sum is not a likelihood and
Delta chi2 = 1 would not be a 68 % interval); it leaves out the classifiers' training noise.
Classifier weights that reach far from the nominal sample are less exact (the ratio is learnt
from fewer events where the samples differ most), so scan a range around the expected value. One nominal sample serves every
theta, as in the original method, where a parametrised classifier replaces the scan.
"""

import numpy as np

from ..errors import ConfigError
from .classifier import feature_matrix, predict_q, train_classifiers
from .evaluate import compare_histograms
from .weights import classifier_weights


def _parabola_minimum(values, chi2):
    """(coefficients of the parabola through the lowest scan point and its two neighbours, its
    minimum within those points; the lowest point when the parabola opens downwards)."""
    k = int(np.clip(np.argmin(chi2), 1, len(values) - 2))
    x, y = values[k - 1:k + 2], chi2[k - 1:k + 2]
    coefficients = np.polyfit(x, y, 2)
    if coefficients[0] <= 0:
        return coefficients, float(values[int(np.argmin(chi2))])
    return coefficients, float(np.clip(-coefficients[1] / (2 * coefficients[0]), x[0], x[-1]))


def fit_parameter(nominal, variations, data, *, parameter, kind="gbdt", seed=0, bins=30, discrete=(),
                  bootstrap=50, truth=None):
    """Fit ``parameter`` to ``data`` by reweighting ``nominal`` to each scanned value.

    Args:
        nominal: {feature: (n,) array} of the nominal sample.
        variations: {theta: {feature: (m,) array}}, at least three values.
        data: {feature: (d,) array} of the sample to fit.
        parameter: the parameter's name (for the record).
        truth: the true value when ``data`` is pseudo-data of known parameter (recorded only).

    Returns:
        dict: ``parameter``, ``values``, ``chi2`` (per value), ``parabola`` (coefficients,
        highest power first), ``best``, ``best_err`` (bootstrap standard deviation), ``truth``,
        ``ndf``.
    """
    if len(variations) < 3:
        raise ConfigError(f"a parameter fit needs at least 3 scanned values, got {len(variations)}")
    names = list(nominal)
    rng = np.random.default_rng(seed)
    x_nominal = feature_matrix(nominal, names)
    order = rng.permutation(len(x_nominal))
    train, test = np.sort(order[len(order) // 2:]), np.sort(order[:len(order) // 2])
    x_data = feature_matrix(data, names)
    values = np.array(sorted(variations), dtype=np.float64)
    weights = []
    for k, theta in enumerate(values):
        x_theta = feature_matrix(variations[theta], names)
        models = train_classifiers(x_theta, x_nominal[train], kind, seed=seed + k)
        weights.append(classifier_weights(predict_q(models, x_nominal[test]), len(x_theta), len(train)).w)

    def chi2_curve(rows, nominal_rows):
        curve = []
        for w in weights:
            comparisons = [compare_histograms(x_data[rows, j], x_nominal[test[nominal_rows], j], w[nominal_rows],
                                              bins=bins, discrete=name in discrete) for j, name in enumerate(names)]
            curve.append((sum(c.chi2 for c in comparisons), sum(c.ndf for c in comparisons)))
        return np.array(curve)

    curve = chi2_curve(np.arange(len(x_data)), np.arange(len(test)))
    coefficients, best = _parabola_minimum(values, curve[:, 0])
    replicas = [_parabola_minimum(values, chi2_curve(rng.integers(0, len(x_data), len(x_data)),
                                                     rng.integers(0, len(test), len(test)))[:, 0])[1]
                for _ in range(bootstrap)]
    return {"parameter": parameter, "values": values.tolist(), "chi2": curve[:, 0].tolist(),
            "ndf": int(curve[0, 1]), "parabola": coefficients.tolist(), "best": best,
            "best_err": float(np.std(replicas)) if replicas else float("nan"), "truth": truth}
