"""The production closure test: an importance-sampling filter closes, a hard cut without weights fails."""

import numpy as np
import pytest

from smartbkg.data import read_events
from smartbkg.data.event_variables import event_variables
from smartbkg.filter import Filter, filter_uniforms, shared_uniform
from smartbkg.filter.closure import chi2_pvalue, production_closure


@pytest.fixture(scope="module")
def scored(run_dir, sample_dir):
    events = read_events(sample_dir)
    flt = Filter.from_run(run_dir)
    labels = events.labels[:, [events.skims.index(s) for s in flt.skims]]
    return flt, flt.logits(events), flt.calibrate(flt.logits(events)), labels, event_variables(events)


def test_importance_sampling_closes(scored):
    flt, _, p, labels, variables = scored
    decision = shared_uniform(p, filter_uniforms(5, np.arange(len(p))), flt.skims)
    result = production_closure(labels, variables, p, decision.counts, flt.skims)
    assert result["passed"], result["verdict"]
    assert result["comparisons"] == 2 * (1 + len(variables)) and len(variables) >= 10
    assert result["verdict"].startswith("closure PASSED") and "\n" not in result["verdict"]
    assert sum(result["pulls"]["counts"]) == result["pulls"]["bins"] > 0


def test_a_hard_cut_without_weights_fails(scored):
    flt, logits, p, labels, variables = scored
    cut = logits > np.median(logits, axis=0)       # keep the upper half, weight 1 (claimed p = 1)
    result = production_closure(labels, variables, np.ones_like(p), cut, flt.skims)
    assert not result["passed"] and result["verdict"].startswith("closure FAILED")
    assert result["smallest_p_value"]["p_value"] == 0.0


def test_wrong_weights_fail(scored):
    """Decisions drawn with sqrt(p) but weighted with 1/p: biased towards low-score events."""
    flt, _, p, labels, variables = scored
    decision = shared_uniform(np.sqrt(p), filter_uniforms(5, np.arange(len(p))), flt.skims)
    assert not production_closure(labels, variables, p, decision.counts, flt.skims)["passed"]


def test_chi2_pvalue():
    assert chi2_pvalue(2.0, 2) == pytest.approx(np.exp(-1.0))
    assert chi2_pvalue(np.inf, 3) == 0.0 and chi2_pvalue(1.0, 0) == 1.0
