"""Write and execute the example notebooks of ``notebooks/`` (their outputs are computed, not typed).

Usage::

    pip install -e ".[notebooks]"
    python notebooks/build_notebooks.py            # writes and executes every notebook in place
    python notebooks/build_notebooks.py --full     # the same at full size (long)

Each notebook is a function below that returns its (kind, source) cells, with a parameter ``full``
(the full-size settings; its first code cell says ``FULL = True``), and one entry in
:data:`NOTEBOOKS`; so its code lives in one reviewable place. The ``.ipynb`` files next to this
script are the executed results of the small settings, which the test suite executes too.
"""

import argparse
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

def calibration_and_speedup(full=False):
    """The calibration walk-through; ``full`` trains on 40,000 events for the full-size figures
    (about 40 minutes on 2 cores), else on 6,000 (a few minutes)."""
    return [
        ("markdown", """# Calibration, importance sampling and speedup: a walk-through

A filter network predicts, from the generator-level decay tree, whether an event will pass a skim.
Its output becomes a **sampling probability** p: the event is kept (and sent through the slow
detector simulation) with probability p and carries the weight 1/p. This notebook trains a small
filter on the embedded Pythia 8 sample, turns its logits into sampling probabilities by the
calibration f(x) = min(exp(a (x - b)), 1) (floored at 1/max_weight), and checks on held-out events
that the filter is fast (**speedup** at equal effective sample size) and unbiased (**closure**).

`FULL = False` runs a small sample in a few minutes; `FULL = True` gives the full-size figures
(40,000 training events, 8 epochs: about 40 minutes on 2 cores)."""),
        ("code", f"""FULL = {full}
N_TRAIN, N_VAL, N_TEST, EPOCHS = (40_000, 10_000, 20_000, 8) if FULL else (6_000, 3_000, 6_000, 3)

import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
import torch

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets
from smartbkg import metrics
from smartbkg.sampling import Calibration, closure, sample
from smartbkg.simulation import produce
from smartbkg.train import RunConfig, Trainer

hep.style.use("ROOT")
torch.manual_seed(0)
work = Path(tempfile.mkdtemp(prefix="smartbkg-notebook-"))
SKIM = "tau_generic"   # one-prong tau-pair candidates: about 16 % of generic events
for name, n_events, seed in (("train", N_TRAIN, 1), ("val", N_VAL, 2), ("test", N_TEST, 3)):
    meta = produce(work / name, n_events, seed=seed)
    print(f"{{name:5s}} {{n_events:6d}} events, {{SKIM}} retention {{meta['retention'][SKIM]['all']:.4f}}")"""),
        ("markdown", """## Train a filter

The Belle II architecture (`gatgap`: 6 graph-attention layers, 4 heads, 32 units, global attention
pooling) with the entropy loss, through the package's one training loop. The validation speedup is
logged every epoch; early stopping follows the validation loss."""),
        ("code", """config = RunConfig.from_dict({
    "data": {"path": [str(work / "train")], "val_path": [str(work / "val")],
             "test_path": [str(work / "test")], "skims": [SKIM], "batch_size": 256},
    "model": {"name": "gatgap"},
    "loss": {"name": "entropy"},
    "train": {"epochs": EPOCHS, "lr": 2e-3, "quiet": True, "seed": 0},
    "out": str(work / "run"),
})
trainer = Trainer(config)
summary = trainer.fit()
for r in trainer.history:
    print(f"epoch {r['epoch']}: train loss {r['train/loss']:.4f}, val loss {r['val/loss']:.4f}, "
          f"AUC {r['val/auc']:.4f}, speedup {r['val/speedup']:.3f} (perfect {r['val/speedup_perfect']:.2f})")"""),
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
print(f"keep fraction {p.mean():.3f}, a_eff (N_eff per kept passing event) {metrics.a_eff(p, y_test):.3f}")

fpr, tpr, _ = metrics.roc_curve(y_test, x_test)
fig, ax = plt.subplots(figsize=(7, 7))
ax.plot(fpr, tpr, label=f"gatgap, test set (AUC {metrics.auc(y_test, x_test):.3f})")
ax.plot([0, 1], [0, 1], ls="--", color="grey", label="no separation")
ax.set(xlabel="false positive rate (failing events selected)", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1))
ax.legend(loc="lower right", fontsize="small")
plt.show()"""),
        ("markdown", """The fit chooses (a, b); among parameters of nearly equal speedup it prefers the narrower
weight distribution. The test-set speedup as a function of each parameter, the other held at its
fitted value, shows the trade-off: a low shift b keeps almost everything (no gain), a high b gives
passing events large weights (a small effective sample); the slope a sets how sharply the
probability falls from 1 to the floor 1/max_weight."""),
        ("code", """a, b = calibration.params["a"], calibration.params["b"]


