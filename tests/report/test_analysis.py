"""Report analysis on synthetic arrays (no network): binning, AUC error, options, the methods on a
toy where sampling closes and the hard cut does not, figures and page of a sampling-only report."""

import numpy as np
import pytest

from smartbkg.data.event_variables import DISCRETE, VARIABLES
from smartbkg.errors import ConfigError
from smartbkg.report.analysis import Options, analyse_skim, auc_with_error, closure_edges
from smartbkg.report.figures import skim_figures
from smartbkg.report.html import render, summary_rows
from smartbkg.sampling import Calibration

TIMINGS = {"t_fast": 0.08, "t_nn": 0.63, "t_slow": 97.04}


def test_closure_edges():
    # quantiles 0, 0, 2, 4, 5: a bin from each distinct quantile value up to the next one (3 joins 2)
    values = np.array([0, 0, 0, 2, 2, 3, 4, 5, 5])
    np.testing.assert_array_equal(closure_edges(values, True, 4), [-0.5, 1.5, 3.5, 4.5, 5.5])
    np.testing.assert_allclose(closure_edges(np.arange(9.0), False, 4), [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(closure_edges(np.full(5, 3.0), False, 4), [2.5, 3.5])


def test_auc_error_is_hanley_mcneil():
    # AUC 0.75 from 2 passing and 2 failing events: Q1 = 0.75/1.25, Q2 = 2*0.5625/1.75
    y = np.array([1, 1, 0, 0.0])
    result = auc_with_error(y, np.array([0.9, 0.2, 0.5, 0.1]), np.ones(4))
    a, q1, q2 = 0.75, 0.6, 1.125 / 1.75
    assert result["value"] == pytest.approx(a)
    assert result["error"] == pytest.approx(np.sqrt((a * (1 - a) + (q1 - a * a) + (q2 - a * a)) / 4))


def test_options_are_checked():
    assert Options(methods=("hard_cut",)).methods == ("sampling", "hard_cut")
    assert set(Options().unseen) == set(VARIABLES) - set(Options().seen)
    with pytest.raises(ConfigError, match="unknown event variable"):
        Options(seen=("thrust", "mass"))
    with pytest.raises(ConfigError, match="unseen"):
        Options(seen=VARIABLES)
    with pytest.raises(ConfigError, match="unknown method"):
        Options(methods=("cut",))
    with pytest.raises(ConfigError, match="folds"):
        Options(folds=1)
    with pytest.raises(ConfigError, match="false-negative"):
        Options(fnr=1.5)


def toy(n=6000, seed=0):
    """Logits N(+-1.5, 1) for passing and failing events; every event variable a noisy copy of
    the logit (integer for the discrete ones), so a cut on the logit biases all of them. (Its
    random numbers must not be those of the sampling draw, seeded by ``Options.seed``.)"""
    rng = np.random.default_rng(1000 + seed)
    y = (rng.random(n) < 0.2).astype(float)
    x = np.where(y == 1, 1.5, -1.5) + rng.normal(0, 1, n)
    variables = {name: x + rng.normal(0, 1, n) for name in VARIABLES}
    for name in DISCRETE:
        variables[name] = np.round(np.clip(variables[name] + 3, 0, 8)).astype(np.int64)
    return x, y, variables


def test_sampling_closes_and_the_hard_cut_does_not():
    x, y, variables = toy()
    calibration = Calibration.fit(x, y)
    options = Options(heatmap_size=6, closure_bins=6)
    oracle = {"speedup": 2.0, "speedup_err": 0.1, "perfect_limit": 4.0}
    numbers = analyse_skim(x, y, np.ones(len(y)), variables, calibration, y.mean(), TIMINGS, options, oracle).numbers
    methods = numbers["methods"]
    assert list(methods) == ["sampling", "threshold_reweighting", "hard_cut"]
    assert methods["sampling"]["verdict"] == "closes"
    assert methods["hard_cut"]["verdict"] == "biased" and methods["hard_cut"]["worst_closure"]["chi2_ndf"] > 10
    assert methods["sampling"]["speedup"] == pytest.approx(calibration.fit_info["speedup"])
    assert numbers["heatmap"]["best"]["speedup"] >= max(max(row) for row in numbers["heatmap"]["speedup"])
    assert methods["hard_cut"]["false_negative_rate"] == pytest.approx(0.1, abs=0.01)
    for values in methods.values():
        assert values["fraction_of_oracle"]["value"] == pytest.approx(values["speedup"] / 2.0)
        assert values["fraction_of_perfect"] == pytest.approx(values["speedup"] / numbers["limits"]["perfect"])


def test_figures_and_page_of_a_sampling_only_report():
    x, y, variables = toy(n=1500, seed=1)
    options = Options(methods=("sampling",), heatmap_size=4, closure_bins=4)
    result = analyse_skim(x, y, np.ones(len(y)), variables, Calibration.fit(x, y, form="sigmoid"), 0.2, TIMINGS,
                          options)
    assert list(result.numbers["methods"]) == ["sampling"] and "threshold" not in result.numbers
    assert result.numbers["heatmap"]["fitted"] is None  # the run's form is not exp
    figures = skim_figures(result, "toy", options.seen, options.unseen)
    assert len(figures) == 9
    report = {"run": "r", "model": "m", "data": ["d"], "events": {"evaluated": 1500, "invalid": 0, "dropped_empty": 0},
              "timings": TIMINGS, "results": {"toy": result.numbers},
              "figures": {"toy": {name: f"toy_{name}.png" for name in figures}},
              "options": {"variables": list(VARIABLES), "alpha": 0.05}}
    page = render(report, {"toy": {name: b"png" for name in figures}})
    assert page.count("<img ") == 9 and "threshold + reweighting" not in page
    assert [row["method"] for row in summary_rows(report)] == ["importance sampling"]
