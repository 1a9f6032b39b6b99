"""The significance-driven classification example, end to end: H -> Z gamma against Z gamma.

:func:`run_example` generates signal and background (:mod:`smartbkg.hzgamma.sample`), weights
every selected event to the expected yield at :data:`LUMINOSITY_FB` (Pythia's leading-order
cross sections), splits the events 50/25/25 into training, validation and test sets and
standardises the features with the training set's mean and spread. It then trains, on the one
training loop (:class:`smartbkg.train.Trainer` with a :class:`~smartbkg.data.features.FeatureDataset`,
model selection by the binned significance on the validation set, classes balanced in the loss):

* ``transformer``: the feature-token transformer (:mod:`smartbkg.models.feature_tokens`), BCE;
* ``transformer_extreme``: the same with the extreme loss;
* ``transformer_disco``: BCE + lambda * DisCo(m_llgamma, output) over the background;
* ``dnn``: a feed-forward network, BCE;

and a gradient-boosted-trees baseline (scikit-learn, classes balanced). On the test set it
reports per model the binned significance (:func:`smartbkg.metrics.binned_significance`, bins of
equal signal), the AUC, and the distance correlation between output and m_llgamma in the
background (:func:`smartbkg.metrics.distance_correlation`), and draws the background m_llgamma
distribution after a cut keeping 10 % of the background, for lambda = 0 and lambda > 0: the
sculpting of the mass spectrum that DisCo removes.
"""

import json
from pathlib import Path

import numpy as np
import torch

from ..data.features import FeatureDataset
from ..metrics import auc, binned_significance, distance_correlation
from ..train import RunConfig, Trainer
from ..train.data import Splits
from ..train.logging import finite_or_null
from .features import FEATURES, event_features
from .sample import generate

#: Integrated luminosity of the expected yields [fb^-1] (LHC Run 2).
LUMINOSITY_FB = 140.0
#: The models trained on the loop: name -> (registry name, loss section).
MODELS = {
    "transformer": ("feature_tokens", {"name": "entropy"}),
    "transformer_extreme": ("feature_tokens", {"name": "extreme"}),
    "transformer_disco": ("feature_tokens", {"name": "entropy", "disco_variable": "mass"}),
    "dnn": ("dnn", {"name": "entropy"}),
}


def build_datasets(n_signal, n_background, seed):
    """(train, val, test) :class:`FeatureDataset` of generated signal and background, each weighted
    to the expected yields at :data:`LUMINOSITY_FB`, features standardised with the training
    set's mean and spread."""
    parts = []
    for process, n, label, offset in (("signal", n_signal, 1, 0), ("background", n_background, 0, 1)):
        events, n_generated, sigma_pb = generate(process, n, seed + offset)
        features, mass = event_features(events)
        weight = np.full(len(mass), sigma_pb * 1000.0 * LUMINOSITY_FB / n_generated)
        parts.append((np.stack([features[k] for k in FEATURES], axis=1), np.full(len(mass), label), mass, weight))
    x, y, mass, weight = (np.concatenate(p) for p in zip(*parts))
    order = np.random.default_rng([seed, 7]).permutation(len(y))
    n_train, n_val = len(y) // 2, len(y) // 4
    index = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    train = x[index["train"]]
    mean, scale = train.mean(axis=0), train.std(axis=0) + 1e-9
    # each split alone stands for the whole luminosity: weights divided by its share of the events
    return tuple(FeatureDataset((x[i] - mean) / scale, y[i], ("signal",), FEATURES, weight=weight[i] * len(y) / len(i),
                                variables={"mass": mass[i]}) for i in index.values())


def evaluate(score, dataset, *, bins=5):
    """Significance, AUC and output-mass distance correlation in the background of ``score``."""
    y = dataset.y[:, 0].numpy()
    w, mass = dataset.weight.numpy().astype(np.float64), dataset.variables["mass"].numpy().astype(np.float64)
    background = y == 0
    balanced = np.where(y == 1, w / w[y == 1].sum(), w / w[background].sum())
    return {"significance": binned_significance(score, y, weight=w, n_bins=bins, merge_empty=True).z,
            "auc": auc(y, score, weight=balanced),
            "mass_dcorr_background": float(distance_correlation(score[background], mass[background],
                                                                weight=w[background]))}


def sculpting(score, dataset, background_efficiency=0.1, bins=np.linspace(105, 170, 27)):
    """Normalised background m_llgamma histograms before and after the cut on ``score`` that keeps
    ``background_efficiency`` of the (weighted) background, and the signal efficiency of that cut."""
    y = dataset.y[:, 0].numpy()
    w, mass = dataset.weight.numpy().astype(np.float64), dataset.variables["mass"].numpy()
    background = y == 0
    order = np.argsort(score[background])
    kept_fraction = 1.0 - np.cumsum(w[background][order]) / w[background].sum()
    cut = float(score[background][order][np.searchsorted(-kept_fraction, -background_efficiency)])
    passed = score >= cut
    before = np.histogram(mass[background], bins, weights=w[background], density=True)[0]
    after = np.histogram(mass[background & passed], bins, weights=w[background & passed], density=True)[0]
    signal_efficiency = float(w[(y == 1) & passed].sum() / w[y == 1].sum())
    return {"edges": bins.tolist(), "before": before.tolist(), "after": after.tolist(), "cut": cut,
            "background_efficiency": background_efficiency, "signal_efficiency": signal_efficiency}


