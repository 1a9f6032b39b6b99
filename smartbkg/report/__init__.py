"""Evaluation reports of a trained run: figures, closure, and importance sampling against
threshold + reweighting on the same events.

    from smartbkg.report import evaluate
    report = evaluate("runs/my-run", ["test-shards/"], "report/")

:mod:`smartbkg.report.inputs` reads the run and scores the events, :mod:`smartbkg.report.analysis`
computes every number, :mod:`smartbkg.report.figures` draws them, :mod:`smartbkg.report.html`
writes the page and :mod:`smartbkg.report.report` the folder; ``smartbkg-evaluate``
(:mod:`smartbkg.report.cli`) is the command line.
"""

from .report import evaluate

__all__ = ["evaluate"]