def test_speedup(a, b):
    return metrics.speedup(Calibration("exp", {"a": a, "b": b}, max_weight=100).apply(x_test), y_test, eps=eps)


shifts, slopes = b + np.linspace(-6, 6, 61), a * np.geomspace(0.1, 10, 61)
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
left.plot(shifts, [test_speedup(a, x) for x in shifts])
left.set(xlabel="shift b (logit)", ylabel="speedup on the test set")
right.plot(slopes, [test_speedup(x, b) for x in slopes])
right.set(xlabel="slope a (per unit logit)", xscale="log")
for axis, fitted in ((left, b), (right, a)):
    axis.axvline(fitted, color="C1", ls=":", label="fitted on the validation set")
    axis.axhline(1, color="grey", ls="--", label="no filter")
left.legend(fontsize="small")
plt.show()
for shift in (-4, -2, 0, 2, 4):
    trial = Calibration("exp", {"a": a, "b": b + shift}, max_weight=100).apply(x_test)
    print(f"b {b + shift:+6.2f}: keep {trial.mean():.3f}, a_eff {metrics.a_eff(trial, y_test):.3f}, "
          f"speedup {metrics.speedup(trial, y_test, eps=eps):.3f}")"""),
        ("markdown", """## The filter and its closure

`sample` keeps each test event with its probability p and weights the kept ones by 1/p. For the
events that pass the skim, the weighted kept sample must reproduce the distribution of *all*
passing events in any variable, here the number of particles in the decay tree and the event
type; chi2/ndf ~ 1 says the filter is unbiased within its statistical precision. The error bars
are the spread the random sampling gives (sqrt(sum w^2 (1 - p) / p) over the passing events of
the bin); the ratio panels show kept-and-weighted over all."""),
        ("code", """test_table = trainer.splits.test.table           # preprocessed test events, in loader order
keep, weight = sample(p, seed=1)
print(f"kept {keep.sum()} of {len(keep)} events ({keep.mean():.1%}); the slow simulation runs only for these")
kept_passing = keep & (y_test == 1)
print(f"passing events: {int(y_test.sum())}; kept {int(kept_passing.sum())}, "
      f"Kish N_eff {metrics.effective_sample_size(weight[kept_passing]):.1f}")
variables = {
    "particles per event": closure(test_table.counts.astype(float), y_test, keep, p, bins=10),
    "event type": closure(test_table.event_type.astype(float), y_test, keep, p,
                          bins=np.arange(len(test_table.event_types) + 1) - 0.5),
}
fig, axes = plt.subplots(2, 2, figsize=(15, 8), sharex="col", gridspec_kw={"height_ratios": [3, 1]})
fig.subplots_adjust(wspace=0.3, hspace=0.05)
for (name, result), (top, bottom) in zip(variables.items(), axes.T):
    hep.histplot(result.reference, result.edges, yerr=False, ax=top, label="all passing")
    hep.histplot(result.sampled, result.edges, yerr=result.difference_err, ax=top, histtype="errorbar",
                 label="kept, weighted 1/p")
    top.set(ylabel="passing events")
    top.legend(title=f"chi2/ndf = {result.chi2:.1f} / {result.ndf}", fontsize="small")
    reference = np.where(result.reference > 0, result.reference, np.nan)
    centres = (result.edges[1:] + result.edges[:-1]) / 2
    bottom.errorbar(centres, result.sampled / reference, yerr=result.difference_err / reference, fmt="o", color="C1")
    bottom.axhline(1, color="grey", ls="--")
    bottom.set(xlabel=name, ylabel="kept / all", ylim=(0.5, 1.5))
    print(f"closure in {name}: chi2/ndf = {result.chi2:.1f} / {result.ndf}")
event_axis = axes[1, 1]
event_axis.set_xticks(range(len(test_table.event_types)), test_table.event_types, rotation=30)
plt.show()"""),
    ]


#: File name -> function(full) returning the notebook's (kind, source) cells.
NOTEBOOKS = {"calibration_and_speedup.ipynb": calibration_and_speedup}

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



def optuna_study(full=False):
    """The Optuna study notebook's cells (one size: a small study that runs in a few minutes)."""
    return OPTUNA_STUDY


NOTEBOOKS["optuna_study.ipynb"] = optuna_study


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
    parser.add_argument("--full", action="store_true",
                        help="the full-size settings (long); the committed notebooks use the small ones")
    args = parser.parse_args(argv)
    from nbclient import NotebookClient  # the notebooks extra; the definitions above need only nbformat

    for name in args.names:
        notebook = build(name, NOTEBOOKS[name](full=args.full))
        NotebookClient(notebook, timeout=args.timeout, kernel_name="python3").execute()
        args.out.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, args.out / name)
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
