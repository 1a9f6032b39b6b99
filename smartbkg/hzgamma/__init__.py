"""The embedded significance-driven classification example: H -> Z gamma against Z gamma at
13 TeV (Pythia 8 with a simple detector, :mod:`~smartbkg.hzgamma.sample`) and the event-level
features of the classifiers (:mod:`~smartbkg.hzgamma.features`)."""
