"""Classifier reweighting between samples (DCTR): weights that turn sample B into sample A.

* :mod:`~smartbkg.reweight.weights`: w = q / (1 - q) * N_B / N_A from a classifier's output;
* :mod:`~smartbkg.reweight.classifier`: gradient-boosted trees or a small network on
  event-level features, ensembles, cross-fitting;
* :mod:`~smartbkg.reweight.evaluate`: histograms with chi2, a second classifier's AUC;
* :mod:`~smartbkg.reweight.reweighting`: all of it in one call, :func:`reweight_samples`;
* :mod:`~smartbkg.reweight.fit`: a generator parameter fitted by reweighting;
* :mod:`~smartbkg.reweight.zpole` and :mod:`~smartbkg.reweight.example`: the embedded example,
  Pythia 8 e+e- -> Z -> hadrons with two tunes;
* :mod:`~smartbkg.reweight.report`: figures and an HTML page; ``smartbkg-reweight`` is the CLI.
"""

from .reweighting import ReweightResult, reweight_samples
from .weights import Weights, classifier_weights

__all__ = ["ReweightResult", "Weights", "classifier_weights", "reweight_samples"]
