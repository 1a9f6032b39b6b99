"""Closure test of a filtered production: are the weighted kept events the full sample?

Given the generated events of one production, their skim flags from the unfiltered run, their
sampling probabilities p (n, S) and which events counted for each skim in the filtered run,
:func:`production_closure` compares, per skim, the weighted yield of the kept passing events
(weights 1/p) and the weighted histogram of every event-level variable with those of all passing
events. Each comparison uses the exact variance of :func:`smartbkg.sampling.closure`
(sum over passing events of (1 - p)/p, known because p is known for every generated event), so
chi2 follows a chi2(ndf) and a pull a unit normal for an unbiased filter.

Verdict: the filter closes if no comparison is significant after the Bonferroni correction
for the number of comparisons M (every p-value >= alpha / M). A filter that drops events
without weights (a hard cut, p = 1 claimed for the kept events) fails: its missing events have
no variance to hide in.
"""

import numpy as np
import torch

from ..errors import DataError
from ..sampling import closure

#: Edges of the pull histogram (pulls beyond them are counted in the outer bins' neighbours: under/overflow).
PULL_EDGES = np.linspace(-5.0, 5.0, 21)


def chi2_pvalue(chi2, ndf):
    """P(X >= chi2) for X ~ chi2(ndf): the regularised upper incomplete gamma function Q(ndf/2, chi2/2)."""
    if not np.isfinite(chi2):
        return 0.0  # a difference without variance: events that could never be kept were lost
    if ndf <= 0:
        return 1.0
    return float(torch.special.gammaincc(torch.tensor(ndf / 2.0, dtype=torch.float64),
                                         torch.tensor(chi2 / 2.0, dtype=torch.float64)))


def production_closure(labels, variables, p, counts, skims, *, bins=20, alpha=0.01):
    """The closure test of the module docstring.

    Args:
        labels: (n, S) bool skim flags of all generated events (unfiltered run).
        variables: {name: (n,) values} event-level variables of all generated events.
        p: (n, S) sampling probabilities the filter used.
        counts: (n, S) bool, the event counted for skim s in the filtered run (kept with u < p_s).
        skims: the S skim names.
        bins: histogram bins per variable (equal width over the passing events' range).
        alpha: significance level of the whole test (Bonferroni-corrected per comparison).

    Returns:
        dict: ``yields`` and ``distributions`` per skim (chi2, ndf, p-value, pulls per bin),
        ``pulls`` (histogram over all bins of all variables and skims, with mean and width),
        ``comparisons``, ``passed`` and the one-line ``verdict``.
    """
    labels, p, counts = np.asarray(labels, bool), np.asarray(p, np.float64), np.asarray(counts, bool)
    n, s = labels.shape
    if p.shape != (n, s) or counts.shape != (n, s) or len(skims) != s:
        raise DataError(f"labels {labels.shape}, p {p.shape}, counts {counts.shape} and {len(skims)} skims disagree")
    yields, distributions, pulls, tests = {}, {}, [], []
    for j, skim in enumerate(skims):
        y, pj, cj = labels[:, j], p[:, j], counts[:, j]
        if not y.any():
            continue
        sampled = float(np.sum(1.0 / pj[cj & y]))
        variance = float(np.sum((1 - pj[y]) / pj[y]))
        reference = int(y.sum())
        if variance > 0:
            pull = (sampled - reference) / np.sqrt(variance)
        else:
            pull = 0.0 if np.isclose(sampled, reference) else np.inf
        p_value = chi2_pvalue(pull**2, 1)
        yields[skim] = {"reference": reference, "sampled": sampled, "error": float(np.sqrt(variance)),
                        "pull": float(pull), "p_value": p_value}
        tests.append((f"yield of {skim}", p_value))
        distributions[skim] = {}
        for name, values in variables.items():
            c = closure(np.asarray(values, np.float64), y, cj, pj, bins=bins)
            used = c.difference_err > 0
            bin_pulls = (c.sampled[used] - c.reference[used]) / c.difference_err[used]
            p_value = chi2_pvalue(c.chi2, c.ndf)
            distributions[skim][name] = {"chi2": c.chi2, "ndf": c.ndf, "p_value": p_value,
                                         "edges": c.edges.tolist(), "reference": c.reference.tolist(),
                                         "sampled": c.sampled.tolist(), "error": c.difference_err.tolist()}
            pulls.append(bin_pulls)
            tests.append((f"{name} for {skim}", p_value))
    if not tests:
        raise DataError("no skim has passing events: nothing to compare", field="labels")
    pulls = np.concatenate(pulls) if pulls else np.zeros(0)
    finite = pulls[np.isfinite(pulls)]
    threshold = alpha / len(tests)
    worst_name, worst_p = min(tests, key=lambda t: t[1])
    passed = worst_p >= threshold
    chi2_ndf = [d["chi2"] / d["ndf"] for per in distributions.values() for d in per.values() if d["ndf"]] or [np.nan]
    verdict = (f"closure {'PASSED' if passed else 'FAILED'}: {len(tests)} comparisons ({len(yields)} yields, "
               f"{len(tests) - len(yields)} distributions), chi2/ndf {min(chi2_ndf):.2f} to {max(chi2_ndf):.2f}, "
               f"smallest p-value {worst_p:.3g} ({worst_name}) against {threshold:.2g} = {alpha}/{len(tests)}; "
               f"pulls over {len(finite)} bins: mean {np.mean(finite) if len(finite) else np.nan:+.3f}, "
               f"width {np.std(finite) if len(finite) else np.nan:.3f}")
    return {
        "yields": yields,
        "distributions": distributions,
        "pulls": {"edges": PULL_EDGES.tolist(), "counts": _pull_histogram(pulls).tolist(), "bins": int(len(pulls)),
                  "mean": float(finite.mean()) if len(finite) else None,
                  "width": float(finite.std()) if len(finite) else None,
                  "non_finite": int(len(pulls) - len(finite))},
        "comparisons": len(tests),
        "alpha": alpha,
        "smallest_p_value": {"comparison": worst_name, "p_value": worst_p},
        "passed": bool(passed),
        "verdict": verdict,
    }


def _pull_histogram(pulls):
    """Counts of ``pulls`` in :data:`PULL_EDGES`, values beyond the edges in the outer bins."""
    clipped = np.clip(np.nan_to_num(pulls, posinf=PULL_EDGES[-1], neginf=PULL_EDGES[0]), PULL_EDGES[0], PULL_EDGES[-1])
    return np.histogram(clipped, bins=PULL_EDGES)[0]
