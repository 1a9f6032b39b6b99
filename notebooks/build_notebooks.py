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

OPTUNA_STUDY = [
    ("markdown", """# An Optuna study of a filter network

`smartbkg.tune` runs Optuna studies on the package's one training loop: every trial is an ordinary run
folder (config, checkpoints, TensorBoard) inside the study folder, reports its validation metric after
every epoch so that unpromising trials are pruned, and the best trial's configuration is written as a
YAML file that `smartbkg-train --config` accepts. This notebook runs a small study of the Belle II
architecture (`gatgap`) on the embedded Pythia 8 sample, shows Optuna's plots, runs a second study
that trades the speedup against the network's measured time per event (a Pareto front), and finally
trains the best configuration again."""),
    ("code", """import json
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets
import matplotlib.pyplot as plt
import optuna
import torch
from optuna.visualization import matplotlib as plots

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # Optuna's matplotlib plots
optuna.logging.set_verbosity(optuna.logging.WARNING)  # run_study prints one line per trial
from smartbkg.simulation import produce
from smartbkg.train import RunConfig, Trainer
from smartbkg.tune import load_space, run_study

torch.set_num_threads(1)  # small models train fastest on one thread; t_NN below is per thread
work = Path(tempfile.mkdtemp(prefix="smartbkg-optuna-"))
meta = produce(work / "sample", 5000, seed=1)
print(f"5000 events, tau_generic retention {meta['retention']['tau_generic']['all']:.3f}")
base = RunConfig.from_dict({
    "data": {"path": [str(work / "sample")], "skims": ["tau_generic"]},
    "train": {"epochs": 3, "patience": None, "seed": 0},
})"""),
    ("markdown", """## The search space

The default space of a model (`smartbkg.tune.default_space`) searches the loss, learning rate, weight
decay, batch size and schedule, and the model's sizes. A space file (or dict) overrides it key by key:
here narrower sizes for a quick study, a fixed batch size and schedule, two losses. The keys are config
keys, so every trial is `base.with_overrides(trial values)`."""),
    ("code", """space = load_space({"params": {
    "loss.name": {"type": "categorical", "choices": ["entropy", "entropeedup"]},
    "model.options.units": {"type": "int", "low": 8, "high": 32, "log": True},
    "model.options.heads": {"type": "categorical", "choices": [1, 2, 4]},
    "model.options.layers": {"type": "int", "low": 2, "high": 4},
    "data.batch_size": 128,
    "train.schedule": "cosine",
}}, "gatgap")
for name, spec in space.to_dict()["params"].items():
    print(f"{name:26s} {spec}")"""),
    ("markdown", """## Optimise the validation speedup

`run_study` creates the study (a journal file in the study folder; an RDB URL such as
`postgresql://...` lets processes on many machines share it), runs the trials, prints one line per
trial and the best trial, and writes `best_config.yaml`. The median pruner stops a trial whose
validation speedup after an epoch is below the median of the earlier trials at that epoch; here
(any Optuna pruner can be given) from epoch 2 on and once five trials are complete."""),
    ("code", """pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
study = run_study(base, model="gatgap", n_trials=12, study_name="gatgap-speedup", root=work / "studies",
                  space=space, pruner=pruner, seed=0)"""),
    ("code", """plots.plot_optimization_history(study)
plt.show()"""),
    ("code", """plots.plot_param_importances(study)
plt.show()"""),
    ("code", """plots.plot_parallel_coordinate(study, params=["train.lr", "train.weight_decay", "model.options.units",
                                              "model.options.layers"])
plt.show()"""),
    ("markdown", """## Speedup against network time: a Pareto front

The speedup formula contains the network's time per event t_NN. With the objectives `speedup` and
`t_nn` the study keeps every trial that no other beats in both: the validation speedup (at the Belle II
t_NN) and the time per event measured for the trial's own model on a fixed batch of validation events
(one CPU thread here, so the times are those of this machine and its load). `speedup_measured` is the
single-objective version: the speedup with each trial's measured t_NN in the formula."""),
    ("code", """pareto = run_study(base, model="gatgap", n_trials=8, study_name="gatgap-pareto", root=work / "studies",
                   space=space, objectives=("speedup", "t_nn"), seed=1, quiet=True)
plots.plot_pareto_front(pareto, target_names=["validation speedup", "t_NN (ms/event)"])
plt.show()
for trial in sorted(pareto.best_trials, key=lambda t: t.number):
    print(f"trial {trial.number}: speedup {trial.values[0]:.3f}, t_NN {trial.values[1]:.4f} ms/event, "
          f"units {trial.params['model.options.units']}, layers {trial.params['model.options.layers']}")"""),
    ("markdown", """## Train the best configuration

`best_config.yaml` is the best trial's resolved configuration; training from it (here in Python, or
`smartbkg-train --config best_config.yaml`) repeats the trial: on CPU the same figures, bit for bit.
The summary is evaluated on the test events, which the study never looked at."""),
    ("code", """folder = work / "studies" / "gatgap-speedup"
config = RunConfig.from_file(folder / "best_config.yaml").with_overrides({"train.quiet": True})
summary = Trainer(config).fit()
trial_summary = json.loads((folder / f"trial_{study.best_trial.number:04d}" / "summary.json").read_text())
print(f"best trial {study.best_trial.number}: validation speedup {study.best_value:.3f}")
print(f"trained again from best_config.yaml: test AUC {summary['auc']:.4f}, test speedup {summary['speedup']:.3f} "
      f"(perfect classifier {summary['speedup_perfect']:.2f})")
print(f"same figures as the trial: {summary == trial_summary}")"""),
]

NOTEBOOKS["optuna_study.ipynb"] = OPTUNA_STUDY


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