def _train(name, model, loss, splits, args, run_dir):
    train = splits.train
    y, w = train.y[:, 0], train.weight
    balance = float(w[y == 0].sum() / w[y == 1].sum())
    loss = {**loss, "options": {"class_weights": [1.0, balance],
                                **({"disco_lambda": args["disco_lambda"]} if "disco_variable" in loss else {})}}
    config = RunConfig.from_dict({
        "data": {"batch_size": args["batch_size"]},
        "model": {"name": model, "options": {"num_features": len(FEATURES)}},
        "loss": loss,
        "train": {"epochs": args["epochs"], "lr": args["lr"], "monitor": "significance", "patience": args["patience"],
                  "silent": True, "device": "cpu", "calibrate_every_epoch": False, "seed": args["seed"]},
        "out": str(run_dir / name),
    })
    trainer = Trainer(config, splits=splits)
    trainer.fit()
    return torch.sigmoid(trainer.predict(trainer.test_loader).logits[:, 0]).numpy().astype(np.float64)


def _gbdt(splits, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier

    train = splits.train
    y, w = train.y[:, 0].numpy(), train.weight.numpy()
    balanced = np.where(y == 1, w / w[y == 1].sum(), w / w[y == 0].sum())
    model = HistGradientBoostingClassifier(max_iter=300, early_stopping=True, random_state=seed)
    model.fit(train.x.numpy(), y, sample_weight=balanced * len(y))
    return model.predict_proba(splits.test.x.numpy())[:, 1]


def run_example(out, *, n_signal=20000, n_background=60000, epochs=10, disco_lambda=10.0, seed=1, batch_size=256,
                lr=1e-3, patience=4, progress=print):
    """Generate, train every model, evaluate on the test set; writes ``results.json`` and
    ``mass_sculpting.png`` into ``out`` (run folders in ``out/runs``) and returns the results."""
    out = Path(out)
    progress(f"generating {n_signal} signal and {n_background} background events")
    train, val, test = build_datasets(n_signal, n_background, seed)
    splits = Splits(train, val, test, ("signal",), ("events",), 1, train.retention)
    args = {"epochs": epochs, "disco_lambda": disco_lambda, "seed": seed, "batch_size": batch_size, "lr": lr,
            "patience": patience}
    scores = {}
    for name, (model, loss) in MODELS.items():
        progress(f"training {name}")
        scores[name] = _train(name, model, loss, splits, args, out / "runs")
    progress("training the gradient-boosted trees")
    scores["gbdt"] = _gbdt(splits, seed)
    results = {
        "events": {"train": len(train), "val": len(val), "test": len(test)},
        "expected_test_yield": {"signal": float(test.weight[test.y[:, 0] == 1].sum()),
                                "background": float(test.weight[test.y[:, 0] == 0].sum())},
        "luminosity_fb": LUMINOSITY_FB, "disco_lambda": disco_lambda, "epochs": epochs, "seed": seed,
        "models": {name: evaluate(score, test) for name, score in scores.items()},
        "sculpting": {name: sculpting(scores[name], test) for name in ("transformer", "transformer_disco")},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(finite_or_null(results), indent=1) + "\n")
    _sculpting_figure(results, out / "mass_sculpting.png")
    return results


def _sculpting_figure(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(10, 7))
    first = results["sculpting"]["transformer"]
    ax.stairs(first["before"], first["edges"], color="k", label="background, no cut")
    for name, colour, label in (("transformer", "tab:blue", "transformer (lambda = 0)"),
                                ("transformer_disco", "tab:red", f"transformer + DisCo (lambda = {results['disco_lambda']:g})")):
        cut = results["sculpting"][name]
        ax.stairs(cut["after"], first["edges"], color=colour,
                  label=f"{label}: 10 % of bkg, {cut['signal_efficiency']:.0%} of signal")
    ax.set_xlabel(r"$m_{\ell\ell\gamma}$ [GeV]")
    ax.set_ylabel("normalised background")
    ax.set_ylim(0, 1.45 * max(max(results["sculpting"][n]["after"]) for n in results["sculpting"]))
    ax.legend(fontsize="x-small", loc="upper right")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def format_table(results):
    """The comparison table as text lines."""
    lines = [f"{'model':22s} {'significance':>12s} {'AUC':>7s} {'dCorr(out, m) bkg':>18s}"]
    for name, m in results["models"].items():
        lines.append(f"{name:22s} {m['significance']:12.3f} {m['auc']:7.4f} {m['mass_dcorr_background']:18.4f}")
    return lines
