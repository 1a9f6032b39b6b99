"""The embedded reweighting example, end to end: Z-pole samples, weights, report, parameter fit.

Sample A is Pythia 8 e+e- -> Z -> hadrons with the shifted settings of :data:`VARIATION`
(the final-state shower alpha_s, the Lund a parameter and the strange suppression, the
alternative of the original reweighting study); sample B is the same process with the Monash
tune. The classifier learns the ratio on event-level features (:data:`FEATURES`, from
:func:`smartbkg.data.event_variables.event_variables` in the centre-of-mass frame) and its
weights turn Monash events into the variation. With ``fit``, the shower alpha_s of a
pseudo-data sample (generated at :data:`FIT_TRUTH` with its own seed) is fitted by reweighting
the Monash sample to each value of :data:`FIT_SCAN`.
"""

from ..data.event_variables import DESCRIPTIONS, DISCRETE, event_variables
from .fit import fit_parameter
from .report import write_report
from .reweighting import reweight_samples
from .zpole import Z_BEAMS, generate_z_hadrons

#: The alternative settings (sample A); sample B is the Monash tune.
VARIATION = {"TimeShower:alphaSvalue": 0.16, "StringZ:aLund": 0.8, "StringFlav:probStoUD": 0.275}
#: Event-level features the classifier sees (all event variables but the constant event type).
FEATURES = tuple(name for name in DESCRIPTIONS if name != "event_type")
#: The fitted parameter.
FIT_PARAMETER = "TimeShower:alphaSvalue"
#: The values of the fitted parameter the Monash sample is reweighted to.
FIT_SCAN = (0.120, 0.130, 0.140, 0.150, 0.160)
#: The parameter value of the pseudo-data sample.
FIT_TRUTH = 0.145


def z_features(table):
    """{name: (n,) array} of :data:`FEATURES` of Z-pole events."""
    values = event_variables(table, Z_BEAMS)
    return {name: values[name] for name in FEATURES}


def run_example(out, *, events=20000, seed=1, kind="gbdt", ensemble=1, clip=None, fit=False, fit_events=None,
                progress=print):
    """Generate the two samples, reweight B into A, write the report (and fit alpha_s).

    Args:
        out: report folder.
        events: events per sample (half of each trains the classifier, half tests the weights).
        seed: seed of everything (samples, splits, classifiers); each sample has its own stream.
        fit: also fit the shower alpha_s of pseudo-data; ``fit_events`` per scanned sample and
            for the pseudo-data (default ``events``).

    Returns:
        the report summary (as in ``report.json``).
    """
    progress(f"generating {events} Z -> hadrons events with the variation (A) and with Monash (B)")
    a = z_features(generate_z_hadrons(events, seed, VARIATION))
    b = z_features(generate_z_hadrons(events, seed + 1))
    progress(f"training the {kind} classifier and reweighting")
    result = reweight_samples(a, b, kind=kind, ensemble=ensemble, clip=clip, seed=seed, discrete=DISCRETE)
    result.settings.update({"sample_a": {"process": "e+e- -> Z -> hadrons", **VARIATION},
                            "sample_b": {"process": "e+e- -> Z -> hadrons", "tune": "Monash"}})
    fitted = None
    if fit:
        n = fit_events or events
        progress(f"fitting {FIT_PARAMETER}: {len(FIT_SCAN)} scanned samples and pseudo-data at {FIT_TRUTH}, "
                 f"{n} events each")
        scan = {theta: z_features(generate_z_hadrons(n, seed + 10 + k, {FIT_PARAMETER: theta}))
                for k, theta in enumerate(FIT_SCAN)}
        data = z_features(generate_z_hadrons(n, seed + 100, {FIT_PARAMETER: FIT_TRUTH}))
        fitted = fit_parameter(b, scan, data, parameter=FIT_PARAMETER, kind=kind, seed=seed, discrete=DISCRETE,
                               truth=FIT_TRUTH)
    return write_report(out, result, labels=DESCRIPTIONS, fit=fitted,
                        title="Classifier reweighting: Monash into the alternative tune (e+e- -> Z -> hadrons)")
