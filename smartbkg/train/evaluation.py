"""Validation and test metrics of a filter network, per skim and averaged over skims.

For every skim the network's logit x gives two sampling probabilities:

* raw: p = sigmoid(x), floored at 1 / max_weight;
* calibrated: p = f(x) with the calibration of :mod:`smartbkg.sampling` fitted on the validation
  set to maximise the speedup (floored likewise): the fitted ``exp`` form or the raw sigmoid,
  whichever has the higher validation speedup (:func:`fit_calibrations`).

Metric names (flat, ``split/metric[/skim]``): ``auc``, ``speedup_raw``, ``speedup`` (calibrated),
``speedup_perfect`` (perfect classifier with the same floor), ``speedup_limit`` (perfect
classifier without floor, the physical limit), ``significance`` (binned Asimov over
``significance_bins`` bins of equal signal; bins without background are merged into their
lower-score neighbour, :func:`smartbkg.metrics.binned_significance` with ``merge_empty``, so a
well-separating network has a finite significance that can be monitored), ``a_eff``
(effective events per passing event with the calibrated p), ``n_eff`` (expected Kish effective
size of the passing events after sampling, (sum w)^2 / sum w^2/p over passing events: N_pass *
a_eff for unit weights), ``kept_fraction`` (expected fraction of
events sent to the slow stage, at the true retention eps), ``passing`` (the summed weight of the
passing events: their number in an unweighted sample, which says how far the rare skims'
figures can be trusted). Averages over skims drop the skim part
of the name.
"""

from dataclasses import dataclass

import numpy as np
import torch

from .. import metrics as M
from ..errors import DataError
from ..sampling import Calibration

#: Metrics averaged over skims (the others are reported per skim only).
AVERAGED = ("auc", "speedup_raw", "speedup", "speedup_perfect", "significance")


@dataclass
class Predictions:
    """Network output on a data set, with what the metrics need (CPU tensors).

    Attributes:
        logits: (n, S) float32 logits, one column per skim.
        y: (n, S) float32 skim labels 0/1.
        weight: (n,) float32 event weights.
        event_type: (n,) int64 event type codes.
        loss: the loss of the set (mean over global batches, weighted by batch size).
    """

    logits: torch.Tensor
    y: torch.Tensor
    weight: torch.Tensor
    event_type: torch.Tensor
    loss: float


@dataclass(frozen=True)
class Timings:
    """Times per event in ms: generation, network inference, detector simulation + reconstruction."""

    t_fast: float = M.T_FAST
    t_nn: float = M.T_NN
    t_slow: float = M.T_SLOW

    def as_kwargs(self):
        return {"t_fast": self.t_fast, "t_nn": self.t_nn, "t_slow": self.t_slow}


def check_both_classes(y, skims, what):
    """Raise :class:`DataError` unless every skim column of ``y`` (n, S) has passing and failing events."""
    y = np.asarray(y)
    for j, skim in enumerate(skims):
        n_pass = int((y[:, j] > 0.5).sum())
        if n_pass == 0 or n_pass == len(y):
            cls = "passing" if n_pass == 0 else "failing"
            raise DataError(f"the {what} set ({len(y)} events) has no {cls} events for skim {skim!r}; "
                            "use more events, a larger split fraction or another skim", field=skim)


#: Calibration forms tried per skim; the one of highest validation speedup is used.
CALIBRATION_FORMS = ("exp", "sigmoid")


def fit_calibrations(pred, skims, retention, timings, max_weight):
    """Fit one sampling calibration per skim on ``pred`` (the validation set).

    Per skim the ``exp`` calibration is fitted and compared with the raw network output
    (``sigmoid`` form, p = sigmoid(logit) floored); whichever has the higher speedup on ``pred``
    is kept (``form`` says which; ``fit_info["candidates"]`` holds both speedups). The exp family
    need not contain what a speedup-trained network already outputs, so this keeps the
    "calibrated" speedup from falling below the raw one on the set it was fitted on.

    Returns:
        {skim: :class:`smartbkg.sampling.Calibration`}.
    """
    logits, y, w = pred.logits.double().numpy(), pred.y.numpy(), pred.weight.double().numpy()
    return {skim: Calibration.fit(logits[:, j], y[:, j], form=CALIBRATION_FORMS, eps=retention[skim], weight=w,
                                  max_weight=max_weight, **timings.as_kwargs())
            for j, skim in enumerate(skims)}


def skim_metrics(pred, skims, retention, timings, max_weight, calibrations, *, significance_bins=5,
                 prefix="val"):
    """All metrics of :mod:`this module <smartbkg.train.evaluation>` for ``pred``.

    Args:
        pred: :class:`Predictions`.
        skims: names of the S skims (columns).
        retention: {skim: true retention eps}.
        timings: :class:`Timings`.
        max_weight: the floor of sampling probabilities is 1 / max_weight.
        calibrations: {skim: calibration} (from :func:`fit_calibrations`); ``None``: the
            "calibrated" metrics use the raw probabilities (speedup = speedup_raw).
        significance_bins: bins of equal signal for the binned significance.
        prefix: the split name that starts every metric name.

    Returns:
        {name: float}.
    """
    logits, y, w = pred.logits.double().numpy(), pred.y.numpy(), pred.weight.double().numpy()
    out = {}
    for j, skim in enumerate(skims):
        eps, x, yj = retention[skim], logits[:, j], y[:, j]
        kwargs = {"eps": eps, "weight": w, "max_weight": max_weight, **timings.as_kwargs()}
        p_raw = 1.0 / (1.0 + np.exp(-x))
        p_cal = (np.maximum(p_raw, 1.0 / max_weight) if calibrations is None
                 else calibrations[skim].apply(x))
        a_eff = M.a_eff(p_cal, yj, weight=w)
        kept = eps * _mean(p_cal, yj * w) + (1 - eps) * _mean(p_cal, (1 - yj) * w)
        values = {
            "auc": M.auc(yj, x, weight=w),
            "speedup_raw": M.speedup(p_raw, yj, **kwargs),
            "speedup": M.speedup(p_cal, yj, **kwargs),
            "speedup_perfect": M.perfect_speedup(eps, max_weight=max_weight, **timings.as_kwargs()),
            "speedup_limit": M.perfect_speedup(eps, **timings.as_kwargs()),
            "significance": M.binned_significance(x, yj, weight=w, n_bins=significance_bins, merge_empty=True).z,
            "a_eff": a_eff,
            "n_eff": _expected_kish(p_cal, yj * w),
            "kept_fraction": kept,
            "passing": float((yj * w).sum()),
        }
        out.update({f"{prefix}/{name}/{skim}": float(v) for name, v in values.items()})
    for name in AVERAGED:
        out[f"{prefix}/{name}"] = float(np.mean([out[f"{prefix}/{name}/{s}"] for s in skims]))
    return out


def _expected_kish(p, w_pass):
    """(sum_pass w)^2 / sum_pass w^2/p: the Kish size of the passing events kept with p, weighted w/p
    (ratio of the expected sums; N_pass * a_eff for unit weights)."""
    passing = w_pass > 0
    return float(w_pass[passing].sum() ** 2 / (w_pass[passing] ** 2 / p[passing]).sum())


def _mean(values, weights):
    total = weights.sum()
    return float((values * weights).sum() / total) if total > 0 else 0.0
