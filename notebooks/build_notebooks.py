"""Write and execute the example notebooks of ``notebooks/`` (their outputs are computed, not typed).

Usage::

    pip install -e ".[notebooks]"
    python notebooks/build_notebooks.py            # writes and executes every notebook in place

Each notebook is defined below as a list of (kind, source) cells, so its code lives in one
reviewable place; the ``.ipynb`` files next to this script are the executed results.
"""

import argparse
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

CALIBRATION = [
    ("markdown", """# Calibration, importance sampling and speedup: a walk-through

A filter network predicts, from the generator-level decay tree, whether an event will pass a skim.
Its output becomes a **sampling probability** p: the event is kept (and sent through the slow
detector simulation) with probability p and carries the weight 1/p. This notebook trains a small
filter on the embedded Pythia 8 sample, turns its logits into sampling probabilities by the
calibration f(x) = min(exp(a (x - b)), 1) (floored at 1/max_weight), and checks on held-out events
that the filter is fast (**speedup** at equal effective sample size) and unbiased (**closure**)."""),
    ("code", """import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets
from smartbkg import metrics
from smartbkg.sampling import Calibration, closure, sample
from smartbkg.simulation import produce
from smartbkg.train import RunConfig, Trainer

torch.manual_seed(0)
work = Path(tempfile.mkdtemp(prefix="smartbkg-notebook-"))
SKIM = "leptonic_untagged"   # lepton p* > 2 GeV and >= 3 tracks: about 2 % of generic events
for name, n_events, seed in (("train", 40_000, 1), ("val", 10_000, 2), ("test", 20_000, 3)):
    meta = produce(work / name, n_events, seed=seed)
    print(f"{name:5s} {n_events:6d} events, {SKIM} retention {meta['retention'][SKIM]['all']:.4f}")"""),
    ("markdown", """## Train a filter

The Belle II architecture (`gatgap`: 6 graph-attention layers, 4 heads, 32 units, global attention
pooling) with the entropy loss, through the package's one training loop. The validation speedup is
logged every epoch; early stopping follows the validation loss."""),
    ("code", """config = RunConfig.from_dict({
    "data": {"path": [str(work / "train")], "val_path": [str(work / "val")],
             "test_path": [str(work / "test")], "skims": [SKIM], "batch_size": 256},
    "model": {"name": "gatgap"},
    "loss": {"name": "entropy"},
    "train": {"epochs": 8, "lr": 2e-3, "quiet": True, "seed": 0},
    "out": str(work / "run"),
})
trainer = Trainer(config)
summary = trainer.fit()
for r in trainer.history:
    print(f"epoch {r['epoch']}: train loss {r['train/loss']:.4f}, val loss {r['val/loss']:.4f}, "
          f"AUC {r['val/auc']:.4f}, speedup {r['val/speedup']:.3f} (perfect {r['val/speedup_perfect']:.2f})")
print(f"best epoch {summary['best_epoch']}")"""),
    ("markdown", """## From logits to sampling probabilities

The raw sigmoid of the logit is a *classification* probability; used directly as a sampling
probability it keeps far too many failing events, or gives passing events huge weights. The
calibration is fitted on the validation set to maximise the speedup and applied to the test set."""),
    ("code", """val, test = trainer.predict(trainer.val_loader), trainer.predict(trainer.test_loader)
x_val, y_val = val.logits[:, 0].numpy(), val.y[:, 0].numpy()
x_test, y_test = test.logits[:, 0].numpy(), test.y[:, 0].numpy()
eps = float(y_val.mean())
print(f"test AUC {metrics.auc(y_test, x_test):.4f}, retention eps = {eps:.4f}")
print(f"perfect classifier: speedup {metrics.perfect_speedup(eps):.2f} "
      f"({metrics.perfect_speedup(eps, max_weight=100):.2f} with p >= 1/100)")

raw = 1 / (1 + np.exp(-x_test))
print(f"raw sigmoid:       speedup {metrics.speedup(raw, y_test, eps=eps, max_weight=100):.3f}")
calibration = Calibration.fit(x_val, y_val, eps=eps)
p = calibration.apply(x_test)
print(f"calibrated:        speedup {metrics.speedup(p, y_test, eps=eps):.3f}   params {calibration.params}")
print(f"keep fraction {p.mean():.3f}, a_eff (N_eff per kept passing event) {metrics.a_eff(p, y_test):.3f}")"""),
    ("markdown", """The fit chooses (a, b); among parameters of nearly equal speedup it prefers the narrower
weight distribution. The speedup as a function of the shift b at the fitted slope a shows the
trade-off: a low b keeps almost everything (no gain), a high b gives passing events large weights
(a small effective sample)."""),
    ("code", """a, b = calibration.params["a"], calibration.params["b"]
for shift in (-4, -2, -1, 0, 1, 2, 4):
    trial = Calibration("exp", {"a": a, "b": b + shift}, max_weight=100).apply(x_test)
    print(f"b {b + shift:+6.2f}: keep {trial.mean():.3f}, a_eff {metrics.a_eff(trial, y_test):.3f}, "
          f"speedup {metrics.speedup(trial, y_test, eps=eps):.3f}")"""),
    ("markdown", """## The filter and its closure

`sample` keeps each test event with its probability p and weights the kept ones by 1/p. For the
events that pass the skim, the weighted kept sample must reproduce the distribution of *all*
passing events in any variable, here the number of particles in the decay tree and the event
type; chi2/ndf ~ 1 says the filter is unbiased within its statistical precision."""),
    ("code", """test_table = trainer.splits.test.table           # preprocessed test events, in loader order
keep, weight = sample(p, seed=1)
print(f"kept {keep.sum()} of {len(keep)} events ({keep.mean():.1%}); the slow simulation runs only for these")
kept_passing = keep & (y_test == 1)
print(f"passing events: {int(y_test.sum())}; kept {int(kept_passing.sum())}, "
      f"Kish N_eff {metrics.effective_sample_size(weight[kept_passing]):.1f}")
n_particles = test_table.counts.astype(float)
result = closure(n_particles, y_test, keep, p, bins=10)
print(f"closure in particles per event: chi2/ndf = {result.chi2:.1f} / {result.ndf}")
types = test_table.event_type.astype(float)
result = closure(types, y_test, keep, p, bins=np.arange(len(test_table.event_types) + 1) - 0.5)
for name, ref, smp, err in zip(test_table.event_types, result.reference, result.sampled, result.difference_err):
    print(f"  {name:8s} all passing {ref:6.0f}   kept, weighted {smp:8.1f} +- {err:5.1f}")
print(f"closure in event type: chi2/ndf = {result.chi2:.1f} / {result.ndf}")"""),
]

NOTEBOOKS = {"calibration_and_speedup.ipynb": CALIBRATION}


def build(name, cells):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
                      for kind, src in cells]
    return notebook


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(NOTEBOOKS), help="notebooks to build")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the executed notebooks")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    from nbclient import NotebookClient  # the notebooks extra; the definitions above need only nbformat

    for name in args.names:
        notebook = build(name, NOTEBOOKS[name])
        NotebookClient(notebook, timeout=args.timeout, kernel_name="python3").execute()
        args.out.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, args.out / name)
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
